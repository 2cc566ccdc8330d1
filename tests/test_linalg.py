"""The layer kernels of fastmlp._linalg, on awkward shapes.

:func:`fastmlp._linalg.layer` splits its output into a fixed grid of
row-block tasks, each one single-threaded BLAS call. These tests check each
of its operations against numpy on shapes at and around each split point;
that the gradient with a fused optimizer step equals the gradient followed
by the step; that two threads give bit-identical results to one, many times
over (a race between tasks shows up as an intermittent difference, so each
case is repeated); and that arrays BLAS would misread are refused before
any call.
"""

import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from bundle_helpers import block, compressed, empty_rows, layer_problem, sparse_batch, step_params
from native import native
from fastmlp import _linalg, _optim
from fastmlp._bundles import make_params, make_work, predict_params
from fastmlp._codes import (
    ADAM,
    BACKWARD,
    BIASES,
    FORWARD,
    GRADIENT,
    HEAD_ACTIVATIONS,
    IDENTITY,
    N_HYPER,
    N_HYPER64,
    NO_STEP,
    OFF_A,
    OFF_B,
    OFF_W,
    PRE_FLAGS,
    RELU,
    SGD,
    SHARE,
    SPARSE_FORWARD,
    SPARSE_GRADIENT,
    TANH,
    WEIGHTS,
)
from fastmlp._threads import threads

# Rows and reduction sizes around the 4-row groups and the task split
# (n // 4 tasks at most, about BR rows each), plus wide and narrow outputs.
SHAPES = [
    (1, 1, 1), (3, 2, 3), (4, 5, 2), (5, 6, 7), (6, 7, 5), (7, 5, 3),
    (8, 9, 15), (9, 4, 16), (17, 13, 17), (45, 33, 10), (33, 150, 20),
    (150, 70, 3), (200, 8, 33), (3, 4, 600), (21, 11, 1030), (257, 300, 6), (520, 3, 9),
]
DTYPES = [np.float64, np.float32]
REPEATS = 25


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)


def _data(n, k, m, dtype, seed):
    rng = np.random.RandomState(seed)
    A = rng.normal(size=(n, k))
    A[rng.random_sample(A.shape) < 0.4] = 0.0  # ReLU-like zeros
    W = rng.normal(size=(k, m))
    b = rng.normal(size=m)
    D = rng.normal(size=(n, m))
    return [np.ascontiguousarray(x, dtype=dtype) for x in (A, W, b, D)]


# Parameters in front of the whole network where the tested layer is
# layer 0 (a sparse input's first layer): so that it, too, has parameters
# of "earlier layers" before its blocks (bundle_helpers.network_shape).
PAD = 5


def _layer(op, prob, params, mats, act=IDENTITY, sw_sum=1.0, *, shape=None, lay=None):
    """``_linalg.layer`` on layer ``prob.lay`` of ``prob.shape`` (or the
    ``shape``/``lay`` given), ``mats = (X, D, Out, Z)``."""
    _linalg.layer(op, prob.lay if lay is None else lay, act, params,
                  prob.shape if shape is None else shape, mats,
                  params.theta.dtype.type(sw_sum))


def _forward(A, W, b, act):
    prob = layer_problem(W, b)
    before = prob.theta.copy()
    Out = np.full((A.shape[0], W.shape[1]), np.nan, A.dtype)
    # no activation keeps its pre-activations: Z has no rows, as in a fit
    _layer(FORWARD, prob, predict_params(prob.theta),
           (A, A, Out, empty_rows(W.shape[1], A.dtype)), act)
    np.testing.assert_array_equal(prob.theta, before)
    return Out


def _grad(A, D, W, alpha, sw_sum):
    prob = layer_problem(W, np.zeros(W.shape[1], W.dtype))
    theta, wo, bo = prob.theta, prob.wo, prob.bo
    before = theta.copy()
    grad = np.full_like(theta, np.nan)
    _layer(GRADIENT, prob, make_params(theta, grad=grad, alpha=alpha), (A, D, D, D),
           sw_sum=sw_sum)
    np.testing.assert_array_equal(theta, before)  # NO_STEP
    assert np.isnan(grad[:wo]).all() and np.isnan(grad[bo + W.shape[1]:]).all()
    return grad[wo:bo].reshape(W.shape), grad[bo:bo + W.shape[1]]


