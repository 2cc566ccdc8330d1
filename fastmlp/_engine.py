"""Training and prediction engine: compiled epochs and their Python drivers.

One epoch (every mini-batch of a given sample order: gather, forward, loss,
backward, optimizer update) runs inside ONE compiled call,
:func:`train_epoch_dense` or :func:`train_epoch_sparse`, so Python is
entered once per epoch. The Python side here builds the bundles of
:mod:`fastmlp._bundles` once per fit, so an epoch allocates nothing. It
knows nothing of scikit-learn: schedules, early stopping, warnings and the
random stream that orders samples live in the estimators.

Compilation. A first fit from an empty cache is dominated by compiling,
and what costs is LLVM optimising and generating machine code for every
module a kernel is linked into. So the kernels of a batch call each other
by symbol (:func:`fastmlp._jit.call_by_symbol`), each compiled once;
:func:`fastmlp._kernels.loss_grad` is inlined into the epoch kernels at
Numba IR level; and the epoch kernels, and L-BFGS's (:func:`full_batch_dense`),
come in a dense and a sparse variant, each a closure over a constant flag,
so a dense fit never compiles the CSR/CSC kernels (a test asserts it).

Prediction (:func:`predict_output`) is driven from Python, one call of
:func:`predict_chunk_dense` (or ``_sparse``) per chunk of rows, on the
network kernel the epochs compiled; the fits compile that entry too, so a
first prediction after a fit compiles nothing; a few rows go to the serial
:func:`fastmlp._kernels.predict_serial` instead.

Extension points (docs/ARCHITECTURE.md walks through each):

* an activation: its pair in :mod:`._activations`, its code (and
  ``NEEDS_PRE`` when its derivative reads the pre-activation) and name in
  :mod:`._codes`;
* an output head: a code, its output function as an activation code
  (``HEAD_ACTIVATIONS``), its loss in :func:`._kernels.output_head`;
* an optimizer or a weight decay: a branch of :func:`._optim.optimizer_step`,
  which is told whether a range holds weights or biases; a per-step
  learning rate: :func:`._optim.begin_step`;
* a per-sample weight (class weights): folded into the batch's ``sw``;
* anything that travels with a batch (a dropout mask's seed): a field of
  a bundle.
"""

import numpy as np
import scipy.sparse as sp

from ._bundles import (
    Batch,
    Params,
    Work,
    empty,
    make_batch,
    make_hyper,
    make_shape,
    make_work,
)
from ._codes import (
    ADAM,
    H64_EPOCH0,
    H64_EPOCH_STEPS,
    H64_RATE,
    H64_STEP0,
    H_CLIP,
    H_LR,
    NO_STEP,
    PREDICT,
    SPARSE_FORWARD,
)
from ._jit import call_by_symbol, entry_point, jit, ref
from ._kernels import (
    _call_gather_rows,
    _call_network,
    csr_to_csc,
    gather_csr,
    loss_grad,
    predict_serial,
    predict_serial_blocks,
)
from ._linalg import BR, _call_sparse_layer, _check_step_buffers, _n_tasks
from ._optim import begin_step

# Rows per chunk in prediction: bounds the work buffers (PREDICT_CHUNK rows
# per hidden layer) whatever the number of rows predicted.
PREDICT_CHUNK = 2048


def _specialise(func, name, sparse):
    """Compile ``func`` (a closure over the constants ``sparse`` and, for the
    epoch kernels, ``clip``) as its own kernel named ``name``: Numba prunes
    the branches it does not take, here and in the inlined kernels, so a
    dense fit never compiles the sparse-input kernels, nor a fit without
    clipping the clipping kernel. The name keeps the variants' cache files
    apart."""
    func.__name__ = func.__qualname__ = name
    func.__doc__ = func.__doc__.replace("{input}", "CSR" if sparse else "dense")
    return jit(cold=True)(func)


