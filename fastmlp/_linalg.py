"""Matrix primitives of the training and prediction kernels.

Determinism. Every primitive is parallel over a FIXED grid of output tiles:
the number and extent of the tasks depend only on the array shapes, never on
the thread count, and each output element is produced by one task with one
fixed sequence of operations (no cross-thread reduction). Results are
therefore bit-identical for any thread count. No BLAS: mixing OpenBLAS
threads with Numba's parallel loops in one training loop was measured to
collapse speed, and BLAS results change with the thread count.

Kernel. Numba runs LLVM's loop vectoriser but not its SLP vectoriser
(``NUMBA_SLP_VECTORIZE`` defaults to 0), so a classic register-blocked
micro-kernel written with scalar accumulators stays scalar (measured: 3-5
GFLOP/s, scalar ``vfmadd231ss`` and spills). The vectorisable form is a row
update, whose inner loop runs over contiguous output columns. It is blocked
4 x 4 (:func:`_nn`, :func:`_tn`): four output rows are updated with four
reduction steps per pass, so every column vector of ``B`` loaded is used for
4 FMAs and every output vector is loaded and stored once per 4 reduction
steps (16 FMAs, 8 loads, 4 stores per vector; the 16 broadcast coefficients
live in registers or on the stack). Each output element is still summed in
increasing reduction index, from its initial value (bias or 0), one FMA per
term (``fastmath={'contract'}``), exactly as the plain row update did.

Tiling. Tasks own ``~RB`` output rows x up to ``CP`` columns; the reduction
is split in blocks of ``KC`` rows of ``B`` (byte-sized, so the block of
``B`` stays in L2 for both dtypes). Row ranges are spread evenly over an
even number of tasks so that two threads get equal work.

Small outputs (m < 16, e.g. a 10-class output layer) would leave the column
loop too short to vectorise. linear_forward then computes ``Z.T = W.T @ A.T``
(rows of ``A`` transposed into scratch, inner loop over rows of the batch),
and linear_grad computes ``dW.T = D.T @ A`` (inner loop over the input
features) into scratch, transposed back while adding the L2 term. The
scratch (allocated per call, ~k*n elements for the forward pass) gives each
task private, cache-line-padded columns: tasks sharing a boundary line of
scratch were measured to halve the two-thread speed (false sharing).

Zero skipping (``if a != 0``) was dropped: with 4 x 4 blocking a skip needs
16 zero coefficients, and on ReLU inputs (~50% zeros) the dense blocked
kernel is 2-3x faster than the skipping row update. ReLU and its derivative
are applied here as branch-free selects (vectorised); the branchy versions in
:mod:`fastmlp._activations` cost more than the matrix product for small
reductions. The other activations still call :mod:`fastmlp._activations`.

Measured (2-core AMD EPYC, AVX2+FMA, one thread, best of 30, ReLU inputs;
bench/linalg_bench.py, bench/ab.py; numpy GEMM 1024^2 on one thread in the
same runs: 65-88 GFLOP/s float32, 40-42 float64; the machine was shared, so
figures vary by ~20%). GFLOP/s, new (old row-update kernels):

    float32              forward      linear_grad  backward
    200x256 @ 256x256    53 (31)      55 (25)      55 (22)
    256x512 @ 512x256    50 (27)      53 (25)      57 (23)
    200x64  @ 64x100     21 (12)      33 (16)      30 (15)
    200x100 @ 100x10     15 (2.1)     15 (2.1)     14 (10)
    float64
    200x256 @ 256x256    23 (15)      27 (17)      28 (12)
    200x100 @ 100x10     12 (2.2)     13 (2.0)     11 (8.9)

Results are bit-identical to the old kernels (same summation order per
element; the ``0 * w`` terms the old kernels skipped are exact no-ops for
finite w, up to the sign of a zero result).

Shapes: ``A`` (n, k) layer input, ``W`` (k, m) weights, ``b`` (m,) bias,
``Z`` (n, m) layer output, ``D`` (n, m) output deltas.
"""

import numpy as np
from numba import prange

from ._activations import activate, derivative
from ._codes import RELU
from ._jit import jit

