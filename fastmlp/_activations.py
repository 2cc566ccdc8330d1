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

# Elements per pass of :func:`relu_row` and :func:`relu_derivative_row`: the
# length their work vector must have. 128 and 256 measured alike on rows of
# 100 to 512 (32: up to 1.5x slower on 512-wide rows).
RELU_CHUNK = 256


@jit(inline="always")
def relu_row(z, t):
    """ReLU of the 1-D row ``z`` in place: ``+0.0`` where ``z <= 0``, else
    ``z`` (NaN kept), bit for bit scikit-learn's ``np.maximum(z, 0)``, which
    also turns ``-0.0`` into ``+0.0``.

    The selected values go to the work vector ``t`` (at least
    :data:`RELU_CHUNK` elements) and are copied back, in chunks. Written
    in place in one loop, LLVM drops the store of every element the select
    leaves unchanged and vectorises what remains with masked stores
    (``vmaskmovps``/``vmaskmovpd``), which are microcoded and slow on AMD
    Zen: 24 us for a 200 x 256 block (float32 or float64) on the machine of
    bench/README.md, against 7.5 (float32) and 13 us (float64) through
    ``t``, which every element is stored to unconditionally. Inlined into
    callers, which allocate ``t`` once per task or call.
    """
    zero = z.dtype.type(0)
    m = z.shape[0]
    for c0 in range(0, m, RELU_CHUNK):
        n = min(RELU_CHUNK, m - c0)
        zc = z[c0:c0 + n]
        for j in range(n):
            v = zc[j]
            t[j] = zero if v <= zero else v
        for j in range(n):
            zc[j] = t[j]


@jit(inline="always")
def relu_derivative_row(a, d, t):
    """The delta row ``d`` times ReLU's derivative, in place: ``0`` where the
    activation output ``a`` is 0, else ``d`` unchanged (scikit-learn's
    ``delta[Z == 0] = 0``). Through the work vector ``t``, for the reason
    :func:`relu_row` gives (200 x 256 float32: 27 against 12 us)."""
    zero = d.dtype.type(0)
    m = d.shape[0]
    for c0 in range(0, m, RELU_CHUNK):
        n = min(RELU_CHUNK, m - c0)
        dc = d[c0:c0 + n]
        ac = a[c0:c0 + n]
        for j in range(n):
            v = dc[j]
            t[j] = zero if ac[j] == zero else v
        for j in range(n):
            dc[j] = t[j]


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
            if z[c] <= 0:
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
