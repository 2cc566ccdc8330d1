"""Compiled forward, backward, output-head and serial-predict kernels.

Arrays handed to these kernels are the flat parameter buffer ``theta`` with
its layout (``units``, ``w_off``, ``b_off``: int64 arrays, see
:mod:`fastmlp._layout`), and flat work buffers ``acts`` / ``deltas`` in
which layer ``l``'s output for a batch of ``n`` rows is the row-major block
``[a_off[l], a_off[l] + n * units[l + 1])``. Exactly two dtypes are used,
float32 and float64, and every argument of a kernel has the parameter dtype,
so each kernel compiles at most once per dtype.

:func:`network` runs a batch through every layer in two parallel loops:
each task of the first carries a block of rows through the forward pass,
the output head and the deltas (on small networks, then its rows' share of
every layer's gradient); the second does every layer's gradient (or adds
the shares up) and optimizer step. :func:`loss_grad` sequences the two and
the loss; it is inlined into its compiled callers (``inline="always"``):
as a separately compiled function it re-optimised and re-generated the
machine code of everything it calls (see :mod:`fastmlp._engine`), and
called from Python it compiled the kernels of both input kinds. Its callers are the epoch
kernels and the L-BFGS objective's (:func:`fastmlp._engine.full_batch_dense`
and ``full_batch_sparse``); called from Python it compiles as usual.
"""

import numpy as np
from numba import prange

from ._activations import activate, relu_row
from ._codes import (
    H_ALPHA,
    H_LOG_EPS,
    HEAD_ACTIVATIONS,
    HEAD_EXP,
    HEAD_LOGISTIC,
    HEAD_SOFTMAX,
    IDENTITY,
    N_HYPER,
    RELU,
)
from ._jit import call_by_symbol, jit
from ._linalg import (
    BACKWARD,
    BR,
    COMBINE,
    FORWARD,
    GRADIENT,
    SHARE,
    SPARSE_FORWARD,
    SPARSE_GRADIENT,
    _call_layer_task,
    _check,
    _check_flat,
    _check_step_buffers,
    _n_tasks,
    _task_rows,
    sparse_layer,
)


@jit(internal=True)
def block_view(buf, off, l, n, m):
    """Rows ``0..n`` of layer ``l``'s (n, m) block in a flat work buffer."""
    return buf[off[l] : off[l] + n * m].reshape((n, m))


@jit(internal=True)
def _xlogy(x, y):
    # scipy.special.xlogy: 0 where x == 0, else x * log(y).
    if x == 0:
        return 0.0
    return x * np.log(y)


@jit(internal=True)
def output_head(Z, Y, sw, head, log_eps, D, row_loss):
    """The per-row loss and the output delta of the output activations.

    Serial: a batch's output layer is a few thousand elements (200 rows x
    10 classes), less work than a parallel region's fork and join, and a
    ``prange`` here cost ~1 s of compilation per dtype.

    Z : (n, m) output-layer activations (the forward pass applied the
        head's function).
    Y : (n, m) targets (one-hot / indicator for classification).
    sw : (n,) sample weights.
    D : (n, m) written with ``(out - y) * sw``.
    row_loss : (n,) float64, written with each row's unweighted loss.

    Losses follow scikit-learn's ``_base.py``: cross-entropies clip
    probabilities to ``[log_eps, 1 - log_eps]``; squared error is halved and
    averaged over outputs; the Poisson loss is the half deviance.
    """
    n, m = Z.shape
    one = Z.dtype.type(1)
    hi = one - log_eps
    for r in range(n):
        z = Z[r]
        y = Y[r]
        loss = 0.0
        if head == HEAD_SOFTMAX:
            for c in range(m):
                p = min(max(z[c], log_eps), hi)
                loss -= _xlogy(y[c], p)
        elif head == HEAD_LOGISTIC:
            for c in range(m):
                p = min(max(z[c], log_eps), hi)
                loss -= _xlogy(y[c], p) + _xlogy(one - y[c], one - p)
        elif head == HEAD_EXP:
            for c in range(m):
                loss += _xlogy(y[c], y[c] / z[c]) - y[c] + z[c]
        else:  # HEAD_IDENTITY
            for c in range(m):
                e = y[c] - z[c]
                loss += e * e
            loss *= 0.5 / m
        row_loss[r] = loss
        d = D[r]
        w = sw[r]
        for c in range(m):
            d[c] = (z[c] - y[c]) * w