RB = 16  # target output rows per task (rows of dW for linear_grad)
CP = 512  # output columns per task
KC_BYTES = 512  # reduction block: KC_BYTES // itemsize rows of B
SMALL_M = 16  # outputs narrower than this take the transposed paths
SMALL_RB = 128  # target batch rows (or input features) per task there
TB = 64  # rows of W per task of transpose (64 elements: whole cache lines of WT)


@jit()
def _n_tasks(n, rows):
    """An even number of tasks of about ``rows`` rows each.

    At most ``n // 4`` tasks, so that with :func:`_task_rows` every task but
    the first starts at a row > 0: the first task alone writes anything
    shared by a column range (``db``). Allowing ``ceil(n / 4)`` tasks gave
    ``n`` = 5..7 an empty first task and two tasks with ``r0 == 0`` racing
    on ``db`` (caught by tests/test_linalg.py).
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
def _nn(A, B, Z, r0, r1, k0, k1, c0, c1, zc):
    """``Z[r0:r1, zc:zc+c1-c0] += A[r0:r1, k0:k1] @ B[k0:k1, c0:c1]``, each sum in increasing k;
    ``Z`` columns start at ``zc`` instead of ``c0``."""
    nc = c1 - c0
    k4 = k0 + (k1 - k0) // 4 * 4
    r4 = r0 + (r1 - r0) // 4 * 4
    for r in range(r0, r4, 4):
        z0 = Z[r, zc:zc + nc]; z1 = Z[r + 1, zc:zc + nc]; z2 = Z[r + 2, zc:zc + nc]; z3 = Z[r + 3, zc:zc + nc]
        a0 = A[r]; a1 = A[r + 1]; a2 = A[r + 2]; a3 = A[r + 3]
        for kk in range(k0, k4, 4):
            b0 = B[kk, c0:c1]; b1 = B[kk + 1, c0:c1]; b2 = B[kk + 2, c0:c1]; b3 = B[kk + 3, c0:c1]
            p00 = a0[kk + 0]; p01 = a0[kk + 1]; p02 = a0[kk + 2]; p03 = a0[kk + 3]
            p10 = a1[kk + 0]; p11 = a1[kk + 1]; p12 = a1[kk + 2]; p13 = a1[kk + 3]
            p20 = a2[kk + 0]; p21 = a2[kk + 1]; p22 = a2[kk + 2]; p23 = a2[kk + 3]
            p30 = a3[kk + 0]; p31 = a3[kk + 1]; p32 = a3[kk + 2]; p33 = a3[kk + 3]
            for c in range(nc):
                x0 = b0[c]; x1 = b1[c]; x2 = b2[c]; x3 = b3[c]
                s = z0[c]; s += p00 * x0; s += p01 * x1; s += p02 * x2; s += p03 * x3; z0[c] = s
                s = z1[c]; s += p10 * x0; s += p11 * x1; s += p12 * x2; s += p13 * x3; z1[c] = s
                s = z2[c]; s += p20 * x0; s += p21 * x1; s += p22 * x2; s += p23 * x3; z2[c] = s
                s = z3[c]; s += p30 * x0; s += p31 * x1; s += p32 * x2; s += p33 * x3; z3[c] = s
        for kk in range(k4, k1):
            b0 = B[kk, c0:c1]
            p0 = a0[kk]; p1 = a1[kk]; p2 = a2[kk]; p3 = a3[kk]
            for c in range(nc):
                x0 = b0[c]
                z0[c] += p0 * x0; z1[c] += p1 * x0; z2[c] += p2 * x0; z3[c] += p3 * x0
    for r in range(r4, r1):
        z0 = Z[r, zc:zc + nc]
        a0 = A[r]
        for kk in range(k0, k1):
            b0 = B[kk, c0:c1]
            p0 = a0[kk]
            for c in range(nc):
                z0[c] += p0 * b0[c]


@jit()
def _tn(A, B, Z, r0, r1, k0, k1, c0, c1, zc):
    """``Z[r0:r1, zc:zc+c1-c0] += A[k0:k1, r0:r1].T @ B[k0:k1, c0:c1]``, each sum in increasing k;
    ``Z`` columns start at ``zc`` instead of ``c0``."""
    nc = c1 - c0
    k4 = k0 + (k1 - k0) // 4 * 4
    r4 = r0 + (r1 - r0) // 4 * 4
    for r in range(r0, r4, 4):
        z0 = Z[r, zc:zc + nc]; z1 = Z[r + 1, zc:zc + nc]; z2 = Z[r + 2, zc:zc + nc]; z3 = Z[r + 3, zc:zc + nc]
        for kk in range(k0, k4, 4):
            b0 = B[kk, c0:c1]; b1 = B[kk + 1, c0:c1]; b2 = B[kk + 2, c0:c1]; b3 = B[kk + 3, c0:c1]
            t0 = A[kk]; t1 = A[kk + 1]; t2 = A[kk + 2]; t3 = A[kk + 3]
            p00 = t0[r + 0]; p01 = t1[r + 0]; p02 = t2[r + 0]; p03 = t3[r + 0]
            p10 = t0[r + 1]; p11 = t1[r + 1]; p12 = t2[r + 1]; p13 = t3[r + 1]
            p20 = t0[r + 2]; p21 = t1[r + 2]; p22 = t2[r + 2]; p23 = t3[r + 2]
            p30 = t0[r + 3]; p31 = t1[r + 3]; p32 = t2[r + 3]; p33 = t3[r + 3]
            for c in range(nc):
                x0 = b0[c]; x1 = b1[c]; x2 = b2[c]; x3 = b3[c]
                s = z0[c]; s += p00 * x0; s += p01 * x1; s += p02 * x2; s += p03 * x3; z0[c] = s
                s = z1[c]; s += p10 * x0; s += p11 * x1; s += p12 * x2; s += p13 * x3; z1[c] = s
                s = z2[c]; s += p20 * x0; s += p21 * x1; s += p22 * x2; s += p23 * x3; z2[c] = s
                s = z3[c]; s += p30 * x0; s += p31 * x1; s += p32 * x2; s += p33 * x3; z3[c] = s
        for kk in range(k4, k1):
            b0 = B[kk, c0:c1]
            t0 = A[kk]
            p0 = t0[r]; p1 = t0[r + 1]; p2 = t0[r + 2]; p3 = t0[r + 3]
            for c in range(nc):
                x0 = b0[c]
                z0[c] += p0 * x0; z1[c] += p1 * x0; z2[c] += p2 * x0; z3[c] += p3 * x0
    for r in range(r4, r1):
        z0 = Z[r, zc:zc + nc]
        for kk in range(k0, k1):
            b0 = B[kk, c0:c1]
            p0 = A[kk, r]
            for c in range(nc):
                z0[c] += p0 * b0[c]


@jit()
def _transpose_rows(A, AT, r0, r1, o):
    """``AT[:, o:o + r1 - r0] = A[r0:r1, :].T``, 8 rows of ``AT`` per sweep
    (an element-by-element strided transpose was measured 3-8x slower)."""
    k = A.shape[1]
    k8 = k - k % 8
    for j in range(0, k8, 8):
        t0 = AT[j]; t1 = AT[j + 1]; t2 = AT[j + 2]; t3 = AT[j + 3]
        t4 = AT[j + 4]; t5 = AT[j + 5]; t6 = AT[j + 6]; t7 = AT[j + 7]
        for i in range(r1 - r0):
            a = A[r0 + i, j:j + 8]
            q = o + i
            t0[q] = a[0]; t1[q] = a[1]; t2[q] = a[2]; t3[q] = a[3]
            t4[q] = a[4]; t5[q] = a[5]; t6[q] = a[6]; t7[q] = a[7]
    for j in range(k8, k):
        t0 = AT[j]
        for i in range(r1 - r0):
            t0[o + i] = A[r0 + i, j]


@jit()
def _task_stride(n, n_tasks):
    """Scratch columns per task: at least a task's rows, a multiple of 16
    elements, so that tasks never share a cache line of scratch."""
    per = 4 * ((n // 4 + n_tasks - 1) // n_tasks) + 3
    return (per + 15) // 16 * 16


@jit()
def _activate_rows(Z, r0, r1, c0, c1, act):
    """``act`` on ``Z[r0:r1, c0:c1]``; ReLU as a (vectorising) select."""
    if act == RELU:
        zero = Z.dtype.type(0)
        for r in range(r0, r1):
            z = Z[r, c0:c1]
            for c in range(c1 - c0):
                v = z[c]
                z[c] = zero if v < zero else v
    else:
        for r in range(r0, r1):
            activate(Z[r, c0:c1], act)


@jit()
def _derivative_rows(Aprev, D, r0, r1, c0, c1, act):
    """Multiply ``D[r0:r1, c0:c1]`` by ``act``'s derivative, given outputs."""
    if act == RELU:
        zero = D.dtype.type(0)
        for r in range(r0, r1):
            a = Aprev[r, c0:c1]
            d = D[r, c0:c1]
            for c in range(c1 - c0):
                v = d[c]
                d[c] = zero if a[c] == zero else v
    else:
        for r in range(r0, r1):
            derivative(Aprev[r, c0:c1], D[r, c0:c1], act)


