"""Row-wise activation functions and their derivatives (compiled).

Each works on one row in place and branches on the activation code once,
so the loop under each branch vectorises. Derivatives are written in terms
of the layer's OUTPUT (post-activation), as scikit-learn's are, so the
forward pass need not keep pre-activations.
"""

import numpy as np

from ._codes import (
    EXP,
    IDENTITY,
    LOGISTIC,
    RELU,
    SOFTMAX,
    TANH,
)
from ._jit import jit


@jit()
def activate(z, act):
    """Apply activation ``act`` to the 1-D row ``z`` in place.

    Besides the hidden activations, ``act`` may be an output layer's
    SOFTMAX (the row maximum subtracted first, as scikit-learn does) or
    EXP (:data:`fastmlp._codes.HEAD_ACTIVATIONS` maps output heads to these).
    """
    m = z.shape[0]
    if act == RELU:
        for c in range(m):
            if z[c] < 0:
                z[c] = 0
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


@jit()
def derivative(a, d, act):
    """Multiply the delta row ``d`` in place by ``act``'s derivative.

    ``a`` is the activation output of the same row. Operations are in
    scikit-learn's order (``_base.py``) so results round identically.
    """
    m = d.shape[0]
    if act == RELU:
        for c in range(m):
            if a[c] == 0:
                d[c] = 0
    elif act == LOGISTIC:
        one = a.dtype.type(1)
        for c in range(m):
            d[c] = (d[c] * a[c]) * (one - a[c])
    elif act == TANH:
        one = a.dtype.type(1)
        for c in range(m):
            d[c] = d[c] * (one - a[c] * a[c])
