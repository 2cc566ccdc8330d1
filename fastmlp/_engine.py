"""Training and prediction engine: compiled epochs and their Python drivers.

One epoch (every mini-batch of a given sample order: gather, forward, loss,
backward, optimizer update) runs inside ONE compiled call,
:func:`train_epoch_dense` or :func:`train_epoch_sparse`, so Python is
entered once per epoch. The Python side
here allocates the work buffers once per fit and hands the kernels plain
arrays. It knows nothing of scikit-learn: schedules, early stopping,
warnings and the random stream that orders samples live in the estimators.

Compilation. A first fit from an empty cache is dominated by compiling,
and what costs is LLVM re-optimising and re-generating machine code: Numba
links a callee's whole module into each compiled caller and optimises and
generates code for the result again, so a kernel called through three
levels of compiled functions is compiled four times over. Three measures
keep the first dense adam fit smaller:

* the kernels a batch runs through call each other by symbol
  (:func:`._jit.call_by_symbol`): the epoch kernel calls
  :func:`._kernels.network`, whose parallel loop calls its task function,
  which calls :func:`._linalg._layer_task`, each one compiled once in a
  module of its own. Linked, the task's code was optimised and turned into
  machine code seven times (its own module, the ``prange`` body's and its
  two wrappers', the network's, the epoch's): a first fit on digits from an
  empty cache took 8.4-8.8 s, by symbol 5.6-5.9 s (interleaved processes,
  both dtypes, Zen 4 machine of bench/README.md), and LLVM's part of it
  fell from 5.0 to 2.5 s;
* the sequencing kernel (:func:`._kernels.loss_grad`) is inlined into
  the epoch kernels at Numba IR level, so it is not a separate level;
* the epoch kernels, and L-BFGS's (:func:`full_batch_dense`), come in a
  dense and a sparse variant, each a closure over a constant flag: Numba
  prunes the branches of the other input kind, so a dense fit never
  compiles the CSR/CSC kernels (a test asserts it on an empty cache). Each
  variant is its own kernel with one signature per dtype. (These two,
  measured on an older machine before the first: 31-35 s against 36-41 s;
  L-BFGS got its variants later: a first dense fit 5.7-6.0 s against
  9.6 s.)

Prediction (:func:`predict_output`) is driven from Python, one call per
chunk of rows, on the network kernel the epochs already compiled, so that
a first prediction after a fit compiles nothing; a few rows go to the
serial :func:`._kernels.predict_serial` instead.

Extension points (each an addition, not a rewrite):

* a hidden activation: a code in :mod:`._codes` and a branch in
  :func:`._activations.activate` / :func:`._activations.derivative`; the
  per-layer ``acts_code`` array already allows a different one per layer;
* an output head: a code in :mod:`._codes`, its output function as an
  activation code (a branch in :func:`._activations.activate`, an entry in
  ``HEAD_ACTIVATIONS``), and its loss in :func:`._kernels.output_head`;
* an optimizer (RMSprop, AdamW, ...): a code and a branch in
  :func:`._optim.optimizer_step`, over a range of the flat buffers
  ``state1``/``state2`` (same layout as ``theta``); the gradient kernels
  call it on each block as soon as its gradient is written. Decoupled
  weight decay can tell weights from biases by the offsets
  (:meth:`Layout.weights_mask`);
* class weights: folded into the sample-weight array, no kernel change;
* gradient clipping: it needs the whole gradient before any step, so
  ``loss_grad`` with ``NO_STEP``, then a norm over ``grad`` and one
  :func:`._optim.optimizer_step` over the whole buffer in the epoch kernel;
* dropout: a per-layer rate array and masks from a counter-based hash of
  (epoch seed, sample index, layer, unit), e.g. splitmix64, so a mask does
  not depend on which thread computes it. The epoch seed comes from the
  estimator's random state, drawn only when dropout is on, so that without
  dropout the stream stays scikit-learn's (initial weights, split, shuffles).
"""

import numpy as np
import scipy.sparse as sp

