"""Matrix primitives of the training and prediction kernels.

All the dense work of a layer is done by one task function,
:func:`_layer_task`: its forward pass, the propagation of deltas through
it, and its gradient followed by the optimizer step, on one block of rows.
Fits and predictions run these tasks from :func:`fastmlp._kernels.network`
(a whole batch in two parallel loops); :func:`layer` runs one layer's
operation as a loop of its own (the tests and ``bench/linalg_bench.py``
use it). A sparse input's first layer is :func:`sparse_layer`'s, from the
input's CSR rows forward and its CSC columns for the gradient. A layer's
operation is a FIXED grid of row blocks, and each task makes one
single-threaded BLAS ``gemm`` call on its block (:func:`_mm`: NumPy's own
OpenBLAS where NumPy ships one, else scipy's
through Numba's ``numba_xxgemm`` helper; :mod:`fastmlp._blas` says why),
then applies the bias, activation or derivative to its rows. The grid
depends only on the array shapes, never on the thread count, and BLAS runs
on one thread inside every fit and prediction
(:func:`fastmlp._threads.threads` sets OpenBLAS to one thread for their
duration), so each output element comes from the same single-threaded
call with the same sizes: results are bit-identical for any thread count. There is one threading story per loop, Numba's; no OpenBLAS
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
:func:`_task_rows`): two threads get equal work. The gradient splits the
rows of ``W`` (input features) the same way; each task then takes the
optimizer step on its rows (:func:`fastmlp._optim.optimizer_step`) while
they are in cache, and the last task also does the bias, which follows
``W`` in the buffer. On small networks the training kernels split the
gradient by batch rows instead (the SHARE and COMBINE operations of
:func:`_layer_task`; :func:`fastmlp._kernels.network` says when and why).

One kernel, not one per operation. Each ``prange`` loop costs about a
second of compilation of its own (Numba builds, optimises and links a
separate function for its body), and the separate optimizer kernels of
before added two passes over the whole buffer and two forks and joins per
batch. With the three matrix kernels and the two optimizer kernels merged
into one (then :func:`layer`, now the task function that
:func:`fastmlp._kernels.network` shares), a first dense adam fit (digits,
2 epochs) from an empty cache took 11.5-12.3 s against 13.7-15.3 s
(interleaved runs, 2-core machine of bench/README.md).

The loop body is its own compiled function, :func:`_layer_task`, so the
``prange`` body is a single call, and a call by symbol
(:func:`fastmlp._jit.call_by_symbol`; :func:`fastmlp._kernels.network`'s
tasks call it the same way). Numba compiles a ``prange`` body again as a
separate function (type inference included) and links it into three
wrapper modules (the gufunc, its wrapper and the parallel launcher), each
optimised and turned into machine code once more, with the code of every
function it calls; a one-call body whose callee is not linked keeps that
work small. The helpers with one call site per kernel
(:func:`_task_rows`, :func:`_activate_rows`, :func:`_derivative_rows` and
:func:`_bias_grad` in the task, :func:`_n_tasks` in :func:`layer`,
:func:`_task_rows`, :func:`_activate_rows` and :func:`_bias_grad` again in
:func:`_sparse_task`; :func:`_n_tasks` and
:func:`_task_rows` are also called a few times in
:func:`fastmlp._kernels.network` and its task) are inlined at Numba
IR level: inlining types each once per kernel and saves a module of its
own that every caller would link and compile again. Together: first dense adam
fit 8.3-8.8 s against 9.2-9.9 s (interleaved, empty cache). Inlining the
helpers with several call sites (:func:`_check`, the step-buffer check,
``activate``, ``derivative``) was slower: 8.6-10.3 s against 8.4-9.1 s.

Activations are applied per task on the rows it owns. ReLU and its
derivative are selects in a form that vectorises with plain stores
(:func:`fastmlp._activations._kept`): written the obvious way, LLVM
vectorised them with masked stores, which are slow on AMD Zen. The four
ReLU passes of a W2 float32 batch (200 x 256 each) took ~100 us of its
~1.4 ms at one thread. The other activations go through
:func:`fastmlp._activations.activate` / ``derivative`` row by row.

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
from numba import config, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _blas
from ._activations import activate, derivative, relu_derivative_row, relu_row
from ._codes import ADAM, H_ALPHA, N_HYPER, RELU, SGD
from ._jit import call_by_symbol, jit
from ._optim import optimizer_step

# Called by symbol from the task functions, each of which otherwise linked
# and optimised a copy of its own: a first dense fit (digits, 2 epochs)
# from an empty cache compiled in 6.9-7.0 s against 7.1-7.4 s (four
# interleaved pairs of processes), at the same speed and bits (the calls
# are per block of rows, per row for ``activate``).
_call_optimizer_step = call_by_symbol(optimizer_step)
_call_activate = call_by_symbol(activate)
_call_derivative = call_by_symbol(derivative)

BR = 128  # target rows per task (rows of W for the gradient)
_N = 110  # ord("n"): BLAS "no transpose"
_T = 116  # ord("t"): BLAS "transpose"


@intrinsic
def _gemm_blas(typingctx, transa, transb, m, n, k, alpha, A, a_off, lda, B, b_off, ldb, beta,
               C, c_off, ldc):
    """Column-major ``C = alpha op(A) @ op(B) + beta C`` by BLAS ``?gemm``.

    ``A``, ``B``, ``C`` are arrays of one float dtype; each operand starts
    ``*_off`` elements after its array's first element. Lowered to a call of
    the library :mod:`fastmlp._blas` chose: NumPy's ILP64 OpenBLAS by its
    Fortran ``?gemm_`` (every argument by address, 64-bit integers), or
    Numba's ``numba_xxgemm`` helper, which calls scipy's ``cython_blas``.
    Either is a named symbol, so functions using it can be cached (the
    choice is part of the cache key). No bounds checks: callers validate
    the extents.
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

        def as_intp(v, ty):
            return context.cast(builder, v, ty, types.intp)

        def ptr(ty, val, off, off_ty):
            ary = context.make_array(ty)(context, builder, val)
            return builder.bitcast(builder.gep(ary.data, [as_intp(off, off_ty)]), void_p)

        def slot(v, ty):
            return builder.bitcast(
                cgutils.alloca_once_value(builder, context.cast(builder, v, ty, dtype)), void_p)

        flags = (builder.trunc(as_intp(ta, tys[0]), char), builder.trunc(as_intp(tb, tys[1]), char))
        if _blas.ILP64:
            def ref(v):  # by address, as Fortran takes every argument
                return builder.bitcast(cgutils.alloca_once_value(builder, v), void_p)

            def int_ref(v, ty):
                return ref(context.cast(builder, v, ty, types.int64))

            fnty = ir.FunctionType(ir.VoidType(), [void_p] * 13)
            fn = cgutils.get_or_insert_function(builder.module, fnty, _blas.SYMBOLS[str(dtype)])
            builder.call(fn, (
                ref(flags[0]), ref(flags[1]), int_ref(m_, tys[2]), int_ref(n_, tys[3]),
                int_ref(k_, tys[4]), slot(al, tys[5]), ptr(tys[6], a, ao, tys[7]),
                int_ref(la, tys[8]), ptr(tys[9], b, bo, tys[10]), int_ref(lb, tys[11]),
                slot(be, tys[12]), ptr(tys[13], c, co, tys[14]), int_ref(lc, tys[15])))
            return ir.Constant(ir.IntType(32), 0)
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, void_p,
                                                void_p, intp, void_p, intp, void_p, void_p, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        kind = ir.Constant(char, ord("s" if dtype == types.float32 else "d"))
        return builder.call(fn, (
            kind, flags[0], flags[1],
            as_intp(m_, tys[2]), as_intp(n_, tys[3]), as_intp(k_, tys[4]), slot(al, tys[5]),
            ptr(tys[6], a, ao, tys[7]), as_intp(la, tys[8]), ptr(tys[9], b, bo, tys[10]),
            as_intp(lb, tys[11]), slot(be, tys[12]), ptr(tys[13], c, co, tys[14]),
            as_intp(lc, tys[15])))

    return sig, codegen


