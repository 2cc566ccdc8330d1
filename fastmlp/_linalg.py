"""Matrix primitives of the training and prediction kernels.

Matrix products. Each dense primitive is a ``prange`` over a FIXED grid of
row blocks, and each task makes one single-threaded BLAS ``gemm`` call on
its block (:func:`_mm`: scipy's OpenBLAS through Numba's ``numba_xxgemm``
helper, the function ``np.dot`` uses inside ``@njit``), then applies the
bias, activation or derivative to its rows. The grid depends only on the
array shapes, never on the thread count, and BLAS runs on one thread inside
every fit and prediction (:func:`fastmlp._threads.threads` sets OpenBLAS to
one thread for their duration), so each output element comes from the same
single-threaded call with the same sizes: results are bit-identical for any
thread count. There is one threading story per loop, Numba's; no OpenBLAS
thread pool waits behind a parallel region, which is what made mixing
``prange`` loops with multi-threaded BLAS calls collapse speed.

Why BLAS. Numba runs LLVM's loop vectoriser but not its SLP vectoriser,
so a register-blocked GEMM micro-kernel cannot be written in Numba; the
best hand-written form, a 4 x 4-blocked row update, reached 50-70% of
one-thread GEMM. Measured here (2-core AMD EPYC, 2 threads, interleaved
runs, GFLOP/s of forward / weight gradient / backward):

    shape                  hand-written      BLAS, 128-row tasks
    float32 200x256@256x256  63 / 75 / 68      92 / 94 / 101
    float32 256x512@512x512  76 / 70 / 67     106 / 99 / 109
    float64 200x256@256x256  42 / 42 / 34      53 / 59 / 56
    float64 256x512@512x256  38 / 31 / 36      57 / 55 / 57

against a numpy 2048^2 GEMM of ~90-113 (float32) and ~43-65 (float64) in
the same runs. Tasks of 16, 32 and 64 rows were slower (BLAS packs its
operands per call). The hand-written kernels also cost about as much
compile time as the rest of the training path together.

Tasks. An even number of tasks of about :data:`BR` rows (:func:`_n_tasks`,
:func:`_task_rows`): two threads get equal work. ``linear_grad`` splits the
rows of ``dW`` (input features) the same way and its first task also writes
``db``.

Activations are applied per task on the rows it owns; ReLU and its
derivative as branch-free selects (vectorised): the branchy versions in
:mod:`fastmlp._activations` cost more than the matrix product for small
reductions.

Every BLAS call reads and writes through raw pointers, so each kernel checks
its arrays' shapes and C-contiguity before the parallel loop: a mismatch
raises instead of reading out of bounds (``NUMBA_BOUNDSCHECK`` cannot see
inside BLAS).

Shapes: ``A`` (n, k) layer input, ``W`` (k, m) weights, ``b`` (m,) bias,
``Z`` (n, m) layer output, ``D`` (n, m) output deltas.
"""

import ctypes

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._activations import activate, derivative
from ._codes import RELU
from ._jit import jit

BR = 128  # target rows per task (rows of dW for linear_grad)
_N = 110  # ord("n"): BLAS "no transpose"
_T = 116  # ord("t"): BLAS "transpose"


