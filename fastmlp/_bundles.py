"""The bundles the compiled kernels take, and the one place that builds them.

A kernel takes a few bundles instead of dozens of positional arrays, so a
new feature adds a field here, not an argument to every signature of the
call chain:

``Shape``
    the network: layer sizes, one offsets table for parameters and work
    buffers, per-layer activation codes, the output head.
``Params``
    the flat parameters and everything an optimizer step reads or writes:
    the gradient, the two state buffers, the step count, the
    hyper-parameters.
``Batch``
    the rows a kernel works on: dense rows or CSR (and CSC) arrays,
    targets, sample weights, and the indices of rows still to gather.
``Work``
    the work buffers of a batch: activations, deltas, pre-activations,
    per-row losses, gradient shares.

They are ``collections.namedtuple`` classes, which Numba types as tuples:
a field is read as cheaply as an argument, compiled code can make a
bundle of slices per mini-batch, and the kernels' signatures and cache
entries stay plain data. A ``numba.experimental.structref`` would also do,
but it is a mutable heap object with boxing code of its own to compile,
and one made in Python types apart from one made in compiled code unless
both go through the same constructor; bench/README.md gives the compile
times measured for both. Nothing here is ever stored on an estimator.

Compiled code passes a bundle on as a reference (:func:`fastmlp._jit.ref`,
one pointer): Numba passes a named tuple as every field of every array in
it, and counts a reference to each array wherever one is bound to a
variable, code that a first fit would compile again in every function of
the call chain. Python calls kernels with the named tuples themselves.

Every array of a bundle is C-contiguous and writeable, and every float
array has the parameter dtype (float32 or float64; ``Work.row_loss`` and
``Params.hyper64`` are float64): a bundle made in Python then has exactly
the Numba type of one the epoch kernels make, so a prediction after a fit
compiles nothing new.
"""

from collections import namedtuple

import numpy as np

from ._codes import (
    ADAM,
    H64_BETA1,
    H64_BETA2,
    H64_DROP_SEED,
    H64_HORIZON,
    H64_LR_INIT,
    H64_SCHEDULE,
    H64_WARMUP,
    H_ALPHA,
    H_BASE_LR,
    H_BETA1,
    H_BETA2,
    H_CLIP,
    H_EPSILON,
    H_LOG_EPS,
    H_LR,
    H_MOMENTUM,
    H_ONE_MINUS_BETA1,
    H_ONE_MINUS_BETA2,
    H_WEIGHT_DECAY,
    N_HYPER,
    N_HYPER64,
    NEEDS_PRE,
    NO_STEP,
    OFF_A,
    OFF_B,
    OFF_W,
)

Shape = namedtuple("Shape", ["units", "offsets", "acts", "drop", "head"])
Shape.__doc__ = """The network's shape.

units : (L + 1,) int64, ``[n_features, hidden..., n_outputs]``.
offsets : (L, 3) int64; row ``l``: layer ``l``'s weights and biases in
    the parameter buffers (columns OFF_W, OFF_B) and its (rows, units[l + 1])
    block in the work buffers (OFF_A).
acts : (max(L - 1, 1),) int64, each hidden layer's activation code.
drop : (max(L - 1, 1),) float64, each hidden layer's dropout rate in
    [0, 1) while training (read only where ``Work.dropped`` is not empty).
head : int, the output head's code.
"""

Params = namedtuple("Params", ["theta", "grad", "m1", "m2", "step", "hyper", "hyper64",
                               "solver", "nesterov"])
Params.__doc__ = """The parameters and the optimizer's state.

theta, grad : (P,) the flat parameters and their gradient, same layout.
m1 : (P,) SGD's velocity or Adam's first moment.
m2 : (P,) Adam's second moment (any length for SGD).
step : (1,) int64, the optimizer's step count.
hyper : (N_HYPER,) hyper-parameters in the parameter dtype (slots H_*).
hyper64 : (N_HYPER64,) float64, what a step's learning rate is computed from.
solver : int, SGD, ADAM or NO_STEP (the gradient alone).
nesterov : bool, SGD's Nesterov momentum.
"""

Batch = namedtuple("Batch", ["X", "Xs", "bidx", "data", "indices", "indptr", "cdata",
                             "crows", "cptr", "Y", "sw", "ids", "n"])
Batch.__doc__ = """The rows a kernel works on.

X : (n, k) dense rows; where ``bidx`` is not empty, the forward pass first
    gathers them, ``X[r] = Xs[bidx[r]]``.
Xs, bidx : the gather's source rows and their indices (empty: none).
data, indices, indptr : a sparse input as CSR (int64 indices, n + 1 row
    pointers); ``X`` then has no rows.
cdata, crows, cptr : the same rows as CSC, for the first layer's gradient.
Y : (n, n_outputs) targets; sw : (n,) sample weights.
ids : (n,) int64, each row's index in the training set, which dropout's
    masks are drawn for (empty without dropout).
n : int, the number of rows.
"""