_call_gather_csr = call_by_symbol(gather_csr)
_call_csr_to_csc = call_by_symbol(csr_to_csc)


def _make_train_epoch(sparse, clip, dropout):
    def train_epoch(params, shape, data, buf, work, idx, shuffled, batch_size):
        """Run one epoch of mini-batch training on {input} input in place;
        return the loss sum. The ``_clip`` variants clip the gradient's norm
        where ``hyper[H_CLIP] > 0``, the ``_dropout`` ones run the network's
        dropout variant (:func:`fastmlp._kernels.loss_grad`).

        data : Batch, the training set; buf : Batch, the batch buffers
        (``batch_size`` rows); idx : (n,) int64, the epoch's sample order;
        ``shuffled=False`` promises ``idx == arange(n)``, so dense batches
        are read in place. Batches are ``idx[s:s + batch_size]`` in order;
        for each: gather its rows (a shuffled dense batch's inputs are
        gathered by the forward pass's tasks, see
        :func:`fastmlp._kernels.network`), start a step
        (:func:`fastmlp._optim.begin_step`), compute the loss and gradient
        and take the step (:func:`fastmlp._kernels.loss_grad`). Returns
        ``sum(batch_loss * batch_len)``, each batch loss taken before its
        update, as scikit-learn accumulates it.
        """
        params = ref(params)
        shape = ref(shape)
        data = ref(data)
        buf = ref(buf)
        work = ref(work)
        # every index names a row of data; the buffers hold batch_size rows
        Y = data.Y
        sw = data.sw
        X = data.X
        bY = buf.Y
        bsw = buf.sw
        bX = buf.X
        bptr = buf.indptr
        n_rows = Y.shape[0]
        fits = (batch_size >= 1 and sw.shape[0] == n_rows
                and bY.shape[0] >= batch_size and bY.shape[1] == Y.shape[1]
                and bsw.shape[0] >= batch_size and bptr.shape[0] >= 1
                and bX.shape[1] == X.shape[1]
                and (bX.shape[0] == 0 or bX.shape[0] >= batch_size)
                and (X.shape[0] == n_rows
                     or (X.shape[0] == 0 and data.indptr.shape[0] == n_rows + 1)))
        for i in range(idx.shape[0] if fits else 0):
            fits = fits and 0 <= idx[i] < n_rows
        if not fits:
            raise ValueError("fastmlp: the epoch's buffers do not fit its data")
        _check_step_buffers(params)
        n_samples = idx.shape[0]
        total = 0.0
        for start in range(0, n_samples, batch_size):
            n = min(batch_size, n_samples - start)
            if sparse:
                _call_gather_csr(data.data, data.indices, data.indptr, idx, start, n,
                                 buf.data, buf.indices, bptr)
                _call_csr_to_csc(buf.data, buf.indices, bptr[: n + 1], shape.units[0],
                                 buf.cdata, buf.crows, buf.cptr)
                xin = bX
                bidx = idx[:0]
            elif shuffled:
                # gathered by the forward pass's tasks (network), each its rows
                xin = bX[:n]
                bidx = idx[start : start + n]
            else:
                xin = X[start : start + n]
                bidx = idx[:0]
            _call_gather_rows(Y, idx, start, n, bY)
            for r in range(n):
                bsw[r] = sw[idx[start + r]]
            batch = ref(Batch(xin, X, bidx, buf.data, buf.indices, bptr[: n + 1],
                              buf.cdata, buf.crows, buf.cptr, bY, bsw,
                              idx[start : start + n], n))
            begin_step(params)
            loss = loss_grad(params, shape, batch, work, sparse, clip, dropout)
            total += loss * n
        return total

    name = ("train_epoch_" + ("sparse" if sparse else "dense") + ("_clip" if clip else "")
            + ("_dropout" if dropout else ""))
    return _specialise(train_epoch, name, sparse)