from ._codes import (
    ADAM,
    H_ALPHA,
    H_BETA1,
    H_BETA2,
    H_EPSILON,
    H_LOG_EPS,
    H_LR,
    H_LR_T,
    H_MOMENTUM,
    H_ONE_MINUS_BETA1,
    H_ONE_MINUS_BETA2,
    HEAD_ACTIVATIONS,
    N_HYPER,
    NO_STEP,
)
from ._jit import jit
from ._kernels import (
    PREDICT,
    csr_to_csc,
    gather_csr,
    gather_rows,
    loss_grad,
    network,
    predict_serial,
    predict_serial_blocks,
)
from ._linalg import BR, SPARSE_FORWARD, _n_tasks, sparse_layer
from ._optim import adam_step_size

# Rows per chunk in prediction: bounds the work buffers (PREDICT_CHUNK rows
# per hidden layer) whatever the number of rows predicted.
PREDICT_CHUNK = 2048


def _specialise(func, name, sparse):
    """Compile ``func`` (a closure over the constant ``sparse``) as its own
    kernel named ``name``: Numba prunes the ``if sparse`` branches it does
    not take, here and in the inlined kernels, so a dense fit never compiles
    the sparse-input kernels (CSR gather, CSR-to-CSC, the first layer's
    :func:`._linalg.sparse_layer`). The name keeps the variants' cache
    files apart."""
    func.__name__ = func.__qualname__ = name
    func.__doc__ = func.__doc__.replace("{input}", "CSR" if sparse else "dense")
    return jit()(func)


def _make_train_epoch(sparse):
    def train_epoch(theta, grad, state1, state2, step, units, w_off, b_off, acts_code,
                    head, solver, nesterov, hyper, lr_init64, beta1_64, beta2_64,
                    X, xd, xi, xp, Y, sw, idx, shuffled, batch_size,
                    Xb, bd, bi, bp, cd, cr, cp, Yb, swb, acts, deltas, a_off, row_loss,
                    shares):
        """Run one epoch of mini-batch training on {input} input in place;
        return the loss sum.

        Batches are ``idx[s:s + batch_size]`` in order (``idx`` is the epoch's
        sample order, int64). For each batch: gather its rows (a shuffled
        dense batch's inputs are gathered by the forward pass's tasks, see
        :func:`fastmlp._kernels.network`), compute the loss and gradient and
        take one optimizer step
        (:func:`fastmlp._kernels.loss_grad`; ``solver`` SGD: ``state1`` is the
        velocity; ADAM: ``state1``/``state2`` are the moments and ``step[0]``
        the step count, incremented per batch; ``shares`` see
        :func:`gradient_shares`). Returns ``sum(batch_loss * batch_len)``, each
        batch loss taken before its update, as scikit-learn accumulates it.
        """
        n_samples = idx.shape[0]
        total = 0.0
        for start in range(0, n_samples, batch_size):
            n = min(batch_size, n_samples - start)
            if sparse:
                gather_csr(xd, xi, xp, idx, start, n, bd, bi, bp)
                csr_to_csc(bd, bi, bp[: n + 1], units[0], cd, cr, cp)
                xin = Xb
                bidx = idx[:0]
            elif shuffled:
                # gathered by the forward pass's tasks (network), each its rows
                xin = Xb[:n]
                bidx = idx[start : start + n]
            else:
                xin = X[start : start + n]
                bidx = idx[:0]
            gather_rows(Y, idx, start, n, Yb)
            for r in range(n):
                swb[r] = sw[idx[start + r]]
            if solver == ADAM:
                step[0] += 1
                hyper[H_LR_T] = adam_step_size(lr_init64, beta1_64, beta2_64, step[0])
            loss = loss_grad(theta, grad, state1, state2, solver, nesterov, hyper, units,
                             w_off, b_off, acts_code, head, sparse, xin, bd, bi, bp[: n + 1],
                             cd, cr, cp, Yb, swb, n, acts, deltas, a_off, row_loss, X, bidx,
                             shares)
            total += loss * n
        return total

    return _specialise(train_epoch, "train_epoch_" + ("sparse" if sparse else "dense"), sparse)