Work = namedtuple("Work", ["acts", "deltas", "pre", "dropped", "row_loss", "shares"])
Work.__doc__ = """The work buffers of a batch.

acts, deltas : flat; layer ``l``'s (n, units[l + 1]) block starts at
    ``offsets[l, OFF_A]``.
pre : the layers' pre-activations in the same blocks, where some hidden
    activation needs them (NEEDS_PRE), else empty.
dropped : the hidden layers' outputs after dropout, in the same blocks,
    where a training fit drops units (the next layer and the gradient read
    them; ``acts`` keeps the outputs the derivatives read), else empty.
row_loss : (n,) float64, each row's loss.
shares : the row tasks' shares of the gradient, or empty (see
    :func:`fastmlp._engine.gradient_shares`).
"""

_EMPTY = {dt: np.zeros(0, dtype=dt) for dt in (np.float32, np.float64, np.int64)}


def empty(dtype):
    """A shared zero-length vector of ``dtype``, for a field not used."""
    return _EMPTY[np.dtype(dtype).type]


def make_shape(layout, hidden_codes, head, rows, drop=None):
    """The shape bundle of a network whose work buffers hold ``rows`` rows.

    Parameters
    ----------
    layout : Layout
    hidden_codes : sequence of int, one activation code per hidden layer.
    head : int
    rows : int, the rows of each layer's block in the work buffers.
    drop : sequence of float, default=None
        Each hidden layer's dropout rate (None: no dropout).

    Returns
    -------
    shape : Shape
    size : int, the length of a work buffer.
    """
    L = layout.n_weight_layers
    offsets = np.empty((L, 3), dtype=np.int64)
    offsets[:, OFF_W] = layout.w_off
    offsets[:, OFF_B] = layout.b_off
    sizes = int(rows) * layout.units[1:]
    offsets[0, OFF_A] = 0
    offsets[1:, OFF_A] = np.cumsum(sizes)[:-1]
    acts = np.asarray(hidden_codes, dtype=np.int64).reshape(-1)
    if acts.size == 0:  # Numba needs a typed, non-empty array
        acts = np.zeros(1, dtype=np.int64)
    rates = np.zeros(acts.size, dtype=np.float64)
    if drop is not None:
        rates[:len(drop)] = drop
    return Shape(layout.units, offsets, acts, rates, int(head)), int(sizes.sum())


def needs_pre(shape):
    """Whether some hidden layer's activation needs its pre-activation."""
    return any(int(a) in NEEDS_PRE for a in shape.acts[:len(shape.units) - 2])


# The settings make_hyper takes, with their defaults (0: off). Where each
# goes: the slot tables of make_hyper; a setting is one more entry here.
HYPER_SETTINGS = dict(learning_rate=0.0, momentum=0.0, beta_1=0.0, beta_2=0.0, epsilon=0.0,
                      alpha=0.0, weight_decay=0.0, clip_grad_norm=0.0, schedule=0, warmup=0.0,
                      horizon=1.0, dropout_seed=0)
# setting -> its slots in ``hyper`` (the parameter dtype) and in ``hyper64``
_HYPER_SLOTS = dict(learning_rate=(H_LR, H_BASE_LR), momentum=(H_MOMENTUM,), beta_1=(H_BETA1,),
                    beta_2=(H_BETA2,), epsilon=(H_EPSILON,), alpha=(H_ALPHA,),
                    weight_decay=(H_WEIGHT_DECAY,), clip_grad_norm=(H_CLIP,))
_HYPER64_SLOTS = dict(learning_rate=H64_LR_INIT, beta_1=H64_BETA1, beta_2=H64_BETA2,
                      schedule=H64_SCHEDULE, warmup=H64_WARMUP, horizon=H64_HORIZON,
                      dropout_seed=H64_DROP_SEED)