@jit(parallel=True)
def linear_forward(A, W, b, Z, act):
    """Write ``Z = act(A @ W + b)`` in place.

    A : (n, k); W : (k, m); b : (m,); Z : (n, m), overwritten; act : int,
    an activation code (IDENTITY for the output layer, whose head applies
    its own function).
    """
    n, k = A.shape
    m = W.shape[1]
    zero = np.int64(0)
    small = m < SMALL_M
    if small:
        n_rt = _n_tasks(n, np.int64(SMALL_RB))
        S = _task_stride(n, n_rt)
        AT = np.empty((k, n_rt * S), A.dtype)
        ZT = np.empty((m, n_rt * S), A.dtype)
    else:
        n_rt = _n_tasks(n, np.int64(RB))
        S = zero
        AT = np.empty((0, 0), A.dtype)
        ZT = AT
    n_ct = (m + CP - 1) // CP
    kc = KC_BYTES // A.itemsize
    for t in prange(n_rt * n_ct):
        r0, r1 = _task_rows(t // n_ct, n_rt, n)
        if small:
            # Z.T = W.T @ A.T on this task's private columns of AT / ZT
            o = t * S
            nr = r1 - r0
            _transpose_rows(A, AT, r0, r1, o)
            for c in range(m):
                zt = ZT[c, o:o + nr]
                bc = b[c]
                for i in range(nr):
                    zt[i] = bc
            _tn(W, AT, ZT, zero, m, zero, k, o, o + nr, o)
            for i in range(nr):
                z = Z[r0 + i]
                for c in range(m):
                    z[c] = ZT[c, o + i]
            _activate_rows(Z, r0, r1, zero, m, act)
        else:
            c0 = (t % n_ct) * CP
            c1 = min(c0 + CP, m)
            for r in range(r0, r1):
                z = Z[r, c0:c1]
                bb = b[c0:c1]
                for c in range(c1 - c0):
                    z[c] = bb[c]
            for k0 in range(0, k, kc):
                _nn(A, W, Z, r0, r1, k0, min(k0 + kc, k), c0, c1, c0)
            _activate_rows(Z, r0, r1, c0, c1, act)


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
def _bias_grad(D, sw_sum, db, c0, c1):
    """``db[c0:c1] = D[:, c0:c1].sum(axis=0) / sw_sum``, rows in order."""
    g = db[c0:c1]
    for c in range(c1 - c0):
        g[c] = 0
    for r in range(D.shape[0]):
        d = D[r, c0:c1]
        for c in range(c1 - c0):
            g[c] += d[c]
    for c in range(c1 - c0):
        g[c] /= sw_sum


@jit(parallel=True)
def linear_grad(A, D, W, alpha, sw_sum, dW, db):
    """Weight and bias gradients of a layer, L2 included.

    Writes ``dW = (A.T @ D + alpha * W) / sw_sum`` and
    ``db = D.sum(axis=0) / sw_sum`` in place.
    A : (n, k); D : (n, m); W, dW : (k, m); db : (m,).
    Tasks own rows of ``dW`` (input features) x up to CP columns; the first
    task of each column range also writes that range of ``db``.
    """
    n, k = A.shape
    m = D.shape[1]
    zero = np.int64(0)
    small = m < SMALL_M
    if small:
        n_jt = _n_tasks(k, np.int64(SMALL_RB))
        n_ct = 1
        S = _task_stride(k, n_jt)
        GT = np.empty((m, n_jt * S), A.dtype)
    else:
        n_jt = _n_tasks(k, np.int64(RB))
        n_ct = (m + CP - 1) // CP
        S = zero
        GT = np.empty((0, 0), A.dtype)
    kc = KC_BYTES // A.itemsize
    for t in prange(n_jt * n_ct):
        j0, j1 = _task_rows(t // n_ct, n_jt, k)
        if small:
            c0 = zero
            c1 = m
            # GT = D.T @ A[:, j0:j1] (inner loop over input features) on this
            # task's private columns of GT
            o = t * S
            nj = j1 - j0
            for c in range(m):
                g = GT[c, o:o + nj]
                for j in range(nj):
                    g[j] = 0
            for s0 in range(0, n, kc):
                _tn(D, A, GT, zero, m, s0, min(s0 + kc, n), j0, j1, o)
            # scikit-learn: (A.T @ D + alpha * W) / sw_sum, a true division
            for j in range(nj):
                g = dW[j0 + j]
                w = W[j0 + j]
                for c in range(m):
                    g[c] = (GT[c, o + j] + alpha * w[c]) / sw_sum
        else:
            c0 = (t % n_ct) * CP
            c1 = min(c0 + CP, m)
            for j in range(j0, j1):
                g = dW[j, c0:c1]
                for c in range(c1 - c0):
                    g[c] = 0
            for s0 in range(0, n, kc):
                _tn(A, D, dW, j0, j1, s0, min(s0 + kc, n), c0, c1, c0)
            for j in range(j0, j1):
                g = dW[j, c0:c1]
                w = W[j, c0:c1]
                for c in range(c1 - c0):
                    g[c] = (g[c] + alpha * w[c]) / sw_sum
        if t < n_ct:  # the first row task of each column range
            _bias_grad(D, sw_sum, db, c0, c1)


@jit(parallel=True)
def csc_linear_grad(data, rows, colptr, D, W, alpha, sw_sum, dW, db):
    """:func:`linear_grad` for a sparse input given in CSC form.

    data, rows, colptr : CSC arrays of the (n, k) input; the rest as in
    :func:`linear_grad`.
    """
    k = colptr.shape[0] - 1
    m = D.shape[1]
    zero = np.int64(0)
    for j in prange(k + 1):
        if j == k:
            _bias_grad(D, sw_sum, db, zero, m)
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
def transpose(W, WT):
    """Write ``WT = W.T``. W : (k, m); WT : (m, k).

    Tasks own blocks of TB rows of ``W`` (columns of ``WT``), read row by
    row (:func:`_transpose_rows`). One task per column of ``WT`` reading
    ``W`` down its columns was 2-4x slower on 256-512-wide layers (e.g.
    512 x 512 float64: 1040 us vs 250 us on one thread; float32 648 vs 215).
    """
    k = W.shape[0]
    for t in prange((k + TB - 1) // TB):
        r0 = t * TB
        _transpose_rows(W, WT, r0, min(r0 + TB, k), r0)


@jit(parallel=True)
def linear_backward(D, WT, Aprev, act, Dprev):
    """Write ``Dprev = (D @ W.T) * act'(Aprev)`` in place.

    D : (n, m); WT : (m, k), the transposed weights; Aprev : (n, k), the
    output of the previous layer's activation ``act``; Dprev : (n, k).
    """
    n, m = D.shape
    k = WT.shape[1]
    n_rt = _n_tasks(n, np.int64(RB))
    n_ct = (k + CP - 1) // CP
    kc = KC_BYTES // D.itemsize
    for t in prange(n_rt * n_ct):
        r0, r1 = _task_rows(t // n_ct, n_rt, n)
        c0 = (t % n_ct) * CP
        c1 = min(c0 + CP, k)
        for r in range(r0, r1):
            dp = Dprev[r, c0:c1]
            for c in range(c1 - c0):
                dp[c] = 0
        for k0 in range(0, m, kc):
            _nn(D, WT, Dprev, r0, r1, k0, min(k0 + kc, m), c0, c1, c0)
        _derivative_rows(Aprev, Dprev, r0, r1, c0, c1, act)