train_epoch_dense = _make_train_epoch(False)
train_epoch_sparse = _make_train_epoch(True)


def _make_full_batch(sparse):
    def full_batch(theta, grad, solver, nesterov, hyper, units, w_off, b_off, acts_code,
                   head, X, xd, xi, xp, cd, cr, cp, Y, sw, n, acts, deltas, a_off, row_loss,
                   bidx, shares):
        """Loss and gradient of all ``n`` rows of a {input} input:
        :func:`fastmlp._kernels.loss_grad`, for L-BFGS, which passes
        ``solver=NO_STEP`` (an argument, not a constant here: the kernels
        it calls would compile again for a literal type).

        A kernel of its own per input kind, as the epoch kernels are, so a
        dense L-BFGS fit does not compile the sparse-input kernels
        (:func:`_specialise`): a first dense fit from an empty cache
        compiled for ~3 s longer when it called ``loss_grad`` from Python
        with the input kind as an argument. ``bidx`` is an empty int64
        array (the rows are not gathered); ``shares`` see
        :func:`gradient_shares`.
        """
        return loss_grad(theta, grad, theta, theta, solver, nesterov, hyper, units, w_off,
                         b_off, acts_code, head, sparse, X, xd, xi, xp, cd, cr, cp, Y, sw, n,
                         acts, deltas, a_off, row_loss, X, bidx, shares)

    return _specialise(full_batch, "full_batch_" + ("sparse" if sparse else "dense"), sparse)


full_batch_dense = _make_full_batch(False)
full_batch_sparse = _make_full_batch(True)


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
        self.acts_code = np.asarray(hidden_activations, dtype=np.int64)
        if self.acts_code.size == 0:  # Numba needs a typed, non-empty array
            self.acts_code = np.zeros(1, dtype=np.int64)
        self.head = int(head)
        self.dtype = np.dtype(dtype)

    def work_offsets(self, n_rows):
        """Offsets of each layer's (n_rows, units) block in a work buffer,
        and the buffer's size."""
        sizes = n_rows * self.layout.units[1:]
        a_off = np.zeros(len(sizes), dtype=np.int64)
        a_off[1:] = np.cumsum(sizes)[:-1]
        # read-only, as the kernels were compiled for (Numba types it apart)
        a_off.flags.writeable = False
        return a_off, int(sizes.sum())


_EMPTY = {dt: np.zeros(0, dtype=dt) for dt in (np.float32, np.float64, np.int64)}
_EMPTY_INDPTR = np.zeros(1, dtype=np.int64)

# Largest buffer of gradient shares a fit allocates; see gradient_shares.
SHARES_MAX_BYTES = 1 << 20


