"""``weight_decay``: decoupled weight decay on the weights, before each step."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils._param_validation import InvalidParameterError

import reference as ref
from fastmlp import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data():
    X, y = load_digits(return_X_y=True)
    return X[:120] / 16, y[:120] % 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_one_step_decays_the_weights_then_steps(solver, dtype):
    # From known weights (a warm start), one full-batch step: every weight is
    # w * (1 - lr * wd) plus the solver's update from the gradient at w (the
    # gradient of the loss with its L2 term, which stays scikit-learn's);
    # biases get the update alone. Adam: the first step of a fresh optimizer
    # (the warm start's fit makes a new one), lr its learning_rate_init.
    X, y = _data()
    X = X.astype(dtype)
    lr, wd, alpha = 0.05, 0.3, 1e-3
    kw = dict(hidden_layer_sizes=(6,), activation="tanh", solver=solver, momentum=0.0,
              learning_rate_init=lr, alpha=alpha, batch_size=X.shape[0], shuffle=False,
              max_iter=1, random_state=0, weight_decay=wd)
    clf = MLPClassifier(**kw).fit(X, y)
    W = [c.astype(np.float64) for c in clf.coefs_]
    b = [c.astype(np.float64) for c in clf.intercepts_]
    clf.set_params(warm_start=True).fit(X, y)

    Y = (y[:, None] == np.arange(3)).astype(float)
    _, gW, gb = ref.loss_and_gradients(X.astype(np.float64), Y, None, W, b, "tanh",
                                       "softmax", alpha)
    if solver == "sgd":
        def update(g):
            return -lr * g
    else:
        lr_t = lr * np.sqrt(1 - 0.999) / (1 - 0.9)

        def update(g):
            m, v = (1 - 0.9) * g, (1 - 0.999) * g * g
            return -lr_t * m / (np.sqrt(v) + 1e-8)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-6)
    for got, w, g in zip(clf.coefs_, W, gW):
        np.testing.assert_allclose(got, w * (1 - lr * wd) + update(g), **tol)
    for got, w, g in zip(clf.intercepts_, b, gb):
        np.testing.assert_allclose(got, w + update(g), **tol)


def test_zero_is_the_default_model_and_decay_shrinks_the_weights():
    X, y = _data()
    kw = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    a = MLPRegressor(**kw).fit(X, y)
    b = MLPRegressor(weight_decay=0.0, **kw).fit(X, y)
    c = MLPRegressor(weight_decay=5.0, **kw).fit(X, y)
    assert all(np.array_equal(p, q) for p, q in zip(a.coefs_ + a.intercepts_,
                                                    b.coefs_ + b.intercepts_))
    assert sum((w ** 2).sum() for w in c.coefs_) < sum((w ** 2).sum() for w in a.coefs_)
    assert MLPClassifier().get_params()["weight_decay"] == 0.0


def test_bad_values_and_lbfgs_are_refused_before_training():
    X, y = _data()
    for bad in (-0.1, "0.1"):
        with pytest.raises(InvalidParameterError, match="weight_decay"):
            MLPClassifier(weight_decay=bad).fit(X, y)
    with pytest.raises(ValueError, match="weight_decay=0.1 needs solver='sgd' or 'adam'"):
        MLPClassifier(solver="lbfgs", weight_decay=0.1).fit(X, y)
    MLPClassifier((4,), solver="lbfgs", max_iter=2).fit(X, y)


def test_partial_fit_keeps_the_decay_it_started_with():
    # as every optimizer setting, weight_decay stays with the optimizer that
    # partial_fit made (scikit-learn's optimizer objects keep theirs)
    X, y = _data()
    a = MLPClassifier((6,), random_state=0, weight_decay=0.5)
    b = MLPClassifier((6,), random_state=0, weight_decay=0.5)
    a.partial_fit(X, y, classes=[0, 1, 2])
    b.partial_fit(X, y, classes=[0, 1, 2])
    a.set_params(weight_decay=0.0).partial_fit(X, y)
    b.partial_fit(X, y)
    assert all(np.array_equal(p, q) for p, q in zip(a.coefs_, b.coefs_))
