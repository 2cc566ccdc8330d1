"""The hidden activations beyond scikit-learn's, and one activation per
hidden layer: estimator-level behaviour (each pair's forward and derivative
are checked against tests/reference.py in test_kernels.py)."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits

import reference as ref
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._codes import ACTIVATIONS

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

NEW = ["leaky_relu", "elu", "silu", "softplus", "gelu"]


def _data(n=150):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16, y[:n] % 3


@pytest.mark.parametrize("activation", NEW)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_activation_trains_and_predicts_as_the_reference(activation, dtype):
    X, y = _data()
    X = X.astype(dtype)
    clf = MLPClassifier((12, 7), activation=activation, max_iter=30, random_state=0).fit(X, y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    want = ref.predict(X.astype(np.float64), [c.astype(np.float64) for c in clf.coefs_],
                       [b.astype(np.float64) for b in clf.intercepts_], activation, "softmax")
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(clf.predict_proba(X), want, atol=tol)
    np.testing.assert_allclose(clf.predict_proba(X[:1]), want[:1], atol=tol)  # serial path


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_one_activation_per_hidden_layer(solver):
    X, y = _data()
    acts = ("tanh", "silu", "leaky_relu")
    kw = dict(hidden_layer_sizes=(9, 8, 7), solver=solver, max_iter=5, random_state=0)
    clf = MLPClassifier(activation=list(acts), **kw).fit(X, y)
    W = [c.copy() for c in clf.coefs_]
    want = ref.predict(X, clf.coefs_, clf.intercepts_, acts, "softmax")
    np.testing.assert_allclose(clf.predict_proba(X), want, atol=1e-12)
    # a tuple is the same model; one name repeated is that name's model
    same = MLPClassifier(activation=acts, **kw).fit(X, y)
    for a, b in zip(W, same.coefs_):
        np.testing.assert_array_equal(a, b)
    one = MLPClassifier(activation="tanh", **kw).fit(X, y)
    three = MLPClassifier(activation=["tanh"] * 3, **kw).fit(X, y)
    for a, b in zip(one.coefs_ + one.intercepts_, three.coefs_ + three.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_per_layer_gradient_matches_central_differences():
    # one L-BFGS objective evaluation against the reference gradient
    X, y = _data(40)
    acts = ["softplus", "elu"]
    clf = MLPRegressor(hidden_layer_sizes=(5, 4), activation=acts, solver="lbfgs", max_iter=1,
                       random_state=0).fit(X, y.astype(float))
    theta = ref.pack(clf.coefs_, clf.intercepts_)
    units = [X.shape[1], 5, 4, 1]
    Y = y.astype(float).reshape(-1, 1)
    coefs, intercepts = ref.unpack(theta, units)
    loss, g = ref.flat_loss_and_gradient(theta, units, X, Y, None, acts, "identity", 1e-4)
    # central differences of the reference loss on a few coordinates
    rng = np.random.default_rng(0)
    for i in rng.choice(theta.size, 12, replace=False):
        e = np.zeros_like(theta)
        e[i] = 1e-6
        lp, _ = ref.flat_loss_and_gradient(theta + e, units, X, Y, None, acts, "identity", 1e-4)
        lm, _ = ref.flat_loss_and_gradient(theta - e, units, X, Y, None, acts, "identity", 1e-4)
        assert (lp - lm) / 2e-6 == pytest.approx(g[i], rel=1e-5, abs=1e-8)
    # and fastmlp's gradient is the reference's (scikit-learn's packing:
    # every layer's weights, then every layer's biases)
    def sk_order(parts):
        return np.hstack([p.ravel() for p in parts[0]] + [p.ravel() for p in parts[1]])

    cl, ig = [np.empty_like(c) for c in coefs], [np.empty_like(b) for b in intercepts]
    got_loss, got = clf._loss_grad_lbfgs(sk_order((coefs, intercepts)), X, Y, None, None, None,
                                         cl, ig)
    assert got_loss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(got, sk_order(ref.unpack(g, units)), rtol=1e-9, atol=1e-13)


def test_sparse_input_with_new_activations():
    X, y = _data()
    kw = dict(hidden_layer_sizes=(10, 6), activation=["silu", "elu"], max_iter=4,
              random_state=0)
    dense = MLPClassifier(**kw).fit(X, y)
    csr = MLPClassifier(**kw).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(csr.predict_proba(X), dense.predict_proba(X), atol=1e-12)


@pytest.mark.parametrize("activation, match", [
    (["tanh"], "lists 1 names but the network has 2 hidden layers"),
    (["tanh", "swish"], "one name per hidden layer among .*got 'swish'"),
    (("relu", 3), "got 3"),
])
def test_bad_activation_lists_are_refused_before_training(activation, match):
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        MLPClassifier((4, 3), activation=activation).fit(X, y)


def test_softplus_does_not_overflow():
    X, y = _data()
    clf = MLPRegressor(hidden_layer_sizes=(6,), activation="softplus", max_iter=3,
                       random_state=0).fit(X, y)
    big = X * 1e4
    out = clf.predict(big)
    assert np.isfinite(out).all()
    want = ref.predict(big, clf.coefs_, clf.intercepts_, "softplus", "identity")
    np.testing.assert_allclose(out.ravel(), want.ravel(), rtol=1e-12)


def test_to_sklearn_names_the_activation_and_points_to_onnx():
    X, y = _data()
    for act in ("silu", ["relu", "tanh"]):
        clf = MLPClassifier((4, 3), activation=act, max_iter=2, random_state=0).fit(X, y)
        with pytest.raises(ValueError, match="(?s)'activation'.*fastmlp.to_onnx"):
            clf.to_sklearn()
    same = MLPClassifier((4, 3), activation=["tanh", "tanh"], max_iter=2,
                         random_state=0).fit(X, y)
    sk = same.to_sklearn()
    assert sk.activation == "tanh"
    np.testing.assert_allclose(sk.predict_proba(X), same.predict_proba(X), rtol=1e-12)


def test_the_table_has_every_activation():
    assert set(NEW) <= set(ACTIVATIONS)


def test_exp64_is_within_one_ulp_of_libm():
    # SiLU's exponential, written so that LLVM vectorises it
    from numba import njit

    from fastmlp._activations import exp64

    @njit
    def run(x, out):
        for i in range(x.shape[0]):
            out[i] = exp64(x[i])

    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-708, 709.78, 100_001), rng.normal(0, 5, 50_000),
                        rng.uniform(-1e-3, 1e-3, 1000)])
    got = np.empty_like(x)
    run(x, got)
    want = np.exp(x)
    assert (np.abs(got - want) <= np.spacing(want)).all()
    edge = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 709.8, 1e300, -708.5, -1e300])
    got = np.empty_like(edge)
    run(edge, got)
    np.testing.assert_array_equal(got, [np.nan, np.inf, 0.0, 1.0, 1.0, np.inf, np.inf, 0.0, 0.0])
