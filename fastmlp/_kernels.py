"""Compiled kernels of a whole batch: the network's phases, the output head,
the loss, the gathers, and the serial forward pass of a few rows.

Kernels take the bundles of :mod:`fastmlp._bundles` (``Shape``,
``Params``, ``Batch``, ``Work``). In the flat work buffers ``work.acts``
/ ``work.deltas`` (and ``work.pre``), layer ``l``'s block for a batch of
``n`` rows is the row-major ``(n, units[l + 1])`` block at
``shape.offsets[l, OFF_A]``. Every float array of a call has the
parameter dtype, so each kernel compiles at most once per dtype.

:func:`network` runs a batch through every layer in two parallel loops:
each task of the first (ROWS) carries a block of rows through the forward
pass, the output head and the deltas (on small networks, then its rows'
share of every layer's gradient); the second (STEPS) does every layer's
gradient (or adds the shares up) and optimizer step. :func:`loss_grad`
sequences the two and the loss; it is inlined into its compiled callers
(the epoch kernels and L-BFGS's, :mod:`fastmlp._engine`), which keeps it
from being a level of its own that re-optimises all it calls.
"""

import numpy as np
from numba import prange

from ._activations import activate, relu_forward
from ._bundles import Params
from ._dropout import drop_rows
from ._codes import (
    BACKWARD,
    COMBINE,
    FORWARD,
    GRADIENT,
    H64_DROP_SEED,
    H64_EPOCH0,
    H_ALPHA,
    H_CLIP,
    H_LOG_EPS,
    HEAD_ACTIVATIONS,
    HEAD_EXP,
    HEAD_LOGISTIC,
    HEAD_SOFTMAX,
    IDENTITY,
    N_HYPER,
    N_HYPER64,
    NO_STEP,
    OFF_A,
    OFF_B,
    OFF_W,
    PREDICT,
    RELU,
    ROWS,
    SHARE,
    SPARSE_FORWARD,
    SPARSE_GRADIENT,
    STEPS,
)
from ._jit import apart, call_by_symbol, jit, ref
from ._linalg import (
    BR,
    _call_layer_task,
    _call_sparse_layer,
    _check,
    _check_flat,
    _check_shape,
    _check_step_buffers,
    _n_tasks,
    _task_rows,
    block_view,
    layer_activation,
)
from ._optim import clip_and_step


@jit(internal=True)
def _xlogy(x, y):
    # scipy.special.xlogy: 0 where x == 0, else x * log(y).
    if x == 0:
        return 0.0
    return x * np.log(y)


