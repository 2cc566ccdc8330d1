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
import scipy.sparse as sp

from native import native
from fastmlp import _engine, _linalg, _optim
from fastmlp._codes import ADAM, H_LR_T, IDENTITY, NO_STEP, RELU, SGD, TANH
from fastmlp._linalg import BACKWARD, FORWARD, GRADIENT
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


PAD = 5  # parameters of "earlier layers" in front of the layer's block


def _pack(W, b):
    """A flat buffer holding W then b after PAD other values; (theta, wo, bo)."""
    rng = np.random.RandomState(W.size)
    theta = np.concatenate([rng.normal(size=PAD), W.ravel(), b, rng.normal(size=3)])
    return theta.astype(W.dtype), PAD, PAD + W.size


def _layer(op, A, D, Out, theta, wo, bo, act, grad=None, state1=None, state2=None,
           solver=NO_STEP, hyper=None, sw_sum=1.0):
    dt = A.dtype.type
    grad = theta if grad is None else grad
    hyper = theta if hyper is None else hyper
    _linalg.layer(op, theta, grad, theta if state1 is None else state1,
                  theta if state2 is None else state2, wo, bo, A, D, Out, act, solver, True,
                  hyper, dt(sw_sum))


def _forward(A, W, b, act):
    theta, wo, bo = _pack(W, b)
    before = theta.copy()
    Z = np.full((A.shape[0], W.shape[1]), np.nan, A.dtype)
    _layer(FORWARD, A, A, Z, theta, wo, bo, act)
    np.testing.assert_array_equal(theta, before)
    return Z


def _grad(A, D, W, alpha, sw_sum):
    theta, wo, bo = _pack(W, np.zeros(W.shape[1], W.dtype))
    before = theta.copy()
    grad = np.full_like(theta, np.nan)
    hyper = _engine.make_hyper(A.dtype, alpha=alpha)
    _layer(GRADIENT, A, D, D, theta, wo, bo, IDENTITY, grad=grad, hyper=hyper, sw_sum=sw_sum)
    np.testing.assert_array_equal(theta, before)  # NO_STEP
    assert np.isnan(grad[:wo]).all() and np.isnan(grad[bo + W.shape[1]:]).all()
    return grad[wo:bo].reshape(W.shape), grad[bo:bo + W.shape[1]]


def _backward(D, W, Aprev, act):
    theta, wo, bo = _pack(W, np.zeros(W.shape[1], W.dtype))
    Dprev = np.full(Aprev.shape, np.nan, D.dtype)
    _layer(BACKWARD, Aprev, D, Dprev, theta, wo, bo, act)
    return Dprev


def _adam_state(size, dtype):
    """Moments of a second Adam step (nonzero) and its hyper-parameters."""
    rng = np.random.RandomState(7)
    m1 = rng.normal(scale=0.1, size=size).astype(dtype)
    m2 = rng.uniform(0.0, 0.1, size=size).astype(dtype)
    hyper = _engine.make_hyper(dtype, learning_rate=0.01, beta_1=0.9, beta_2=0.999,
                               epsilon=1e-8, alpha=0.3)
    hyper[H_LR_T] = 0.004
    return m1, m2, hyper