def _backward(D, W, Aprev, act):
    prob = layer_problem(W, np.zeros(W.shape[1], W.dtype))
    Dprev = np.full(Aprev.shape, np.nan, D.dtype)
    # Z: the layer below's outputs again (no pre-activations kept)
    _layer(BACKWARD, prob, make_params(prob.theta), (Aprev, D, Dprev, Aprev), act)
    return Dprev


ADAM_HYPER = dict(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-8, alpha=0.3)
ADAM_STEP_LR = 0.004  # hyper[H_STEP_LR] of a second step (begin_step sets it)


def _adam_moments(size, dtype):
    """Moments of a second Adam step (nonzero)."""
    rng = np.random.RandomState(7)
    m1 = rng.normal(scale=0.1, size=size).astype(dtype)
    m2 = rng.uniform(0.0, 0.1, size=size).astype(dtype)
    return m1, m2


def _adam_grad_step(A, D, W, b, **where):
    """Gradient and one fused Adam step (as a second step: moments nonzero).
    ``where``: the layer's place, as :func:`bundle_helpers.layer_problem`
    takes it."""
    prob = layer_problem(W, b, **where)
    m1, m2 = _adam_moments(prob.theta.size, A.dtype)
    params = step_params(prob.theta, grad=np.zeros_like(prob.theta), solver=ADAM, m1=m1, m2=m2,
                         step_lr=ADAM_STEP_LR, **ADAM_HYPER)
    _layer(GRADIENT, prob, params, (A, D, D, D), sw_sum=7.0)
    return params.theta, params.grad, params.m1, params.m2


def _all(A, W, b, D):
    Arelu = np.maximum(A, 0)
    return (_forward(A, W, b, RELU), _forward(A, W, b, TANH), _forward(A, W, b, IDENTITY),
            *_grad(A, D, W, 0.3, 7.0), _backward(D, W, Arelu, RELU),
            _backward(D, W, np.tanh(A), TANH), *_adam_grad_step(A, D, W, b))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_primitives_match_numpy(shape, dtype):
    n, k, m = shape
    A, W, b, D = _data(n, k, m, dtype, seed=n * 10007 + k * 101 + m)
    A64, W64, b64, D64 = (x.astype(np.float64) for x in (A, W, b, D))
    Z = A64 @ W64 + b64
    T = np.tanh(A64)
    expected = (
        np.maximum(Z, 0), np.tanh(Z), Z,
        (A64.T @ D64 + 0.3 * W64) / 7.0, D64.sum(axis=0) / 7.0,
        (D64 @ W64.T) * (A64 > 0), (D64 @ W64.T) * (1 - T.astype(dtype).astype(np.float64) ** 2),
    )
    got = _all(A, W, b, D)[:len(expected)]
    for g, e in zip(got, expected):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, e, **_tol(dtype))