@jit(internal=True)
def output_head(Z, Y, sw, head, log_eps, D, row_loss):
    """The per-row loss and the output delta of the output activations.

    Serial, on one task's rows: a batch's output layer is less work than a
    parallel region's fork and join.

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


_call_gather_rows = call_by_symbol(gather_rows)
_call_drop_rows = call_by_symbol(drop_rows)
_call_output_head = call_by_symbol(output_head)


def _variant(func, name, parallel=False):
    """``func`` (a closure over the constant ``dropout``) as the module-level
    kernel ``name``: Numba prunes the ``if dropout`` branches, so the
    kernels a fit without dropout compiles hold no dropout code and call no
    dropout kernel. Called by symbol, each variant is found by its name."""
    func.__name__ = func.__qualname__ = name
    return jit(parallel=parallel, internal=True, cold=True)(func)


def _make_network_task(dropout):
    def network_task(phase, i, n_t, first, sw_sum, params, shape, batch, work):
        """Task ``i`` of :func:`network`'s loop, compiled on its own and
        called by symbol, as it calls :func:`fastmlp._linalg._layer_task`:
        each is compiled once instead of again in every module that calls
        it. The ``_dropout`` variant also runs dropout's masks
        (:func:`fastmlp._dropout.drop_rows`).

        Its work is a list of layer operations made by one call site of the
        layer task, and in ROWS with shares a loop of SHARE operations by a
        second (each call site costs compilation of its own).
        """
        units = shape.units
        offs = shape.offsets
        L = offs.shape[0]
        P = params.theta.shape[0]
        n = batch.n
        X = batch.X
        acts = work.acts
        deltas = work.deltas
        shares = work.shares
        split = shares.shape[0] > 0
        keep = work.pre.shape[0] > 0
        dropped = work.dropped
        # dropout (training only): the next layer and the gradient read a
        # dropping layer's output from ``dropped``; its derivative from ``acts``
        drop_on = False
        seed = np.int64(0)
        epoch = np.int64(0)
        if dropout:
            drop_on = phase != PREDICT and dropped.shape[0] > 0
            if drop_on:
                seed = np.int64(params.hyper64[H64_DROP_SEED])
                epoch = np.int64(params.hyper64[H64_EPOCH0])
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
            if phase == ROWS and batch.bidx.shape[0] > 0:
                # the task's own rows of the batch, gathered by the thread that
                # uses them (see network)
                r0, r1 = _task_rows(i, n_t, n)
                _call_gather_rows(batch.Xs, batch.bidx, r0, r1 - r0, X[r0:r1])
            if dropout:
                if phase == ROWS and drop_on and first == 1 and shape.drop[0] > 0:
                    # the sparse first layer's output, computed before this loop
                    r0, r1 = _task_rows(i, n_t, n)
                    zero = np.int64(0)
                    _call_drop_rows(block_view(acts, offs, zero, n, units[1]),
                                    block_view(dropped, offs, zero, n, units[1]), batch.ids,
                                    r0, r1, seed, epoch, zero, shape.drop[0])
        for j in range(n_ops):
            if phase == STEPS:
                op = np.int64(GRADIENT)
                rows = units[lay]
            elif j < n_fwd:
                lay = first + j
                op = np.int64(FORWARD)
                rows = n
            elif j == n_fwd:
                r0, r1 = _task_rows(i, n_t, n)
                m = units[L]
                Z = block_view(acts, offs, L - 1, n, m)
                Dout = block_view(deltas, offs, L - 1, n, m)
                _call_output_head(Z[r0:r1], batch.Y[r0:r1], batch.sw[r0:r1], shape.head,
                            params.hyper[H_LOG_EPS], Dout[r0:r1], work.row_loss[r0:r1])
                continue
            else:
                lay = L - 1 - (j - n_fwd - 1)
                op = np.int64(BACKWARD)
                rows = n
            k = units[lay]
            m = units[lay + 1]
            below = dropped if drop_on and lay > 0 and shape.drop[lay - 1] > 0 else acts
            A = X if lay == 0 else block_view(below, offs, lay - 1, n, k)
            if op == FORWARD:
                Out = block_view(acts, offs, lay, n, m)
                D = Out
                Z = block_view(work.pre, offs, lay, n, m) if keep else work.pre[:0].reshape((0, m))
            elif op == BACKWARD:
                D = block_view(deltas, offs, lay, n, m)
                Out = block_view(deltas, offs, lay - 1, n, k)
                A = block_view(acts, offs, lay - 1, n, k)  # the output before dropout
                Z = block_view(work.pre, offs, lay - 1, n, k) if keep else A
            else:
                Out = block_view(deltas, offs, lay, n, m)
                D = Out
                Z = Out
                if split:
                    # the other row tasks' shares, one per row of a (count, P) view
                    op = np.int64(COMBINE)
                    Out = shares[:(n_t - 1) * P].reshape((n_t - 1, P))
            act = layer_activation(shape, op, lay)
            _call_layer_task((op, t, nt, rows, act, k, m, offs[lay, OFF_W], offs[lay, OFF_B]),
                             params, A, D, Out, Z, sw_sum)
            if dropout:
                # the task's rows of a hidden output through the dropout mask
                # (forward), and of its delta through the same mask (backward)
                hid = lay if op == FORWARD else lay - 1
                if phase == ROWS and drop_on and hid < L - 1 and shape.drop[hid] > 0:
                    r0, r1 = _task_rows(i, n_t, n)
                    dst = Out
                    if op == FORWARD:
                        dst = block_view(dropped, offs, hid, n, units[hid + 1])
                    _call_drop_rows(Out, dst, batch.ids, r0, r1, seed, epoch, hid,
                                    shape.drop[hid])
        if phase == ROWS and split:
            # The task's share of each layer's gradient (task 0's into grad),
            # while its rows' activations and deltas are in this core's cache;
            # the deltas written last first.
            buf = params.grad if i == 0 else shares[(i - 1) * P:i * P]
            G = buf.reshape((1, P))
            for lay in range(first, L):
                below = dropped if drop_on and lay > 0 and shape.drop[lay - 1] > 0 else acts
                A = X if lay == 0 else block_view(below, offs, lay - 1, n, units[lay])
                D = block_view(deltas, offs, lay, n, units[lay + 1])
                _call_layer_task((np.int64(SHARE), i, n_t, n, np.int64(IDENTITY), units[lay],
                                  units[lay + 1], offs[lay, OFF_W], offs[lay, OFF_B]), params,
                                 A, D, G, D, sw_sum)

    return _variant(network_task, "_network_task_dropout" if dropout else "_network_task")


_network_task = _make_network_task(False)
_network_task_dropout = _make_network_task(True)


@jit(internal=True, cold=True)
def _check_gather(X, Xs, bidx, n):
    """Raise unless ROWS can gather ``X[r] = Xs[bidx[r]]`` for ``r < n``:
    the rows exist, the widths agree, and no task reads a source row that
    another writes."""
    fits = bidx.shape[0] >= n and Xs.shape[1] == X.shape[1] and apart(X, Xs)
    top = Xs.shape[0]
    for r in range(n if fits else 0):
        fits = fits and 0 <= bidx[r] < top
    if not fits:
        raise ValueError("fastmlp: arrays do not fit the network's layer sizes")


@jit(internal=True, cold=True)
def _layers_fit(units, offsets, P, n, a_len, d_len):
    """Whether every layer's weights and bias, in that order, lie in a
    parameter buffer of ``P`` elements after the previous layer's, and its
    ``(n, units[l + 1])`` work block lies in work buffers of ``a_len`` and
    ``d_len`` elements after the previous layer's block. ``units`` holds
    one more entry than ``offsets`` has rows (:func:`_check_shape`)."""
    L = offsets.shape[0]
    fits = (n >= 0) & (units.shape[0] == L + 1) & (offsets.shape[1] == 3)
    param_end = 0
    block_end = 0
    for l in range(L if fits else 0):
        row = offsets[l]
        k = units[l]
        m = units[l + 1]
        w = row[OFF_W]
        b = row[OFF_B]
        end = row[OFF_A] + n * m
        fits &= ((k > 0) & (m > 0) & (w >= param_end) & (b == w + k * m) & (b + m <= P)
                 & (row[OFF_A] >= block_end) & (end <= a_len) & (end <= d_len))
        param_end = b + m
        block_end = end
    return fits


_call_network_task = call_by_symbol(_network_task)
_call_network_task_dropout = call_by_symbol(_network_task_dropout)


def _make_network(dropout):
    def network(phase, first, sw_sum, params, shape, batch, work):
        """One phase of a batch of ``batch.n`` rows through layers ``first..``
        of the network, in ONE parallel loop.

        phase : PREDICT, ROWS or STEPS.
            PREDICT: the forward pass; layer ``l``'s output goes to its block
            of ``work.acts`` (the output layer's through its head's function).
            ROWS: the forward pass (keeping pre-activations in ``work.pre``
            where it is not empty; in the ``_dropout`` variant, where
            ``work.dropped`` is not empty, each dropping hidden layer's
            output after dropout there, :func:`fastmlp._dropout.drop_rows`),
            then :func:`output_head` into ``work.row_loss`` and the output
            block of ``work.deltas``, then every hidden layer's deltas
            (through the same masks; with shares, then each task's share of
            the gradient). STEPS: every layer's weight and bias gradient into
            ``params.grad`` (with shares, the sum of the shares ROWS wrote),
            each block followed by its optimizer step; call it after ROWS and
            after any use of the weights before their step (the loss's
            :func:`l2_sum`).
        first : 0, or 1 when a sparse input's first layer is done apart
            (:func:`fastmlp._linalg.sparse_layer`); ``batch.X`` is then not read.
        sw_sum : the batch's sum of sample weights (STEPS only).

        Where ``batch.bidx`` is not empty (a dense input only), ROWS first
        gathers the batch's input, each task its own rows. Where
        ``work.shares`` is not empty, it holds at least ``(n_t - 1) * P``
        elements (``n_t`` the batch's row tasks, :func:`_n_tasks` of ``n``
        and ``BR``), and the gradient is split by batch rows: each ROWS task
        also writes its share of every layer's gradient (task 0's in
        ``params.grad``, the others' in ``work.shares``) while its rows are in
        its cache, and STEPS adds them up in task order before each block's
        step. Give the STEPS that follows a ROWS the same buffers. It pays
        where the parameters are few against a batch's activations; the sums
        differ from the split by rows of ``W`` in the last bits, and which
        split a fit uses depends on the shapes, never on the thread count.

        Without shares the tasks make the same BLAS calls as one
        :func:`fastmlp._linalg.layer` call per layer and operation, so the
        results are bit for bit those of that sequence, in two parallel
        regions per training batch instead of a few per layer (Numba's TBB
        layer builds a task arena for each).
        """
        # Every extent the tasks index without bounds checks, and no buffer a
        # task writes overlapping one another reads (``&``, not ``and``: each
        # ``and`` is a branch of its own to compile).
        units = shape.units
        offs = shape.offsets
        theta = params.theta
        grad = params.grad
        P = theta.shape[0]
        n = batch.n
        acts = work.acts
        deltas = work.deltas
        pre = work.pre
        shares = work.shares
        train = phase != PREDICT
        keep = pre.shape[0] > 0
        L = _check_shape(shape)
        a_len = acts.shape[0]
        fits = ((first == 0) | (first == 1)) & ((not keep) | (pre.shape[0] >= a_len))
        # tasks write the layers' blocks in parallel, BLAS through raw pointers
        fits &= _layers_fit(units, offs, P, n, a_len, deltas.shape[0] if train else a_len)
        if train:
            Y = batch.Y
            fits &= ((Y.shape[0] >= n) & (Y.shape[1] == units[L]) & (batch.sw.shape[0] >= n)
                     & (work.row_loss.shape[0] >= n) & (params.hyper.shape[0] >= N_HYPER)
                     & apart(acts, deltas) & ((first == 0) | (batch.bidx.shape[0] == 0)))
            if keep:
                fits &= apart(pre, acts) & apart(pre, deltas)
            dropped = work.dropped
            if dropped.shape[0] > 0:
                # ROWS writes the dropped outputs while other tasks read the rest
                fits &= ((dropped.shape[0] >= a_len) & (batch.ids.shape[0] >= n)
                         & (params.hyper64.shape[0] >= N_HYPER64) & apart(dropped, acts)
                         & apart(dropped, deltas) & apart(dropped, pre) & apart(dropped, shares)
                         & apart(dropped, grad))
        n_t = _n_tasks(n, np.int64(BR))
        if train and shares.shape[0] > 0:
            # ROWS then writes parameter-sized blocks of grad and shares while
            # other tasks read the weights and the work buffers
            m1 = params.m1
            m2 = params.m2
            fits &= ((grad.shape[0] == P) & (shares.shape[0] >= (n_t - 1) * P)
                     & apart(shares, grad) & apart(shares, theta) & apart(shares, m1)
                     & apart(shares, m2) & apart(shares, acts) & apart(shares, deltas)
                     & apart(grad, theta) & apart(grad, m1) & apart(grad, m2)
                     & apart(grad, acts) & apart(grad, deltas))
        if not fits:
            raise ValueError("fastmlp: arrays do not fit the network's layer sizes")
        _check_flat(theta, grad)
        if first == 0:
            _check(batch.X, n, units[0])
            if phase == ROWS and batch.bidx.shape[0] > 0:
                _check_gather(batch.X, batch.Xs, batch.bidx, n)
        if phase == STEPS:
            _check_step_buffers(params)
        count = n_t
        if phase == STEPS:
            count = 0
            for l in range(first, L):
                count += _n_tasks(units[l], np.int64(BR))
        for i in prange(count):
            if dropout:
                _call_network_task_dropout(phase, np.int64(i), n_t, first, sw_sum, params, shape,
                                           batch, work)
            else:
                _call_network_task(phase, np.int64(i), n_t, first, sw_sum, params, shape, batch,
                                   work)

    return _variant(network, "_network_dropout" if dropout else "_network", parallel=True)


_network = _make_network(False)
_network_dropout = _make_network(True)

_call_network = call_by_symbol(_network)
_call_network_dropout = call_by_symbol(_network_dropout)


@jit(cold=True)
def network(phase, first, sw_sum, params, shape, batch, work):
    """:func:`_network` called from Python (the tests do; predictions go
    through :func:`fastmlp._engine.predict_chunk_dense`): its bundles go on
    as references (:func:`fastmlp._jit.ref`), as compiled callers pass
    them, so both run the same compiled :func:`_network`."""
    _call_network(phase, first, sw_sum, ref(params), ref(shape), ref(batch), ref(work))


@jit(reassoc=True, internal=True)
def l2_sum(theta, shape):
    """Sum of squared weights (biases excluded), in float64.

    Compiled with reassociation allowed (see :func:`fastmlp._jit.jit`), so
    LLVM vectorises the sum into several partial sums instead of one chain
    of dependent additions. The order of the partial sums is fixed by the
    compiled code, so the result does not depend on the thread count or
    the run. It enters the loss, never the gradient.
    """
    s = 0.0
    units = shape.units
    offs = shape.offsets
    for l in range(offs.shape[0]):
        o = offs[l, OFF_W]
        w = theta[o:o + units[l] * units[l + 1]]
        a = 0.0
        for i in range(w.shape[0]):
            x = np.float64(w[i])
            a += x * x
        s += a
    return s


_call_l2_sum = call_by_symbol(l2_sum)
_call_clip_and_step = call_by_symbol(clip_and_step)


@jit(inline="always")
def _phase(phase, first, sw_sum, params, shape, batch, work, dropout):
    """:func:`_network`, or its ``_dropout`` variant where the constant
    ``dropout``."""
    if dropout:
        _call_network_dropout(phase, first, sw_sum, params, shape, batch, work)
    else:
        _call_network(phase, first, sw_sum, params, shape, batch, work)


@jit(inline="always")
def loss_grad(params, shape, batch, work, sparse, clip, dropout):
    """Loss of the batch and its gradient; then, unless ``params.solver``
    is ``NO_STEP``, one optimizer step.

    ``dropout`` (a constant too) picks the network kernel's dropout
    variant. Where ``clip`` (a constant of the caller, as ``sparse``: a fit
    without clipping does not compile the clipping kernel) and ``hyper[H_CLIP] >
    0`` (and a solver that steps), the gradient kernels write the whole
    gradient without stepping, and :func:`fastmlp._optim.clip_and_step`
    clips it and takes the step.

    Returns scikit-learn's batch loss: the ``sw``-weighted average of the
    per-row losses plus ``0.5 * alpha * ||W||^2 / sw_sum``, at the
    parameters before the step; writes the gradient into ``params.grad``.
    The work is two :func:`network` calls: ROWS, then, once the loss has
    read the weights, STEPS. A ``sparse`` input's first layer (``batch``'s
    CSR arrays forward, its CSC arrays for the gradient) is
    :func:`fastmlp._linalg.sparse_layer`'s. ``sparse`` is a constant of
    the caller, so the other input kind's kernels are not compiled.
    """
    n = batch.n
    sw = batch.sw
    one = params.theta.dtype.type(1)
    first = np.int64(0)
    params = ref(params)
    shape = ref(shape)
    batch = ref(batch)
    work = ref(work)
    if sparse:
        first = np.int64(1)
        _call_sparse_layer(np.int64(SPARSE_FORWARD), params, shape, batch, work, one)
    _phase(np.int64(ROWS), first, one, params, shape, batch, work, dropout)

    # ``sw[:n].sum()`` adds in the same order and dtype, but compiles more
    sw_sum = sw.dtype.type(0)
    total = 0.0
    row_loss = work.row_loss
    for r in range(n):
        sw_sum += sw[r]
        total += row_loss[r] * sw[r]
    # before the steps change the weights
    alpha = params.hyper[H_ALPHA]
    loss = total / sw_sum + 0.5 * alpha * _call_l2_sum(params.theta, shape) / sw_sum

    stepped = False
    if clip:
        if params.hyper[H_CLIP] > 0 and params.solver != NO_STEP:
            # the whole gradient first, then its norm, then the steps
            grads = ref(Params(params.theta, params.grad, params.m1, params.m2, params.step,
                               params.hyper, params.hyper64, np.int64(NO_STEP),
                               params.nesterov))
            _phase(np.int64(STEPS), first, sw_sum, grads, shape, batch, work, dropout)
            if sparse:
                _call_sparse_layer(np.int64(SPARSE_GRADIENT), grads, shape, batch, work,
                                   sw_sum)
            _call_clip_and_step(params, shape)
            stepped = True
    if not stepped:
        _phase(np.int64(STEPS), first, sw_sum, params, shape, batch, work, dropout)
        if sparse:
            _call_sparse_layer(np.int64(SPARSE_GRADIENT), params, shape, batch, work, sw_sum)
    return loss


@jit(internal=True, cold=True)
def _serial_width(shape, theta, X, out):
    """The widest layer, once every extent the serial kernels index without
    bounds checks is checked; raises ValueError where the arrays do not fit
    ``shape``."""
    units = shape.units
    offs = shape.offsets
    L = _check_shape(ref(shape))
    fits = (X.shape[1] == units[0] and out.shape[0] == X.shape[0]
            and out.shape[1] == units[L])
    width = 1
    for l in range(L if fits else 0):
        m = units[l + 1]
        width = max(width, m)
        fits = (fits and m > 0 and offs[l, OFF_W] >= 0
                and offs[l, OFF_B] == offs[l, OFF_W] + units[l] * m
                and offs[l, OFF_B] + m <= theta.shape[0])
    if not fits:
        raise ValueError("fastmlp: arrays do not fit the network's layer sizes")
    return width


@jit()
def predict_serial(shape, theta, X, out):
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
    finiteness check can make it here, far cheaper than ``np.isfinite`` on
    a one-row prediction, and fall back to scikit-learn's validation and
    its error when it fails.
    Raises ValueError where the arrays do not fit ``shape``: the loops
    below index without bounds checks.

    The work vectors are allocated here, not passed in: callers on several
    Python threads (the kernel releases the GIL) then never share them.
    """
    units = shape.units
    offs = shape.offsets
    acts_code = shape.acts
    L = offs.shape[0]
    width = _serial_width(shape, theta, X, out)
    z0 = np.empty(width, dtype=theta.dtype)
    z1 = np.empty(width, dtype=theta.dtype)
    finite = True
    for r in range(X.shape[0]):
        a = X[r]
        for k in range(a.shape[0]):
            if not np.isfinite(a[k]):
                finite = False
        for l in range(L):
            # Slices, not kernels returning views: such a kernel would be
            # compiled for this call alone, at a first small prediction.
            n_in = units[l]
            m = units[l + 1]
            wo = offs[l, OFF_W]
            bo = offs[l, OFF_B]
            W = theta[wo : wo + n_in * m].reshape((n_in, m))
            b = theta[bo : bo + m]
            z = z0[:m] if l % 2 == 0 else z1[:m]
            for c in range(m):
                z[c] = b[c]
            # Four input rows per pass over z (z loaded and stored once per
            # four terms; the sum order per element is unchanged). Eight
            # gain nothing: the weights' reads from cache bound it.
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
                    relu_forward(z)
                else:
                    activate(z, act)
            a = z
        activate(a, HEAD_ACTIVATIONS[shape.head])
        o = out[r]
        for c in range(o.shape[0]):
            o[c] = a[c]
    return finite


@jit()
def predict_serial_blocks(shape, theta, X, out):
    """:func:`predict_serial` for a number of rows that is a multiple of 4,
    four rows per pass over each layer's weights.

    The single-row kernel reads every weight once per row; here each read
    serves four rows. Every element is summed in :func:`predict_serial`'s
    order (the bias, then increasing input index, one fused multiply-add
    per term), so each row gets the bits it gets alone. A kernel of its
    own, so that a one-row prediction does not compile its four-row loop.

    X : (n, units[0]) dense input, n a multiple of 4; out : (n, units[-1]),
    written. Returns whether every element of X is finite.
    """
    units = shape.units
    offs = shape.offsets
    acts_code = shape.acts
    L = offs.shape[0]
    width = _serial_width(shape, theta, X, out)
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
            wo = offs[l, OFF_W]
            bo = offs[l, OFF_B]
            W = theta[wo : wo + n_in * m].reshape((n_in, m))
            b = theta[bo : bo + m]
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
            act = acts_code[l] if l < L - 1 else HEAD_ACTIVATIONS[shape.head]
            for i in range(4):
                y = blk[base + i * width : base + i * width + m]
                if act == RELU:
                    relu_forward(y)
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