def _adam_grad_step(A, D, W, b):
    """Gradient and one fused Adam step (as a second step: moments nonzero)."""
    theta, wo, bo = _pack(W, b)
    m1, m2, hyper = _adam_state(theta.size, A.dtype)
    grad = np.zeros_like(theta)
    _layer(GRADIENT, A, D, D, theta, wo, bo, IDENTITY, grad=grad, state1=m1, state2=m2,
           solver=ADAM, hyper=hyper, sw_sum=7.0)
    return theta, grad, m1, m2


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
    # take on the finished gradient, on the layer's block and nowhere else.
    n, k, m = shape
    A, W, b, D = _data(n, k, m, dtype, seed=n + 31 * k + m)
    theta, wo, bo = _pack(W, b)
    rng = np.random.RandomState(5)
    s1 = rng.normal(scale=0.1, size=theta.size).astype(dtype)
    s2 = rng.uniform(0.0, 0.1, size=theta.size).astype(dtype)
    hyper = _engine.make_hyper(dtype, learning_rate=0.02, momentum=0.9, beta_1=0.9,
                               beta_2=0.999, epsilon=1e-8, alpha=0.3)
    hyper[H_LR_T] = 0.004

    expected = [x.copy() for x in (theta, np.zeros_like(theta), s1, s2)]
    _layer(GRADIENT, A, D, D, expected[0], wo, bo, IDENTITY, grad=expected[1], hyper=hyper,
           sw_sum=7.0)
    native(_optim.optimizer_step)(*expected[:1], expected[1], *expected[2:], wo, bo + m,
                                  solver, True, hyper)

    got = [x.copy() for x in (theta, np.zeros_like(theta), s1, s2)]
    _layer(GRADIENT, A, D, D, got[0], wo, bo, IDENTITY, grad=got[1], state1=got[2],
           state2=got[3], solver=solver, hyper=hyper, sw_sum=7.0)
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
        n_tasks = _linalg._n_tasks(n, rows)
        assert n_tasks >= 1 and (n_tasks == 1 or n_tasks % 2 == 0)
        spans = [_linalg._task_rows(t, n_tasks, n) for t in range(n_tasks)]
        assert spans[0][0] == 0 and spans[-1][1] == n
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a1 == b0
        for t, (r0, r1) in enumerate(spans):
            assert r0 < r1
            assert (r1 == n) == (t == n_tasks - 1), (n, n_tasks, spans)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_arrays_blas_would_misread_are_refused(dtype):
    # BLAS reads through raw pointers with row stride = number of columns:
    # a wrong shape must raise, not read out of bounds.
    A, W, b, D = _data(12, 7, 5, dtype, seed=1)
    Z = np.zeros((12, 5), dtype)
    theta, wo, bo = _pack(W, b)
    with pytest.raises(ValueError, match="shapes"):
        _layer(FORWARD, A, A, Z[:11], theta, wo, bo, IDENTITY)
    with pytest.raises(ValueError, match="shapes"):
        _layer(GRADIENT, A, D[:11], D, theta, wo, bo, IDENTITY,
               grad=np.zeros_like(theta), hyper=_engine.make_hyper(dtype))
    with pytest.raises(ValueError, match="shapes"):
        _layer(BACKWARD, A, D, np.zeros((12, 6), dtype), theta, wo, bo, IDENTITY)
    # W and b must lie in theta, b right after W (one step covers both)
    for w_at, b_at in ((wo, bo + 1), (wo + 9, bo + 9), (-1, bo - 1)):
        with pytest.raises(ValueError, match="offsets"):
            _layer(FORWARD, A, A, Z, theta, w_at, b_at, IDENTITY)
    # the optimizer state must cover the buffer it steps
    short = np.zeros(theta.size - 1, dtype)
    for solver, s1, s2 in ((SGD, short, theta), (ADAM, theta.copy(), short)):
        with pytest.raises(ValueError, match="buffer sizes"):
            _layer(GRADIENT, A, D, D, theta, wo, bo, IDENTITY, grad=np.zeros_like(theta),
                   state1=s1, state2=s2, solver=solver, hyper=_engine.make_hyper(dtype))