@jit(internal=True)
def gather_rows(X, idx, start, n, out):
    """Copy rows ``X[idx[start:start + n]]`` into ``out[:n]``.

    The epoch kernels gather a batch's targets with it; each task of
    :func:`network`'s forward pass, its own rows of a dense batch's inputs.
    """
    k = X.shape[1]
    for r in range(n):
        src = X[idx[start + r]]
        dst = out[r]
        for j in range(k):
            dst[j] = src[j]


@jit(internal=True)
def gather_csr(data, indices, indptr, idx, start, n, bdata, bindices, bindptr):
    """Copy CSR rows ``idx[start:start + n]`` into the batch CSR buffers."""
    bindptr[0] = 0
    for r in range(n):
        i = idx[start + r]
        bindptr[r + 1] = bindptr[r] + indptr[i + 1] - indptr[i]
    for r in range(n):
        i = idx[start + r]
        q = bindptr[r]
        for p in range(indptr[i], indptr[i + 1]):
            bdata[q] = data[p]
            bindices[q] = indices[p]
            q += 1


@jit()
def csr_to_csc(data, indices, indptr, n_cols, cdata, crows, cptr):
    """Transpose a CSR matrix into CSC buffers (counting sort, stable)."""
    n = indptr.shape[0] - 1
    for j in range(n_cols + 1):
        cptr[j] = 0
    for p in range(indptr[n]):
        cptr[indices[p] + 1] += 1
    for j in range(n_cols):
        cptr[j + 1] += cptr[j]
    nxt = cptr[:n_cols].copy()
    for r in range(n):
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            q = nxt[j]
            cdata[q] = data[p]
            crows[q] = r
            nxt[j] = q + 1


# Phases of :func:`network`.
PREDICT = 0  # the forward pass
ROWS = 1  # the forward pass, the output head's loss and deltas, the deltas of every layer
STEPS = 2  # every layer's weight gradient and optimizer step