def _gemm_numpy(transa, transb, m, n, k, alpha, A, a_off, lda, B, b_off, ldb, beta, C, c_off,
                ldc):
    """:func:`_gemm_blas` as NumPy code, for ``NUMBA_DISABLE_JIT=1`` (the
    kernels then run as Python, where an intrinsic cannot): the same
    operands, read and written through strided views of the flat arrays."""

    def block(X, off, ld, rows, cols):  # column-major, leading dimension ld
        flat = X.reshape(-1)
        return np.lib.stride_tricks.as_strided(
            flat[off:], shape=(rows, cols), strides=(flat.itemsize, ld * flat.itemsize))

    op_a = block(A, a_off, lda, m, k) if transa == _N else block(A, a_off, lda, k, m).T
    op_b = block(B, b_off, ldb, k, n) if transb == _N else block(B, b_off, ldb, n, k).T
    out = block(C, c_off, ldc, m, n)
    product = alpha * (op_a @ op_b)
    # as BLAS, beta == 0 does not read C
    out[...] = product if beta == 0 else beta * out + product
    return 0


_gemm = _gemm_numpy if config.DISABLE_JIT else _gemm_blas


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
    sizes returns at once. Not needed when the kernels call NumPy's
    OpenBLAS, whose functions are bound at import (:mod:`fastmlp._blas`).
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