@intrinsic
def _gemm(typingctx, transa, transb, m, n, k, alpha, A, a_off, lda, B, b_off, ldb, beta,
          C, c_off, ldc):
    """Column-major ``C = alpha op(A) @ op(B) + beta C`` by BLAS ``?gemm``.

    ``A``, ``B``, ``C`` are arrays of one float dtype; each operand starts
    ``*_off`` elements after its array's first element. Lowered to a call of
    Numba's ``numba_xxgemm`` helper, which calls scipy's ``cython_blas``
    (a named symbol, so functions using it can be cached). No bounds
    checks: callers validate the extents.
    """
    if not all(isinstance(x, types.Array) for x in (A, B, C)):
        return None
    dtype = A.dtype
    if dtype not in (types.float32, types.float64) or B.dtype != dtype or C.dtype != dtype:
        return None
    sig = types.int32(transa, transb, m, n, k, alpha, A, a_off, lda, B, b_off, ldb, beta,
                      C, c_off, ldc)

    def codegen(context, builder, signature, args):
        (ta, tb, m_, n_, k_, al, a, ao, la, b, bo, lb, be, c, co, lc) = args
        tys = signature.args
        void_p = ir.IntType(8).as_pointer()
        char = ir.IntType(8)
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, void_p,
                                                void_p, intp, void_p, intp, void_p, void_p, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        def as_intp(v, ty):
            return context.cast(builder, v, ty, types.intp)

        def ptr(ty, val, off, off_ty):
            ary = context.make_array(ty)(context, builder, val)
            return builder.bitcast(builder.gep(ary.data, [as_intp(off, off_ty)]), void_p)

        def slot(v, ty):
            return builder.bitcast(
                cgutils.alloca_once_value(builder, context.cast(builder, v, ty, dtype)), void_p)

        kind = ir.Constant(char, ord("s" if dtype == types.float32 else "d"))
        return builder.call(fn, (
            kind, builder.trunc(as_intp(ta, tys[0]), char), builder.trunc(as_intp(tb, tys[1]), char),
            as_intp(m_, tys[2]), as_intp(n_, tys[3]), as_intp(k_, tys[4]), slot(al, tys[5]),
            ptr(tys[6], a, ao, tys[7]), as_intp(la, tys[8]), ptr(tys[9], b, bo, tys[10]),
            as_intp(lb, tys[11]), slot(be, tys[12]), ptr(tys[13], c, co, tys[14]),
            as_intp(lc, tys[15])))

    return sig, codegen


@jit(inline="always")
def _mm(ta, tb, n, m, k, A, a0, lda, B, b0, ldb, beta, C, c0, ldc):
    """Row-major ``C = op(A) @ op(B) + beta * C`` on one thread.

    ``C`` is the (n, m) block at element ``c0`` of ``C`` with row stride
    ``ldc``; ``op(A)`` is (n, k): the block at ``a0`` with row stride
    ``lda``, stored (n, k) when ``ta`` is :data:`_N` and (k, n) when it is
    :data:`_T`; ``op(B)`` (k, m) likewise. A row-major matrix is the
    column-major transpose, so this is the column-major product
    ``C.T = op(B).T @ op(A).T``: the same flags, operands swapped.
    Inlined, so the literal flags do not make one compiled copy per flag
    combination.
    """
    return _gemm(tb, ta, m, n, k, 1.0, B, b0, ldb, A, a0, lda, beta, C, c0, ldc)


def prime_blas():
    """Resolve the BLAS functions Numba's gemm helper calls, on this thread.

    ``numba_xxgemm`` looks scipy's ``sgemm``/``dgemm`` up on first use, and
    takes the GIL to do so. Doing it here, once, at import, keeps that
    lookup out of the parallel loops' worker threads. A call with empty
    sizes returns at once.
    """
    from numba import _helperlib

    import scipy.linalg.cython_blas  # noqa: F401  (loads scipy's BLAS)

    ssize = ctypes.c_ssize_t
    proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char, ctypes.c_char, ctypes.c_char,
                             ssize, ssize, ssize, ctypes.c_void_p, ctypes.c_void_p, ssize,
                             ctypes.c_void_p, ssize, ctypes.c_void_p, ctypes.c_void_p, ssize)
    xxgemm = proto(_helperlib.c_helpers["xxgemm"])
    for kind, dtype in ((b"s", np.float32), (b"d", np.float64)):
        one = np.ones(4, dtype=dtype)
        p = one.ctypes.data
        if xxgemm(kind, b"n", b"n", 0, 0, 0, p, p, 1, p, 1, p, p, 1) != 0:
            raise RuntimeError("scipy's BLAS ?gemm could not be loaded")