@jit(internal=True)
def _network_task(phase, i, n_t, first, n, theta, grad, state1, state2, solver, nesterov,
                  hyper, sw_sum, units, w_off, b_off, acts_code, head, X, Y, sw, acts,
                  deltas, a_off, row_loss, Xs, bidx, shares):
    """Task ``i`` of :func:`network`'s loop, compiled on its own and
    called by symbol (:func:`fastmlp._jit.call_by_symbol`), as it calls
    :func:`fastmlp._linalg._layer_task`: each is compiled once, in a module
    of its own, instead of again in every module that calls it (the loop's
    body and its two wrappers, :func:`network`, the epoch kernels).

    Its work is a list of layer operations made by one call site of the
    layer task, and in ROWS with ``shares`` a loop of SHARE operations by a
    second. Before the calls by symbol, when each call site linked the
    task's code into the caller, a first dense adam fit on digits from an
    empty cache compiled in 8.0 s with one call site and 8.4 s with three
    (one per operation).
    """
    L = w_off.shape[0]
    P = theta.shape[0]
    split = shares.shape[0] > 0
    if phase == STEPS:
        # Item i is task t of layer l's gradient; the first half of the
        # items holds the first half of every layer's tasks, so the static
        # split of the loop between two threads gives each half of every
        # layer.
        h = 0
        for l in range(first, L):
            h += _n_tasks(units[l], np.int64(BR)) // 2
        second = i >= h
        j = i - h if second else i
        lay = first
        t = j
        nt = np.int64(1)
        for l in range(first, L):
            nt = _n_tasks(units[l], np.int64(BR))
            cnt = nt - nt // 2 if second else nt // 2
            if j < cnt:
                lay = l
                t = j + nt // 2 if second else j
                break
            j -= cnt
        n_ops = 1
    else:
        lay = first
        t = i
        nt = n_t
        # forward through layers first..L-1; in ROWS, then the output head
        # and the deltas from layer L-1 down to layer 1
        n_fwd = L - first
        n_ops = n_fwd + L if phase == ROWS else n_fwd
        if phase == ROWS and bidx.shape[0] > 0:
            # the task's own rows of the batch, gathered by the thread that
            # uses them (see network)
            r0, r1 = _task_rows(i, n_t, n)
            gather_rows(Xs, bidx, r0, r1 - r0, X[r0:r1])
    for j in range(n_ops):
        if phase == STEPS:
            op = np.int64(GRADIENT)
            rows = units[lay]
            Out = block_view(deltas, a_off, lay, n, units[lay + 1])
            D = Out
            act = np.int64(IDENTITY)
        elif j < n_fwd:
            lay = first + j
            op = np.int64(FORWARD)
            rows = n
            Out = block_view(acts, a_off, lay, n, units[lay + 1])
            D = Out
            act = acts_code[lay] if lay < L - 1 else HEAD_ACTIVATIONS[head]
        elif j == n_fwd:
            r0, r1 = _task_rows(i, n_t, n)
            m = units[L]
            Z = block_view(acts, a_off, L - 1, n, m)
            Dout = block_view(deltas, a_off, L - 1, n, m)
            output_head(Z[r0:r1], Y[r0:r1], sw[r0:r1], head, hyper[H_LOG_EPS], Dout[r0:r1],
                        row_loss[r0:r1])
            continue
        else:
            lay = L - 1 - (j - n_fwd - 1)
            op = np.int64(BACKWARD)
            rows = n
            D = block_view(deltas, a_off, lay, n, units[lay + 1])
            Out = block_view(deltas, a_off, lay - 1, n, units[lay])
            act = acts_code[lay - 1]
        A = X if lay == 0 else block_view(acts, a_off, lay - 1, n, units[lay])
        if phase == STEPS and split:
            # the other row tasks' shares, one per row of a (count, P) view
            op = np.int64(COMBINE)
            Out = shares[:(n_t - 1) * P].reshape((n_t - 1, P))
        _call_layer_task(op, t, nt, rows, theta, grad, state1, state2, w_off[lay],
                         b_off[lay], units[lay], units[lay + 1], A, D, Out, act, solver,
                         nesterov, hyper, sw_sum)
    if phase == ROWS and split:
        # The task's share of each layer's gradient (task 0's into grad),
        # while its rows' activations and deltas are in this core's cache;
        # the deltas written last first.
        buf = grad if i == 0 else shares[(i - 1) * P:i * P]
        for lay in range(first, L):
            A = X if lay == 0 else block_view(acts, a_off, lay - 1, n, units[lay])
            D = block_view(deltas, a_off, lay, n, units[lay + 1])
            _call_layer_task(np.int64(SHARE), i, n_t, n, theta, buf, state1, state2,
                             w_off[lay], b_off[lay], units[lay], units[lay + 1], A, D, D,
                             np.int64(IDENTITY), solver, nesterov, hyper, sw_sum)


@jit(inline="always")
def _apart(a, b):
    """Whether the memory of arrays ``a`` and ``b`` does not overlap."""
    a0 = a.ctypes.data
    b0 = b.ctypes.data
    return a0 + a.size * a.itemsize <= b0 or b0 + b.size * b.itemsize <= a0


@jit(internal=True)
def _check_gather(X, Xs, bidx, n):
    """Raise unless ROWS can gather ``X[r] = Xs[bidx[r]]`` for ``r < n``:
    the rows exist, the widths agree, and no task reads a source row that
    another writes."""
    fits = bidx.shape[0] >= n and Xs.shape[1] == X.shape[1] and _apart(X, Xs)
    top = Xs.shape[0]
    for r in range(n if fits else 0):
        fits = fits and 0 <= bidx[r] < top
    if not fits:
        raise ValueError("fastmlp: arrays do not fit the network's layer sizes")


_call_network_task = call_by_symbol(_network_task)