def gradient_shares(n_rows, n_params, dtype):
    """A buffer for the row tasks' shares of the gradient, or an empty one.

    Batches of up to ``n_rows`` rows split into ``n_t`` row tasks
    (:func:`._linalg._n_tasks`); the kernels split the gradient by those
    rows, each task computing its share where its activations and deltas
    are in cache, when a buffer of ``(n_t - 1) * n_params`` elements is
    given (:func:`._kernels.network` has the measurements). That pays on
    small networks and costs memory on large ones, so the buffer is given
    only when it takes at most :data:`SHARES_MAX_BYTES` (about a core's L2
    cache, so the shares stay in it): W1 and W2 of bench/README.md in
    either dtype, not W3. The choice depends on the shapes, the batch size
    and the dtype only, never on the thread count, so results do not
    depend on the thread count either.
    """
    # the Python function (a plain one already with NUMBA_DISABLE_JIT=1)
    n_tasks = getattr(_n_tasks, "py_func", _n_tasks)
    size = (int(n_tasks(int(n_rows), BR)) - 1) * int(n_params)
    if size <= 0 or size * np.dtype(dtype).itemsize > SHARES_MAX_BYTES:
        return _EMPTY[np.dtype(dtype).type]
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
        self.n_rows, self.n_cols = X.shape
        self.is_sparse = sp.issparse(X)
        if self.is_sparse:
            if X.format in ("csr", "csc"):
                _check_compressed(X)
            X = sp.csr_matrix(X)
            self.X = np.zeros((0, self.n_cols), dtype=dtype)
            self.data = np.ascontiguousarray(X.data, dtype=dtype)
            self.indices = np.ascontiguousarray(X.indices, dtype=np.int64)
            self.indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
        else:
            # Numba types a read-only array (joblib's memmaps) differently,
            # which would compile every kernel again: copy those instead.
            self.X = np.require(X, dtype=dtype, requirements=["C", "W"])
            self.data = _EMPTY[dtype.type]
            self.indices = _EMPTY[np.int64]
            self.indptr = _EMPTY_INDPTR

    def args(self):
        """The kernels' input arguments ``(X, data, indices, indptr)``."""
        return self.X, self.data, self.indices, self.indptr

    def csc(self):
        """CSC arrays (data, row indices, column pointers) of a sparse input."""
        cd = np.empty_like(self.data)
        cr = np.empty(self.data.shape[0], dtype=np.int64)
        cp = np.empty(self.n_cols + 1, dtype=np.int64)
        csr_to_csc(self.data, self.indices, self.indptr, self.n_cols, cd, cr, cp)
        return cd, cr, cp


def make_hyper(dtype, *, learning_rate=0.0, momentum=0.0, beta_1=0.0, beta_2=0.0,
               epsilon=0.0, alpha=0.0):
    """The ``hyper`` array of the kernels, in the parameter dtype.

    ``1 - beta`` is formed in float64 then rounded to the dtype, as
    scikit-learn's ``(1 - self.beta_1) * grad`` does for float32 arrays.
    """
    hyper = np.zeros(N_HYPER, dtype=dtype)
    hyper[H_LR] = learning_rate
    hyper[H_MOMENTUM] = momentum
    hyper[H_BETA1] = beta_1
    hyper[H_ONE_MINUS_BETA1] = 1 - beta_1
    hyper[H_BETA2] = beta_2
    hyper[H_ONE_MINUS_BETA2] = 1 - beta_2
    hyper[H_EPSILON] = epsilon
    hyper[H_ALPHA] = alpha
    hyper[H_LOG_EPS] = np.finfo(dtype).eps
    return hyper


