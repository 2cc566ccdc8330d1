"""``dropout``: inverted dropout on hidden outputs while training with 'sgd'
or 'adam', masks from a counter-based hash of (seed, epoch, sample, layer,
unit)."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit
from sklearn.datasets import load_digits
from sklearn.utils._param_validation import InvalidParameterError

import reference as ref
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _dropout
from native import native

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

drop_rows = native(_dropout.drop_rows)


def _data(n=150):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16, y[:n] % 3


def _mask(n, m, seed, epoch, layer, p, ids=None, dtype=np.float64):
    """Each row's kept units (0/1), as the kernels draw them."""
    ids = np.arange(n, dtype=np.int64) if ids is None else ids
    ones = np.ones((n, m), dtype=dtype)
    out = np.empty_like(ones)
    drop_rows(ones, out, ids, 0, n, seed, epoch, layer, p)
    return (out != 0).astype(dtype), out


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_masks_drop_the_asked_share_and_keep_the_expectation(p):
    n, m = 2000, 64
    kept, out = _mask(n, m, seed=12345, epoch=3, layer=1, p=p)
    share = 1 - kept.mean()
    assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / kept.size)
    np.testing.assert_array_equal(out[kept == 1], 1 / (1 - p))
    assert abs(out.mean() - 1) < 4 * np.sqrt(p / (1 - p) / out.size)
    # no visible structure by unit or by row
    per_unit = 1 - kept.mean(axis=0)
    assert np.abs(per_unit - p).max() < 5 * np.sqrt(p * (1 - p) / n)


def test_masks_are_a_function_of_seed_epoch_sample_layer_and_unit():
    n, m, p = 300, 40, 0.5
    base, _ = _mask(n, m, 7, 0, 0, p)
    np.testing.assert_array_equal(base, _mask(n, m, 7, 0, 0, p)[0])
    for other in (_mask(n, m, 8, 0, 0, p)[0], _mask(n, m, 7, 1, 0, p)[0],
                  _mask(n, m, 7, 0, 1, p)[0]):
        assert 0.4 < (other != base).mean() < 0.6  # independent draws
    # a row's mask follows its sample index, not its place in the batch
    perm = np.random.default_rng(0).permutation(n).astype(np.int64)
    moved, _ = _mask(n, m, 7, 0, 0, p, ids=perm)
    np.testing.assert_array_equal(moved, base[perm])
    # the backward pass's in-place call zeroes the same units
    d = np.random.default_rng(1).standard_normal((n, m))
    d0 = d.copy()
    drop_rows(d, d, np.arange(n, dtype=np.int64), 0, n, 7, 0, 0, p)
    np.testing.assert_array_equal(d, d0 * base * 2.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_is_the_model_without_dropout(dtype):
    X, y = _data()
    X = X.astype(dtype)
    kw = dict(hidden_layer_sizes=(10, 6), max_iter=5, random_state=0)
    a = MLPClassifier(**kw).fit(X, y)
    for d in (0.0, [0.0, 0.0], (0, 0)):
        b = MLPClassifier(dropout=d, **kw).fit(X, y)
        for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("activation", ["logistic", "relu", "silu"])
def test_one_step_is_the_gradient_through_the_masks(activation, solver):
    # From known weights (a warm start: a new optimizer, epoch 0 of its
    # masks, the seed the first draw of RandomState(0)), one full-batch
    # step, in order: plain SGD, so the update is -lr * grad; Adam's first
    # step is -lr * sign-like m / (sqrt(v) + eps), checked through the
    # gradient it implies.
    X, y = _data(80)
    p, lr = 0.4, 0.1
    kw = dict(hidden_layer_sizes=(9,), activation=activation, solver=solver, momentum=0.0,
              learning_rate_init=lr, batch_size=X.shape[0], shuffle=False, alpha=1e-3,
              random_state=0)
    clf = MLPClassifier(max_iter=1, **kw).fit(X, y)
    W, b = [c.copy() for c in clf.coefs_], [c.copy() for c in clf.intercepts_]
    clf.set_params(warm_start=True, dropout=p).fit(X, y)
    seed = np.random.RandomState(0).randint(0, 2**53)
    _, scaled = _mask(X.shape[0], 9, seed, 0, 0, p)

    n = X.shape[0]
    Y = (y[:, None] == np.arange(3)).astype(float)
    z1 = X @ W[0] + b[0]
    h = ref.hidden_activation(z1, activation)
    hd = h * scaled
    out = ref.output_activation(hd @ W[1] + b[1], "softmax")
    d2 = out - Y
    gW1 = (hd.T @ d2 + 1e-3 * W[1]) / n
    gb1 = d2.sum(0) / n
    d1 = (d2 @ W[1].T) * scaled * ref.hidden_derivative(z1, h, activation)
    gW0 = (X.T @ d1 + 1e-3 * W[0]) / n
    gb0 = d1.sum(0) / n
    if solver == "sgd":
        def step(g):
            return -lr * g
    else:
        def step(g):
            lr_t = lr * np.sqrt(1 - 0.999) / (1 - 0.9)
            return -lr_t * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-8)
    for got, w, g in zip(clf.coefs_ + clf.intercepts_, W + b, [gW0, gW1, gb0, gb1]):
        np.testing.assert_allclose(got, w + step(g), rtol=1e-9, atol=1e-12)


