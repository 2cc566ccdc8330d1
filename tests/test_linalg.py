"""The matrix primitives of fastmlp._linalg, on awkward shapes.

The primitives split their outputs into a fixed grid of row-block tasks,
each one single-threaded BLAS call. These tests check every primitive
against numpy on shapes at and around each split point, that two threads
give bit-identical results to one, many times over (a race between tasks
shows up as an intermittent difference, so each case is repeated), and
that arrays BLAS would misread are refused before any call.
"""

import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from fastmlp import _linalg
from fastmlp._codes import IDENTITY, RELU, TANH
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


def _forward(A, W, b, act):
    Z = np.full((A.shape[0], W.shape[1]), np.nan, A.dtype)
    _linalg.linear_forward(A, W, b, Z, act)
    return Z


def _grad(A, D, W, alpha, sw_sum):
    dW = np.full(W.shape, np.nan, A.dtype)
    db = np.full(W.shape[1], np.nan, A.dtype)
    _linalg.linear_grad(A, D, W, A.dtype.type(alpha), A.dtype.type(sw_sum), dW, db)
    return dW, db


def _backward(D, W, Aprev, act):
    Dprev = np.full(Aprev.shape, np.nan, D.dtype)
    _linalg.linear_backward(D, W, Aprev, act, Dprev)
    return Dprev


def _all(A, W, b, D):
    Arelu = np.maximum(A, 0)
    return (_forward(A, W, b, RELU), _forward(A, W, b, TANH), _forward(A, W, b, IDENTITY),
            *_grad(A, D, W, 0.3, 7.0), _backward(D, W, Arelu, RELU),
            _backward(D, W, np.tanh(A), TANH))


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
    got = _all(A, W, b, D)
    for g, e in zip(got, expected):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, e, **_tol(dtype))


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
    # tasks: an even number of tasks (or one) tiles [0, n) without overlap,
    # and only the first starts at row 0 (it alone writes db).
    for n in range(1, 4 * rows + 40):
        n_tasks = _linalg._n_tasks(n, rows)
        assert n_tasks >= 1 and (n_tasks == 1 or n_tasks % 2 == 0)
        spans = [_linalg._task_rows(t, n_tasks, n) for t in range(n_tasks)]
        assert spans[0][0] == 0 and spans[-1][1] == n
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a1 == b0
        for t, (r0, r1) in enumerate(spans):
            assert r0 < r1
            assert (r0 == 0) == (t == 0), (n, n_tasks, spans)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_arrays_blas_would_misread_are_refused(dtype):
    # BLAS reads through raw pointers with row stride = number of columns:
    # a wrong shape must raise, not read out of bounds.
    A, W, b, D = _data(12, 7, 5, dtype, seed=1)
    Z = np.zeros((12, 5), dtype)
    with pytest.raises(ValueError, match="shapes"):
        _linalg.linear_forward(A, W, b, Z[:11], IDENTITY)
    with pytest.raises(ValueError, match="shapes"):
        _linalg.linear_forward(A, W, b[:4], Z, IDENTITY)
    dW = np.zeros_like(W)
    with pytest.raises(ValueError, match="shapes"):
        _linalg.linear_grad(A, D, W[:6], dtype(0), dtype(1), dW, b)
    with pytest.raises(ValueError, match="shapes"):
        _linalg.linear_backward(D, W, A, IDENTITY, np.zeros((12, 6), dtype))


def test_strided_arrays_are_refused():
    # A strided view, typed apart by Numba, must raise too. In a fresh
    # process: compiling the kernels for such layouts here would add
    # signatures that the once-per-dtype test (tests/test_kernels.py) counts.
    code = textwrap.dedent("""
        import numpy as np
        from fastmlp import _linalg
        A = np.ones((12, 7)); W = np.ones((7, 5)); b = np.ones(5)
        for args in ((A, W, b, np.zeros((12, 10))[:, ::2]),
                     (np.asfortranarray(A), W, b, np.zeros((12, 5)))):
            try:
                _linalg.linear_forward(*args, 0)
            except ValueError as e:
                assert "C-contiguous" in str(e), e
            else:
                raise SystemExit("not refused")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