train_epoch_dense = _make_train_epoch(False, False, False)
train_epoch_sparse = _make_train_epoch(True, False, False)
train_epoch_dense_clip = _make_train_epoch(False, True, False)
train_epoch_sparse_clip = _make_train_epoch(True, True, False)
train_epoch_dense_dropout = _make_train_epoch(False, False, True)
train_epoch_sparse_dropout = _make_train_epoch(True, False, True)
train_epoch_dense_clip_dropout = _make_train_epoch(False, True, True)
train_epoch_sparse_clip_dropout = _make_train_epoch(True, True, True)
# (sparse, clip, dropout) -> the epoch kernel
TRAIN_EPOCHS = {
    (False, False, False): train_epoch_dense, (True, False, False): train_epoch_sparse,
    (False, True, False): train_epoch_dense_clip, (True, True, False): train_epoch_sparse_clip,
    (False, False, True): train_epoch_dense_dropout,
    (True, False, True): train_epoch_sparse_dropout,
    (False, True, True): train_epoch_dense_clip_dropout,
    (True, True, True): train_epoch_sparse_clip_dropout,
}


def _make_full_batch(sparse):
    def full_batch(params, shape, batch, work):
        """Loss and gradient of every row of a {input} input:
        :func:`fastmlp._kernels.loss_grad`, for L-BFGS, whose parameter
        bundle has ``solver=NO_STEP`` (a field, not a constant here: the
        kernels it calls would compile again for a literal type). A kernel
        of its own per input kind, as the epoch kernels are, so a dense
        L-BFGS fit does not compile the sparse-input kernels.
        """
        return loss_grad(params, shape, batch, work, sparse, False, False)

    return _specialise(full_batch, "full_batch_" + ("sparse" if sparse else "dense"), sparse)


full_batch_dense = _make_full_batch(False)
full_batch_sparse = _make_full_batch(True)


def _make_predict_chunk(sparse):
    def predict_chunk(shape, theta, X, data, indices, indptr, acts, no_rows, n):
        """The output layer's activations of ``n`` rows of a {input} input
        into ``acts`` (its block at ``shape.offsets[-1, OFF_A]``);
        ``no_rows`` is an empty float64 vector (the per-row loss).

        The prediction's entry from Python: it takes what a prediction reads
        and makes the bundles of the fits' types (empty fields, ``theta``
        for the optimizer's), so :func:`fastmlp._kernels._network` (after
        :func:`fastmlp._linalg._sparse_layer` for CSR ``data, indices,
        indptr``) runs the code the fits compiled, and the Python entry
        unboxes ten arrays rather than every field of four bundles.
        """
        one = theta.dtype.type(1)
        fe = theta[:0]
        ie = indices[:0]
        params = ref(Params(theta, theta, theta, theta, ie, theta, no_rows, np.int64(NO_STEP),
                            n < 0))
        batch = ref(Batch(X, X, ie, data, indices, indptr, fe, ie, indptr, X, fe, ie, n))
        work = ref(Work(acts, acts, fe, fe, no_rows, fe))
        shp = ref(shape)
        first = np.int64(0)
        if sparse:
            first = np.int64(1)
            _call_sparse_layer(np.int64(SPARSE_FORWARD), params, shp, batch, work, one)
        _call_network(np.int64(PREDICT), first, one, params, shp, batch, work)

    return _specialise(predict_chunk, "predict_chunk_" + ("sparse" if sparse else "dense"),
                       sparse)


predict_chunk_dense = _make_predict_chunk(False)
predict_chunk_sparse = _make_predict_chunk(True)