@pytest.mark.parametrize("solver", [SGD, ADAM], ids=["sgd", "adam"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES[::3], ids=lambda s: "x".join(map(str, s)))
def test_gradient_with_step_equals_gradient_then_step(shape, dtype, solver):
    # The fused step must be exactly the step the separate optimizer would
    # take on the finished gradient (weights, then bias), on the layer's
    # block and nowhere else.
    n, k, m = shape
    A, W, b, D = _data(n, k, m, dtype, seed=n + 31 * k + m)
    prob = layer_problem(W, b)
    theta, wo, bo = prob.theta, prob.wo, prob.bo
    rng = np.random.RandomState(5)
    s1 = rng.normal(scale=0.1, size=theta.size).astype(dtype)
    s2 = rng.uniform(0.0, 0.1, size=theta.size).astype(dtype)
    hyper = dict(learning_rate=0.02, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 alpha=0.3)
    # what begin_step sets: SGD's current rate; Adam's step size (of some step)
    step_lr = 0.02 if solver == SGD else ADAM_STEP_LR

    def bundle(arrays, solver):
        return step_params(arrays[0], grad=arrays[1], m1=arrays[2], m2=arrays[3],
                           solver=solver, nesterov=True, step_lr=step_lr, **hyper)

    expected = [x.copy() for x in (theta, np.zeros_like(theta), s1, s2)]
    _layer(GRADIENT, prob, bundle(expected, NO_STEP), (A, D, D, D), sw_sum=7.0)
    stepping = bundle(expected, solver)
    native(_optim.optimizer_step)(stepping, wo, bo, WEIGHTS)
    native(_optim.optimizer_step)(stepping, bo, bo + m, BIASES)

    got = [x.copy() for x in (theta, np.zeros_like(theta), s1, s2)]
    _layer(GRADIENT, prob, bundle(got, solver), (A, D, D, D), sw_sum=7.0)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    for x, before in ((got[0], theta), (got[2], s1), (got[3], s2)):
        np.testing.assert_array_equal(x[:wo], before[:wo])
        np.testing.assert_array_equal(x[bo + m:], before[bo + m:])
    assert not np.array_equal(got[0], theta)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_primitives_bit_identical_across_threads_and_repeats(dtype):
    for n, k, m in SHAPES:
        A, W, b, D = _data(n, k, m, dtype, seed=3 * n + k + 7 * m)
        with threads(1):
            first = _all(A, W, b, D)
        with threads(2):
            for _ in range(REPEATS):
                for g, e in zip(_all(A, W, b, D), first):
                    np.testing.assert_array_equal(g, e, err_msg=f"shape {(n, k, m)}")


@pytest.mark.parametrize("rows", [16, _linalg.BR])
def test_task_grid_partitions_rows(rows):
    # The invariants the parallel loops rely on, for every size up to a few
    # tasks: an even number of tasks (or one) tiles [0, n) without
    # overlap, none empty, so only the last ends at row n (it alone writes
    # the bias gradient and steps the bias).
    for n in range(1, 4 * rows + 40):
        n_tasks = _linalg._n_tasks.py_func(n, rows)
        assert n_tasks >= 1 and (n_tasks == 1 or n_tasks % 2 == 0)
        spans = [_linalg._task_rows.py_func(t, n_tasks, n) for t in range(n_tasks)]
        assert spans[0][0] == 0 and spans[-1][1] == n
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a1 == b0
        for t, (r0, r1) in enumerate(spans):
            assert r0 < r1
            assert (r1 == n) == (t == n_tasks - 1), (n, n_tasks, spans)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_arrays_blas_would_misread_are_refused(dtype):
    # BLAS reads through raw pointers with row stride = number of columns:
    # a wrong shape must raise, not read out of bounds, before any task
    # runs (nothing written).
    A, W, b, D = _data(12, 7, 5, dtype, seed=1)
    Out = np.full((12, 5), np.nan, dtype)
    prob = layer_problem(W, b)
    theta, lay, wo, bo = prob.theta, prob.lay, prob.wo, prob.bo
    before = theta.copy()
    none = empty_rows(5, dtype)
    fwd = predict_params(theta)

    def grad_params(grad=None, **kwargs):
        grad = np.zeros_like(theta) if grad is None else grad
        return make_params(theta, grad=grad, **kwargs)

    def refused(match, op, params, mats, **where):
        with pytest.raises(ValueError, match=match):
            _layer(op, prob, params, mats, **where)
        np.testing.assert_array_equal(theta, before)
        assert np.isnan(Out).all()

    refused("shapes", FORWARD, fwd, (A, A, Out[:11], none))
    # pre-activations: no rows (none kept), or the output's shape
    refused("shapes", FORWARD, fwd, (A, A, Out, np.zeros((11, 5), dtype)))
    refused("shapes", FORWARD, fwd, (A, A, Out, np.zeros((12, 4), dtype)))
    refused("shapes", GRADIENT, grad_params(), (A, D[:11], D, D))
    refused("shapes", GRADIENT, grad_params(), (A, np.zeros((12, 6), dtype), D, D))
    refused("shapes", BACKWARD, fwd, (A, D, np.zeros((12, 6), dtype), A))
    refused("shapes", BACKWARD, fwd, (A, D, np.zeros((12, 7), dtype), A[:11]))
    # W and b must lie in theta, b right after W (one step covers both)
    past = theta.size - (bo + 5) + 1  # moves b one element past the buffer
    for w_at, b_at in ((wo, bo + 1), (wo + past, bo + past), (-1, bo - 1)):
        offsets = prob.shape.offsets.copy()
        offsets[lay, OFF_W] = w_at
        offsets[lay, OFF_B] = b_at
        refused("offsets", FORWARD, fwd, (A, A, Out, none),
                shape=prob.shape._replace(offsets=offsets))
    # the layer's fan-in is the input's width
    units = prob.shape.units.copy()
    units[lay] = 6
    refused("does not fit the layer", FORWARD, fwd, (A, A, Out, none),
            shape=prob.shape._replace(units=units))
    for bad_lay in (-1, prob.shape.offsets.shape[0]):
        refused("no such layer", FORWARD, fwd, (A, A, Out, none), lay=bad_lay)
    # activation codes the kernels do not know, given or in the shape
    for bad_act in (-1, len(PRE_FLAGS)):
        refused("no such layer or activation", FORWARD, fwd, (A, A, Out, none), act=bad_act)
        acts = prob.shape.acts.copy()
        acts[0] = bad_act
        refused("shape is not valid", FORWARD, fwd, (A, A, Out, none),
                shape=prob.shape._replace(acts=acts))
    for bad_head in (-1, len(HEAD_ACTIVATIONS)):
        refused("shape is not valid", FORWARD, fwd, (A, A, Out, none),
                shape=prob.shape._replace(head=bad_head))
    refused("shape is not valid", FORWARD, fwd, (A, A, Out, none),
            shape=prob.shape._replace(units=prob.shape.units[:-1].copy()))
    refused("shape is not valid", FORWARD, fwd, (A, A, Out, none),
            shape=prob.shape._replace(offsets=prob.shape.offsets[:, :2].copy()))
    # a gradient written over the weights (a forward pass's bundle)
    refused("buffer sizes", GRADIENT, fwd, (A, D, D, D))
    for op in (SHARE, SPARSE_FORWARD, SPARSE_GRADIENT, -1):
        refused("unknown layer operation", op, fwd, (A, A, Out, none))
    # the gradient and the optimizer state must cover the buffer they step,
    # and the hyper-parameter arrays have every slot the step reads
    short = np.zeros(theta.size - 1, dtype)
    ok = {solver: grad_params(solver=solver, learning_rate=0.1) for solver in (NO_STEP, SGD, ADAM)}
    for params in (grad_params(grad=short),
                   grad_params(solver=SGD, m1=short),
                   grad_params(solver=ADAM, m1=short),
                   grad_params(solver=ADAM, m2=short),
                   *(ok[s]._replace(hyper=ok[s].hyper[:N_HYPER - 1]) for s in ok),
                   *(ok[s]._replace(hyper64=ok[s].hyper64[:N_HYPER64 - 1]) for s in (SGD, ADAM)),
                   *(ok[s]._replace(step=ok[s].step[:0]) for s in (SGD, ADAM))):
        refused("buffer sizes", GRADIENT, params, (A, D, D, D))
    # what a solver does not use may have any size: SGD's second moment, and
    # without a step the state, the step count and hyper64 (L-BFGS's bundle)
    for params in (ok[SGD], ok[NO_STEP]._replace(m1=short, m2=short, step=ok[NO_STEP].step[:0],
                                                 hyper64=ok[NO_STEP].hyper64[:0])):
        assert params.m2.shape[0] < theta.size
        _layer(GRADIENT, prob, params, (A, D, D, D))
        assert params.grad[wo:bo + 5].all()


def test_strided_arrays_are_refused():
    # A strided view, typed apart by Numba, must raise too. In a fresh
    # process: compiling the kernels for such layouts here would add
    # signatures that the once-per-dtype test (tests/test_kernels.py) counts.
    code = textwrap.dedent("""
        import numpy as np
        from fastmlp import _linalg
        from fastmlp._bundles import make_params, make_shape, predict_params
        from fastmlp._codes import FORWARD, GRADIENT, HEAD_IDENTITY, IDENTITY
        from fastmlp._layout import Layout
        shape, _ = make_shape(Layout([7, 5]), [], HEAD_IDENTITY, 12)
        A = np.ones((12, 7)); theta = np.ones(7 * 5 + 5)
        Z = np.zeros((12, 5)); none = np.zeros((0, 5)); strided = np.zeros((12, 10))[:, ::2]
        for mats in ((A, A, strided, none), (np.asfortranarray(A), A, Z, none),
                     (A, A, Z, strided)):
            try:
                _linalg.layer(FORWARD, 0, IDENTITY, predict_params(theta), shape, mats, 1.0)
            except ValueError as e:
                assert "C-contiguous" in str(e), e
            else:
                raise SystemExit("not refused")
        # theta and grad: BLAS takes a pointer at an offset into them
        wide = np.ones(2 * theta.size)
        for th, gr in ((wide[::2], wide[::2]), (wide[::-1][:theta.size], theta),
                       (theta, wide[::2])):
            try:
                _linalg.layer(GRADIENT, 0, IDENTITY, make_params(th, grad=gr), shape,
                              (A, Z, Z, Z), 1.0)
            except ValueError as e:
                assert "contiguous" in str(e), e
            else:
                raise SystemExit("strided parameters not refused")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def _sparse_all(A, W, b, D):
    """SPARSE_FORWARD (relu and tanh) and SPARSE_GRADIENT with an Adam step
    of the layer on A, as its layer-sized outputs and the whole buffers.
    The layer is a network's first, with PAD parameters in front."""
    n, k = A.shape
    dtype = A.dtype
    batch = sparse_batch(A)
    out = []
    for act in (RELU, TANH):
        # the first layer's activation is the network's first hidden one
        prob = layer_problem(W, b, lay=0, rows=n, pad=PAD, hidden=act)
        work = make_work(prob.shape, prob.size, dtype, train=False)
        work.acts[:] = np.nan
        _linalg.sparse_layer(SPARSE_FORWARD, predict_params(prob.theta), prob.shape, batch, work,
                             dtype.type(1))
        out.append(block(work.acts, prob.shape, 0, n).copy())
    prob = layer_problem(W, b, lay=0, rows=n, pad=PAD)
    work = make_work(prob.shape, prob.size, dtype, rows=n)
    block(work.deltas, prob.shape, 0, n)[...] = D
    m1, m2 = _adam_moments(prob.theta.size, dtype)
    params = step_params(prob.theta, grad=np.full_like(prob.theta, np.nan), solver=ADAM, m1=m1,
                         m2=m2, step_lr=ADAM_STEP_LR, **ADAM_HYPER)
    _linalg.sparse_layer(SPARSE_GRADIENT, params, prob.shape, batch, work, dtype.type(7.0))
    return out + [params.theta, params.grad, params.m1, params.m2]


def _sparse_data(n, k, m, dtype, seed):
    A, W, b, D = _data(n, k, m, dtype, seed)
    A[n // 2] = 0  # an empty row
    A[:, k // 2] = 0  # an empty column
    return A, W, b, D


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_sparse_layer_matches_the_dense_layer(shape, dtype):
    """A sparse input's first layer: the forward pass and the gradient with
    its Adam step are the dense layer's on the same matrix, up to rounding
    (the sums run in another order), and touch nothing outside the layer."""
    n, k, m = shape
    A, W, b, D = _sparse_data(n, k, m, dtype, seed=n * 7 + k * 3 + m)
    got = _sparse_all(A, W, b, D)
    # the dense layer on the same place of the same network
    want = [_forward(A, W, b, RELU), _forward(A, W, b, TANH),
            *_adam_grad_step(A, D, W, b, lay=0, pad=PAD)]
    prob = layer_problem(W, b, lay=0, pad=PAD)
    theta0, wo, bo = prob.theta, prob.wo, prob.bo
    assert wo == PAD
    for g, e in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g[:, :] if g.ndim == 2 else g[wo:bo + m],
                                   e if e.ndim == 2 else e[wo:bo + m], **_tol(dtype))
    # outside the layer's block: the weights and moments as they were, no
    # gradient written
    for g, before in zip(got[2::2], (theta0, _adam_moments(theta0.size, dtype)[0])):
        np.testing.assert_array_equal(g[:wo], before[:wo])
        np.testing.assert_array_equal(g[bo + m:], before[bo + m:])
    grad = got[3]
    assert np.isnan(grad[:wo]).all() and np.isnan(grad[bo + m:]).all()
    assert not np.isnan(grad[wo:bo + m]).any()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_sparse_layer_bit_identical_across_threads_and_repeats(dtype):
    for n, k, m in SHAPES[::2]:
        A, W, b, D = _sparse_data(n, k, m, dtype, seed=5 * n + k + 3 * m)
        with threads(1):
            first = _sparse_all(A, W, b, D)
        with threads(2):
            for _ in range(5):
                for g, e in zip(_sparse_all(A, W, b, D), first):
                    np.testing.assert_array_equal(g, e, err_msg=f"shape {(n, k, m)}")


@pytest.mark.parametrize("case", [
    "valid", "csr: short pointers", "csr: decreasing pointers", "csr: negative first pointer",
    "csr: pointers past the data", "csr: pointers past the indices",
    "csr: column index too large", "csr: negative column index", "csc: short pointers",
    "csc: pointers past the data", "csc: row index too large", "csc: negative row index",
    "csc: the CSR arrays", "unknown operation", "offsets", "offsets past the buffer",
    "block offset", "output rows", "pre-activation rows", "delta rows", "optimizer state",
    "hyper64"])
def test_sparse_layer_refuses_arrays_that_do_not_fit(case):
    """Every array the loops index is checked before them: a bad pointer or
    index, shape or offset raises, the buffers untouched."""
    n, k, m = 20, 12, 6
    A, W, b, D = _sparse_data(n, k, m, np.float64, seed=2)
    prob = layer_problem(W, b, lay=0, rows=n, pad=PAD, hidden=RELU)
    theta = prob.theta
    before = theta.copy()
    csr, csc = compressed(A)
    fmt = case[:3] if case[:3] in ("csr", "csc") else "csc"
    data, indices, ptr = (x.copy() for x in (csr if fmt == "csr" else csc))
    shape = prob.shape
    work = make_work(shape, prob.size, np.float64, rows=n)
    block(work.deltas, shape, 0, n)[...] = D
    params = step_params(theta, solver=ADAM, step_lr=0.1, learning_rate=0.1, beta_1=0.9,
                         beta_2=0.999, epsilon=1e-8)
    op = SPARSE_FORWARD if fmt == "csr" else SPARSE_GRADIENT
    what = case[5:]
    if what == "short pointers":
        ptr = ptr[:-1]
    elif what == "decreasing pointers":
        ptr[5] = ptr[7] + 1
    elif what == "negative first pointer":
        ptr[0] = -1
    elif what == "pointers past the data":
        data = data[:-1]
    elif what == "pointers past the indices":
        indices = indices[:-1]
    elif what.endswith("index too large"):
        indices[3] = k if fmt == "csr" else n
    elif what.startswith("negative"):
        indices[-1] = -1
    elif what == "the CSR arrays":
        data, indices, ptr = csr
    elif case == "unknown operation":
        op = GRADIENT
    elif case in ("offsets", "offsets past the buffer", "block offset"):
        offsets = shape.offsets.copy()
        if case == "offsets":
            offsets[0, OFF_B] += 1  # b not right after W
        elif case == "block offset":
            offsets[0, OFF_A] = -1
        else:
            offsets[0, [OFF_W, OFF_B]] += theta.size - (prob.bo + m) + 1
        shape = shape._replace(offsets=offsets)
    elif case == "output rows":
        op, (data, indices, ptr) = SPARSE_FORWARD, csr
        work = work._replace(acts=work.acts[:n * m - 1].copy())
    elif case == "pre-activation rows":  # where pre-activations are kept
        op, (data, indices, ptr) = SPARSE_FORWARD, csr
        work = work._replace(pre=np.zeros(n * m - 1))
    elif case == "delta rows":
        work = work._replace(deltas=work.deltas[:n * m - 1].copy())
    elif case == "optimizer state":
        params = params._replace(m2=params.m2[:-1].copy())
    elif case == "hyper64":
        params = params._replace(hyper64=params.hyper64[:N_HYPER64 - 1].copy())
    arrays = (data, indices, ptr)
    csr_in, csc_in = (arrays, csc) if op == SPARSE_FORWARD else (csr, arrays)
    batch = sparse_batch(csr=csr_in, csc=csc_in, n=n, n_cols=k, dtype=np.float64)
    if case == "valid":
        _linalg.sparse_layer(SPARSE_FORWARD, params, shape, sparse_batch(A), work, 3.0)
        assert block(work.acts, shape, 0, n).any()
        _linalg.sparse_layer(op, params, shape, batch, work, 3.0)
        assert np.isfinite(theta).all() and not np.array_equal(theta, before)
        return
    with pytest.raises(ValueError, match="fastmlp: "):
        _linalg.sparse_layer(op, params, shape, batch, work, 3.0)
    np.testing.assert_array_equal(theta, before)