@jit(parallel=True)
def network(phase, first, n, theta, grad, state1, state2, solver, nesterov, hyper, sw_sum,
            units, w_off, b_off, acts_code, head, X, Y, sw, acts, deltas, a_off, row_loss,
            Xs, bidx, shares):
    """One phase of a batch of ``n`` rows through layers ``first..`` of the
    network, in ONE parallel loop.

    phase : PREDICT, ROWS or STEPS.
        PREDICT: the forward pass; layer ``l``'s output goes to its block
        of ``acts`` (the output layer's through its head's function).
        ROWS: the forward pass, then :func:`output_head` into ``row_loss``
        and the output block of ``deltas``, then every hidden layer's
        deltas (with ``shares``, then each task's share of the gradient).
        STEPS: every layer's weight and bias gradient into ``grad`` (with
        ``shares``, the sum of the shares ROWS wrote), each block followed
        by its optimizer step; call it after ROWS and after any use of the
        weights before their step (the penalty :func:`l2_sum` of the
        loss).
    first : 0, or 1 when a sparse input's first layer is done apart
        (:func:`fastmlp._linalg.sparse_layer`); ``X`` is then not read.

    Xs, bidx : where ``bidx`` is not empty (a dense input only), ROWS
        first gathers the batch's input, each task its own rows: row ``r``
        of ``X`` is row ``bidx[r]`` of ``Xs``. Not read where it is empty.
    shares : empty, or a contiguous buffer of at least ``(n_t - 1) * P``
        elements, ``n_t`` the batch's row tasks
        (:func:`fastmlp._linalg._n_tasks` of ``n`` and ``BR``) and ``P``
        the parameters. Where it is not empty, the gradient is split by
        batch rows: each ROWS task also writes its share of every layer's
        gradient (task 0's in ``grad``, the others' in ``shares``), and
        STEPS adds the shares up, in task order, before each block's
        step. ``grad`` must then hold ``P`` elements in ROWS too, and
        neither may overlap the weights, the optimizer state or the work
        buffers (checked). Give the STEPS that follows a ROWS the same
        buffer: STEPS cannot tell shares left over from another batch.

    The other arguments are :func:`loss_grad`'s; ``sw_sum`` is used by
    STEPS only, ``Y``, ``sw``, ``row_loss``, ``deltas`` and ``hyper`` by
    the training phases only (PREDICT takes arrays of their types).

    With ``shares`` empty, the work is that of one
    :func:`fastmlp._linalg.layer` call per layer and operation, the same
    row tasks and the same BLAS calls, so the results are bit for bit those
    of the layer-by-layer sequence; what changes is the number of parallel
    regions. The forward pass, the head and the deltas only combine a row with itself, so a task carries its
    rows through all of them without waiting for the others (ROWS); the
    gradients split the rows of each ``W`` (STEPS). Two regions per
    training batch (four with a sparse input, whose first layer has
    kernels of its own) instead of two per layer and one more per hidden
    layer: Numba's TBB layer builds a task arena for every parallel loop,
    and each loop cost two threads ~7 us beyond its work (a 256 x 256 float32 layer
    at 2 threads: 141 us against ~134 us of one-thread BLAS and ReLU).
    Measured at 2 threads on the Zen 4 machine of bench/README.md, old and
    new code in interleaved processes: W1 (digits, 5 regions per batch to
    2) 0.257 s against 0.293 s; W2 float32 (8 to 2) 0.708 s against
    0.733 s. One loop for all three phases: each ``prange`` is compiled
    into a function and two wrappers of its own (~1 s of compilation when
    its body's callees were linked into each; see :func:`_network_task`).

    A shuffled dense batch's input rows are gathered in ROWS, each task
    its own (``Xs``, ``bidx``): done serially before the loop, the gather
    kept the other thread waiting and wrote rows that thread then read from
    this one's cache. Interleaved processes, two threads, near host state,
    bit for bit the same results: W1 0.195-0.200 s against 0.203-0.208 s
    (0.199 against 0.207-0.209 s once more after the calls by symbol), W2
    float64 1.275-1.286 s against 1.293-1.301 s, W2 float32 about the
    same (0.697 against 0.701 s). It costs ~0.3-0.4 s more compilation
    from an empty cache (a first digits fit: 6.0-6.2 s against 5.6-5.9 s).

    Gradient split by batch rows (``shares``). Split by rows of ``W``, a
    STEPS task reads every row of its layer's input and deltas, half of
    them written by the other thread in ROWS, from that thread's cache.
    Split by batch rows, each ROWS task computes ``A_t.T @ D_t`` over its
    own rows while they are in its cache, once it has written its deltas;
    STEPS then reads one share of the gradient from the other thread
    instead of half of every layer's activations and deltas. It pays
    where the parameters are few against a batch's activations, and the
    shares cost ``(n_t - 1) * P`` elements, so the engine uses it where
    the shares take at most :data:`fastmlp._engine.SHARES_MAX_BYTES` (1
    MiB: W1 and W2 of bench/README.md, not W3). Measured (split by rows of
    ``W`` -> by batch rows), a batch of ROWS, the L2 sum and STEPS repeated
    at two threads in the near host state (µs): W1's network (64, 100, 10)
    float64, 200 rows, 123.5 -> 104-108; the same on 512 rows 278 -> 222,
    on 1,437 rows (L-BFGS on digits) 1,370 -> 703-737 (far host state);
    W2's float32 667 -> 646-649, float64 1,241 -> 1,211; W3's (256 rows, 2
    MB of shares) 4.15-4.2 ms either way. At one thread: W1 the same, W2
    1.2% slower, 512 and 1,437 rows 9% faster. Whole fits, interleaved
    processes, two threads: W1 0.200-0.205 -> 0.173-0.184 s (one thread
    0.264 -> 0.267-0.273 s); W2 float32 0.703-0.705 -> 0.688-0.700 s,
    float64 1.286 -> 1.253 s; an L-BFGS fit on digits, (100,), 2.2 -> 1.3
    ms per iteration. It costs ~0.3-0.7 s more compilation from an empty
    cache (a first dense digits fit 6.7-6.95 s against 6.1-6.3 s, L-BFGS
    6.2 against 5.8 s, sparse 9.2 against 8.9 s): half what it cost with
    a call after each layer's deltas instead of one loop of calls after
    them all (1.1-1.4 s more, and W1 no faster). The sums differ from the
    split by rows of ``W`` in the last bits; which split a fit uses
    depends on the shapes, the batch size and the dtype, never on the
    thread count.
    """
    L = w_off.shape[0]
    P = theta.shape[0]
    train = phase != PREDICT
    fits = (L >= 1 and units.shape[0] == L + 1 and b_off.shape[0] == L
            and a_off.shape[0] >= L and acts_code.shape[0] >= L - 1 and n >= 0
            and (first == 0 or first == 1))
    # Each layer's parameters and work blocks must fit their buffers and
    # follow the previous layer's without overlap: tasks write them in
    # parallel, BLAS through raw pointers.
    for l in range(L if fits else 0):
        k = units[l]
        m = units[l + 1]
        end = a_off[l] + n * m
        fits = (fits and k > 0 and m > 0 and w_off[l] >= 0 and b_off[l] == w_off[l] + k * m
                and b_off[l] + m <= P and a_off[l] >= 0 and end <= acts.shape[0]
                and (not train or end <= deltas.shape[0]))
        if l > 0:
            fits = (fits and w_off[l] >= b_off[l - 1] + k
                    and a_off[l] >= a_off[l - 1] + n * k)
    if fits and train:
        fits = (Y.shape[0] >= n and Y.shape[1] == units[L] and sw.shape[0] >= n
                and row_loss.shape[0] >= n and hyper.shape[0] >= N_HYPER)
        fits = fits and _apart(acts, deltas) and (first == 0 or bidx.shape[0] == 0)
    n_t = _n_tasks(n, np.int64(BR))
    if train and shares.shape[0] > 0:
        # ROWS then writes parameter-sized blocks of grad and shares while
        # other tasks read the weights and the work buffers
        fits = fits and grad.shape[0] == P and shares.shape[0] >= (n_t - 1) * P
        for buf in (grad, theta, state1, state2, acts, deltas):
            fits = fits and _apart(shares, buf)
        for buf in (theta, state1, state2, acts, deltas):
            fits = fits and _apart(grad, buf)
    if not fits:
        raise ValueError("fastmlp: arrays do not fit the network's layer sizes")
    _check_flat(theta, grad)
    if first == 0:
        _check(X, n, units[0])
        if phase == ROWS and bidx.shape[0] > 0:
            _check_gather(X, Xs, bidx, n)
    count = n_t
    if phase == STEPS:
        _check_step_buffers(theta, grad, state1, state2, solver, hyper)
        count = 0
        for l in range(first, L):
            count += _n_tasks(units[l], np.int64(BR))
    for i in prange(count):
        _call_network_task(phase, np.int64(i), n_t, first, n, theta, grad, state1, state2,
                           solver, nesterov, hyper, sw_sum, units, w_off, b_off, acts_code,
                           head, X, Y, sw, acts, deltas, a_off, row_loss, Xs, bidx, shares)