class Network:
    """What the kernels need to know of an architecture.

    Parameters
    ----------
    layout : Layout
        Sizes and offsets of the flat buffer.
    hidden_activations : sequence of int
        Activation code of each hidden layer.
    head : int
        Output head code.
    dtype : numpy dtype
        float32 or float64.
    """

    def __init__(self, layout, hidden_activations, head, dtype):
        self.layout = layout
        self.hidden = [int(a) for a in hidden_activations]
        self.head = int(head)
        self.dtype = np.dtype(dtype)

    def shape(self, rows):
        """The shape bundle for work buffers of ``rows`` rows per layer,
        and a work buffer's size."""
        return make_shape(self.layout, self.hidden, self.head, rows)

    def serial_args(self, theta):
        """The leading arguments of the serial kernels: ``(shape, theta)``."""
        return self.shape(0)[0], theta


# Largest buffer of gradient shares a fit allocates; see gradient_shares.
SHARES_MAX_BYTES = 1 << 20


def gradient_shares(n_rows, n_params, dtype):
    """A buffer for the row tasks' shares of the gradient, or an empty one.

    Batches of up to ``n_rows`` rows split into ``n_t`` row tasks
    (:func:`._linalg._n_tasks`); the kernels split the gradient by those
    rows, each task computing its share where its activations and deltas
    are in cache, when a buffer of ``(n_t - 1) * n_params`` elements is
    given (:func:`._kernels.network`). That pays on small networks and
    costs memory on large ones, so the buffer is given only when it takes
    at most :data:`SHARES_MAX_BYTES` (about a core's L2 cache, so the
    shares stay in it). The choice depends on the shapes, the batch size
    and the dtype only, never on the thread count.
    """
    # the Python function (a plain one already with NUMBA_DISABLE_JIT=1)
    n_tasks = getattr(_n_tasks, "py_func", _n_tasks)
    size = (int(n_tasks(int(n_rows), BR)) - 1) * int(n_params)
    if size <= 0 or size * np.dtype(dtype).itemsize > SHARES_MAX_BYTES:
        return empty(dtype)
    return np.zeros(size, dtype=dtype)


def _check_compressed(X):
    """Raise ValueError unless CSR/CSC ``X``'s index arrays are consistent.

    The kernels index ``W`` and their work buffers by these arrays without
    bounds checks, and scikit-learn's validation does not look inside them:
    an index out of range or a decreasing ``indptr`` (a hand-built or
    corrupted matrix) would read out of bounds, and scipy's own CSC-to-CSR
    conversion crashes the process on such a CSC matrix (so does
    scikit-learn's MLP). The checks and messages are those of scipy's
    ``check_format(full_check=True)``, done here on the arrays as they are:
    that method, or building a matrix to run it on, narrows int64 indices
    to int32 when they fit, two O(nnz) copies for nothing.
    """
    major, minor = X.shape if X.format == "csr" else X.shape[::-1]
    indptr, indices = X.indptr, X.indices
    if indptr.ndim != 1 or indices.ndim != 1 or X.data.ndim != 1:
        raise ValueError("data, indices, and indptr should be 1-D")
    if len(indptr) != major + 1:
        raise ValueError(f"index pointer size {len(indptr)} should be {major + 1}")
    if indptr[0] != 0:
        raise ValueError("index pointer should start with 0")
    if len(indices) != len(X.data):
        raise ValueError("indices and data should have the same size")
    nnz = indptr[-1]
    if nnz > len(indices):
        raise ValueError("Last value of index pointer should be less than the size of index "
                         "and data arrays")
    if nnz > 0:
        used = indices[:nnz]
        if used.max() >= minor:
            raise ValueError(f"indices must be < {minor}")
        if used.min() < 0:
            raise ValueError("indices must be >= 0")
        if np.diff(indptr).min() < 0:
            raise ValueError("indptr must be a non-decreasing sequence")