def test_strided_arrays_are_refused():
    # A strided view, typed apart by Numba, must raise too. In a fresh
    # process: compiling the kernels for such layouts here would add
    # signatures that the once-per-dtype test (tests/test_kernels.py) counts.
    code = textwrap.dedent("""
        import numpy as np
        from fastmlp import _linalg
        A = np.ones((12, 7)); theta = np.ones(7 * 5 + 5)
        for X, Z in ((A, np.zeros((12, 10))[:, ::2]), (np.asfortranarray(A), np.zeros((12, 5)))):
            try:
                _linalg.layer(_linalg.FORWARD, theta, theta, theta, theta, 0, 35, X, X, Z, 0,
                              -1, False, theta, 1.0)
            except ValueError as e:
                assert "C-contiguous" in str(e), e
            else:
                raise SystemExit("not refused")
        # theta and grad: BLAS takes a pointer at an offset into them
        Z = np.zeros((12, 5))
        wide = np.ones(2 * theta.size)
        for th, gr in ((wide[::2], wide[::2]), (wide[::-1][:theta.size], theta),
                       (theta, wide[::2])):
            try:
                _linalg.layer(_linalg.GRADIENT, th, gr, th, th, 0, 35, A, Z, Z, 0, -1, False,
                              np.zeros(10), 1.0)
            except ValueError as e:
                assert "contiguous" in str(e), e
            else:
                raise SystemExit("strided parameters not refused")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def _compressed(A):
    """``A`` as CSR and CSC arrays (data, int64 indices, int64 pointers)."""
    csr, csc = sp.csr_matrix(A), sp.csc_matrix(A)
    return tuple((x.data, x.indices.astype(np.int64), x.indptr.astype(np.int64))
                 for x in (csr, csc))


def _sparse(op, arrays, k, theta, grad, state1, state2, wo, bo, D, Out, act, solver, hyper,
            sw_sum):
    _linalg.sparse_layer(op, *arrays, k, theta, grad, state1, state2, wo, bo, D, Out, act,
                         solver, True, hyper, theta.dtype.type(sw_sum))


def _sparse_all(A, W, b, D):
    """SPARSE_FORWARD (relu and tanh) and SPARSE_GRADIENT with an Adam step
    of the layer on A, as its layer-sized outputs and the whole buffers."""
    n, k = A.shape
    m = W.shape[1]
    csr, csc = _compressed(A)
    theta, wo, bo = _pack(W, b)
    out = []
    for act in (RELU, TANH):
        Z = np.full((n, m), np.nan, A.dtype)
        _sparse(_linalg.SPARSE_FORWARD, csr, k, theta, theta, theta, theta, wo, bo, D, Z, act,
                NO_STEP, theta, 1.0)
        out.append(Z)
    grad = np.full_like(theta, np.nan)
    m1, m2, hyper = _adam_state(theta.size, A.dtype)
    _sparse(_linalg.SPARSE_GRADIENT, csc, k, theta, grad, m1, m2, wo, bo, D, D, IDENTITY,
            ADAM, hyper, 7.0)
    return out + [theta, grad, m1, m2]


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
    want = [_forward(A, W, b, RELU), _forward(A, W, b, TANH), *_adam_grad_step(A, D, W, b)]
    theta0, wo, bo = _pack(W, b)
    for g, e in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g[:, :] if g.ndim == 2 else g[wo:bo + m],
                                   e if e.ndim == 2 else e[wo:bo + m], **_tol(dtype))
    # outside the layer's block: the weights and moments as they were, no
    # gradient written
    for g, before in zip(got[2::2], (theta0, _adam_state(theta0.size, dtype)[0])):
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
    "csc: the CSR arrays", "unknown operation", "offsets", "output rows", "delta rows",
    "optimizer state"])
def test_sparse_layer_refuses_arrays_that_do_not_fit(case):
    """Every array the loops index is checked before them: a bad pointer or
    index, shape or offset raises, the buffers untouched."""
    n, k, m = 20, 12, 6
    A, W, b, D = _sparse_data(n, k, m, np.float64, seed=2)
    theta, wo, bo = _pack(W, b)
    before = theta.copy()
    csr, csc = _compressed(A)
    fmt = case[:3] if case[:3] in ("csr", "csc") else "csc"
    data, indices, ptr = (x.copy() for x in (csr if fmt == "csr" else csc))
    Z = np.zeros((n, m))
    state2 = np.zeros_like(theta)
    op = _linalg.SPARSE_FORWARD if fmt == "csr" else _linalg.SPARSE_GRADIENT
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
        op = _linalg.GRADIENT
    elif case == "offsets":
        bo += 1
    elif case == "output rows":
        op, (data, indices, ptr) = _linalg.SPARSE_FORWARD, csr
        Z = Z[:-1].copy()
    elif case == "delta rows":
        D = D[:-1].copy()
    elif case == "optimizer state":
        state2 = state2[:-1].copy()
    args = ((data, indices, ptr), k, theta, np.zeros_like(theta), np.zeros_like(theta), state2,
            wo, bo, D, Z, RELU, ADAM, _engine.make_hyper(np.float64, learning_rate=0.1), 3.0)
    if case == "valid":
        _sparse(_linalg.SPARSE_FORWARD, csr, *args[1:])
        assert Z.any()
        _sparse(op, *args)
        assert not np.array_equal(theta, before)
        return
    with pytest.raises(ValueError, match="fastmlp: "):
        _sparse(op, *args)
    np.testing.assert_array_equal(theta, before)
