"""Row-wise activation functions and their derivatives (compiled).

Each works on one row in place and branches on the activation code once,
so the loop under each branch vectorises. Derivatives are written in terms
of the layer's OUTPUT (post-activation), as scikit-learn's are, so the
forward pass need not keep pre-activations.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import config
from numba.extending import intrinsic

from ._codes import (
    EXP,
    IDENTITY,
    LOGISTIC,
    RELU,
    SOFTMAX,
    TANH,
)
from ._jit import jit


@intrinsic
def _kept(typingctx, x):
    """``x`` unchanged, as an LLVM ``freeze`` of it.

    A ReLU written in place, ``z[c] = 0 if z[c] <= 0 else z[c]``, stores
    ``select(c, 0, load p)`` back to ``p``; LLVM 22 turns that into a masked
    store of the zeros alone (``vmaskmovps``/``vmaskmovpd``), which AMD Zen
    runs as slow microcode: 24 us for a 200 x 256 block, float32 or
    float64, where a plain vectorised pass takes 5-9. Passing the
    unchanged value through ``freeze`` (the identity on any loaded
    number) hides that it is the loaded element, so the loop stores every
    element with ordinary vector stores. Measured on 200 x 256 blocks on
    the machine of bench/README.md: ReLU 4.6 against 24 us (float32), 9.4
    against 25 (float64); its derivative 7.1 against 27, 18 against 29.
    """
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        (v,) = args
        instr = ir.instructions.Instruction(builder.block, v.type, "freeze", [v])
        builder._insert(instr)  # llvmlite's IRBuilder has no freeze method
        return instr

    return x(x), codegen


# With NUMBA_DISABLE_JIT=1 the kernels run as Python, where an intrinsic
# cannot: there the identity stands in.
kept = (lambda x: x) if config.DISABLE_JIT else _kept


@jit(inline="always")
def relu_row(z):
    """ReLU of the 1-D row ``z`` in place: ``+0.0`` where ``z <= 0``, else
    ``z`` (NaN kept), bit for bit scikit-learn's ``np.maximum(z, 0)``, which
    also turns ``-0.0`` into ``+0.0``. See :func:`_kept` for its form."""
    zero = z.dtype.type(0)
    for c in range(z.shape[0]):
        v = z[c]
        z[c] = zero if v <= zero else kept(v)


@jit(inline="always")
def relu_derivative_row(a, d):
    """The delta row ``d`` times ReLU's derivative, in place: ``0`` where the
    activation output ``a`` is 0, else ``d`` unchanged (scikit-learn's
    ``delta[Z == 0] = 0``). See :func:`_kept` for its form."""
    zero = d.dtype.type(0)
    for c in range(d.shape[0]):
        v = d[c]
        d[c] = zero if a[c] == zero else kept(v)


@jit(internal=True)
def activate(z, act):
    """Apply activation ``act`` to the 1-D row ``z`` in place.

    Besides the hidden activations, ``act`` may be an output layer's
    SOFTMAX (the row maximum subtracted first, as scikit-learn does) or
    EXP (:data:`fastmlp._codes.HEAD_ACTIVATIONS` maps output heads to these).
    """
    m = z.shape[0]
    if act == RELU:
        relu_row(z)
    elif act == LOGISTIC:
        one = z.dtype.type(1)
        for c in range(m):
            z[c] = one / (one + np.exp(-z[c]))
    elif act == TANH:
        for c in range(m):
            z[c] = np.tanh(z[c])
    elif act == SOFTMAX:
        mx = z[0]
        for c in range(1, m):
            if z[c] > mx:
                mx = z[c]
        s = z.dtype.type(0)
        for c in range(m):
            z[c] = np.exp(z[c] - mx)
            s += z[c]
        for c in range(m):
            z[c] /= s
    elif act == EXP:
        for c in range(m):
            z[c] = np.exp(z[c])
    # IDENTITY: nothing to do


@jit(internal=True)
def derivative(a, d, act):
    """Multiply the delta row ``d`` in place by ``act``'s derivative.

    ``a`` is the activation output of the same row. Operations are in
    scikit-learn's order (``_base.py``) so results round identically.
    """
    m = d.shape[0]
    if act == RELU:
        relu_derivative_row(a, d)
    elif act == LOGISTIC:
        one = a.dtype.type(1)
        for c in range(m):
            d[c] = (d[c] * a[c]) * (one - a[c])
    elif act == TANH:
        one = a.dtype.type(1)
        for c in range(m):
            d[c] = d[c] * (one - a[c] * a[c])