class Inputs:
    """An input matrix in kernel form: dense C-contiguous or CSR int64.

    The unused representation is a zero-size array of the right type, so
    every kernel sees the same argument types (one compilation per dtype).
    """

    def __init__(self, X, dtype):
        dtype = np.dtype(dtype)
        self.dtype = dtype
        self.n_rows, self.n_cols = X.shape
        self.is_sparse = sp.issparse(X)
        if self.is_sparse:
            if X.format in ("csr", "csc"):
                _check_compressed(X)
            X = sp.csr_matrix(X)
            self.X = np.zeros((0, self.n_cols), dtype=dtype)
            self.csr = (np.ascontiguousarray(X.data, dtype=dtype),
                        np.ascontiguousarray(X.indices, dtype=np.int64),
                        np.ascontiguousarray(X.indptr, dtype=np.int64))
        else:
            # Numba types a read-only array (joblib's memmaps) differently,
            # which would compile every kernel again: copy those instead.
            self.X = np.require(X, dtype=dtype, requirements=["C", "W"])
            self.csr = None

    def batch(self, Y, sw, csc=False):
        """A batch bundle of every row, with targets ``Y`` and sample
        weights ``sw``; ``csc=True`` adds a sparse input's CSC arrays."""
        csc_arrays = self.csc() if (csc and self.is_sparse) else None
        return make_batch(self.X, Y, sw, n=self.n_rows, csr=self.csr, csc=csc_arrays,
                          dtype=self.dtype)

    def csc(self):
        """CSC arrays (data, row indices, column pointers) of a sparse input."""
        data, indices, indptr = self.csr
        cd = np.empty_like(data)
        cr = np.empty(data.shape[0], dtype=np.int64)
        cp = np.empty(self.n_cols + 1, dtype=np.int64)
        csr_to_csc(data, indices, indptr, self.n_cols, cd, cr, cp)
        return cd, cr, cp


_SOLVER_DEFAULTS = dict(momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0)