_call_network = call_by_symbol(network)
_call_sparse_layer = call_by_symbol(sparse_layer)


@jit(reassoc=True)
def l2_sum(theta, units, w_off):
    """Sum of squared weights (biases excluded), in float64.

    Compiled with reassociation allowed (see :func:`fastmlp._jit.jit`), so
    LLVM vectorises the sum into several partial sums: one running sum is
    a chain of dependent additions (~4 cycles per weight). Measured on W2's
    92k weights: 8 µs against 31 µs (float32) for eight hand-interleaved
    partial sums, which the compiler would not vectorise, and 10 against 17
    µs (float64); ~3% of a W2 or W3 float32 batch. The order of the partial
    sums is fixed by the compiled code, so the result does not depend on
    the thread count or the run (scikit-learn's ``np.dot`` of the weights
    has an order of its own too). It enters the loss, never the gradient:
    the reported loss, early stopping's comparisons, and L-BFGS's line
    search.
    """
    s = 0.0
    for l in range(w_off.shape[0]):
        w = theta[w_off[l]:w_off[l] + units[l] * units[l + 1]]
        a = 0.0
        for i in range(w.shape[0]):
            x = np.float64(w[i])
            a += x * x
        s += a
    return s


@jit(inline="always")
def loss_grad(theta, grad, state1, state2, solver, nesterov, hyper, units, w_off, b_off,
              acts_code, head, is_sparse, X, xd, xi, xp, cd, cr, cp, Y, sw, n, acts, deltas,
              a_off, row_loss, Xs, bidx, shares):
    """Loss of ``n`` rows and its gradient; then, unless ``solver`` is
    ``NO_STEP``, one optimizer step.

    Returns scikit-learn's batch loss: the ``sw``-weighted average of the
    per-row losses plus ``0.5 * alpha * ||W||^2 / sw_sum``
    (``alpha = hyper[H_ALPHA]``), at the parameters before the step; writes
    the gradient, same layout as ``theta``, into ``grad``. The work is two
    :func:`network` calls: ROWS (forward pass, output head, deltas), then,
    once the loss has read the weights, STEPS (each layer's gradient
    followed by its optimizer step); state1, state2 and hyper are as in
    :func:`fastmlp._optim.optimizer_step`. The input is ``X`` (n, k) when
    dense, else CSR ``(xd, xi, xp)`` for the first layer's forward pass and
    the same matrix in CSC form ``(cd, cr, cp)`` for its weight gradient,
    both done apart from :func:`network` (``first=1``). Where ``bidx``
    is not empty (dense input only), the forward pass first gathers the
    batch's rows ``Xs[bidx]`` into ``X``; where ``shares`` is not empty, the
    gradient is split by batch rows (see :func:`network`).
    """
    L = w_off.shape[0]
    alpha = hyper[H_ALPHA]
    one = theta.dtype.type(1)
    first = np.int64(0)
    if is_sparse:
        first = np.int64(1)
        act = acts_code[0] if L > 1 else HEAD_ACTIVATIONS[head]
        A0 = block_view(acts, a_off, np.int64(0), n, units[1])
        _call_sparse_layer(np.int64(SPARSE_FORWARD), xd, xi, xp, units[0], theta, grad, state1,
                           state2, w_off[0], b_off[0], A0, A0, act, solver, nesterov, hyper, one)
    _call_network(np.int64(ROWS), first, n, theta, grad, state1, state2, solver, nesterov,
                  hyper, one, units, w_off, b_off, acts_code, head, X, Y, sw, acts, deltas,
                  a_off, row_loss, Xs, bidx, shares)

    # ``sw[:n].sum()`` adds in the same order and dtype, but compiles four
    # more functions (~0.3 s of a first fit).
    sw_sum = sw.dtype.type(0)
    total = 0.0
    for r in range(n):
        sw_sum += sw[r]
        total += row_loss[r] * sw[r]
    # before the steps change the weights
    loss = total / sw_sum + 0.5 * alpha * l2_sum(theta, units, w_off) / sw_sum

    _call_network(np.int64(STEPS), first, n, theta, grad, state1, state2, solver, nesterov,
                  hyper, sw_sum, units, w_off, b_off, acts_code, head, X, Y, sw, acts, deltas,
                  a_off, row_loss, Xs, bidx, shares)
    if is_sparse:
        D0 = block_view(deltas, a_off, np.int64(0), n, units[1])
        _call_sparse_layer(np.int64(SPARSE_GRADIENT), cd, cr, cp, units[0], theta, grad, state1,
                           state2, w_off[0], b_off[0], D0, D0, np.int64(IDENTITY), solver,
                           nesterov, hyper, sw_sum)
    return loss