def make_hyper(dtype, **settings):
    """The ``hyper`` and ``hyper64`` arrays of the parameter bundle.

    ``settings`` are among :data:`HYPER_SETTINGS` (the others keep their
    defaults): the solvers' rates and moments, ``alpha``,
    ``weight_decay``, ``clip_grad_norm``; ``schedule`` (a code of
    STEP_SCHEDULES, or NO_SCHEDULE), ``warmup`` and ``horizon`` (in
    epochs), a per-step schedule's (the position of each epoch in it is
    the trainer's to set); ``dropout_seed`` (below 2**53), the seed of
    dropout's masks (:mod:`fastmlp._dropout`). ``1 - beta`` is formed in
    float64 then rounded to the dtype, as scikit-learn's ``(1 -
    self.beta_1) * grad`` does for float32 arrays.
    """
    unknown = set(settings) - set(HYPER_SETTINGS)
    if unknown:
        raise TypeError(f"make_hyper() got unexpected settings {sorted(unknown)}")
    values = {**HYPER_SETTINGS, **settings}
    hyper = np.zeros(N_HYPER, dtype=dtype)
    hyper64 = np.zeros(N_HYPER64, dtype=np.float64)
    for name, slots in _HYPER_SLOTS.items():
        hyper[list(slots)] = values[name]
    for name, slot in _HYPER64_SLOTS.items():
        hyper64[slot] = values[name]
    hyper[H_ONE_MINUS_BETA1] = 1 - values["beta_1"]
    hyper[H_ONE_MINUS_BETA2] = 1 - values["beta_2"]
    hyper[H_LOG_EPS] = np.finfo(dtype).eps
    return hyper, hyper64


def make_params(theta, grad=None, solver=NO_STEP, nesterov=False, m1=None, m2=None,
                step=None, **hyper):
    """A parameter bundle over ``theta``.

    Buffers not given are made: ``grad`` and the optimizer state zeros of
    ``theta``'s size (Adam's second moment only for ADAM), the step count
    0. ``hyper`` are :func:`make_hyper`'s keywords.
    """
    dtype = theta.dtype
    P = theta.shape[0]
    grad = np.zeros(P, dtype) if grad is None else grad
    m1 = np.zeros(P, dtype) if m1 is None else m1
    m2 = np.zeros(P if solver == ADAM else 1, dtype) if m2 is None else m2
    step = np.zeros(1, dtype=np.int64) if step is None else step
    h, h64 = make_hyper(dtype, **hyper)
    return Params(theta, grad, m1, m2, step, h, h64, int(solver), bool(nesterov))


def predict_params(theta):
    """The parameter bundle of a forward pass: ``theta`` and, for the
    fields only training reads, arrays of their types."""
    return Params(theta, theta, theta, theta, empty(np.int64), theta, empty(np.float64),
                  NO_STEP, False)


def make_batch(X=None, Y=None, sw=None, *, n=None, Xs=None, bidx=None, csr=None, csc=None,
               dtype=None, n_cols=None):
    """A batch bundle; the fields not given are empty arrays of their types.

    ``X`` : (n, k) dense rows (a sparse input: omit it and give ``csr``
    ``(data, indices, indptr)`` and ``n_cols``); ``csc`` the same rows as
    CSC; ``Xs``/``bidx`` the rows to gather into ``X``; ``Y`` (n, m)
    targets, ``sw`` (n,) sample weights. ``ids`` is empty (the epoch
    kernels fill it: dropout's masks).
    """
    if dtype is None:
        dtype = (X if X is not None else csr[0]).dtype
    dtype = np.dtype(dtype)
    if X is None:
        X = np.zeros((0, n_cols), dtype=dtype)
    fe, ie = empty(dtype), empty(np.int64)
    data, indices, indptr = csr if csr is not None else (fe, ie, np.zeros(1, np.int64))
    cdata, crows, cptr = csc if csc is not None else (fe, ie, np.zeros(1, np.int64))
    if n is None:
        n = indptr.shape[0] - 1 if csr is not None else X.shape[0]
    Xs = X if Xs is None else Xs
    bidx = ie if bidx is None else bidx
    Y = X if Y is None else Y
    sw = fe if sw is None else sw
    return Batch(X, Xs, bidx, data, indices, indptr, cdata, crows, cptr, Y, sw, ie, int(n))


def make_work(shape, size, dtype, *, train=True, shares=None, rows=0):
    """Work buffers of ``size`` elements for ``shape``.

    ``train=False`` (a forward pass) makes the activations alone and gives
    the other fields arrays of their types; ``pre`` is made only where an
    activation needs it, ``dropped`` only where a hidden layer drops units
    (``shape.drop``). ``rows`` is the length of ``row_loss``.
    """
    acts = np.zeros(size, dtype=dtype)
    fe = empty(dtype)
    if not train:
        return Work(acts, acts, fe, fe, empty(np.float64), fe)
    pre = np.zeros(size, dtype=dtype) if needs_pre(shape) else fe
    n_hidden = len(shape.units) - 2
    dropped = np.zeros(size, dtype=dtype) if (shape.drop[:n_hidden] > 0).any() else fe
    shares = fe if shares is None else shares
    return Work(acts, np.zeros(size, dtype=dtype), pre, dropped,
                np.zeros(rows, dtype=np.float64), shares)
