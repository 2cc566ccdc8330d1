"""Test-side helpers that turn a small problem into the kernels' bundles.

Every bundle is made by :mod:`fastmlp._bundles`' builders (``make_shape``,
``make_params``, ``make_batch``, ``make_work``), so a test's bundles have
exactly the Numba types of the ones a fit makes, and a new bundle field
needs no change here. What the helpers add is the problem: a network
around one layer of given weights, the step's learning rate an optimizer
step reads, a sparse input as a batch.
"""

from collections import namedtuple

import numpy as np
import scipy.sparse as sp

from fastmlp._bundles import make_batch, make_params, make_shape
from fastmlp._codes import H_STEP_LR, HEAD_IDENTITY, IDENTITY, NO_STEP, OFF_A, OFF_B, OFF_W
from fastmlp._layout import Layout


def network_shape(units, rows, *, hidden=IDENTITY, head=HEAD_IDENTITY, pad=0):
    """A network's layout, shape bundle and work-buffer size.

    units : ``[n_features, hidden..., n_outputs]``.
    rows : the rows of each layer's block in the work buffers.
    hidden : one activation code for every hidden layer, or a sequence.
    pad : parameters in front of the network's in the flat buffers: the
        shape's weight and bias offsets are moved by ``pad``, so that even
        layer 0 has parameters before its block (a kernel that ignored its
        layer's offsets would show). A buffer then needs
        ``layout.size + pad`` elements.

    Returns
    -------
    layout : Layout
    shape : Shape
    size : int, the length of a work buffer.
    """
    layout = Layout(units)
    n_hidden = len(units) - 2
    codes = [hidden] * n_hidden if np.ndim(hidden) == 0 else list(hidden)
    shape, size = make_shape(layout, codes, head, rows)
    if pad:
        shape.offsets[:, OFF_W] += pad
        shape.offsets[:, OFF_B] += pad
    return layout, shape, size


LayerProblem = namedtuple("LayerProblem", ["theta", "shape", "size", "lay", "wo", "bo"])
LayerProblem.__doc__ = """A network around one layer (see :func:`layer_problem`).

theta : the flat parameters, the layer's W and b in its blocks.
shape, size : the shape bundle and a work buffer's size.
lay : the layer's index; wo, bo : its weights' and bias' offsets in theta.
"""


def layer_problem(W, b, *, lay=1, rows=0, pad=0, seed=0, hidden=IDENTITY,
                  head=HEAD_IDENTITY):
    """A network whose layer ``lay`` has weights ``W`` (k, m) and bias ``b``.

    The network is ``[2] * lay + [k, m, 2]``: ``lay`` layers in front of
    the layer and one after it, whose parameters (and ``pad`` more in front
    of all, see :func:`network_shape`) are random: a kernel that wrote
    outside its layer's blocks would change them. ``theta`` has ``W``'s
    dtype.
    """
    k, m = W.shape
    units = [2] * lay + [k, m, 2]
    layout, shape, size = network_shape(units, rows, hidden=hidden, head=head, pad=pad)
    rng = np.random.RandomState(W.size + 7 * lay + seed)
    theta = rng.normal(size=layout.size + pad).astype(W.dtype)
    wo = int(shape.offsets[lay, OFF_W])
    bo = int(shape.offsets[lay, OFF_B])
    theta[wo:bo] = W.ravel()
    theta[bo:bo + m] = b
    return LayerProblem(theta, shape, size, lay, wo, bo)


def step_params(theta, *, step_lr=None, solver=NO_STEP, **kwargs):
    """``make_params(theta, solver=solver, **kwargs)``, with the step's
    learning rate ``hyper[H_STEP_LR]`` set to ``step_lr``: what
    ``fastmlp._optim.begin_step`` sets before a batch and an optimizer
    step reads; the single-layer kernels do not start a step."""
    params = make_params(theta, solver=solver, **kwargs)
    if step_lr is not None:
        params.hyper[H_STEP_LR] = step_lr
    return params


def empty_rows(cols, dtype):
    """A (0, cols) matrix: a matrix argument a kernel is given but not to
    use (the pre-activations where no activation needs them)."""
    return np.zeros((0, cols), dtype=dtype)


def compressed(A):
    """``A`` as CSR and CSC arrays (data, int64 indices, int64 pointers)."""
    csr, csc = sp.csr_matrix(A), sp.csc_matrix(A)
    return tuple((np.ascontiguousarray(x.data),
                  x.indices.astype(np.int64), x.indptr.astype(np.int64))
                 for x in (csr, csc))


def sparse_batch(A=None, *, csr=None, csc=None, n=None, n_cols=None, dtype=None):
    """A batch bundle of a sparse input: the rows of dense ``A`` as CSR and
    CSC arrays, or the arrays ``csr``/``csc`` given (then ``n`` rows of
    ``n_cols`` columns)."""
    if A is not None:
        csr, csc = compressed(A)
        n, n_cols = A.shape
        dtype = A.dtype
    return make_batch(None, n=n, csr=csr, csc=csc, n_cols=n_cols, dtype=dtype)


def block(buf, shape, lay, n):
    """Layer ``lay``'s (n, units[lay + 1]) block of a flat work buffer, a view."""
    m = int(shape.units[lay + 1])
    o = int(shape.offsets[lay, OFF_A])
    return buf[o:o + n * m].reshape(n, m)