@jit(internal=True)
def _serial_width(theta, units, w_off, b_off, acts_code, X, out):
    """The widest layer, once every extent the serial kernels index without
    bounds checks is checked; raises ValueError where the arrays do not fit
    ``units``."""
    L = w_off.shape[0]
    fits = (L >= 1 and units.shape[0] == L + 1 and b_off.shape[0] == L
            and acts_code.shape[0] >= L - 1
            and X.shape[1] == units[0] and out.shape[0] == X.shape[0]
            and out.shape[1] == units[L])
    width = 1
    for l in range(L if fits else 0):
        m = units[l + 1]
        width = max(width, m)
        fits = (fits and m > 0 and w_off[l] >= 0 and b_off[l] == w_off[l] + units[l] * m
                and b_off[l] + m <= theta.shape[0])
    if not fits:
        raise ValueError("fastmlp: arrays do not fit the network's layer sizes")
    return width


@jit()
def predict_serial(theta, units, w_off, b_off, acts_code, head, X, out):
    """Output activations of a few dense rows, on the calling thread.

    For predictions too small to split between threads (one row, a handful):
    the parallel kernels' task launches and the work-buffer setup cost more
    than the arithmetic there. Each output element is summed from the bias
    in increasing input index, one fused multiply-add per term; the parallel
    kernels call BLAS, which may sum in another order, so a row agrees with
    its prediction in a large batch to rounding (as scikit-learn's
    predictions of one row and of a batch do). A given row always gets the
    same bits here.

    X : (n, units[0]) dense input; out : (n, units[-1]), written.
    Returns whether every element of X is finite. The rows are computed
    either way (NaN in, NaN out), so a caller that skipped scikit-learn's
    finiteness check can make it here, for ~0.05 us where ``np.isfinite``
    costs ~2 us on a one-row prediction, and fall back to scikit-learn's
    validation and its error when it fails.
    Raises ValueError where the arrays do not fit ``units``: the loops
    below index without bounds checks.

    The work vectors are allocated here, not passed in: callers on several
    Python threads (the kernel releases the GIL) then never share them.
    """
    L = w_off.shape[0]
    width = _serial_width(theta, units, w_off, b_off, acts_code, X, out)
    z0 = np.empty(width, dtype=theta.dtype)
    z1 = np.empty(width, dtype=theta.dtype)
    finite = True
    for r in range(X.shape[0]):
        a = X[r]
        for k in range(a.shape[0]):
            if not np.isfinite(a[k]):
                finite = False
        for l in range(L):
            # Slices, not kernels returning views: a kernel compiled for
            # this call alone cost ~0.3 s at a first small prediction from
            # an empty cache.
            n_in = units[l]
            m = units[l + 1]
            W = theta[w_off[l] : w_off[l] + n_in * m].reshape((n_in, m))
            b = theta[b_off[l] : b_off[l] + m]
            z = z0[:m] if l % 2 == 0 else z1[:m]
            for c in range(m):
                z[c] = b[c]
            # Four input rows per pass over z (z loaded and stored once per
            # four terms; the sum order per element is unchanged). Eight
            # measured no faster: the weights' reads from cache bound it.
            k4 = n_in - n_in % 4
            for k in range(0, k4, 4):
                p0 = a[k]
                p1 = a[k + 1]
                p2 = a[k + 2]
                p3 = a[k + 3]
                w0 = W[k]
                w1 = W[k + 1]
                w2 = W[k + 2]
                w3 = W[k + 3]
                for c in range(m):
                    v = z[c]
                    v += p0 * w0[c]
                    v += p1 * w1[c]
                    v += p2 * w2[c]
                    v += p3 * w3[c]
                    z[c] = v
            for k in range(k4, n_in):
                ak = a[k]
                w = W[k]
                for c in range(m):
                    z[c] += ak * w[c]
            if l < L - 1:
                act = acts_code[l]
                if act == RELU:
                    relu_row(z)
                else:
                    activate(z, act)
            a = z
        activate(a, HEAD_ACTIVATIONS[head])
        o = out[r]
        for c in range(o.shape[0]):
            o[c] = a[c]
    return finite


