"""Tests of fastmlp's compiled kernels against the plain-NumPy reference.

The reference (``tests/reference.py``) re-implements scikit-learn's MLP
formulas with ordinary NumPy; here the engine's full-batch loss/gradient,
predictions, optimizer steps and mini-batch epochs are compared with it, the
gradients are checked by central differences, results are checked to be
bit-identical for any thread count, and every kernel is checked to compile at
most once per dtype.
"""

import zlib
from collections import defaultdict

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numba.core import compiler, ir, rewrites, typed_passes, types
from numba.core.dispatcher import Dispatcher

import reference as ref
from native import native
from fastmlp import _activations, _engine, _kernels, _linalg, _optim
from fastmlp._bundles import make_batch, make_params, make_shape, make_work, predict_params
from fastmlp._jit import BundleRef
from fastmlp._codes import (
    ACTIVATIONS,
    ADAM,
    BIASES,
    FORWARD,
    H_LR,
    H_BASE_LR,
    H_STEP_LR,
    HEADS,
    NEEDS_PRE,
    NO_STEP,
    OFF_B,
    PREDICT,
    RELU,
    SGD,
    SPARSE_FORWARD,
    WEIGHTS,
)
from fastmlp._layout import Layout

DTYPES = [np.float64, np.float32]
ACT_NAMES = list(ACTIVATIONS)
HEAD_NAMES = ["softmax", "logistic", "identity", "exp"]
KERNEL_MODULES = [_kernels, _linalg, _optim, _engine, _activations]
# an internal kernel: called from compiled code (tests/native.py)
optimizer_step = native(_optim.optimizer_step)


@numba.njit
def begin_step(params):
    """:func:`fastmlp._optim.begin_step`, which is inlined into its compiled
    callers (it has no code of its own to call)."""
    _optim.begin_step(params)


N_SAMPLES = 40
N_FEATURES = 6
HIDDEN = (7, 5)  # two hidden layers of different widths
N_OUTPUTS = 3
ALPHA = 0.3
RELU_MARGIN = 1e-3  # no hidden pre-activation closer than this to ReLU's kink


# --------------------------------------------------------------------------
# Problem construction and comparison helpers
# --------------------------------------------------------------------------


def _seed(*parts):
    """A deterministic seed from test parameters."""
    return zlib.crc32(repr(parts).encode()) % (2**31)


def _targets(head, n, n_outputs, rng):
    if head == "softmax":
        cls = np.arange(n) % n_outputs  # every class present
        rng.shuffle(cls)
        return np.eye(n_outputs)[cls]
    if head == "logistic":
        return (rng.random_sample((n, n_outputs)) < 0.5).astype(np.float64)
    if head == "identity":
        return rng.normal(size=(n, n_outputs))
    if head == "exp":
        return rng.poisson(1.0, size=(n, n_outputs)).astype(np.float64)
    raise ValueError(head)


class Problem:
    """Random data, targets, sample weights and parameters of a small MLP.

    Parameters
    ----------
    activation, head : str
        Hidden activation and output head names.
    seed : int
    n, n_features, hidden, n_outputs : int / tuple
        Problem sizes.
    density : float
        Fraction of non-zero inputs (dense inputs contain the same zeros).
    theta_scale : float
        Standard deviation of the random parameters.
    X : ndarray, optional
        Use this input instead of a random one.
    relu_margin : float
        Parameters are redrawn until no hidden pre-activation lies within
        ``relu_margin`` of zero, so ReLU's kink never matters (0: no check).
    """

    def __init__(self, activation, head, seed, *, n=N_SAMPLES, n_features=N_FEATURES,
                 hidden=HIDDEN, n_outputs=N_OUTPUTS, density=0.6, theta_scale=0.5, X=None,
                 relu_margin=RELU_MARGIN):
        rng = np.random.RandomState(seed)
        self.activation = activation
        self.head = head
        self.units = [n_features, *hidden, n_outputs]
        if X is None:
            X = rng.normal(size=(n, n_features))
            X[rng.random_sample(X.shape) >= density] = 0.0
        self.X = X
        self.Xs = sp.csr_matrix(X)
        self.Y = _targets(head, n, n_outputs, rng)
        self.sw = rng.uniform(0.2, 2.0, size=n)
        P = ref.n_params(self.units)
        for _ in range(100):
            theta = rng.normal(scale=theta_scale, size=P)
            coefs, intercepts = ref.unpack(theta, self.units)
            zs = ref.pre_activations(X, coefs, intercepts, activation)
            if relu_margin == 0 or min((np.abs(z).min() for z in zs), default=np.inf) > relu_margin:
                break
        else:  # pragma: no cover - would need absurd bad luck
            raise RuntimeError("could not draw parameters away from ReLU's kink")
        self.theta = theta

    def network(self, dtype):
        n_hidden = len(self.units) - 2
        return _engine.Network(Layout(self.units), [ACTIVATIONS[self.activation]] * n_hidden,
                               HEADS[self.head], dtype)

    def inputs(self, dtype, sparse):
        return _engine.Inputs(self.Xs if sparse else self.X, dtype)

    def cast(self, dtype):
        """(X, Xs, Y, sw, theta) rounded to ``dtype`` then widened to float64.

        The reference is always evaluated in float64, on exactly the values
        the engine sees.
        """
        def r(a):
            return np.asarray(a, dtype=dtype).astype(np.float64)

        Xs = self.Xs.astype(dtype).astype(np.float64)
        return r(self.X), Xs, r(self.Y), r(self.sw), r(self.theta)


def _assert_close(actual, desired, dtype, *, rtol64=1e-10, rtol32=1e-5, atol32=1e-6):
    """Compare with a tolerance that fits ``dtype``; atol scales with ``desired``."""
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(1.0, float(np.abs(desired).max())) if desired.size else 1.0
    if np.dtype(dtype) == np.float64:
        rtol, atol = rtol64, 1e-13 * scale
    else:
        rtol, atol = rtol32, atol32 * scale
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), desired,
                               rtol=rtol, atol=atol)


def _with_threads(n_threads, fn):
    """Call ``fn()`` with Numba using ``n_threads`` threads, then restore."""
    old = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        return fn()
    finally:
        numba.set_num_threads(old)


def _objective(prob, dtype, sparse, alpha=ALPHA):
    net = prob.network(dtype)
    return _engine.FullBatchObjective(net, prob.inputs(dtype, sparse), prob.Y, prob.sw, alpha)