prime_blas()


@jit()
def _n_tasks(n, rows):
    """An even number of tasks of about ``rows`` rows each.

    At most ``n // 4`` tasks, so that with :func:`_task_rows` every task owns
    at least one group of 4 rows (no empty BLAS call) and only the first
    starts at row 0.
    """
    t = 2 * ((n + 2 * rows - 1) // (2 * rows))
    nq = n // 4
    if t > nq:
        t = nq
    if t < 1:
        t = 1
    return t


@jit()
def _task_rows(t, n_tasks, n):
    """Rows ``[r0, r1)`` of task ``t``: groups of 4 rows spread evenly."""
    nq = n // 4
    r0 = 4 * ((t * nq) // n_tasks)
    r1 = 4 * (((t + 1) * nq) // n_tasks)
    if t == n_tasks - 1:
        r1 = n
    return r0, r1


@jit()
def _check(X, rows, cols):
    """Raise unless ``X`` is a C-contiguous (rows, cols) matrix: BLAS reads
    it through a raw pointer with row stride ``cols``."""
    if X.shape[0] != rows or X.shape[1] != cols:
        raise ValueError("fastmlp: matrix shapes do not match")
    if cols > 0 and rows > 1 and X.strides[0] != cols * X.itemsize:
        raise ValueError("fastmlp: matrices must be C-contiguous")
    if cols > 1 and X.strides[1] != X.itemsize:
        raise ValueError("fastmlp: matrices must be C-contiguous")


@jit()
def _activate_rows(Z, r0, r1, act):
    """``act`` on ``Z[r0:r1]``; ReLU as a (vectorising) select."""
    if act == RELU:
        zero = Z.dtype.type(0)
        for r in range(r0, r1):
            z = Z[r]
            for c in range(z.shape[0]):
                v = z[c]
                z[c] = zero if v < zero else v
    else:
        for r in range(r0, r1):
            activate(Z[r], act)


@jit()
def _derivative_rows(Aprev, D, r0, r1, act):
    """Multiply ``D[r0:r1]`` by ``act``'s derivative, given outputs."""
    if act == RELU:
        zero = D.dtype.type(0)
        for r in range(r0, r1):
            a = Aprev[r]
            d = D[r]
            for c in range(d.shape[0]):
                v = d[c]
                d[c] = zero if a[c] == zero else v
    else:
        for r in range(r0, r1):
            derivative(Aprev[r], D[r], act)


@jit(parallel=True)
def linear_forward(A, W, b, Z, act):
    """Write ``Z = act(A @ W + b)`` in place.

    A : (n, k); W : (k, m); b : (m,); Z : (n, m), overwritten; act : int,
    an activation code (IDENTITY for the output layer, whose head applies
    its own function). Each task sets its rows of ``Z`` to ``b`` and adds
    ``A @ W`` to them (BLAS with beta = 1).
    """
    n, k = A.shape
    m = W.shape[1]
    _check(A, n, k)
    _check(W, k, m)
    _check(Z, n, m)
    if b.shape[0] != m:
        raise ValueError("fastmlp: matrix shapes do not match")
    n_rt = _n_tasks(n, np.int64(BR))
    for t in prange(n_rt):
        r0, r1 = _task_rows(np.int64(t), n_rt, n)
        for r in range(r0, r1):
            z = Z[r]
            for c in range(m):
                z[c] = b[c]
        _mm(_N, _N, r1 - r0, m, k, A, r0 * k, k, W, 0, m, 1.0, Z, r0 * m, m)
        _activate_rows(Z, r0, r1, act)


@jit(parallel=True)
def csr_linear_forward(data, indices, indptr, W, b, Z, act):
    """Write ``Z = act(X @ W + b)`` in place for a CSR matrix ``X``.

    data, indices, indptr : CSR arrays of X with n = indptr.size - 1 rows;
    W : (k, m); b : (m,); Z : (n, m), overwritten; act : activation code.
    """
    n = indptr.shape[0] - 1
    m = W.shape[1]
    for r in prange(n):
        z = Z[r]
        for c in range(m):
            z[c] = b[c]
        for p in range(indptr[r], indptr[r + 1]):
            a = data[p]
            w = W[indices[p]]
            for c in range(m):
                z[c] += a * w[c]
        activate(z, act)


@jit()
def _bias_grad(D, sw_sum, db):
    """``db = D.sum(axis=0) / sw_sum``, rows in order."""
    m = db.shape[0]
    for c in range(m):
        db[c] = 0
    for r in range(D.shape[0]):
        d = D[r]
        for c in range(m):
            db[c] += d[c]
    for c in range(m):
        db[c] /= sw_sum


@jit(parallel=True)
def linear_grad(A, D, W, alpha, sw_sum, dW, db):
    """Weight and bias gradients of a layer, L2 included.

    Writes ``dW = (A.T @ D + alpha * W) / sw_sum`` and
    ``db = D.sum(axis=0) / sw_sum`` in place.
    A : (n, k); D : (n, m); W, dW : (k, m); db : (m,).
    Tasks own rows of ``dW`` (input features); the first also writes ``db``.
    """
    n, k = A.shape
    m = D.shape[1]
    _check(A, n, k)
    _check(D, n, m)
    _check(W, k, m)
    _check(dW, k, m)
    if db.shape[0] != m:
        raise ValueError("fastmlp: matrix shapes do not match")
    n_jt = _n_tasks(k, np.int64(BR))
    for t in prange(n_jt):
        j0, j1 = _task_rows(np.int64(t), n_jt, k)
        # dW[j0:j1] = A[:, j0:j1].T @ D
        _mm(_T, _N, j1 - j0, m, n, A, j0, k, D, 0, m, 0.0, dW, j0 * m, m)
        for j in range(j0, j1):
            g = dW[j]
            w = W[j]
            # scikit-learn: (A.T @ D + alpha * W) / sw_sum, a true division
            for c in range(m):
                g[c] = (g[c] + alpha * w[c]) / sw_sum
        if t == 0:
            _bias_grad(D, sw_sum, db)


@jit(parallel=True)
def csc_linear_grad(data, rows, colptr, D, W, alpha, sw_sum, dW, db):
    """:func:`linear_grad` for a sparse input given in CSC form.

    data, rows, colptr : CSC arrays of the (n, k) input; the rest as in
    :func:`linear_grad`.
    """
    k = colptr.shape[0] - 1
    m = D.shape[1]
    for j in prange(k + 1):
        if j == k:
            _bias_grad(D, sw_sum, db)
        else:
            g = dW[j]
            for c in range(m):
                g[c] = 0
            for p in range(colptr[j], colptr[j + 1]):
                a = data[p]
                d = D[rows[p]]
                for c in range(m):
                    g[c] += a * d[c]
            w = W[j]
            for c in range(m):
                g[c] = (g[c] + alpha * w[c]) / sw_sum


@jit(parallel=True)
def linear_backward(D, W, Aprev, act, Dprev):
    """Write ``Dprev = (D @ W.T) * act'(Aprev)`` in place.

    D : (n, m); W : (k, m), the layer's weights; Aprev : (n, k), the output
    of the previous layer's activation ``act``; Dprev : (n, k).
    """
    n, m = D.shape
    k = W.shape[0]
    _check(D, n, m)
    _check(W, k, m)
    _check(Aprev, n, k)
    _check(Dprev, n, k)
    n_rt = _n_tasks(n, np.int64(BR))
    for t in prange(n_rt):
        r0, r1 = _task_rows(np.int64(t), n_rt, n)
        _mm(_N, _T, r1 - r0, k, m, D, r0 * m, m, W, 0, m, 0.0, Dprev, r0 * k, k)
        _derivative_rows(Aprev, Dprev, r0, r1, act)