class StochasticTrainer:
    """Mini-batch training of one network on one data set.

    Owns the gradient, optimizer state and work buffers for the fit, so an
    epoch allocates nothing.

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
    """

    def __init__(self, net, inputs, Y, sample_weight, batch_size, solver, *, alpha,
                 learning_rate_init, momentum=0.9, nesterov=True, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8):
        dt = net.dtype
        self.net = net
        self.inputs = inputs
        self.Y = np.require(Y, dtype=dt, requirements=["C"])
        self.sw = np.require(sample_weight, dtype=dt, requirements=["C"])
        self.batch_size = int(batch_size)
        self.solver = int(solver)
        self.nesterov = bool(nesterov)
        self.learning_rate_init = float(learning_rate_init)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.hyper = make_hyper(dt, learning_rate=learning_rate_init, momentum=momentum,
                                beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, alpha=alpha)
        P = net.layout.size
        self.grad = np.zeros(P, dtype=dt)
        self.shares = gradient_shares(self.batch_size, P, dt)
        self.reset_optimizer()

        bs = self.batch_size
        k = inputs.n_cols
        self.a_off, size = net.work_offsets(bs)
        self.acts = np.zeros(size, dtype=dt)
        self.deltas = np.zeros(size, dtype=dt)
        self.row_loss = np.zeros(bs, dtype=np.float64)
        self.Yb = np.zeros((bs, self.Y.shape[1]), dtype=dt)
        self.swb = np.zeros(bs, dtype=dt)
        if inputs.is_sparse:
            # The largest possible batch nnz: the bs densest rows.
            row_nnz = np.diff(inputs.indptr)
            nnz_max = int(np.sort(row_nnz)[::-1][:bs].sum())
            self.Xb = np.zeros((0, k), dtype=dt)
            self.bd = np.zeros(nnz_max, dtype=dt)
            self.bi = np.zeros(nnz_max, dtype=np.int64)
            self.bp = np.zeros(bs + 1, dtype=np.int64)
            self.cd = np.zeros(nnz_max, dtype=dt)
            self.cr = np.zeros(nnz_max, dtype=np.int64)
            self.cp = np.zeros(k + 1, dtype=np.int64)
        else:
            self.Xb = np.zeros((bs, k), dtype=dt)
            self.bd = self.cd = np.zeros(0, dtype=dt)
            self.bi = self.cr = np.zeros(0, dtype=np.int64)
            self.bp = np.zeros(1, dtype=np.int64)
            self.cp = np.zeros(1, dtype=np.int64)

    def reset_optimizer(self):
        """Zero the velocity / moments and Adam's step count."""
        P = self.net.layout.size
        self.state1 = np.zeros(P, dtype=self.net.dtype)
        self.state2 = np.zeros(P if self.solver == ADAM else 1, dtype=self.net.dtype)
        self.step = np.zeros(1, dtype=np.int64)

    def set_learning_rate(self, lr):
        self.hyper[H_LR] = lr

    @property
    def learning_rate(self):
        return float(self.hyper[H_LR])

    def run_epoch(self, theta, idx, shuffled=True):
        """One epoch over samples in the order ``idx``; returns the mean loss.

        ``theta`` is updated in place. ``shuffled=False`` promises that
        ``idx`` is ``arange(n)`` so dense batches are read in place.
        """
        net = self.net
        inp = self.inputs
        L = net.layout
        epoch = train_epoch_sparse if inp.is_sparse else train_epoch_dense
        total = epoch(
            theta, self.grad, self.state1, self.state2, self.step, L.units, L.w_off,
            L.b_off, net.acts_code, net.head, self.solver, self.nesterov, self.hyper,
            self.learning_rate_init, self.beta_1, self.beta_2, *inp.args(), self.Y,
            self.sw, np.ascontiguousarray(idx, dtype=np.int64), bool(shuffled),
            self.batch_size, self.Xb, self.bd, self.bi, self.bp, self.cd, self.cr,
            self.cp, self.Yb, self.swb, self.acts, self.deltas, self.a_off,
            self.row_loss, self.shares)
        return total / idx.shape[0]


class FullBatchObjective:
    """Loss and gradient over the whole data set, for L-BFGS.

    Calling it with a float64 vector (scipy's iterate) returns
    ``(loss, gradient)``; the gradient is a fresh float64 array because
    scipy keeps references to earlier gradients.
    """

    def __init__(self, net, inputs, Y, sample_weight, alpha):
        dt = net.dtype
        self.net = net
        self.inputs = inputs
        n = inputs.n_rows
        self.Y = np.require(Y, dtype=dt, requirements=["C"])
        self.sw = np.require(sample_weight, dtype=dt, requirements=["C"])
        self.hyper = make_hyper(dt, alpha=alpha)
        self.a_off, size = net.work_offsets(n)
        self.acts = np.zeros(size, dtype=dt)
        self.deltas = np.zeros(size, dtype=dt)
        self.row_loss = np.zeros(n, dtype=np.float64)
        self.theta = np.zeros(net.layout.size, dtype=dt)
        self.grad = np.zeros(net.layout.size, dtype=dt)
        self.shares = gradient_shares(n, net.layout.size, dt)
        if inputs.is_sparse:
            self.csc = inputs.csc()
        else:
            self.csc = (inputs.data, inputs.indices, inputs.indptr)

    def __call__(self, x):
        net = self.net
        L = net.layout
        self.theta[...] = x
        kernel = full_batch_sparse if self.inputs.is_sparse else full_batch_dense
        loss = kernel(self.theta, self.grad, NO_STEP, False, self.hyper, L.units, L.w_off,
                      L.b_off, net.acts_code, net.head, *self.inputs.args(), *self.csc, self.Y,
                      self.sw, self.inputs.n_rows, self.acts, self.deltas, self.a_off,
                      self.row_loss, _EMPTY[np.int64], self.shares)
        return loss, self.grad.astype(np.float64)