# --------------------------------------------------------------------------
# a. Full-batch loss, gradient and predictions vs the reference
# --------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("head", HEAD_NAMES)
@pytest.mark.parametrize("activation", ACT_NAMES)
def test_full_batch_loss_grad_and_predict_match_reference(activation, head, dtype, sparse):
    prob = Problem(activation, head, _seed("a", activation, head))
    X, Xs, Y, sw, theta = prob.cast(dtype)
    Xin = Xs if sparse else X

    obj = _objective(prob, dtype, sparse)
    loss, grad = obj(theta)
    assert grad.dtype == np.float64 and grad.shape == theta.shape

    ref_loss, ref_grad = ref.flat_loss_and_gradient(
        theta, prob.units, Xin, Y, sw, activation, head, ALPHA,
        eps=np.finfo(dtype).eps)
    _assert_close(loss, ref_loss, dtype)
    _assert_close(grad, ref_grad, dtype)

    net = prob.network(dtype)
    out = _engine.predict_output(net, theta.astype(dtype), prob.inputs(dtype, sparse))
    assert out.dtype == np.dtype(dtype)
    assert out.shape == (X.shape[0], prob.units[-1])
    coefs, intercepts = ref.unpack(theta, prob.units)
    _assert_close(out, ref.predict(Xin, coefs, intercepts, activation, head), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("head", ["softmax", "logistic"])
def test_log_loss_clipping_matches_reference(head, dtype):
    # Huge parameters saturate the probabilities to exactly 0 / 1, so the
    # [eps, 1 - eps] clipping of the cross-entropy is active.
    prob = Problem("tanh", head, _seed("clip", head), theta_scale=40.0)
    X, _, Y, sw, theta = prob.cast(dtype)
    coefs, intercepts = ref.unpack(theta, prob.units)
    out = ref.predict(X, coefs, intercepts, "tanh", head).astype(dtype)
    eps = np.finfo(dtype).eps
    assert ((out < eps) | (out > 1 - eps)).any(), "clipping not exercised"

    loss, grad = _objective(prob, dtype, sparse=False)(theta)
    ref_loss, ref_grad = ref.flat_loss_and_gradient(theta, prob.units, X, Y, sw, "tanh",
                                                    head, ALPHA, eps=eps)
    assert np.isfinite(loss)
    # Weights ~40 amplify float32 rounding: looser float32 tolerance here.
    # How far a float32 gradient lands depends on the summation order: over
    # 12 seeds of this problem the old hand-written kernels reached 7x, and
    # the BLAS kernels 1.3x, an absolute bound of 1e-5 * scale.
    _assert_close(loss, ref_loss, dtype, rtol32=1e-4, atol32=1e-5)
    _assert_close(grad, ref_grad, dtype, rtol32=1e-4, atol32=1e-4)


def test_full_batch_gradient_is_a_fresh_array():
    # scipy's L-BFGS keeps references to earlier gradients.
    prob = Problem("tanh", "softmax", _seed("fresh"))
    obj = _objective(prob, np.float64, sparse=False)
    _, g1 = obj(prob.theta)
    g1_copy = g1.copy()
    _, g2 = obj(prob.theta * 0.5)
    assert g1 is not g2
    np.testing.assert_array_equal(g1, g1_copy)
    assert not np.array_equal(g1, g2)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("hidden", [(), (4,), (7, 5, 3)], ids=["0hidden", "1hidden", "3hidden"])
@pytest.mark.parametrize("activation,head", [("tanh", "softmax"), ("relu", "identity")])
def test_other_depths_match_reference(activation, head, hidden, sparse):
    prob = Problem(activation, head, _seed("depth", activation, head, hidden), hidden=hidden)
    Xin = prob.Xs if sparse else prob.X
    loss, grad = _objective(prob, np.float64, sparse)(prob.theta)
    ref_loss, ref_grad = ref.flat_loss_and_gradient(prob.theta, prob.units, Xin, prob.Y,
                                                    prob.sw, activation, head, ALPHA)
    _assert_close(loss, ref_loss, np.float64)
    _assert_close(grad, ref_grad, np.float64)
    out = _engine.predict_output(prob.network(np.float64), prob.theta,
                                 prob.inputs(np.float64, sparse))
    coefs, intercepts = ref.unpack(prob.theta, prob.units)
    _assert_close(out, ref.predict(Xin, coefs, intercepts, activation, head), np.float64)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_predict_in_several_chunks_matches_reference(dtype, sparse):
    # More rows than PREDICT_CHUNK: three chunks, the last one short.
    n = 2 * _engine.PREDICT_CHUNK + 37
    prob = Problem("relu", "softmax", _seed("chunks"), n=n, relu_margin=0)
    X, Xs, _, _, theta = prob.cast(dtype)
    Xin = Xs if sparse else X
    out = _engine.predict_output(prob.network(dtype), theta.astype(dtype),
                                 prob.inputs(dtype, sparse))
    assert out.shape == (n, N_OUTPUTS)
    coefs, intercepts = ref.unpack(theta, prob.units)
    _assert_close(out, ref.predict(Xin, coefs, intercepts, "relu", "softmax"), dtype)


# --------------------------------------------------------------------------
# b. Central-difference gradient check (float64)
# --------------------------------------------------------------------------


def _central_difference(f, theta, h):
    num = np.empty_like(theta)
    for i in range(theta.size):
        tp = theta.copy()
        tm = theta.copy()
        tp[i] += h
        tm[i] -= h
        num[i] = (f(tp)[0] - f(tm)[0]) / (2 * h)
    return num


@pytest.mark.parametrize("head,n_outputs",
                         [(h, N_OUTPUTS) for h in HEAD_NAMES] + [("identity", 1)])
@pytest.mark.parametrize("activation", ACT_NAMES)
def test_gradient_central_differences(activation, head, n_outputs):
    prob = Problem(activation, head, _seed("b", activation, head, n_outputs),
                   n_outputs=n_outputs)
    obj = _objective(prob, np.float64, sparse=False)
    theta = prob.theta
    _, grad = obj(theta)
    # all entries; one thread: hundreds of tiny calls, results thread-independent
    num = _with_threads(1, lambda: _central_difference(obj, theta, h=1e-6))

    if head == "identity":
        # scikit-learn's squared-error gradient is n_outputs times the
        # derivative of its loss on the data term (the loss averages over
        # outputs, the output delta does not); the L2 term is exact.
        mask = ref.weights_mask(prob.units)
        l2_grad = np.where(mask, ALPHA * theta / prob.sw.sum(), 0.0)
        expected = n_outputs * (num - l2_grad) + l2_grad
    else:
        expected = num
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


def test_squared_error_gradient_factor_is_n_outputs():
    # With alpha = 0 the engine's gradient is exactly n_outputs times the
    # numerical derivative of its own loss (scikit-learn's behaviour).
    prob = Problem("tanh", "identity", _seed("factor"), n_outputs=4)
    obj = _objective(prob, np.float64, sparse=False, alpha=0.0)
    _, grad = obj(prob.theta)
    num = _with_threads(1, lambda: _central_difference(obj, prob.theta, h=1e-6))
    np.testing.assert_allclose(grad, 4 * num, rtol=1e-6, atol=1e-8)
    assert not np.allclose(grad, num, rtol=1e-2, atol=0)


# --------------------------------------------------------------------------
# c. Optimizer steps vs closed forms
# --------------------------------------------------------------------------

N_OPT = 5003
N_STEPS = 5
# The kernels step blocks of the buffer: a step on [LO, HI) must leave
# every element outside it alone.
LO, HI = 129, N_OPT - 71


def _outside_unchanged(before, after):
    np.testing.assert_array_equal(after[:LO], before[:LO])
    np.testing.assert_array_equal(after[HI:], before[HI:])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_step_matches_closed_form(momentum, nesterov, dtype):
    dt = np.dtype(dtype).type
    rng = np.random.RandomState(_seed("sgd", momentum, nesterov))
    theta = rng.normal(size=N_OPT).astype(dtype)
    velocity = rng.normal(scale=0.1, size=N_OPT).astype(dtype)  # as after earlier steps
    grad = np.zeros(N_OPT, dtype)
    params = make_params(theta, grad, SGD, nesterov, m1=velocity, momentum=momentum)
    exp_theta, exp_vel = theta.copy(), velocity.copy()
    lrs = [0.1, 0.05, 0.2, 0.01, 0.1]  # e.g. a schedule changing the rate
    for step in range(N_STEPS):
        grad[:] = rng.normal(size=N_OPT).astype(dtype)
        lr, mom = dt(lrs[step]), dt(momentum)
        params.hyper[H_LR] = lrs[step]  # as StochasticTrainer.set_learning_rate
        begin_step(params)
        assert params.hyper[H_STEP_LR] == lr
        before = theta.copy(), velocity.copy()
        optimizer_step(params, 0, LO, WEIGHTS)
        optimizer_step(params, LO, HI, WEIGHTS)
        optimizer_step(params, HI, N_OPT, BIASES)
        optimizer_step(params, 7, 7, WEIGHTS)
        part = before[0].copy(), before[1].copy()
        optimizer_step(params._replace(theta=part[0], m1=part[1]), LO, HI, BIASES)
        _outside_unchanged(before[0], part[0])
        _outside_unchanged(before[1], part[1])
        np.testing.assert_array_equal(part[0][LO:HI], theta[LO:HI])

        # sklearn's SGDOptimizer._get_updates, in the buffer dtype
        upd = mom * exp_vel - lr * grad
        exp_vel = upd
        if nesterov:
            upd = mom * upd - lr * grad
        exp_theta = exp_theta + upd

        assert theta.dtype == velocity.dtype == np.dtype(dtype)
        if momentum == 0.0:
            # theta - lr * grad: a single rounding whatever the contraction
            np.testing.assert_array_equal(theta, exp_theta)
            np.testing.assert_array_equal(velocity, exp_vel)
        elif dtype == np.float64:
            np.testing.assert_allclose(theta, exp_theta, rtol=1e-14, atol=1e-15)
            np.testing.assert_allclose(velocity, exp_vel, rtol=1e-14, atol=1e-15)
        else:
            np.testing.assert_allclose(theta, exp_theta, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(velocity, exp_vel, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_adam_step_matches_closed_form(dtype):
    dt = np.dtype(dtype).type
    lr_init, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    rng = np.random.RandomState(_seed("adam"))
    theta = rng.normal(size=N_OPT).astype(dtype)
    m = np.zeros(N_OPT, dtype=dtype)
    v = np.zeros(N_OPT, dtype=dtype)
    grad = np.zeros(N_OPT, dtype)
    params = make_params(theta, grad, ADAM, m1=m, m2=v, learning_rate=lr_init, beta_1=b1,
                         beta_2=b2, epsilon=eps)
    exp_theta, exp_m, exp_v = theta.copy(), m.copy(), v.copy()
    for t in range(1, N_STEPS + 1):
        grad[:] = rng.normal(size=N_OPT).astype(dtype)
        lr_t = _optim.adam_step_size(lr_init, b1, b2, t)
        np.testing.assert_allclose(lr_t, lr_init * np.sqrt(1 - b2**t) / (1 - b1**t),
                                   rtol=1e-15)
        begin_step(params)
        assert params.step[0] == t
        assert params.hyper[H_STEP_LR] == dt(lr_t)
        before = theta.copy(), m.copy(), v.copy()
        optimizer_step(params, 0, N_OPT, WEIGHTS)
        part = tuple(x.copy() for x in before)
        optimizer_step(params._replace(theta=part[0], m1=part[1], m2=part[2]), LO, HI,
                       WEIGHTS)
        for x, y in zip(before, part):
            _outside_unchanged(x, y)
        np.testing.assert_array_equal(part[0][LO:HI], theta[LO:HI])
        # NO_STEP (L-BFGS's gradient-only calls) changes nothing
        same = tuple(x.copy() for x in before)
        for part_code in (WEIGHTS, BIASES):
            optimizer_step(params._replace(theta=same[0], m1=same[1], m2=same[2],
                                           solver=NO_STEP), 0, N_OPT, part_code)
        for x, y in zip(before, same):
            np.testing.assert_array_equal(x, y)

        # sklearn's AdamOptimizer._get_updates, in the buffer dtype
        exp_m = dt(b1) * exp_m + dt(1 - b1) * grad
        exp_v = dt(b2) * exp_v + dt(1 - b2) * (grad**2)
        lr_closed = dt(lr_init * np.sqrt(1 - b2**t) / (1 - b1**t))
        exp_theta = exp_theta + (-lr_closed * exp_m) / (np.sqrt(exp_v) + dt(eps))

        assert theta.dtype == m.dtype == v.dtype == np.dtype(dtype)
        if dtype == np.float64:
            kw = dict(rtol=1e-13, atol=1e-15)
        else:
            kw = dict(rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(m, exp_m, **kw)
        np.testing.assert_allclose(v, exp_v, **kw)
        np.testing.assert_allclose(theta, exp_theta, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_begin_step_counts_the_step_and_sets_its_rate(solver, dtype):
    """``begin_step`` adds one to the step count and sets ``hyper[H_STEP_LR]``:
    for Adam, scikit-learn's bias-corrected step size at the new count,
    ``learning_rate_init * sqrt(1 - beta_2**t) / (1 - beta_1**t)``
    (``AdamOptimizer._get_updates``), computed in float64 from ``hyper64``
    and then rounded to the dtype; for SGD, the current rate ``hyper[H_LR]``.
    It writes nothing else."""
    dt = np.dtype(dtype).type
    lr_init, b1, b2 = 0.001, 0.9, 0.999
    theta = np.linspace(-1, 1, 11).astype(dtype)
    params = make_params(theta, solver=SGD if solver == "sgd" else ADAM, learning_rate=lr_init,
                         momentum=0.9, beta_1=b1, beta_2=b2, epsilon=1e-8, alpha=0.1)
    arrays = {f: getattr(params, f) for f in ("theta", "grad", "m1", "m2", "hyper64")}
    saved = {f: a.copy() for f, a in arrays.items()}
    hyper = params.hyper.copy()
    rates = [0.5, 0.25, 0.125]  # an SGD schedule changing the rate between steps
    for t in range(1, 1001):
        if solver == "sgd" and t <= len(rates):
            params.hyper[H_LR] = hyper[H_LR] = rates[t - 1]
        begin_step(params)
        assert params.step.tolist() == [t]
        rate = params.hyper[H_STEP_LR]
        if solver == "sgd":
            assert rate == hyper[H_LR]
        else:
            # scikit-learn's formula on Python floats (float64). Compiled,
            # ``beta**t`` of an integer ``t`` is repeated multiplication,
            # not C's pow: up to ~1e-14 apart by t = 1000.
            exact = lr_init * np.sqrt(1 - b2**t) / (1 - b1**t)
            if dtype == np.float64:
                np.testing.assert_allclose(rate, exact, rtol=2e-14)
            else:
                # the float64 rate rounded once (one ulp for a last-bit
                # difference of the two float64 powers at a tie)
                assert abs(rate - dt(exact)) <= np.spacing(dt(exact))
                # not computed from the float32 copies of the settings in
                # ``hyper``, which lose about 6e-6 of it
                f = np.float32
                from32 = f(lr_init) * np.sqrt(f(1) - f(b2)**t) / (f(1) - f(b1)**t)
                if t <= 10:
                    assert abs(rate - dt(exact)) < abs(from32 - dt(exact))
        # its base rate (what a weight decay multiplies) is the solver's rate
        assert params.hyper[H_BASE_LR] == hyper[H_LR]
        # nothing else changed
        changed = params.hyper != hyper
        changed[H_STEP_LR] = changed[H_BASE_LR] = False
        assert not changed.any()
        for f, a in arrays.items():
            np.testing.assert_array_equal(a, saved[f])
    # the count goes on from where it is
    params.step[0] = 41
    begin_step(params)
    assert params.step.tolist() == [42]
    if solver == "adam":
        np.testing.assert_allclose(params.hyper[H_STEP_LR],
                                   dt(lr_init * np.sqrt(1 - b2**42) / (1 - b1**42)),
                                   rtol=2e-14 if dtype == np.float64 else 6e-8)


# --------------------------------------------------------------------------
# d. One mini-batch epoch vs the reference loop
# --------------------------------------------------------------------------

EPOCH_CONFIGS = [
    # (solver, nesterov, momentum, activation, head, learning_rate)
    ("sgd", True, 0.9, "relu", "softmax", 0.1),
    ("sgd", False, 0.9, "tanh", "identity", 0.05),
    ("sgd", True, 0.0, "logistic", "logistic", 0.2),
    ("adam", True, 0.9, "logistic", "logistic", 0.01),
    ("adam", True, 0.9, "identity", "exp", 0.01),
    ("adam", True, 0.9, "relu", "identity", 0.01),
]
N_EPOCH_ROWS = 45
BATCH = 8  # 45 = 5 * 8 + 5: a short last batch


def _trainer(prob, dtype, sparse, solver, nesterov, momentum, lr, batch_size=BATCH, **more):
    return _engine.StochasticTrainer(
        prob.network(dtype), prob.inputs(dtype, sparse), prob.Y, prob.sw, batch_size,
        SGD if solver == "sgd" else ADAM, alpha=ALPHA, learning_rate_init=lr,
        momentum=momentum, nesterov=nesterov, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **more)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_epoch_refuses_rows_it_does_not_have(sparse):
    # the epoch gathers rows by the indices given, without bounds checks:
    # one out of range is refused before any batch runs
    prob = Problem("relu", "softmax", _seed("idx"), n=N_EPOCH_ROWS)
    trainer = _trainer(prob, np.float64, sparse, "adam", True, 0.9, 0.01)
    theta = prob.theta.copy()
    for bad in (N_EPOCH_ROWS, -1):
        idx = np.arange(N_EPOCH_ROWS)
        idx[7] = bad
        with pytest.raises(ValueError, match="epoch's buffers do not fit"):
            trainer.run_epoch(theta, idx)
        np.testing.assert_array_equal(theta, prob.theta)
    assert trainer.step[0] == 0
    trainer.run_epoch(theta, np.arange(N_EPOCH_ROWS))
    assert trainer.step[0] == -(-N_EPOCH_ROWS // BATCH)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("config", EPOCH_CONFIGS, ids=lambda c: f"{c[0]}-{c[3]}-{c[4]}")
def test_epoch_matches_reference_loop(config, dtype, sparse):
    solver, nesterov, momentum, activation, head, lr = config
    prob = Problem(activation, head, _seed("d", config), n=N_EPOCH_ROWS)
    X, Xs, Y, sw, theta64 = prob.cast(dtype)
    Xin = Xs if sparse else X
    P = theta64.size

    trainer = _trainer(prob, dtype, sparse, solver, nesterov, momentum, lr)
    if solver == "sgd":
        opt = ref.SGD(P, lr, momentum, nesterov)
    else:
        opt = ref.Adam(P, lr, 0.9, 0.999, 1e-8)

    theta = theta64.astype(dtype)
    ref_theta = theta64
    rng = np.random.RandomState(_seed("d-order", config))
    n_batches = -(-N_EPOCH_ROWS // BATCH)
    for epoch in range(2):
        idx = rng.permutation(N_EPOCH_ROWS)
        mean_loss = trainer.run_epoch(theta, idx)
        ref_theta, ref_mean, batch_losses = ref.run_epoch(
            ref_theta, prob.units, Xin, Y, sw, idx, BATCH, activation, head, ALPHA, opt,
            eps=np.finfo(dtype).eps)

        lens = [min(BATCH, N_EPOCH_ROWS - s) for s in range(0, N_EPOCH_ROWS, BATCH)]
        assert len(batch_losses) == n_batches and lens[-1] == N_EPOCH_ROWS % BATCH
        weighted = sum(bl * n for bl, n in zip(batch_losses, lens)) / N_EPOCH_ROWS
        assert weighted != pytest.approx(np.mean(batch_losses), rel=1e-12)  # lens matter
        assert theta.dtype == np.dtype(dtype)
        np.testing.assert_allclose(ref_mean, weighted, rtol=1e-14)
        _assert_close(mean_loss, weighted, dtype)
        _assert_close(theta, ref_theta, dtype)
        if solver == "sgd":
            _assert_close(trainer.state1, opt.velocity, dtype)
        else:
            assert trainer.step[0] == opt.t == (epoch + 1) * n_batches
            _assert_close(trainer.state1, opt.m, dtype)
            _assert_close(trainer.state2, opt.v, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_unshuffled_epoch_matches_shuffled_path(dtype):
    # shuffled=False reads dense batches in place; it must equal the gather
    # path given the identity order.
    prob = Problem("tanh", "softmax", _seed("unshuffled"), n=N_EPOCH_ROWS)
    theta0 = prob.theta.astype(dtype)
    results = []
    for shuffled in (True, False):
        tr = _trainer(prob, dtype, False, "sgd", True, 0.9, 0.1)
        theta = theta0.copy()
        losses = [tr.run_epoch(theta, np.arange(N_EPOCH_ROWS), shuffled=shuffled)
                  for _ in range(2)]
        results.append((theta, losses))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


# --------------------------------------------------------------------------
# e. Results do not depend on the thread count
# --------------------------------------------------------------------------


def _thread_counts():
    n_max = numba.config.NUMBA_NUM_THREADS
    if n_max < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2")
    return sorted({1, 2, n_max})


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_training_is_bit_identical_across_thread_counts(solver, dtype, sparse):
    # Wide layers: the 64 x 64 layer's gradient and optimizer step are
    # split between two tasks, so two threads share them.
    prob = Problem("relu", "softmax", _seed("e", solver), n=60, n_features=8,
                   hidden=(64, 64), theta_scale=0.2, relu_margin=0)
    assert _linalg._n_tasks.py_func(64, _linalg.BR) == 2
    orders = [np.random.RandomState(e).permutation(60) for e in range(3)]
    lr = 0.05 if solver == "sgd" else 0.01

    def train():
        tr = _trainer(prob, dtype, sparse, solver, True, 0.9, lr, batch_size=16)
        theta = prob.theta.astype(dtype)
        losses = [tr.run_epoch(theta, idx) for idx in orders]
        obj = _objective(prob, dtype, sparse)
        loss, grad = obj(theta.astype(np.float64))
        out = _engine.predict_output(prob.network(dtype), theta, prob.inputs(dtype, sparse))
        return theta, losses, loss, grad, out

    results = [_with_threads(k, train) for k in _thread_counts()]
    first = results[0]
    assert not np.array_equal(first[0], prob.theta.astype(dtype))  # it trained
    for other in results[1:]:
        assert np.array_equal(first[0], other[0])
        assert first[1] == other[1]
        assert first[2] == other[2]
        assert np.array_equal(first[3], other[3])
        assert np.array_equal(first[4], other[4])


# --------------------------------------------------------------------------
# g. Sparse edge cases: empty rows, all-zero columns, explicit zeros
# --------------------------------------------------------------------------


def _edge_case_X(seed):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(N_EPOCH_ROWS, N_FEATURES))
    X[rng.random_sample(X.shape) >= 0.5] = 0.0
    X[3] = 0.0  # empty rows, one in the first batch ...
    X[N_EPOCH_ROWS - 1] = 0.0  # ... and one in the last
    X[:, 2] = 0.0  # an all-zero column
    X[:, N_FEATURES - 1] = 0.0  # the last column too (CSC column pointer end)
    return X


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("form", ["csr", "csc", "csr-explicit-zeros", "csr-unsorted"])
def test_sparse_edge_cases_match_dense(form, dtype):
    X = _edge_case_X(_seed("g"))
    prob = Problem("tanh", "softmax", _seed("g-prob"), X=X, n=N_EPOCH_ROWS)
    Xs = sp.csr_matrix(X)
    if form == "csc":
        Xs = sp.csc_matrix(X)
    elif form == "csr-explicit-zeros":
        # store zeros explicitly, in the empty row and the zero column too
        extra = {(0, 2), (3, 1), (5, 2), (7, 0)}
        data, indices, indptr = [], [], [0]
        for r in range(X.shape[0]):
            for c in range(X.shape[1]):
                if X[r, c] != 0 or (r, c) in extra:
                    data.append(X[r, c])
                    indices.append(c)
            indptr.append(len(data))
        Xs = sp.csr_matrix((np.array(data), np.array(indices), np.array(indptr)),
                           shape=X.shape)
        assert (Xs.data == 0).sum() >= len(extra)
    elif form == "csr-unsorted":
        Xs = sp.csr_matrix(X)
        for r in range(Xs.shape[0]):  # reverse every row's entries
            lo, hi = Xs.indptr[r], Xs.indptr[r + 1]
            Xs.indices[lo:hi] = Xs.indices[lo:hi][::-1].copy()
            Xs.data[lo:hi] = Xs.data[lo:hi][::-1].copy()
        Xs.has_sorted_indices = False
    np.testing.assert_array_equal(Xs.toarray(), X)
    assert Xs.getnnz(axis=1)[3] == 0 or form == "csr-explicit-zeros"

    net = prob.network(dtype)
    dense_in = _engine.Inputs(X, dtype)
    sparse_in = _engine.Inputs(Xs, dtype)
    theta = prob.theta.astype(dtype).astype(np.float64)

    # full batch loss / gradient
    obj_d = _engine.FullBatchObjective(net, dense_in, prob.Y, prob.sw, ALPHA)
    obj_s = _engine.FullBatchObjective(net, sparse_in, prob.Y, prob.sw, ALPHA)
    loss_d, grad_d = obj_d(theta)
    loss_s, grad_s = obj_s(theta)
    _assert_close(loss_s, loss_d, dtype, rtol64=1e-12, rtol32=1e-6, atol32=1e-6)
    _assert_close(grad_s, grad_d, dtype, rtol64=1e-12, rtol32=1e-6, atol32=1e-6)
    # the all-zero columns' first-layer weights get only the L2 term
    W0 = ref.unpack(theta, prob.units)[0][0]
    sw_sum = prob.sw.astype(dtype).astype(np.float64).sum()
    dW0 = ref.unpack(grad_s, prob.units)[0][0]
    for col in (2, N_FEATURES - 1):
        _assert_close(dW0[col], ALPHA * W0[col] / sw_sum, dtype, rtol64=1e-12, rtol32=1e-6)
    # and the whole thing equals the reference
    Xr = X.astype(dtype).astype(np.float64)
    ref_loss, ref_grad = ref.flat_loss_and_gradient(
        theta, prob.units, Xr, prob.Y, prob.sw.astype(dtype).astype(np.float64), "tanh",
        "softmax", ALPHA, eps=np.finfo(dtype).eps)
    _assert_close(loss_s, ref_loss, dtype)
    _assert_close(grad_s, ref_grad, dtype)

    # predictions
    out_d = _engine.predict_output(net, theta.astype(dtype), dense_in)
    out_s = _engine.predict_output(net, theta.astype(dtype), sparse_in)
    _assert_close(out_s, out_d, dtype, rtol64=1e-12, rtol32=1e-6, atol32=1e-6)

    # mini-batch epochs: batches containing the empty rows
    thetas = []
    for inp in (dense_in, sparse_in):
        tr = _engine.StochasticTrainer(net, inp, prob.Y, prob.sw, BATCH, SGD, alpha=ALPHA,
                                       learning_rate_init=0.1, momentum=0.9, nesterov=True)
        th = theta.astype(dtype)
        losses = [tr.run_epoch(th, np.random.RandomState(e).permutation(N_EPOCH_ROWS))
                  for e in range(2)]
        thetas.append((th, losses))
    _assert_close(thetas[1][0], thetas[0][0], dtype, rtol64=1e-12, rtol32=1e-5, atol32=1e-6)
    _assert_close(thetas[1][1], thetas[0][1], dtype, rtol64=1e-12, rtol32=1e-5, atol32=1e-6)


@pytest.mark.parametrize("bad", ["input_width", "out_rows", "out_width", "theta_short",
                                 "offsets"])
def test_serial_predict_refuses_arrays_that_do_not_fit(bad):
    # Its loops index without bounds checks: every extent is checked first.
    prob = Problem("relu", "softmax", _seed("s"), n=5)
    net = prob.network(np.float64)
    L = net.layout
    X, theta = prob.X.copy(), prob.theta.copy()
    out = np.empty((5, L.units[-1]))
    shape = net.serial_args(theta)[0]
    args = dict(X=X, out=out, theta=theta, shape=shape)
    if bad == "input_width":
        args["X"] = np.ascontiguousarray(X[:, :-1])
    elif bad == "out_rows":
        args["out"] = out[:4]
    elif bad == "out_width":
        args["out"] = np.empty((5, L.units[-1] + 1))
    elif bad == "theta_short":
        args["theta"] = theta[:-1]
    else:
        offsets = shape.offsets.copy()
        offsets[:, OFF_B] += 1
        args["shape"] = shape._replace(offsets=offsets)
    with pytest.raises(ValueError, match="do not fit"):
        _kernels.predict_serial(args["shape"], args["theta"], args["X"], args["out"])
    # the same call with fitting arrays works
    assert _kernels.predict_serial(shape, theta, X, out)
    np.testing.assert_allclose(out, _engine.predict_output(net, theta, prob.inputs(
        np.float64, False)), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_serial_predict_reports_non_finite_input(bad):
    # It computes every row either way (NaN in, NaN out) and says whether
    # the input was finite: the estimators' fast path relies on it in
    # place of scikit-learn's finiteness check.
    prob = Problem("tanh", "identity", _seed("s-nan"), n=4)
    net = prob.network(np.float64)
    L = net.layout
    X = prob.X.copy()
    out = np.empty((4, L.units[-1]))
    args = net.serial_args(prob.theta)
    assert _kernels.predict_serial(*args, X, out)
    clean = out.copy()
    X[2, -1] = bad
    assert not _kernels.predict_serial(*args, X, out)
    np.testing.assert_array_equal(out[[0, 1, 3]], clean[[0, 1, 3]])
    if np.isnan(bad):
        assert np.isnan(out[2]).all()


def test_sparse_all_rows_empty_in_a_batch():
    # A whole batch of empty rows: the first layer sees only its bias.
    X = _edge_case_X(_seed("g2"))
    X[:BATCH] = 0.0
    prob = Problem("relu", "identity", _seed("g2-prob"), X=X, n=N_EPOCH_ROWS)
    net = prob.network(np.float64)
    res = []
    for data in (X, sp.csr_matrix(X)):
        tr = _engine.StochasticTrainer(net, _engine.Inputs(data, np.float64), prob.Y, prob.sw,
                                       BATCH, ADAM, alpha=ALPHA, learning_rate_init=0.01)
        th = prob.theta.copy()
        loss = tr.run_epoch(th, np.arange(N_EPOCH_ROWS))
        res.append((th, loss))
    np.testing.assert_allclose(res[1][0], res[0][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res[1][1], res[0][1], rtol=1e-12)


# --------------------------------------------------------------------------
# f. Every kernel compiles at most once per dtype
# --------------------------------------------------------------------------


def _module_dispatchers():
    """Every Numba dispatcher defined in fastmlp's kernel modules."""
    found = {}
    for mod in KERNEL_MODULES:
        for name, obj in vars(mod).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod.__name__:
                found[f"{mod.__name__}.{name}"] = obj
    return found


def _exercise_every_kernel():
    """Run every entry point in both dtypes, dense and sparse, as tests do."""
    for dtype in DTYPES:
        dt = np.dtype(dtype).type
        for sparse in (False, True):
            prob = Problem("tanh", "softmax", _seed("f"), n=20)
            net = prob.network(dtype)
            _objective(prob, dtype, sparse)(prob.theta)
            _engine.predict_output(net, prob.theta.astype(dtype), prob.inputs(dtype, sparse))
            # the Python entries of the network kernel and the sparse layer
            shape, size = net.shape(20)
            work = make_work(shape, size, dtype, train=False)
            params = predict_params(prob.theta.astype(dtype))
            inputs = prob.inputs(dtype, sparse)
            if sparse:
                batch = make_batch(inputs.X, n=20, csr=inputs.csr)
                _linalg.sparse_layer(SPARSE_FORWARD, params, shape, batch, work, dt(1))
            else:
                batch = make_batch(inputs.X)
            _kernels.network(PREDICT, int(sparse), dt(1), params, shape, batch, work)
            if not sparse:
                # 7 rows: four through the block kernel, three one at a time
                _engine.predict_serial_output(net, prob.theta.astype(dtype),
                                              prob.inputs(dtype, sparse).X[:7])
            for solver in ("sgd", "adam"):
                tr = _trainer(prob, dtype, sparse, solver, True, 0.9, 0.01, batch_size=7)
                th = prob.theta.astype(dtype)
                tr.run_epoch(th, np.arange(20), shuffled=False)
                tr.run_epoch(th, np.random.RandomState(0).permutation(20))
            # the clipping and dropout epochs
            for more in (dict(clip_grad_norm=0.5), dict(dropout=[0.3]),
                         dict(clip_grad_norm=0.5, dropout=[0.3])):
                tr = _trainer(prob, dtype, sparse, "adam", True, 0.9, 0.01, batch_size=7,
                              **more)
                tr.run_epoch(prob.theta.astype(dtype), np.arange(20), shuffled=False)
        # the single-layer kernel of tests and bench/linalg_bench.py
        shape, _ = make_shape(Layout([2, 3]), [], HEADS["softmax"], 4)
        A = np.ones((4, 2), dtype=dtype)
        _linalg.layer(FORWARD, 0, RELU, make_params(np.zeros(9, dtype)), shape,
                      (A, A, np.zeros((4, 3), dtype), np.zeros((0, 3), dtype)), dt(1))
        x = np.zeros(10, dtype=dtype)
        params = make_params(x, solver=SGD, nesterov=True, learning_rate=0.1, momentum=0.9)
        begin_step(params)
        optimizer_step(params, 0, 10, WEIGHTS)
        _optim.adam_step_size(0.01, 0.9, 0.999, 3)


_FRONTEND_IR = {}


def _infer_callee_signatures(disp, argtypes, seen):
    """Record (dispatcher, signature) for ``disp`` and everything it calls.

    Runs Numba's type inference on each function body with the argument
    types it is called with, so the result does not depend on whether the
    machine code came from Numba's on-disk cache (a cache hit compiles
    nothing, so callees' ``signatures`` stay empty).
    """
    key = (disp, tuple(argtypes))
    if key in seen:
        return
    seen.add(key)
    if disp not in _FRONTEND_IR:
        func_ir = compiler.run_frontend(disp.py_func)
        # Numba's pipeline turns ``raise ValueError("...")`` into a static
        # raise before type inference; the bare frontend IR still has the
        # dynamic form, which type inference refuses.
        state = compiler.StateDict()
        state.func_ir = func_ir
        state.typemap = state.calltypes = None
        rewrites.rewrite_registry.apply("before-inference", state)
        _FRONTEND_IR[disp] = func_ir
    tctx = disp.targetdescr.typing_context
    tctx.refresh()
    res = typed_passes.type_inference_stage(tctx, disp.targetdescr.target_context,
                                            _FRONTEND_IR[disp].copy(), tuple(argtypes), None)
    for expr, sig in res.calltypes.items():
        if isinstance(expr, ir.Expr) and expr.op == "call":
            fty = res.typemap[expr.func.name]
            if isinstance(fty, types.Dispatcher):
                _infer_callee_signatures(fty.dispatcher, sig.args, seen)


def _float_dtypes(sig):
    """The floating-point dtypes among a signature's arguments, the fields
    of its bundles (tuples, or references to them) included."""
    out = set()
    for a in sig:
        if isinstance(a, BundleRef):
            a = a.bundle
        if isinstance(a, types.BaseTuple):
            out |= _float_dtypes(a.types)
            continue
        t = a.dtype if isinstance(a, types.Array) else a
        if isinstance(t, types.Float):
            out.add(str(t))
    return frozenset(out)


def _assert_one_per_dtype(sigs_by_kernel):
    bad = {}
    for name, sigs in sigs_by_kernel.items():
        sigs = list(sigs)
        per_dtype = {_float_dtypes(s) for s in sigs}
        if len(sigs) > 2 or len(per_dtype) != len(sigs):
            bad[name] = [str(s) for s in sigs]
    assert not bad, f"kernels compiled more than once per dtype: {bad}"


def test_each_kernel_compiles_at_most_once_per_dtype():
    _exercise_every_kernel()
    dispatchers = _module_dispatchers()

    # 1. What this process actually compiled or loaded from the cache.
    used = {name: d.signatures for name, d in dispatchers.items() if d.signatures}
    _assert_one_per_dtype(used)
    # Predictions call the network kernel's Python entry (_engine.predict_output),
    # the fits its compiled code: one signature per dtype each, here and below,
    # where the epoch kernels' calls are inferred too.
    for name in ("_engine.full_batch_dense", "_engine.full_batch_sparse", "_kernels.network",
                 "_linalg.layer",
                 "_linalg.sparse_layer",
                 "_kernels.predict_serial", "_kernels.predict_serial_blocks",
                 "_engine.predict_chunk_dense", "_engine.predict_chunk_sparse",
                 "_engine.train_epoch_dense", "_engine.train_epoch_dense_clip",
                 "_engine.train_epoch_sparse", "_engine.train_epoch_sparse_clip",
                 "_engine.train_epoch_dense_dropout", "_engine.train_epoch_sparse_dropout",
                 "_engine.train_epoch_dense_clip_dropout",
                 "_engine.train_epoch_sparse_clip_dropout",
                 "_optim.optimizer_step", "_kernels.csr_to_csc"):
        assert len(used[f"fastmlp.{name}"]) == 2, name  # float32 and float64
    assert len(used["fastmlp._optim.adam_step_size"]) == 1

    # 2. Everything reachable from those entry points, by type inference.
    seen = set()
    for d in dispatchers.values():
        for sig in d.signatures:
            _infer_callee_signatures(d, sig, seen)
    by_kernel = defaultdict(set)
    for d, sig in seen:
        by_kernel[f"{d.py_func.__module__}.{d.py_func.__name__}"].add(sig)
    expected = {name for name in dispatchers}  # every kernel is reachable
    assert expected <= set(by_kernel), sorted(expected - set(by_kernel))
    # A kernel inlined into its compiled callers (inline="always") compiles
    # nothing of its own there: its constant-folded call types (a literal
    # dense/sparse flag) are not signatures; what it calls is checked above.
    inlined = {name for name, d in dispatchers.items()
               if d.targetoptions.get("inline") == "always"}
    assert "fastmlp._kernels.loss_grad" in inlined
    _assert_one_per_dtype({k: v for k, v in by_kernel.items() if k not in inlined})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("head", ["softmax", "identity"])
def test_serial_predict_rows_in_blocks_equal_rows_alone(dtype, act, head):
    # Multiples of four rows take the block kernel (four rows per pass over
    # the weights), the rest the one-row kernel: every row must get the
    # bits it gets alone, whatever its position in the input.
    prob = Problem(act, head, _seed(f"blk-{act}-{head}"), n=11)
    net = prob.network(dtype)
    L = net.layout
    theta = prob.theta.astype(dtype)
    X = prob.X.astype(dtype)
    args = net.serial_args(theta)
    alone = np.empty((11, L.units[-1]), dtype=dtype)
    for r in range(11):
        assert _kernels.predict_serial(*args, X[r : r + 1], alone[r : r + 1])
    for start, stop in [(0, 11), (0, 4), (1, 9), (3, 10)]:
        out = np.empty((stop - start, L.units[-1]), dtype=dtype)
        assert _engine.predict_serial_rows(args, np.ascontiguousarray(X[start:stop]), out)
        np.testing.assert_array_equal(out, alone[start:stop])
    ref = _engine.predict_output(net, theta, prob.inputs(dtype, False))
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(alone, ref, **tol)
    # the block kernel's own checks: its row count, and NaN reported
    with pytest.raises(ValueError, match="multiple of 4"):
        _kernels.predict_serial_blocks(*args, X[:6].copy(), np.empty((6, L.units[-1]), dtype))
    with pytest.raises(ValueError, match="do not fit"):
        _kernels.predict_serial_blocks(*args, X[:4, :-1].copy(),
                                       np.empty((4, L.units[-1]), dtype))
    bad = X[:8].copy()
    bad[5, 0] = np.nan
    assert not _kernels.predict_serial_blocks(*args, bad, np.empty((8, L.units[-1]), dtype))
    # a network of no layers (units of one entry) would leave the block
    # kernel copying from past its buffer: both kernels refuse it
    shape = args[0]
    none = shape._replace(units=shape.units[:1].copy(), offsets=shape.offsets[:0].copy())
    for kernel in (_kernels.predict_serial, _kernels.predict_serial_blocks):
        with pytest.raises(ValueError, match="shape is not valid"):
            kernel(none, theta, X[:4].copy(), np.empty((4, L.units[0]), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_sum_is_the_float64_sum_of_squared_weights(dtype):
    # l2_sum may reorder its additions (it is compiled to vectorise); it
    # must still be the float64 sum of the weights' squares, biases left out,
    # for layers of any size, including ones shorter than a vector.
    import math

    rng = np.random.default_rng(3)
    for sizes in [(1, 1), (3, 2, 1), (100, 256, 256, 5), (7, 13, 9), (33, 1, 31)]:
        layout = Layout(sizes)
        theta = (rng.standard_normal(layout.size) * 3).astype(dtype)
        expected = math.fsum(
            float(x) ** 2 for l in range(len(sizes) - 1)
            for x in theta[layout.w_off[l]:layout.w_off[l] + sizes[l] * sizes[l + 1]])
        shape, _ = make_shape(layout, [RELU] * (len(sizes) - 2), HEADS["softmax"], 0)
        got = native(_kernels.l2_sum)(theta, shape)
        assert abs(got - expected) <= 1e-14 * expected, (sizes, got, expected)
        theta[layout.b_off[0]] = 1e30  # a bias never counts
        assert native(_kernels.l2_sum)(theta, shape) == got


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_rows_match_scikit_learn_bit_for_bit(dtype):
    # The layer kernel's ReLU and its derivative (the rows of a task, as its
    # parallel loop applies them) are selects written in a form LLVM
    # vectorises with plain stores (_activations.kept): rows shorter than,
    # equal to and longer than a vector, and the values a select can get
    # wrong (-0.0, NaN of either sign, infinities), must come out as
    # scikit-learn's, bit for bit.
    from sklearn.neural_network._base import ACTIVATIONS, DERIVATIVES

    special = np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, -1.5, 2.5], dtype=dtype)
    rng = np.random.default_rng(4)
    for m in (1, 5, 8, 9, 31, 32, 33, 256, 519):
        Z = rng.standard_normal((6, m)).astype(dtype)
        Z[0, : min(m, special.size)] = special[:m]
        Z[1] = np.where(Z[1] < 0, 0, Z[1])  # exact zeros in the outputs
        expected = Z.copy()
        ACTIVATIONS["relu"](expected)
        got = Z.copy()
        no_pre = np.zeros((0, m), dtype)
        _linalg._activate_rows(got, no_pre, 0, got.shape[0], RELU)
        assert got.tobytes() == expected.tobytes(), m
        got = Z.copy()
        for row in got:  # the row-wise form the CSR input's first layer uses
            native(_activations.activate)(row, RELU)
        assert got.tobytes() == expected.tobytes(), m

        D = rng.standard_normal((6, m)).astype(dtype)
        D[2, : min(m, special.size)] = special[:m]
        expected_d = D.copy()
        DERIVATIVES["relu"](expected, expected_d)
        # the outputs as the pre-activations too: none is kept for ReLU
        got_d = D.copy()
        _linalg._derivative_rows(expected, expected, got_d, 0, got_d.shape[0], RELU)
        assert got_d.tobytes() == expected_d.tobytes(), m
        got_d = D.copy()
        for a, d in zip(expected, got_d):
            native(_activations.derivative)(a, a, d, RELU)
        assert got_d.tobytes() == expected_d.tobytes(), m


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", ACT_NAMES)
def test_activation_pairs_match_reference(name, dtype):
    """``activate`` turns the pre-activation row into the output row;
    ``derivative(z, a, d, act)`` multiplies ``d`` by the derivative at the
    pre-activation ``z`` whose output is ``a``. Where an activation is not
    in NEEDS_PRE, the kernels keep no pre-activation and pass the output
    as ``z``: its derivative must not read ``z`` (NaN here)."""
    act = ACTIVATIONS[name]
    rng = np.random.default_rng(_seed("pairs", name))
    tol = dict(rtol=1e-14, atol=1e-15) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-7)
    for m in (1, 7, 8, 33):
        z = rng.standard_normal(m).astype(dtype)
        a = z.copy()
        native(_activations.activate)(a, act)
        z64 = z.astype(np.float64)
        _assert_close(a, ref.hidden_activation(z64, name), dtype)
        d = rng.standard_normal(m).astype(dtype)
        got = d.copy()
        z_read = z if act in NEEDS_PRE else np.full(m, np.nan, dtype)
        native(_activations.derivative)(z_read, a, got, act)
        a64 = a.astype(np.float64)
        expected = d.astype(np.float64) * ref.hidden_derivative(z64, a64, name)
        np.testing.assert_allclose(got.astype(np.float64), expected, **tol)


def test_relu_runs_as_python_with_jit_disabled():
    # The ReLU's LLVM freeze is an intrinsic, which plain Python cannot run:
    # with NUMBA_DISABLE_JIT=1 (debugging a kernel) the identity stands in.
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from fastmlp._activations import activate, derivative\n"
        "from fastmlp._codes import RELU\n"
        "z = np.array([-1.0, -0.0, 2.0, np.nan]); activate(z, RELU)\n"
        "d = np.ones(4); derivative(z, z, d, RELU)\n"
        "print(z.tolist(), d.tolist())\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0.0, 0.0, 2.0, nan] [0.0, 0.0, 1.0, 1.0]"


_JIT_DISABLED_FITS = """
import sys
import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_digits
from fastmlp import MLPClassifier

X, y = load_digits(return_X_y=True)
X, y = X[:200] / 16, y[:200]
out = {}
for name, solver, data in [("adam", "adam", X), ("sgd", "sgd", X), ("lbfgs", "lbfgs", X),
                           ("csr", "adam", sp.csr_matrix(X)), ("f32", "adam", X.astype(np.float32))]:
    m = MLPClassifier((8, 6), solver=solver, max_iter=3, batch_size=64, random_state=0)
    m.fit(data, y)
    out[name] = np.concatenate([c.ravel() for c in m.coefs_ + m.intercepts_]
                               + [m.predict_proba(data[:7]).ravel()])
np.savez(sys.argv[1], **out)
"""


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fits_run_as_python_with_jit_disabled(tmp_path):
    """With NUMBA_DISABLE_JIT=1 (debugging a kernel in Python) the kernels
    run as Python and the BLAS intrinsic as NumPy (``_linalg._gemm_numpy``):
    fits and predictions of every solver, a sparse input and float32 give
    the compiled kernels' results to rounding."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    for name in ("compiled", "python"):
        res = subprocess.run([sys.executable, "-c", _JIT_DISABLED_FITS,
                              str(tmp_path / f"{name}.npz")],
                             env=env if name == "python" else os.environ, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
    compiled = np.load(tmp_path / "compiled.npz")
    python = np.load(tmp_path / "python.npz")
    assert sorted(python.files) == sorted(compiled.files) == ["adam", "csr", "f32", "lbfgs", "sgd"]
    for name in compiled.files:
        rtol = 1e-4 if name == "f32" else 1e-9
        np.testing.assert_allclose(python[name], compiled[name], rtol=rtol, atol=rtol,
                                   err_msg=name)


_PREDICT_AFTER_FIT = """
import warnings
import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_digits
from fastmlp import MLPClassifier, _engine, _kernels

warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X[:300] / 16
entries = (_engine.predict_chunk_dense, _engine.predict_chunk_sparse, _kernels._network)
for data in (X, sp.csr_matrix(X)):
    for solver in ("adam", "lbfgs"):
        clf = MLPClassifier((20,), solver=solver, max_iter=2, random_state=0).fit(data, y[:300])
        after_fit = [len(k.overloads) for k in entries]
        clf.predict_proba(data)  # 300 rows: the parallel kernels, called from Python
        assert [len(k.overloads) for k in entries] == after_fit, (solver, after_fit)
        assert after_fit[1 if sp.issparse(data) else 0] >= 1
print("ok")
"""


def test_a_prediction_after_a_fit_compiles_nothing():
    """Predictions run the network kernel the fits compiled through an
    entry of their own, which the fits compile (``prepare_predict``): the
    first prediction after a fit, in a fresh process, adds no signature
    to it or to the network kernel."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PREDICT_AFTER_FIT], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