if not _blas.ILP64:
    prime_blas()


@jit(inline="always")
def _n_tasks(n, rows):
    """An even number of tasks of about ``rows`` rows each.

    At most ``n // 4`` tasks, so that with :func:`_task_rows` every task owns
    at least one group of 4 rows: no empty BLAS call, and only the last
    ends at row ``n`` (it alone does the bias).
    """
    t = 2 * ((n + 2 * rows - 1) // (2 * rows))
    nq = n // 4
    if t > nq:
        t = nq
    if t < 1:
        t = 1
    return t


@jit(inline="always")
def _task_rows(t, n_tasks, n):
    """Rows ``[r0, r1)`` of task ``t``: groups of 4 rows spread evenly."""
    nq = n // 4
    r0 = 4 * ((t * nq) // n_tasks)
    r1 = 4 * (((t + 1) * nq) // n_tasks)
    if t == n_tasks - 1:
        r1 = n
    return r0, r1


@jit(internal=True)
def _check(X, rows, cols):
    """Raise unless ``X`` is a C-contiguous (rows, cols) matrix: BLAS reads
    it through a raw pointer with row stride ``cols``."""
    if X.shape[0] != rows or X.shape[1] != cols:
        raise ValueError("fastmlp: matrix shapes do not match")
    if cols > 0 and rows > 1 and X.strides[0] != cols * X.itemsize:
        raise ValueError("fastmlp: matrices must be C-contiguous")
    if cols > 1 and X.strides[1] != X.itemsize:
        raise ValueError("fastmlp: matrices must be C-contiguous")


@jit(inline="always")
def _activate_rows(Z, r0, r1, act):
    """``act`` on ``Z[r0:r1]``; ReLU as a (vectorising) select."""
    if act == RELU:
        for r in range(r0, r1):
            relu_row(Z[r])
    else:
        for r in range(r0, r1):
            _call_activate(Z[r], act)


@jit(inline="always")
def _derivative_rows(Aprev, D, r0, r1, act):
    """Multiply ``D[r0:r1]`` by ``act``'s derivative, given outputs."""
    if act == RELU:
        for r in range(r0, r1):
            relu_derivative_row(Aprev[r], D[r])
    else:
        for r in range(r0, r1):
            _call_derivative(Aprev[r], D[r], act)


@jit(inline="always")
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


@jit(inline="always")
def _l2_scale(g, w, alpha, sw_sum):
    """``g = (g + alpha * w) / sw_sum``: scikit-learn's L2 term and its
    true division."""
    for i in range(g.shape[0]):
        g[i] = (g[i] + alpha * w[i]) / sw_sum


@jit(internal=True)
def _check_flat(theta, grad):
    """Raise unless ``theta`` and ``grad`` are contiguous vectors: BLAS reads
    the weights and writes the gradient through raw pointers at offsets
    into them, whatever their strides."""
    if ((theta.shape[0] > 1 and theta.strides[0] != theta.itemsize)
            or (grad.shape[0] > 1 and grad.strides[0] != grad.itemsize)):
        raise ValueError("fastmlp: parameter buffers must be contiguous")


@jit(internal=True)
def _check_step_buffers(theta, grad, state1, state2, solver, hyper):
    """Raise unless the gradient and the optimizer state the solver uses
    cover ``theta``, and ``hyper`` has every slot."""
    P = theta.shape[0]
    if grad.shape[0] != P or hyper.shape[0] < N_HYPER:
        raise ValueError("fastmlp: buffer sizes do not match")
    if solver == SGD and state1.shape[0] != P:
        raise ValueError("fastmlp: buffer sizes do not match")
    if solver == ADAM and (state1.shape[0] != P or state2.shape[0] != P):
        raise ValueError("fastmlp: buffer sizes do not match")


# What :func:`layer` computes.
FORWARD = 0
BACKWARD = 1
GRADIENT = 2
# The gradient split by batch rows (:func:`fastmlp._kernels.network` only):
# a row task's share of a layer's gradient, then the sum of the shares
# followed by the optimizer step.
SHARE = 3
COMBINE = 4


@jit(internal=True)
def _layer_task(op, t, n_t, rows, theta, grad, state1, state2, wo, bo, k, m, X, D, Out,
                act, solver, nesterov, hyper, sw_sum):
    """Task ``t`` of ``n_t`` of one layer's operation ``op`` (see :func:`layer`),
    compiled on its own: the loops of :func:`layer` and
    :func:`fastmlp._kernels.network` call it.

    Two more operations split the gradient by batch rows instead of rows
    of ``W`` (:func:`fastmlp._kernels.network` says when and why):

    SHARE
        Row task ``t``'s share of the gradient, unscaled, into the
        layer's blocks of ``grad`` (a buffer of the parameters' layout):
        ``X[r0:r1].T @ D[r0:r1]`` and ``D[r0:r1].sum(axis=0)``, rows
        ``[r0, r1)`` of ``rows`` as in FORWARD.
    COMBINE
        Task ``t`` of GRADIENT's grid over the rows of ``W``: the sum of
        the shares, ``grad`` (row task 0's) plus each row of ``Out``
        (``(n_shares, P)``, row task ``q + 1``'s in row ``q``) in that
        order, then L2, the division by ``sw_sum`` and the optimizer step
        as in GRADIENT. ``X`` and ``D`` are not read.
    """
    n = X.shape[0]
    r0, r1 = _task_rows(t, n_t, rows)
    if op == FORWARD:
        b = theta[bo:bo + m]
        for r in range(r0, r1):
            z = Out[r]
            for c in range(m):
                z[c] = b[c]
        _mm(_N, _N, r1 - r0, m, k, X, r0 * k, k, theta, wo, m, 1.0, Out, r0 * m, m)
        _activate_rows(Out, r0, r1, act)
    elif op == BACKWARD:
        _mm(_N, _T, r1 - r0, k, m, D, r0 * m, m, theta, wo, m, 0.0, Out, r0 * k, k)
        _derivative_rows(X, Out, r0, r1, act)
    elif op == SHARE:
        _mm(_T, _N, k, m, r1 - r0, X, r0 * k, k, D, r0 * m, m, 0.0, grad, wo, m)
        # unscaled: a division by 1 leaves every bit as it is
        _bias_grad(D[r0:r1], theta.dtype.type(1), grad[bo:bo + m])
    else:
        lo = wo + r0 * m
        hi = wo + r1 * m
        # the bias follows W in the buffer: the last task's step covers both
        end = bo + m if t == n_t - 1 else hi
        if op == COMBINE:
            g = grad[lo:end]
            for q in range(Out.shape[0]):
                s = Out[q, lo:end]
                for i in range(end - lo):
                    g[i] += s[i]
        else:
            # grad[W rows r0:r1] = X[:, r0:r1].T @ D
            _mm(_T, _N, r1 - r0, m, n, X, r0, k, D, 0, m, 0.0, grad, wo + r0 * m, m)
        _l2_scale(grad[lo:hi], theta[lo:hi], hyper[H_ALPHA], sw_sum)
        if end > hi:
            db = grad[bo:end]
            if op == COMBINE:
                for c in range(m):
                    db[c] /= sw_sum
            else:
                _bias_grad(D, sw_sum, db)
        _call_optimizer_step(theta, grad, state1, state2, lo, end, solver, nesterov, hyper)


_call_layer_task = call_by_symbol(_layer_task)


@jit(parallel=True)
def layer(op, theta, grad, state1, state2, wo, bo, X, D, Out, act, solver, nesterov,
          hyper, sw_sum):
    """One dense layer's forward pass, delta propagation, or gradient and
    optimizer step, in place, as a parallel loop of its own.

    Fits and predictions do this work through
    :func:`fastmlp._kernels.network`, whose tasks are the same; this entry
    point serves the tests and ``bench/linalg_bench.py``.

    The layer's weights ``W`` (k, m) and bias ``b`` (m,) are the blocks of
    the flat buffer ``theta`` at ``wo`` and ``bo``. ``op`` says what to do:

    FORWARD
        ``Out = act(X @ W + b)``. X : (n, k) layer input; Out : (n, m). Each
        task sets its rows of ``Out`` to ``b`` and adds ``X @ W`` to them
        (BLAS with beta = 1). For the output layer, ``act`` is its head's
        function (``HEAD_ACTIVATIONS``: SOFTMAX, LOGISTIC, IDENTITY, EXP).
    BACKWARD
        ``Out = (D @ W.T) * act'(X)``. D : (n, m) the layer's output deltas;
        X : (n, k) the previous layer's output, of activation ``act``;
        Out : (n, k). Call it before the GRADIENT step changes ``W``.
    GRADIENT
        The gradient of ``W`` and ``b`` with L2, into the same blocks of
        ``grad``: ``(X.T @ D + alpha * W) / sw_sum`` and
        ``D.sum(axis=0) / sw_sum`` (``alpha = hyper[H_ALPHA]``); then
        :func:`fastmlp._optim.optimizer_step` with ``solver`` on each block
        as soon as it is written (``NO_STEP``: none). X : (n, k) layer
        input; D : (n, m). Tasks own rows of ``W`` (input features); the
        last also does the bias. ``Out`` is not used.

    Arguments an ``op`` does not use must still have the types of the
    others (pass ``X`` or ``theta`` again), so one compiled kernel per
    dtype serves all three: one parallel loop instead of three (each costs
    ~1 s of compilation).
    """
    P = theta.shape[0]
    n, k = X.shape
    if op != FORWARD and op != BACKWARD and op != GRADIENT:
        raise ValueError("fastmlp: unknown layer operation")
    _check(X, n, k)
    _check_flat(theta, grad)
    if op == FORWARD:
        m = Out.shape[1]
        _check(Out, n, m)
    elif op == BACKWARD:
        m = D.shape[1]
        _check(D, n, m)
        _check(Out, n, k)
    else:
        m = D.shape[1]
        _check(D, n, m)
        _check_step_buffers(theta, grad, state1, state2, solver, hyper)
    if wo < 0 or bo != wo + k * m or bo + m > P:
        raise ValueError("fastmlp: layer offsets out of the parameter buffer")
    rows = k if op == GRADIENT else n
    n_t = _n_tasks(rows, np.int64(BR))
    for t in prange(n_t):
        _call_layer_task(op, np.int64(t), n_t, rows, theta, grad, state1, state2, wo, bo, k,
                         m, X, D, Out, act, solver, nesterov, hyper, sw_sum)


# What :func:`sparse_layer` computes.
SPARSE_FORWARD = 5
SPARSE_GRADIENT = 6


@jit(internal=True)
def _check_compressed(data, indices, ptr, n, width):
    """Raise unless ``(data, indices, ptr)`` is a compressed matrix of ``n``
    rows (CSR; columns for CSC) of ``width`` columns (CSC: rows): the
    pointers start at 0 or more and never decrease, the entries they span
    exist, and every index is in ``[0, width)``."""
    fits = ptr.shape[0] == n + 1
    if fits:
        fits = ptr[0] >= 0 and ptr[n] <= data.shape[0] and ptr[n] <= indices.shape[0]
    for r in range(n if fits else 0):
        fits = fits and ptr[r] <= ptr[r + 1]
    lo = np.int64(0)
    hi = np.int64(-1)
    if fits:
        for p in range(ptr[0], ptr[n]):
            v = indices[p]
            lo = v if v < lo else lo
            hi = v if v > hi else hi
    if not (fits and lo >= 0 and hi < width):
        raise ValueError("fastmlp: the sparse input does not fit the layer")


@jit(internal=True)
def _sparse_task(op, t, n_t, rows, data, indices, ptr, theta, grad, state1, state2, wo, bo,
                 k, m, D, Out, act, solver, nesterov, hyper, sw_sum):
    """Task ``t`` of ``n_t`` of :func:`sparse_layer`, compiled on its own
    and called by symbol, as :func:`_layer_task` is: rows ``[r0, r1)`` of
    the input (SPARSE_FORWARD) or of ``W`` (SPARSE_GRADIENT)."""
    r0, r1 = _task_rows(t, n_t, rows)
    # Both operations are one loop: row r of T plus, for each stored entry
    # of row r (CSR) or column r (CSC), the entry times the row of S its
    # index selects: rows of W for the forward pass, of D for the gradient.
    if op == SPARSE_FORWARD:
        T = Out
        S = theta[wo:bo].reshape((k, m))
        b = theta[bo:bo + m]
        for r in range(r0, r1):
            z = T[r]
            for c in range(m):
                z[c] = b[c]
    else:
        T = grad[wo:bo].reshape((k, m))
        S = D
        for r in range(r0, r1):
            z = T[r]
            for c in range(m):
                z[c] = 0
    for r in range(r0, r1):
        z = T[r]
        for p in range(ptr[r], ptr[r + 1]):
            a = data[p]
            s = S[indices[p]]
            for c in range(m):
                z[c] += a * s[c]
        if op == SPARSE_FORWARD:
            # while the row is in L1
            _activate_rows(Out, r, r + 1, act)
    if op == SPARSE_GRADIENT:
        lo = wo + r0 * m
        hi = wo + r1 * m
        end = bo + m if t == n_t - 1 else hi
        _l2_scale(grad[lo:hi], theta[lo:hi], hyper[H_ALPHA], sw_sum)
        if end > hi:
            _bias_grad(D, sw_sum, grad[bo:end])
        _call_optimizer_step(theta, grad, state1, state2, lo, end, solver, nesterov, hyper)


_call_sparse_task = call_by_symbol(_sparse_task)


@jit(parallel=True)
def sparse_layer(op, data, indices, ptr, k, theta, grad, state1, state2, wo, bo, D, Out, act,
                 solver, nesterov, hyper, sw_sum):
    """A sparse input's first layer, as one parallel loop: its forward pass,
    or its gradient followed by the optimizer step.

    The input is (n, k), its weights ``W`` (k, m) and bias ``b`` (m,) the
    blocks of ``theta`` at ``wo`` and ``bo``. ``op`` says what to do:

    SPARSE_FORWARD
        ``Out = act(X @ W + b)``, ``X`` given by its CSR arrays ``(data,
        indices, ptr)`` (``n + 1`` row pointers); Out : (n, m). Each row
        is ``b`` plus the rows of ``W`` its stored entries select, scaled,
        in their stored order. ``D`` is not read.
    SPARSE_GRADIENT
        :func:`layer`'s GRADIENT, ``X`` given by its CSC arrays ``(data,
        indices, ptr)`` (``k + 1`` column pointers); D : (n, m) the
        layer's output deltas. Row ``j`` of ``X.T @ D`` is the rows of
        ``D`` that column ``j``'s stored entries select, scaled, in their
        stored order. ``Out`` is not read.

    Tasks own blocks of about :data:`BR` rows (:func:`_n_tasks`), of the
    input or of ``W``, on the fixed grid :func:`layer` uses, so results
    do not depend on the thread count. The arrays are checked before the
    loop (pointers, indices, shapes, offsets).

    One kernel for both operations, as :func:`layer` is for the dense
    ones, where there were two (a CSR forward pass with a task per row, a
    CSC gradient with a task per row of ``W`` and one for the bias, each
    step per row), and no kernels of their own for the views of the first
    layer's parameters. Measured against those (interleaved, 2 threads):
    a first sparse fit (digits, (100,), 2 epochs) from an empty cache
    compiles about as long (9.5-10.0 s against 9.7-10.0 s); the same bits;
    the gradient of a 200-row batch of a 5,000-column input at 1% density
    20-25% faster (one step per block, not per row), its forward pass
    about the same; on digits as CSR (64 columns) the same to 15% slower
    at two threads, within this machine's noise. Tasks of one row each
    were 2x slower at two threads. A dense fit compiles none of it
    (:func:`fastmlp._engine._specialise`).
    """
    P = theta.shape[0]
    n_ptr = ptr.shape[0] - 1
    forward = op == SPARSE_FORWARD
    if not forward and op != SPARSE_GRADIENT:
        raise ValueError("fastmlp: unknown layer operation")
    m = Out.shape[1] if forward else D.shape[1]
    n = n_ptr if forward else D.shape[0]
    if k < 1 or m < 1 or wo < 0 or bo != wo + k * m or bo + m > P:
        raise ValueError("fastmlp: layer offsets out of the parameter buffer")
    _check_flat(theta, grad)
    if forward:
        _check(Out, n, m)
        _check_compressed(data, indices, ptr, n, k)
    else:
        _check(D, n, m)
        _check_compressed(data, indices, ptr, k, n)
        _check_step_buffers(theta, grad, state1, state2, solver, hyper)
    rows = n if forward else k
    n_t = _n_tasks(rows, np.int64(BR))
    for t in prange(n_t):
        _call_sparse_task(op, np.int64(t), n_t, rows, data, indices, ptr, theta, grad, state1,
                          state2, wo, bo, k, m, D, Out, act, solver, nesterov, hyper, sw_sum)