@jit()
def predict_serial_blocks(theta, units, w_off, b_off, acts_code, head, X, out):
    """:func:`predict_serial` for a number of rows that is a multiple of 4,
    four rows per pass over each layer's weights.

    The single-row kernel reads every weight once per row; here each read
    serves four rows: on W2's (100, 256, 256, 5) network, 8 rows in 53
    against 104 us (float64), 32 against 47 us (float32). Every element is
    summed in :func:`predict_serial`'s order (the bias, then increasing
    input index, one fused multiply-add per term), so each row gets the
    bits it gets alone. A kernel of its own, compiled at the first
    prediction of 4 or more small rows: its loop over four rows costs
    ~1.5 s of compilation, which a one-row prediction need not pay.

    X : (n, units[0]) dense input, n a multiple of 4; out : (n, units[-1]),
    written. Returns whether every element of X is finite.
    """
    L = w_off.shape[0]
    width = _serial_width(theta, units, w_off, b_off, acts_code, X, out)
    n = X.shape[0]
    if n % 4 != 0:
        raise ValueError("fastmlp: predict_serial_blocks takes a multiple of 4 rows")
    finite = True
    blk = np.empty(8 * width, dtype=theta.dtype)
    for r in range(0, n, 4):
        for i in range(4):
            xi = X[r + i]
            for k in range(xi.shape[0]):
                if not np.isfinite(xi[k]):
                    finite = False
        a0 = X[r]
        a1 = X[r + 1]
        a2 = X[r + 2]
        a3 = X[r + 3]
        for l in range(L):
            n_in = units[l]
            m = units[l + 1]
            W = theta[w_off[l] : w_off[l] + n_in * m].reshape((n_in, m))
            b = theta[b_off[l] : b_off[l] + m]
            base = 0 if l % 2 == 0 else 4 * width
            y0 = blk[base : base + m]
            y1 = blk[base + width : base + width + m]
            y2 = blk[base + 2 * width : base + 2 * width + m]
            y3 = blk[base + 3 * width : base + 3 * width + m]
            for c in range(m):
                v = b[c]
                y0[c] = v
                y1[c] = v
                y2[c] = v
                y3[c] = v
            k4 = n_in - n_in % 4
            for k in range(0, k4, 4):
                w0 = W[k]
                w1 = W[k + 1]
                w2 = W[k + 2]
                w3 = W[k + 3]
                p00, p01, p02, p03 = a0[k], a0[k + 1], a0[k + 2], a0[k + 3]
                p10, p11, p12, p13 = a1[k], a1[k + 1], a1[k + 2], a1[k + 3]
                p20, p21, p22, p23 = a2[k], a2[k + 1], a2[k + 2], a2[k + 3]
                p30, p31, p32, p33 = a3[k], a3[k + 1], a3[k + 2], a3[k + 3]
                # Written out row by row: each weight loaded once feeds four
                # rows' sums, with the 16 inputs held in registers.
                for c in range(m):
                    x0 = w0[c]
                    x1 = w1[c]
                    x2 = w2[c]
                    x3 = w3[c]
                    v = y0[c]
                    v += p00 * x0
                    v += p01 * x1
                    v += p02 * x2
                    v += p03 * x3
                    y0[c] = v
                    v = y1[c]
                    v += p10 * x0
                    v += p11 * x1
                    v += p12 * x2
                    v += p13 * x3
                    y1[c] = v
                    v = y2[c]
                    v += p20 * x0
                    v += p21 * x1
                    v += p22 * x2
                    v += p23 * x3
                    y2[c] = v
                    v = y3[c]
                    v += p30 * x0
                    v += p31 * x1
                    v += p32 * x2
                    v += p33 * x3
                    y3[c] = v
            for k in range(k4, n_in):
                w = W[k]
                q0, q1, q2, q3 = a0[k], a1[k], a2[k], a3[k]
                for c in range(m):
                    x = w[c]
                    y0[c] += q0 * x
                    y1[c] += q1 * x
                    y2[c] += q2 * x
                    y3[c] += q3 * x
            act = acts_code[l] if l < L - 1 else HEAD_ACTIVATIONS[head]
            for i in range(4):
                y = blk[base + i * width : base + i * width + m]
                if act == RELU:
                    relu_row(y)
                else:
                    activate(y, act)
            a0 = y0
            a1 = y1
            a2 = y2
            a3 = y3
        last = 0 if (L - 1) % 2 == 0 else 4 * width
        for i in range(4):
            o = out[r + i]
            for c in range(o.shape[0]):
                o[c] = blk[last + i * width + c]
    return finite