def test_no_dropout_at_prediction():
    X, y = _data()
    clf = MLPClassifier((12,), dropout=0.5, max_iter=10, random_state=0).fit(X, y)
    want = ref.predict(X, clf.coefs_, clf.intercepts_, "relu", "softmax")
    np.testing.assert_allclose(clf.predict_proba(X), want, atol=1e-12)
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_allclose(clf.predict_proba(X[:1]), want[:1], atol=1e-12)


def test_same_seed_same_model_any_thread_count_dense_or_sparse():
    X, y = load_digits(return_X_y=True)
    X = X / 16
    kw = dict(hidden_layer_sizes=(128, 64), activation="tanh", dropout=[0.2, 0.3],
              max_iter=3, random_state=0)
    a = MLPClassifier(n_threads=1, **kw).fit(X, y)
    b = MLPClassifier(n_threads=2, **kw).fit(X, y)
    c = MLPClassifier(n_threads=2, **kw).fit(X, y)
    for u, v, w in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_,
                       c.coefs_ + c.intercepts_):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(v, w)
    s = MLPClassifier(**kw).fit(sp.csr_matrix(X), y)
    for u, v in zip(a.coefs_, s.coefs_):
        np.testing.assert_allclose(u, v, atol=1e-12)
    other = MLPClassifier(**{**kw, "random_state": 1}).fit(X, y)
    assert not np.allclose(other.coefs_[0], a.coefs_[0])


def test_each_partial_fit_call_draws_new_masks():
    X, y = _data()
    kw = dict(hidden_layer_sizes=(10,), dropout=0.5, batch_size=X.shape[0], shuffle=False,
              random_state=0, solver="sgd", momentum=0.0, learning_rate_init=0.1)
    a = MLPRegressor(**kw)
    a.partial_fit(X, y)
    a.partial_fit(X, y)
    # the same calls, the same model
    b = MLPRegressor(**kw)
    b.partial_fit(X, y)
    b.partial_fit(X, y)
    for u, v in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(u, v)
    # the second call counts as epoch 1: with epoch 0's masks it differs
    c = MLPRegressor(**kw)
    c.partial_fit(X, y)
    c.__dict__["_optimizer"]["epochs"] = 0  # the stored state (a plain dict)
    c.partial_fit(X, y)
    assert not np.allclose(c.coefs_[0], a.coefs_[0])


def test_early_stopping_and_warm_start_with_dropout():
    X, y = _data()
    clf = MLPClassifier((16,), dropout=0.2, early_stopping=True, max_iter=30,
                        random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    clf.set_params(warm_start=True, max_iter=3).fit(X, y)
    assert np.isfinite(clf.predict_proba(X)).all()


@pytest.mark.parametrize("dropout, match", [
    ([0.1], "lists 1 rates but the network has 2 hidden layers"),
    ([0.1, 1.0], r"one rate in \[0, 1\) per hidden layer; got 1.0"),
    ([0.1, "x"], "got 'x'"),
])
def test_bad_rates_are_refused_before_training(dropout, match):
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        MLPClassifier((4, 3), dropout=dropout).fit(X, y)


@pytest.mark.parametrize("dropout", [1.0, -0.1, "half"])
def test_bad_rate_is_an_invalid_parameter(dropout):
    X, y = _data()
    with pytest.raises(InvalidParameterError, match="dropout"):
        MLPClassifier((4,), dropout=dropout).fit(X, y)


def test_lbfgs_refuses_dropout_but_takes_zero():
    X, y = _data()
    with pytest.raises(ValueError, match="dropout=0.1 needs solver='sgd' or 'adam'"):
        MLPClassifier((4,), solver="lbfgs", dropout=0.1).fit(X, y)
    MLPClassifier((4,), solver="lbfgs", dropout=0.0, max_iter=5).fit(X, y)


def test_to_sklearn_takes_a_model_trained_with_dropout():
    X, y = _data()
    clf = MLPClassifier((8,), dropout=0.3, max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_allclose(clf.to_sklearn().predict_proba(X), clf.predict_proba(X),
                               rtol=1e-12)


def test_expit_reference_sanity():
    # the reference's logistic derivative is the one the test above uses
    z = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(ref.hidden_derivative(z, expit(z), "logistic"),
                               expit(z) * (1 - expit(z)))
