"""Matrix primitives of the training and prediction kernels: one layer's
work on one block of rows.

All the dense work of a layer is one task function, :func:`_layer_task`:
its forward pass, the propagation of deltas through it, and its gradient
followed by the optimizer step, on one block of rows. Fits and predictions
run these tasks from :func:`fastmlp._kernels.network` (a batch in two
parallel loops); :func:`layer` runs one layer's operation as a loop of its
own (tests and ``bench/linalg_bench.py``). A sparse input's first layer is
:func:`sparse_layer`'s: CSR rows forward, CSC columns for the gradient.

Tasks. A layer's operation is a FIXED grid of row blocks of about
:data:`BR` rows, an even number of them (:func:`_n_tasks`,
:func:`_task_rows`), depending only on the array shapes. Each task makes
one single-threaded BLAS ``gemm`` call on its block (:func:`_mm`;
:mod:`fastmlp._blas` says which library), then applies the bias,
activation or derivative to its rows. BLAS runs on one thread inside every
fit and prediction (:func:`fastmlp._threads.threads`), so each output
element comes from the same call with the same sizes whatever the thread
count: results are bit-identical on any number of threads, and no BLAS
thread pool waits behind a parallel region. The gradient splits the rows
of ``W`` the same way; each task then steps its rows
(:func:`fastmlp._optim.optimizer_step`) while they are in cache, and the
last task also the bias. On small networks the gradient is split by batch
rows instead (SHARE and COMBINE; :func:`fastmlp._kernels.network`).

Why BLAS: Numba runs LLVM's loop vectoriser but not its SLP vectoriser,
so no register-blocked GEMM micro-kernel can be written in Numba; the best
hand-written form reached 50-70% of one-thread GEMM.

Why a task function called by symbol (:func:`fastmlp._jit.call_by_symbol`):
Numba compiles a ``prange`` body again into three wrapper modules, each
with the code of everything it links; a one-call body whose callee is not
linked keeps that work small. The small helpers with one call site per
kernel are inlined at Numba IR level instead.

Every BLAS call reads and writes through raw pointers, so each kernel
checks its arrays' shapes and C-contiguity before the parallel loop: a
mismatch raises instead of reading out of bounds (``NUMBA_BOUNDSCHECK``
cannot see inside BLAS).

Shapes: ``A`` (n, k) layer input, ``W`` (k, m) weights, ``b`` (m,) bias,
``Z`` (n, m) pre-activations, ``Out`` (n, m) layer output, ``D`` (n, m)
output deltas.
"""

import ctypes

import numpy as np
from llvmlite import ir
from numba import config, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _blas
from ._activations import activate, derivative, relu_backward, relu_forward
from ._codes import (
    ADAM,
    BACKWARD,
    BIASES,
    COMBINE,
    FORWARD,
    GRADIENT,
    H_ALPHA,
    HEAD_ACTIVATIONS,
    IDENTITY,
    N_HYPER,
    N_HYPER64,
    OFF_A,
    OFF_B,
    OFF_W,
    PRE_FLAGS,
    RELU,
    SGD,
    SHARE,
    SPARSE_FORWARD,
    SPARSE_GRADIENT,
    WEIGHTS,
)
from ._jit import apart, call_by_symbol, jit, ref
from ._optim import _call_optimizer_step

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


@jit(internal=True)
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