def predict_serial_output(net, theta, X):
    """:func:`predict_output` for a few dense rows, on the calling thread.

    X : C-contiguous, writeable ndarray of the parameter dtype (Numba types
    read-only arrays apart, which would compile the kernel again).
    The same result as :func:`predict_output` to rounding; meant for the
    predictions :func:`._threads.serial_predict_max_rows` allows, where
    thread launches and BLAS packing dominate.
    """
    L = net.layout
    out = np.empty((X.shape[0], int(L.units[-1])), dtype=net.dtype)
    predict_serial_rows((theta, L.units, L.w_off, L.b_off, net.acts_code, net.head), X, out)
    return out


def predict_serial_rows(args, X, out):
    """The serial kernels over the rows of ``X``, into ``out``.

    ``args`` are the kernels' leading arguments (theta, units, w_off, b_off,
    acts_code, head). The largest multiple of 4 rows goes through
    :func:`._kernels.predict_serial_blocks` (four rows per pass over the
    weights), the rest through :func:`._kernels.predict_serial`; both give
    a row the same bits. Returns whether every element of ``X`` is finite.
    """
    n = X.shape[0]
    n4 = n - n % 4
    if n4 == 0:
        return predict_serial(*args, X, out)
    finite = predict_serial_blocks(*args, X[:n4], out[:n4])
    if n4 < n:
        finite = predict_serial(*args, X[n4:], out[n4:]) and finite
    return finite


def predict_output(net, theta, inputs):
    """Output activations of every row of an input.

    Chunks of :data:`PREDICT_CHUNK` rows go through the network one call
    each, from Python, on the training path's own compiled kernels:
    :func:`._kernels.network` (PREDICT: one parallel loop whose tasks carry
    a block of rows through every layer, the output layer applying the
    head's activation), after :func:`._linalg.sparse_layer` for a
    sparse input's first layer, with the argument types the epoch kernels
    give them (a test checks it). So a prediction after a fit in the same
    dtype and input kind compiles nothing, where a compiled chunk loop
    would link those kernels into a module of its own and optimise them
    again (~1.5 s at a first prediction from an empty cache, against a few
    microseconds of Python per chunk).

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
    dtype = net.dtype
    n = inputs.n_rows
    chunk = max(1, min(n, PREDICT_CHUNK))
    out = np.empty((n, units[-1]), dtype=dtype)
    a_off, size = net.work_offsets(chunk)
    acts = np.empty(size, dtype=dtype)
    last = int(a_off[-1])
    X, xd, xi, xp = inputs.args()
    sparse = inputs.is_sparse
    if sparse:
        act0 = net.acts_code[0] if len(units) > 2 else np.int64(HEAD_ACTIVATIONS[net.head])
    one = dtype.type(1)
    no_rows = _EMPTY[dtype.type]
    no_loss = _EMPTY[np.float64]
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows = stop - start
        if sparse:
            A0 = acts[: rows * units[1]].reshape(rows, units[1])
            sparse_layer(SPARSE_FORWARD, xd, xi, xp[start : stop + 1], units[0], theta, theta,
                         theta, theta, L.w_off[0], L.b_off[0], A0, A0, act0, NO_STEP, False,
                         theta, one)
        A = X if sparse else X[start:stop]
        # The training arguments PREDICT does not read get arrays of their
        # types (theta, the input, empty vectors), as the epoch kernels'.
        network(PREDICT, int(sparse), rows, theta, theta, theta, theta, NO_STEP, False,
                theta, one, L.units, L.w_off, L.b_off, net.acts_code, net.head, A, A,
                no_rows, acts, acts, a_off, no_loss, A, _EMPTY[np.int64], no_rows)
        out[start:stop] = acts[last : last + rows * units[-1]].reshape(rows, units[-1])
    return out
