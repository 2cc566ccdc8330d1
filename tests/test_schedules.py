"""Per-step learning-rate schedules ('cosine', 'linear'), ``lr_warmup`` and
``clip_grad_norm``: closed forms, what ``history_`` records, partial_fit,
and the defaults' bits."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.utils._param_validation import InvalidParameterError

import reference as ref
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._optim import schedule_factor
from fastmlp._codes import COSINE, LINEAR, NO_SCHEDULE

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=120):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16, y[:n] % 3


def _factor(e, schedule, warmup, horizon):
    # the documented rule, written out
    if e < warmup:
        return e / warmup
    p = min(max((e - warmup) / (horizon - warmup), 0.0), 1.0) if horizon > warmup else 1.0
    return {"cosine": 0.5 * (1 + np.cos(np.pi * p)), "linear": 1 - p, "constant": 1.0}[schedule]


@pytest.mark.parametrize("schedule, code", [("cosine", COSINE), ("linear", LINEAR),
                                            ("constant", NO_SCHEDULE)])
@pytest.mark.parametrize("warmup", [0.0, 0.5, 2.0, 10.0])
def test_schedule_factor_is_the_closed_form(schedule, code, warmup):
    horizon = 10.0
    for e in np.linspace(0, 12, 49):
        got = schedule_factor.py_func(e, code, warmup, horizon)
        assert got == pytest.approx(_factor(e, schedule, warmup, horizon), abs=1e-15)
    if schedule != "constant":
        assert schedule_factor.py_func(horizon, code, warmup, horizon) == pytest.approx(0.0,
                                                                                       abs=1e-15)
        assert schedule_factor.py_func(warmup, code, warmup, horizon) == pytest.approx(
            1.0 if warmup < horizon else 0.0)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("schedule, warmup", [("cosine", 0), ("linear", 0), ("cosine", 1.5),
                                              ("constant", 2)])
def test_history_records_the_rate_each_epoch_reached(solver, schedule, warmup):
    X, y = _data()
    lr, bs, epochs = 0.01, 32, 6
    clf = MLPClassifier((5,), solver=solver, learning_rate=schedule, lr_warmup=warmup,
                        learning_rate_init=lr, batch_size=bs, max_iter=epochs,
                        random_state=0).fit(X, y)
    steps = -(-X.shape[0] // bs)
    got = [h["learning_rate"] for h in clf.history_]
    # each epoch's last step, at (steps - 1) / steps of the epoch
    want = [lr * _factor(k + (steps - 1) / steps, schedule, warmup, epochs)
            for k in range(epochs)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-18)
    if schedule != "constant":
        assert got[-1] < lr * 0.05


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_each_step_of_sgd_uses_the_schedules_rate(schedule, dtype):
    # Plain SGD (no momentum) over full batches from known weights: step k
    # is theta -= lr * f(k) * grad, f the schedule at k epochs done.
    X, y = _data(60)
    X = X.astype(dtype)
    K, lr, warmup = 5, 0.3, 1.0
    kw = dict(hidden_layer_sizes=(4,), activation="tanh", solver="sgd", momentum=0.0,
              learning_rate_init=lr, batch_size=X.shape[0], shuffle=False, alpha=1e-3,
              random_state=0)
    clf = MLPClassifier(max_iter=1, **kw).fit(X, y)
    theta = ref.pack(clf.coefs_, clf.intercepts_).astype(np.float64)
    units = [X.shape[1], 4, 3]
    clf.set_params(warm_start=True, max_iter=K, learning_rate=schedule, lr_warmup=warmup)
    clf.fit(X, y)
    Y = (y[:, None] == np.arange(3)).astype(float)
    for k in range(K):
        _, g = ref.flat_loss_and_gradient(theta, units, X.astype(np.float64), Y, None, "tanh",
                                          "softmax", 1e-3)
        theta = theta - lr * _factor(k, schedule, warmup, K) * g
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ref.pack(clf.coefs_, clf.intercepts_), theta, **tol)


def test_partial_fit_goes_on_with_the_schedule():
    # Each partial_fit call is one epoch of the schedule begun by the first;
    # max_iter calls take the rate to 0, where it stays.
    X, y = _data()
    clf = MLPClassifier((5,), learning_rate="cosine", max_iter=4, batch_size=X.shape[0],
                        random_state=0)
    rates = []
    for _ in range(6):
        clf.partial_fit(X, y, classes=[0, 1, 2])
        rates.append(clf.history_[-1]["learning_rate"])
    want = [1e-3 * _factor(k, "cosine", 0, 4) for k in range(6)]
    np.testing.assert_allclose(rates, want, atol=1e-18)
    before = [c.copy() for c in clf.coefs_]
    clf.partial_fit(X, y)
    for a, b in zip(before, clf.coefs_):
        np.testing.assert_array_equal(a, b)  # rate 0: Adam's step is 0 * m / ...


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_warmup_changes_early_steps_only_and_constant_schedule_keeps_bits(solver):
    X, y = _data()
    kw = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=4, random_state=0)
    base = MLPClassifier(**kw).fit(X, y)
    same = MLPClassifier(lr_warmup=0.0, clip_grad_norm=None, **kw).fit(X, y)
    for a, b in zip(base.coefs_ + base.intercepts_, same.coefs_ + same.intercepts_):
        np.testing.assert_array_equal(a, b)
    warm = MLPClassifier(lr_warmup=2, **kw).fit(X, y)
    assert not np.array_equal(base.coefs_[0], warm.coefs_[0])
    assert [h["learning_rate"] for h in warm.history_][2:] == [base.learning_rate_init] * 2


def _clip_step(theta, g, lr, c):
    norm = np.sqrt(np.sum(g * g))
    coef = c / (norm + 1e-6)
    return theta - lr * (g * coef if coef < 1 else g), norm


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clipping_scales_the_whole_gradient(dtype, sparse):
    # One plain-SGD full-batch step from known weights: the gradient of
    # every layer is scaled by c / (norm + 1e-6) when its norm exceeds c.
    X, y = _data(60)
    X = X.astype(dtype)
    lr, c = 0.5, 0.05
    kw = dict(hidden_layer_sizes=(4, 3), activation="tanh", solver="sgd", momentum=0.0,
              learning_rate_init=lr, batch_size=X.shape[0], shuffle=False, alpha=1e-3,
              random_state=0)
    clf = MLPClassifier(max_iter=1, **kw).fit(X, y)
    theta = ref.pack(clf.coefs_, clf.intercepts_).astype(np.float64)
    clf.set_params(warm_start=True, clip_grad_norm=c)
    clf.fit(sp.csr_matrix(X) if sparse else X, y)
    Y = (y[:, None] == np.arange(3)).astype(float)
    _, g = ref.flat_loss_and_gradient(theta, [X.shape[1], 4, 3, 3], X.astype(np.float64), Y,
                                      None, "tanh", "softmax", 1e-3)
    want, norm = _clip_step(theta, g, lr, c)
    assert norm > 4 * c  # it clips
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ref.pack(clf.coefs_, clf.intercepts_), want, **tol)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_norm_never_reached_is_the_unclipped_model(solver):
    X, y = _data()
    kw = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=3, random_state=0)
    a = MLPRegressor(**kw).fit(X, y)
    b = MLPRegressor(clip_grad_norm=1e6, **kw).fit(X, y)
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(u, v)
    c = MLPRegressor(clip_grad_norm=1e-3, **kw).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


@pytest.mark.parametrize("params", [dict(lr_warmup=1), dict(clip_grad_norm=1.0)])
def test_lbfgs_refuses_step_settings(params):
    X, y = _data()
    with pytest.raises(ValueError, match=f"{next(iter(params))}=.* needs solver='sgd' or 'adam'"):
        MLPClassifier((4,), solver="lbfgs", **params).fit(X, y)


@pytest.mark.parametrize("params", [dict(lr_warmup=-1), dict(clip_grad_norm=0.0),
                                    dict(clip_grad_norm="x"), dict(learning_rate="cos")])
def test_bad_values_are_refused_up_front(params):
    X, y = _data()
    with pytest.raises(InvalidParameterError, match=next(iter(params))):
        MLPClassifier((4,), **params).fit(X, y)


def test_scheduled_fits_are_the_same_at_any_thread_count():
    X, y = _data()
    kw = dict(hidden_layer_sizes=(64,), learning_rate="cosine", lr_warmup=0.5,
              clip_grad_norm=0.5, weight_decay=0.01, max_iter=3, random_state=0)
    a = MLPClassifier(n_threads=1, **kw).fit(X, y)
    b = MLPClassifier(n_threads=2, **kw).fit(X, y)
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(u, v)


def test_to_sklearn_takes_a_scheduled_model():
    X, y = _data()
    clf = MLPClassifier((5,), learning_rate="cosine", lr_warmup=1, clip_grad_norm=1.0,
                        max_iter=3, random_state=0).fit(X, y)
    sk = clf.to_sklearn()
    assert sk.learning_rate == "constant"
    np.testing.assert_allclose(sk.predict_proba(X), clf.predict_proba(X), rtol=1e-12)