class StochasticTrainer:
    """Mini-batch training of one network on one data set.

    Owns the bundles of the fit (parameters' gradient and optimizer state,
    batch buffers, work buffers), so an epoch allocates nothing.

    Parameters
    ----------
    net : Network
    inputs : Inputs
        Training inputs.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets, in the parameter dtype.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights (ones when the user gave none: multiplying by one and
        summing ones are exact, so this equals the unweighted formulas).
    batch_size : int
    solver : int
        ``SGD`` or ``ADAM``.
    nesterov : bool
        SGD's Nesterov momentum.
    **settings
        ``alpha``, ``learning_rate_init`` and the solver's own (``momentum``;
        ``beta_1``, ``beta_2``, ``epsilon``, scikit-learn's defaults where
        not given; ``dropout_seed`` with ``dropout``): :func:`._bundles.make_hyper`'s keywords,
        ``learning_rate_init`` for its ``learning_rate``.
    dropout : sequence of float, default=None
        Each hidden layer's dropout rate (None: no dropout).
    """

    def __init__(self, net, inputs, Y, sample_weight, batch_size, solver, *, nesterov=True,
                 dropout=None, **settings):
        dt = net.dtype
        self.net = net
        self.inputs = inputs
        Y = np.require(Y, dtype=dt, requirements=["C", "W"])
        sw = np.require(sample_weight, dtype=dt, requirements=["C", "W"])
        self.data = inputs.batch(Y, sw)
        self.batch_size = bs = int(batch_size)
        self.solver = int(solver)
        self.nesterov = bool(nesterov)
        settings["learning_rate"] = settings.pop("learning_rate_init")
        # scikit-learn's defaults for the settings not given
        self._hyper = {**_SOLVER_DEFAULTS, **settings}
        P = net.layout.size
        self.grad = np.zeros(P, dtype=dt)
        self.reset_optimizer()
        # the epoch kernel's entry point, bound at the first epoch
        self._epoch = self._theta_type = None
        prepare_predict(net, inputs.is_sparse)

        self.shape, size = net.shape(bs)
        if dropout is not None:
            self.shape = self.shape._replace(drop=make_shape(net.layout, net.hidden, net.head, 0,
                                                             dropout)[0].drop)
        self.work = make_work(self.shape, size, dt, shares=gradient_shares(bs, P, dt), rows=bs)
        k = inputs.n_cols
        Yb = np.zeros((bs, Y.shape[1]), dtype=dt)
        swb = np.zeros(bs, dtype=dt)
        if inputs.is_sparse:
            # The largest possible batch nnz: the bs densest rows.
            row_nnz = np.diff(inputs.csr[2])
            nnz_max = int(np.sort(row_nnz)[::-1][:bs].sum())
            csr = (np.zeros(nnz_max, dtype=dt), np.zeros(nnz_max, dtype=np.int64),
                   np.zeros(bs + 1, dtype=np.int64))
            csc = (np.zeros(nnz_max, dtype=dt), np.zeros(nnz_max, dtype=np.int64),
                   np.zeros(k + 1, dtype=np.int64))
            self.buffers = make_batch(None, Yb, swb, n=bs, csr=csr, csc=csc, dtype=dt,
                                      n_cols=k)
        else:
            self.buffers = make_batch(np.zeros((bs, k), dtype=dt), Yb, swb, n=bs)

    def reset_optimizer(self):
        """Zero the velocity / moments and the step count."""
        dt = self.net.dtype
        P = self.net.layout.size
        m1 = np.zeros(P, dtype=dt)
        m2 = np.zeros(P if self.solver == ADAM else 1, dtype=dt)
        hyper, hyper64 = make_hyper(dt, **self._hyper)
        # theta: the one given to each epoch (run_epoch)
        self.params = Params(empty(dt), self.grad, m1, m2, np.zeros(1, dtype=np.int64), hyper,
                             hyper64, self.solver, self.nesterov)

    @property
    def state1(self):
        """SGD's velocity or Adam's first moment, (P,)."""
        return self.params.m1

    @property
    def state2(self):
        """Adam's second moment, (P,) (one element for SGD)."""
        return self.params.m2

    @property
    def step(self):
        """The step count, a (1,) int64 array."""
        return self.params.step

    def set_learning_rate(self, lr):
        self.params.hyper[H_LR] = lr

    @property
    def learning_rate(self):
        return float(self.params.hyper[H_LR])

    def begin_epoch(self, epochs_done, n_samples):
        """Place the next epoch in a per-step schedule: ``epochs_done``
        epochs before it, of ``ceil(n_samples / batch_size)`` steps each
        (the schedule's unit), counted from the current step count."""
        h64 = self.params.hyper64
        h64[H64_EPOCH0] = epochs_done
        h64[H64_STEP0] = self.params.step[0]
        h64[H64_EPOCH_STEPS] = -(-int(n_samples) // self.batch_size)

    @property
    def rate_reached(self):
        """The base learning rate of the last step under a per-step
        schedule (before Adam's bias correction), float64."""
        return float(self.params.hyper64[H64_RATE])

    def _args(self, theta, idx, shuffled):
        return (self.params._replace(theta=theta), self.shape, self.data, self.buffers,
                self.work, np.require(idx, np.int64, ["C", "W"]), bool(shuffled),
                self.batch_size)

    def prepare(self, theta):
        """Bind the epoch kernel for ``theta``'s type, compiling it (or
        loading it from the cache) now rather than in the first epoch, so
        that epoch's time is training time only."""
        args = self._args(theta, np.zeros(0, dtype=np.int64), False)
        if self._epoch is None or self._theta_type != (theta.dtype, theta.flags.writeable,
                                                       theta.flags.c_contiguous):
            clip = bool(self.params.hyper[H_CLIP] > 0)
            dropout = self.work.dropped.shape[0] > 0
            epoch = TRAIN_EPOCHS[self.inputs.is_sparse, clip, dropout]
            self._epoch = entry_point(epoch, args)
            self._theta_type = (theta.dtype, theta.flags.writeable, theta.flags.c_contiguous)

    def run_epoch(self, theta, idx, shuffled=True):
        """One epoch over samples in the order ``idx``; returns the mean loss.

        ``theta`` is updated in place. ``shuffled=False`` promises that
        ``idx`` is ``arange(n)`` so dense batches are read in place.
        """
        self.prepare(theta)
        return self._epoch(*self._args(theta, idx, shuffled)) / idx.shape[0]


class FullBatchObjective:
    """Loss and gradient over the whole data set, for L-BFGS.

    Calling it with a float64 vector (scipy's iterate) returns
    ``(loss, gradient)``; the gradient is a fresh float64 array because
    scipy keeps references to earlier gradients.
    """

    def __init__(self, net, inputs, Y, sample_weight, alpha):
        dt = net.dtype
        n = inputs.n_rows
        P = net.layout.size
        Y = np.require(Y, dtype=dt, requirements=["C", "W"])
        sw = np.require(sample_weight, dtype=dt, requirements=["C", "W"])
        self.kernel = full_batch_sparse if inputs.is_sparse else full_batch_dense
        self.batch = inputs.batch(Y, sw, csc=True)
        self.shape, size = net.shape(n)
        self.work = make_work(self.shape, size, dt, shares=gradient_shares(n, P, dt), rows=n)
        self.theta = np.zeros(P, dtype=dt)
        hyper, hyper64 = make_hyper(dt, alpha=alpha)
        # no optimizer state: the state fields get theta, of their type
        self.params = Params(self.theta, np.zeros(P, dtype=dt), self.theta, self.theta,
                             np.zeros(1, dtype=np.int64), hyper, hyper64, NO_STEP, False)

        self.kernel = entry_point(self.kernel, (self.params, self.shape, self.batch, self.work))
        prepare_predict(net, inputs.is_sparse)

    def __call__(self, x):
        self.theta[...] = x
        loss = self.kernel(self.params, self.shape, self.batch, self.work)
        return loss, self.params.grad.astype(np.float64)


def predict_serial_output(net, theta, X):
    """:func:`predict_output` for a few dense rows, on the calling thread.

    X : C-contiguous, writeable ndarray of the parameter dtype (Numba types
    read-only arrays apart, which would compile the kernel again).
    The same result as :func:`predict_output` to rounding; meant for the
    predictions :func:`._threads.serial_predict_max_rows` allows, where
    thread launches and BLAS packing dominate.
    """
    out = np.empty((X.shape[0], int(net.layout.units[-1])), dtype=net.dtype)
    predict_serial_rows(net.serial_args(theta), X, out)
    return out


def predict_serial_rows(args, X, out):
    """The serial kernels over the rows of ``X``, into ``out``.

    ``args`` are the kernels' leading arguments (:meth:`Network.serial_args`);
    ``out`` a new C-ordered array of the parameters' dtype, (n, n_outputs).
    The largest multiple of 4 rows goes through
    :func:`._kernels.predict_serial_blocks` (four rows per pass over the
    weights), the rest through :func:`._kernels.predict_serial`; both give
    a row the same bits. Returns whether every element of ``X`` is finite.
    """
    n = X.shape[0]
    n4 = n - n % 4
    if n4 == 0:
        return _serial(predict_serial, args, X, out)(*args, X, out)
    blocks = _serial(predict_serial_blocks, args, X, out)
    finite = blocks(*args, X[:n4], out[:n4])
    if n4 < n:
        finite = _serial(predict_serial, args, X, out)(*args, X[n4:], out[n4:]) and finite
    return finite


# The serial kernels' entry points (see _jit.entry_point) by dtype, made
# at their first use.
_SERIAL = {predict_serial: {}, predict_serial_blocks: {}}


def _serial(kernel, args, X, out):
    """``kernel`` (a serial prediction kernel) for these arguments: its
    entry point where ``X`` is a C-contiguous, aligned, writeable array of
    the parameters' dtype (the types it is bound to; ``out`` is the
    callers' ``np.empty`` of that dtype), else the dispatcher."""
    dtype = X.dtype
    bound_by_dtype = _SERIAL.get(kernel)
    if bound_by_dtype is None or dtype is not args[1].dtype or not X.flags.carray:
        return kernel
    bound = bound_by_dtype.get(dtype)
    if bound is None:
        bound = bound_by_dtype[dtype] = entry_point(kernel, (*args, X, out))
    return bound


def predict_output(net, theta, inputs):
    """Output activations of every row of an input.

    Chunks of :data:`PREDICT_CHUNK` rows go through the network one call
    each, from Python, on the training path's own compiled kernels
    (:func:`._kernels._network` PREDICT, after :func:`._linalg._sparse_layer`
    for a sparse input's first layer), through :func:`predict_chunk_dense`
    (or ``_sparse``), which the fits compile (:func:`prepare_predict`): a
    prediction after a fit in the same dtype and input kind compiles
    nothing. A compiled loop over the chunks would cost a few microseconds
    less per chunk.

    Parameters
    ----------
    net : Network
        The architecture.
    theta : ndarray of shape (net.layout.size,)
        The flat parameter buffer, C-contiguous, writeable, ``net.dtype``.
    inputs : Inputs
        The rows to predict, in ``net.dtype``.

    Returns
    -------
    out : ndarray of shape (inputs.n_rows, n_outputs)
        The output layer's activations, in ``net.dtype``.
    """
    L = net.layout
    units = L.units.tolist()
    if inputs.n_cols != units[0] or theta.shape != (L.size,):
        raise ValueError("fastmlp: the input or parameters do not fit the network")
    n = inputs.n_rows
    chunk = max(1, min(n, PREDICT_CHUNK))
    out = np.empty((n, units[-1]), dtype=net.dtype)
    bundles = _predict_bundles(net, theta, chunk)
    work = bundles[1]
    last = int(bundles[0].offsets[-1, 2])
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows = stop - start
        kernel, args = _chunk_call(inputs, start, stop, bundles)
        kernel(*args)
        out[start:stop] = work.acts[last : last + rows * units[-1]].reshape(rows, units[-1])
    return out


def _predict_bundles(net, theta, chunk):
    """What :func:`predict_output` passes for chunks of up to ``chunk``
    rows: ``(shape, work, theta)``."""
    shape, size = net.shape(chunk)
    return shape, make_work(shape, size, net.dtype, train=False), theta


def _chunk_call(inputs, start, stop, bundles):
    """The kernel call, ``(kernel, args)``, that predicts rows
    ``start:stop`` of ``inputs`` into ``bundles``' work buffers."""
    shape, work, theta = bundles
    if inputs.is_sparse:
        data, indices, indptr = inputs.csr
        return predict_chunk_sparse, (shape, theta, inputs.X, data, indices,
                                      indptr[start:stop + 1], work.acts, work.row_loss,
                                      stop - start)
    batch = make_batch(inputs.X[start:stop])
    return predict_chunk_dense, (shape, theta, batch.X, batch.data, batch.indices,
                                 batch.indptr, work.acts, work.row_loss, stop - start)


def prepare_predict(net, sparse):
    """Compile, or load from the cache, the kernels :func:`predict_output`
    calls for ``net``'s dtype and a dense (or ``sparse``) input, without
    running them. The fits call it, so a prediction after a fit compiles
    nothing."""
    key = (net.dtype, bool(sparse))
    if key in _PREPARED:  # the argument types depend on nothing else
        return
    X = np.zeros((1, int(net.layout.units[0])), dtype=net.dtype)
    inputs = Inputs(sp.csr_matrix(X) if sparse else X, net.dtype)
    theta = np.zeros(net.layout.size, dtype=net.dtype)
    entry_point(*_chunk_call(inputs, 0, 1, _predict_bundles(net, theta, 1)))
    _PREPARED.add(key)


_PREPARED = set()