@jit(internal=True)
def _task_rows(t, n_tasks, n):
    """Rows ``[r0, r1)`` of task ``t``: groups of 4 rows spread evenly."""
    nq = n // 4
    r0 = 4 * ((t * nq) // n_tasks)
    r1 = 4 * (((t + 1) * nq) // n_tasks)
    if t == n_tasks - 1:
        r1 = n
    return r0, r1


@jit(internal=True, cold=True)
def _check(X, rows, cols):
    """Raise unless ``X`` is a C-contiguous (rows, cols) matrix: BLAS reads
    it through a raw pointer with row stride ``cols``."""
    if X.shape[0] != rows or X.shape[1] != cols:
        raise ValueError("fastmlp: matrix shapes do not match")
    if cols > 0 and rows > 1 and X.strides[0] != cols * X.itemsize:
        raise ValueError("fastmlp: matrices must be C-contiguous")
    if cols > 1 and X.strides[1] != X.itemsize:
        raise ValueError("fastmlp: matrices must be C-contiguous")


@jit(internal=True, cold=True)
def _check_shape(shape):
    """Raise unless ``shape`` is a network of ``L >= 1`` layers: ``L + 1``
    units, an offsets row of every column per layer, an activation code
    per hidden layer, and a head, each a code the kernels know. Returns
    ``L``."""
    L = shape.offsets.shape[0]
    fits = (L >= 1 and shape.units.shape[0] == L + 1 and shape.offsets.shape[1] == 3
            and shape.acts.shape[0] >= L - 1 and shape.drop.shape[0] >= L - 1
            and 0 <= shape.head < len(HEAD_ACTIVATIONS))
    for l in range(L - 1 if fits else 0):
        fits = fits and 0 <= shape.acts[l] < len(PRE_FLAGS)
    if not fits:
        raise ValueError("fastmlp: the network's shape is not valid")
    return L


@jit(internal=True, cold=True)
def block_view(buf, offsets, l, n, m):
    """Rows ``0..n`` of layer ``l``'s (n, m) block in a flat work buffer."""
    o = offsets[l, OFF_A]
    return buf[o:o + n * m].reshape((n, m))


@jit(inline="always")
def layer_activation(shape, op, lay):
    """The activation code layer ``lay``'s operation ``op`` applies: a
    forward pass its layer's (the output layer's head function), a
    backward pass the layer below's, a gradient none."""
    L = shape.offsets.shape[0]
    if op == FORWARD or op == SPARSE_FORWARD:
        if lay < L - 1:
            return shape.acts[lay]
        return np.int64(HEAD_ACTIVATIONS[shape.head])
    if op == BACKWARD:
        return shape.acts[lay - 1]
    return np.int64(IDENTITY)


@jit(internal=True)
def _keep_rows(Out, Z, r0, r1):
    """``Z[r0:r1] = Out[r0:r1]``: pre-activations kept for the backward pass."""
    for r in range(r0, r1):
        z = Z[r]
        o = Out[r]
        for c in range(o.shape[0]):
            z[c] = o[c]


_call_keep_rows = call_by_symbol(_keep_rows)


@jit(inline="always")
def _activate_rows(Out, Z, r0, r1, act):
    """``act`` on ``Out[r0:r1]``, which holds pre-activations. Where ``Z``
    has rows and ``act`` reads its pre-activation (``PRE_FLAGS``), the rows
    are first copied into ``Z`` for the backward pass. ReLU as a
    (vectorising) select."""
    if Z.shape[0] > 0 and PRE_FLAGS[act]:
        _call_keep_rows(Out, Z, r0, r1)
    if act == RELU:
        for r in range(r0, r1):
            relu_forward(Out[r])
    else:
        for r in range(r0, r1):
            _call_activate(Out[r], act)


@jit(inline="always")
def _derivative_rows(Z, A, D, r0, r1, act):
    """Multiply ``D[r0:r1]`` by ``act``'s derivative at pre-activations
    ``Z`` and outputs ``A`` (``Z`` is ``A`` where no pre-activation is
    kept)."""
    if act == RELU:
        for r in range(r0, r1):
            relu_backward(Z[r], A[r], D[r])
    else:
        for r in range(r0, r1):
            _call_derivative(Z[r], A[r], D[r], act)


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


@jit(internal=True, cold=True)
def _check_flat(theta, grad):
    """Raise unless ``theta`` and ``grad`` are contiguous vectors: BLAS reads
    the weights and writes the gradient through raw pointers at offsets
    into them, whatever their strides."""
    if ((theta.shape[0] > 1 and theta.strides[0] != theta.itemsize)
            or (grad.shape[0] > 1 and grad.strides[0] != grad.itemsize)):
        raise ValueError("fastmlp: parameter buffers must be contiguous")


@jit(internal=True, cold=True)
def _check_step_buffers(params):
    """Raise unless the gradient and the optimizer state the solver uses
    cover ``theta``, and the hyper-parameter arrays have every slot."""
    P = params.theta.shape[0]
    solver = params.solver
    # the gradient and the state are written while theta is read
    fits = (params.grad.shape[0] == P and params.hyper.shape[0] >= N_HYPER
            and apart(params.grad, params.theta))
    if solver == SGD or solver == ADAM:
        fits = (fits and params.m1.shape[0] == P and params.step.shape[0] >= 1
                and params.hyper64.shape[0] >= N_HYPER64)
    if solver == SGD or solver == ADAM:
        fits = fits and apart(params.m1, params.theta) and apart(params.m1, params.grad)
    if solver == ADAM:
        fits = (fits and params.m2.shape[0] == P and apart(params.m2, params.theta)
                and apart(params.m2, params.grad) and apart(params.m2, params.m1))
    if not fits:
        raise ValueError("fastmlp: buffer sizes do not match")


@jit(internal=True)
def _layer_task(task, params, X, D, Out, Z, sw_sum):
    """One task of one dense layer's operation, in place.

    task : ``(op, t, n_t, rows, act, k, m, wo, bo)``, int64: task ``t`` of
        ``n_t`` over ``rows`` rows (:func:`_task_rows`) of operation ``op``
        (see :func:`layer`) on a layer of ``k`` inputs and ``m`` units,
        whose weights and bias start at ``wo`` and ``bo`` in the parameter
        buffers; ``act`` the activation it applies (:func:`layer_activation`).
        Integers, not the shape bundle: every array a task function takes
        costs its compilation and its calls reference counting.
    X, D, Out, Z : the operation's matrices (see :func:`layer`), passed
        apart rather than as a tuple: a tuple of arrays takes a reference
        to each, an atomic count that the two threads' tasks contend for.

    Two more operations split the gradient by batch rows instead of rows
    of ``W`` (:func:`fastmlp._kernels.network` says when):

    SHARE
        Row task ``t``'s share of the gradient, unscaled, into the layer's
        blocks of ``Out[0]`` (``Out`` (1, P), a buffer of the parameters'
        layout): ``X[r0:r1].T @ D[r0:r1]`` and ``D[r0:r1].sum(axis=0)``.
    COMBINE
        Task ``t`` of GRADIENT's grid over the rows of ``W``: the sum of
        the shares, ``grad`` (row task 0's) plus each row of ``Out``
        (``(n_shares, P)``, row task ``q + 1``'s in row ``q``) in that
        order, then L2, the division by ``sw_sum`` and the step as in
        GRADIENT. ``X`` and ``D`` are not read.
    """
    op, t, n_t, rows, act, k, m, wo, bo = task
    theta = params.theta
    grad = params.grad
    n = X.shape[0]
    r0, r1 = _task_rows(t, n_t, rows)
    if op == FORWARD:
        b = theta[bo:bo + m]
        for r in range(r0, r1):
            z = Out[r]
            for c in range(m):
                z[c] = b[c]
        _mm(_N, _N, r1 - r0, m, k, X, r0 * k, k, theta, wo, m, 1.0, Out, r0 * m, m)
        _activate_rows(Out, Z, r0, r1, act)
    elif op == BACKWARD:
        _mm(_N, _T, r1 - r0, k, m, D, r0 * m, m, theta, wo, m, 0.0, Out, r0 * k, k)
        _derivative_rows(Z, X, Out, r0, r1, act)
    elif op == SHARE:
        share = Out[0]
        _mm(_T, _N, k, m, r1 - r0, X, r0 * k, k, D, r0 * m, m, 0.0, share, wo, m)
        # unscaled: a division by 1 leaves every bit as it is
        _bias_grad(D[r0:r1], theta.dtype.type(1), share[bo:bo + m])
    else:
        lo = wo + r0 * m
        hi = wo + r1 * m
        # the bias follows W in the buffer; the last task does it
        last = t == n_t - 1
        if op == COMBINE:
            end = bo + m if last else hi
            g = grad[lo:end]
            for q in range(Out.shape[0]):
                s = Out[q, lo:end]
                for i in range(end - lo):
                    g[i] += s[i]
        else:
            # grad[W rows r0:r1] = X[:, r0:r1].T @ D
            _mm(_T, _N, r1 - r0, m, n, X, r0, k, D, 0, m, 0.0, grad, wo + r0 * m, m)
        _l2_scale(grad[lo:hi], theta[lo:hi], params.hyper[H_ALPHA], sw_sum)
        if last:
            db = grad[bo:bo + m]
            if op == COMBINE:
                for c in range(m):
                    db[c] /= sw_sum
            else:
                _bias_grad(D, sw_sum, db)
        _call_optimizer_step(params, lo, hi, np.int64(WEIGHTS))
        if last:
            _call_optimizer_step(params, bo, bo + m, np.int64(BIASES))


_call_layer_task = call_by_symbol(_layer_task)


@jit(parallel=True)
def layer(op, lay, act, params, shape, mats, sw_sum):
    """Layer ``lay``'s forward pass, delta propagation, or gradient and
    optimizer step, in place, as a parallel loop of its own.

    Fits and predictions do this work through
    :func:`fastmlp._kernels.network`, whose tasks are the same; this entry
    point serves the tests and ``bench/linalg_bench.py``. The layer's
    weights ``W`` (k, m) and bias ``b`` (m,) are its blocks of
    ``params.theta`` (``shape.offsets``); ``mats`` is ``(X, D, Out, Z)``;
    ``act`` is an activation code (the network's kernels take it from
    :func:`layer_activation`), and ``op`` says what to do:

    FORWARD
        ``Out = act(X @ W + b)`` (an output layer's ``act``: its head's
        function). X : (n, k); Out : (n, m); Z : (n, m)
        receives the pre-activations where ``act`` needs them
        (``PRE_FLAGS``), or has no rows. D is not read.
    BACKWARD
        ``Out = (D @ W.T) * act'(Z)``, ``act`` the layer below's. D :
        (n, m) the layer's output deltas; X : (n, k) the layer below's
        output, Z : (n, k) its pre-activations (or ``X`` again); Out :
        (n, k). Call it before the GRADIENT step changes ``W``.
    GRADIENT
        ``(X.T @ D + alpha * W) / sw_sum`` and ``D.sum(axis=0) / sw_sum``
        into the layer's blocks of ``params.grad`` (``alpha =
        hyper[H_ALPHA]``), then :func:`fastmlp._optim.optimizer_step` on
        each block as soon as it is written (``NO_STEP``: none). Tasks own
        rows of ``W``; the last also does the bias. Out and Z are not read.

    Matrices an ``op`` does not read must still have the others' type
    (pass ``X`` again), so one compiled kernel per dtype serves all three.
    GRADIENT's step uses the step's learning rate ``hyper[H_STEP_LR]`` as
    it stands: :func:`fastmlp._optim.begin_step` is the caller's.
    """
    X, D, Out, Z = mats
    params = ref(params)
    shape = ref(shape)
    P = params.theta.shape[0]
    n, k = X.shape
    if op != FORWARD and op != BACKWARD and op != GRADIENT:
        raise ValueError("fastmlp: unknown layer operation")
    L = _check_shape(shape)
    if not (0 <= lay < L and 0 <= act < len(PRE_FLAGS)):
        raise ValueError("fastmlp: no such layer or activation")
    m = shape.units[lay + 1]
    wo = shape.offsets[lay, OFF_W]
    bo = shape.offsets[lay, OFF_B]
    if k != shape.units[lay]:
        raise ValueError("fastmlp: the input does not fit the layer")
    if wo < 0 or bo != wo + k * m or bo + m > P:
        raise ValueError("fastmlp: layer offsets out of the parameter buffer")
    _check(X, n, k)
    _check_flat(params.theta, params.grad)
    if op == FORWARD:
        _check(Out, n, m)
        if Z.shape[0] > 0:
            _check(Z, n, m)
    elif op == BACKWARD:
        _check(D, n, m)
        _check(Out, n, k)
        _check(Z, n, k)
    else:
        _check(D, n, m)
        _check_step_buffers(params)
    rows = k if op == GRADIENT else n
    n_t = _n_tasks(rows, np.int64(BR))
    for t in prange(n_t):
        _call_layer_task((np.int64(op), np.int64(t), n_t, rows, np.int64(act), k, m, wo, bo),
                         params, X, D, Out, Z, sw_sum)


@jit(internal=True, cold=True)
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
def _sparse_task(task, params, shape, batch, work, sw_sum):
    """Task ``t`` of ``n_t`` of :func:`sparse_layer`, ``task = (op, t,
    n_t, rows, lay, act)``: rows ``[r0, r1)`` of the input (SPARSE_FORWARD)
    or of ``W`` (SPARSE_GRADIENT)."""
    op, t, n_t, rows, lay, act = task
    k = shape.units[0]
    m = shape.units[1]
    wo = shape.offsets[0, OFF_W]
    bo = shape.offsets[0, OFF_B]
    n = batch.n
    theta = params.theta
    grad = params.grad
    r0, r1 = _task_rows(t, n_t, rows)
    # Both operations are one loop: row r of T plus, for each stored entry
    # of row r (CSR) or column r (CSC), the entry times the row of S its
    # index selects: rows of W for the forward pass, of D for the gradient.
    Out = block_view(work.acts, shape.offsets, np.int64(0), n, m)
    if op == SPARSE_FORWARD:
        data, indices, ptr = batch.data, batch.indices, batch.indptr
        T = Out
        S = theta[wo:bo].reshape((k, m))
        b = theta[bo:bo + m]
        for r in range(r0, r1):
            z = T[r]
            for c in range(m):
                z[c] = b[c]
    else:
        data, indices, ptr = batch.cdata, batch.crows, batch.cptr
        T = grad[wo:bo].reshape((k, m))
        S = block_view(work.deltas, shape.offsets, np.int64(0), n, m)
        for r in range(r0, r1):
            z = T[r]
            for c in range(m):
                z[c] = 0
    Z = (block_view(work.pre, shape.offsets, np.int64(0), n, m) if work.pre.shape[0] > 0
         else work.pre[:0].reshape((0, m)))
    for r in range(r0, r1):
        z = T[r]
        for p in range(ptr[r], ptr[r + 1]):
            a = data[p]
            s = S[indices[p]]
            for c in range(m):
                z[c] += a * s[c]
        if op == SPARSE_FORWARD:
            # while the row is in L1
            _activate_rows(Out, Z, r, r + 1, act)
    if op == SPARSE_GRADIENT:
        lo = wo + r0 * m
        hi = wo + r1 * m
        _l2_scale(grad[lo:hi], theta[lo:hi], params.hyper[H_ALPHA], sw_sum)
        last = t == n_t - 1
        if last:
            _bias_grad(S, sw_sum, grad[bo:bo + m])
        _call_optimizer_step(params, lo, hi, np.int64(WEIGHTS))
        if last:
            _call_optimizer_step(params, bo, bo + m, np.int64(BIASES))


_call_sparse_task = call_by_symbol(_sparse_task)


@jit(parallel=True, internal=True, cold=True)
def _sparse_layer(op, params, shape, batch, work, sw_sum):
    """A sparse input's first layer, as one parallel loop: its forward pass,
    or its gradient followed by the optimizer step.

    The input is (n, k), ``n = batch.n``, its weights ``W`` (k, m) and bias
    ``b`` (m,) layer 0's blocks of ``params.theta``. ``op`` says what to do:

    SPARSE_FORWARD
        ``act(X @ W + b)`` into layer 0's block of ``work.acts`` (and its
        pre-activations into ``work.pre`` where it is not empty), ``X``
        the batch's CSR arrays. Each row is ``b`` plus the rows of ``W``
        its stored entries select, scaled, in their stored order.
    SPARSE_GRADIENT
        :func:`layer`'s GRADIENT, ``X`` the batch's CSC arrays, ``D``
        layer 0's block of ``work.deltas``. Row ``j`` of ``X.T @ D`` is
        the rows of ``D`` that column ``j``'s stored entries select,
        scaled, in their stored order.

    Tasks own blocks of about :data:`BR` rows, of the input or of ``W``,
    on the fixed grid :func:`layer` uses, so results do not depend on the
    thread count. The arrays are checked before the loop (pointers,
    indices, shapes, offsets).
    """
    P = params.theta.shape[0]
    forward = op == SPARSE_FORWARD
    if not forward and op != SPARSE_GRADIENT:
        raise ValueError("fastmlp: unknown layer operation")
    n = batch.n
    _check_shape(shape)
    k = shape.units[0]
    m = shape.units[1]
    wo = shape.offsets[0, OFF_W]
    bo = shape.offsets[0, OFF_B]
    a0 = shape.offsets[0, OFF_A]
    if not (k >= 1 and m >= 1 and wo >= 0 and bo == wo + k * m and bo + m <= P):
        raise ValueError("fastmlp: layer offsets out of the parameter buffer")
    if not (n >= 0 and a0 >= 0 and a0 + n * m <= work.acts.shape[0]
            and (work.pre.shape[0] == 0 or a0 + n * m <= work.pre.shape[0])
            and (forward or a0 + n * m <= work.deltas.shape[0])):
        raise ValueError("fastmlp: the work buffers do not fit the batch")
    _check_flat(params.theta, params.grad)
    if forward:
        _check_compressed(batch.data, batch.indices, batch.indptr, n, k)
    else:
        _check_compressed(batch.cdata, batch.crows, batch.cptr, k, n)
        _check_step_buffers(params)
    act = layer_activation(shape, op, np.int64(0))
    rows = n if forward else k
    n_t = _n_tasks(rows, np.int64(BR))
    for t in prange(n_t):
        _call_sparse_task((np.int64(op), np.int64(t), n_t, rows, np.int64(0), act), params,
                          shape, batch, work, sw_sum)


_call_sparse_layer = call_by_symbol(_sparse_layer)


@jit(cold=True)
def sparse_layer(op, params, shape, batch, work, sw_sum):
    """:func:`_sparse_layer` called from Python (the tests do), its bundles
    passed on as references (see :func:`fastmlp._kernels.network`)."""
    _call_sparse_layer(op, ref(params), ref(shape), ref(batch), ref(work), sw_sum)
