"""Activation functions: one forward/backward pair per activation.

Each pair works on one row in place. ``*_forward(z)`` turns the
pre-activation row ``z`` into the output row. ``*_backward(z, a, d)``
multiplies the delta row ``d`` by the derivative at that row, reading the
pre-activation ``z``, the output ``a``, or both; an activation that reads
``z`` lists its code in :data:`fastmlp._codes.NEEDS_PRE`, so the training
kernels keep the pre-activations of its layers (elsewhere ``z`` is the
output row itself). Operations are in scikit-learn's order (``_base.py``)
so results round identically.

:func:`activate` and :func:`derivative` branch on the code once per row,
so the loop under each branch vectorises. Adding an activation: its pair
here and its branch in both, its code (and NEEDS_PRE where it reads
``z``) and its name in :mod:`fastmlp._codes`, its reference in
``tests/reference.py``.
"""

import math

import numpy as np

from ._codes import ELU, EXP, GELU, LEAKY_RELU, LOGISTIC, RELU, SILU, SOFTMAX, SOFTPLUS, TANH
from ._jit import jit, kept, pow2

# --- relu: max(z, 0) -----------------------------------------------------


@jit(inline="always")
def relu_forward(z):
    """``+0.0`` where ``z <= 0``, else ``z`` (NaN kept), bit for bit
    scikit-learn's ``np.maximum(z, 0)``, which also turns ``-0.0`` into
    ``+0.0``. :func:`fastmlp._jit.kept` keeps the store a plain one."""
    zero = z.dtype.type(0)
    for c in range(z.shape[0]):
        v = z[c]
        z[c] = zero if v <= zero else kept(v)


@jit(inline="always")
def relu_backward(z, a, d):
    """``0`` where the output ``a`` is 0, else ``d`` unchanged
    (scikit-learn's ``delta[Z == 0] = 0``)."""
    zero = d.dtype.type(0)
    for c in range(d.shape[0]):
        v = d[c]
        d[c] = zero if a[c] == zero else kept(v)


# --- logistic: 1 / (1 + exp(-z)) ------------------------------------------


@jit(inline="always")
def logistic_forward(z):
    one = z.dtype.type(1)
    for c in range(z.shape[0]):
        z[c] = one / (one + np.exp(-z[c]))


@jit(inline="always")
def logistic_backward(z, a, d):
    """``d * a * (1 - a)``."""
    one = a.dtype.type(1)
    for c in range(d.shape[0]):
        d[c] = (d[c] * a[c]) * (one - a[c])


# --- tanh -------------------------------------------------------------------


@jit(inline="always")
def tanh_forward(z):
    for c in range(z.shape[0]):
        z[c] = np.tanh(z[c])


@jit(inline="always")
def tanh_backward(z, a, d):
    """``d * (1 - a^2)``."""
    one = a.dtype.type(1)
    for c in range(d.shape[0]):
        d[c] = d[c] * (one - a[c] * a[c])


# --- gelu: z * Phi(z), Phi the standard normal CDF (exact, with erf) -------


@jit(inline="always")
def gelu_forward(z):
    """``0.5 * z * (1 + erf(z / sqrt(2)))``: PyTorch's default (exact) GELU."""
    half = z.dtype.type(0.5)
    one = z.dtype.type(1)
    inv_sqrt2 = z.dtype.type(0.7071067811865476)
    for c in range(z.shape[0]):
        v = z[c]
        z[c] = half * v * (one + math.erf(v * inv_sqrt2))


@jit(inline="always")
def gelu_backward(z, a, d):
    """``d * (Phi(z) + z * phi(z))``, ``phi`` the standard normal density:
    reads the pre-activation."""
    half = z.dtype.type(0.5)
    one = z.dtype.type(1)
    inv_sqrt2 = z.dtype.type(0.7071067811865476)
    inv_sqrt_2pi = z.dtype.type(0.3989422804014327)
    for c in range(d.shape[0]):
        v = z[c]
        cdf = half * (one + math.erf(v * inv_sqrt2))
        pdf = inv_sqrt_2pi * math.exp(-half * v * v)
        d[c] = d[c] * (cdf + v * pdf)


# --- leaky_relu: z where z > 0, else 0.01 z (PyTorch's default slope) -------


@jit(inline="always")
def leaky_relu_forward(z):
    slope = z.dtype.type(0.01)
    zero = z.dtype.type(0)
    for c in range(z.shape[0]):
        v = z[c]
        z[c] = v if v > zero else slope * v


@jit(inline="always")
def leaky_relu_backward(z, a, d):
    """``d`` where the output ``a > 0`` (exactly where ``z > 0``), else
    ``0.01 d``, as PyTorch's (slope 0.01 at ``z == 0``)."""
    slope = d.dtype.type(0.01)
    zero = d.dtype.type(0)
    for c in range(d.shape[0]):
        v = d[c]
        d[c] = v if a[c] > zero else slope * v


# --- elu: z where z > 0, else exp(z) - 1 (alpha 1) ----------------------------


@jit(inline="always")
def elu_forward(z):
    zero = z.dtype.type(0)
    for c in range(z.shape[0]):
        v = z[c]
        z[c] = v if v > zero else np.expm1(v)


@jit(inline="always")
def elu_backward(z, a, d):
    """``d`` where ``a > 0``, else ``d * (a + 1)`` (``exp(z)``), from the
    output as PyTorch's."""
    zero = d.dtype.type(0)
    one = d.dtype.type(1)
    for c in range(d.shape[0]):
        v = d[c]
        d[c] = v if a[c] > zero else v * (a[c] + one)


# --- exp in vector lanes --------------------------------------------------

# ln 2 in two parts (fdlibm's): k * _LN2_HI is exact for |k| < 2**11
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634


@jit(inline="always")
def exp64(x):
    """``exp(x)`` of a float64, within about 1 ulp of libm's, in code LLVM
    vectorises (libm's ``exp`` is a call per element; SiLU spends most of
    its time there otherwise).

    ``x = k ln2 + r``, ``|r| <= ln2 / 2`` (Cody and Waite), ``exp(r)`` by
    its Taylor polynomial of degree 13 (truncation below 1e-17), times
    ``2 ** k`` built from its bits (:func:`fastmlp._jit.pow2`). 0 below
    -708 (where the true value is under 3.1e-308), inf above 709.78, NaN
    kept.
    """
    xc = -708.0 if x < -708.0 else (709.78 if x > 709.78 else x)
    k = np.floor(xc * _LOG2E + 0.5)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # 2 ** k as 2 * 2 ** (k - 1): k reaches 1024 just below the bound
    y = (p * 2.0) * pow2(np.int64(k) - 1)
    y = np.inf if x > 709.78 else y
    y = 0.0 if x < -708.0 else y
    return x if x != x else y


# --- silu: z * logistic(z) ---------------------------------------------------


@jit(inline="always")
def silu_forward(z):
    """``z / (1 + exp(-z))``, in float64 (:func:`exp64`) then rounded."""
    for c in range(z.shape[0]):
        v = np.float64(z[c])
        z[c] = v / (1.0 + exp64(-v))


@jit(inline="always")
def silu_backward(z, a, d):
    """``d * (s + a * (1 - s))``, ``s = logistic(z) = a / z`` (0.5 at
    ``z == 0``), in float64: ``s * (1 + z * (1 - s))`` from the output and
    the pre-activation, without a second exponential."""
    for c in range(d.shape[0]):
        v = np.float64(z[c])
        out = np.float64(a[c])
        s = 0.5 if v == 0.0 else out / v
        d[c] = d[c] * (s + out * (1.0 - s))


# --- softplus: log(1 + exp(z)) -----------------------------------------------


@jit(inline="always")
def softplus_forward(z):
    """``max(z, 0) + log1p(exp(-|z|))``: no overflow for large ``z``."""
    zero = z.dtype.type(0)
    for c in range(z.shape[0]):
        v = z[c]
        z[c] = (v if v > zero else zero) + np.log1p(np.exp(-abs(v)))


@jit(inline="always")
def softplus_backward(z, a, d):
    """``d * logistic(z)``, from the output: ``logistic(z) = 1 - exp(-a)``,
    computed as ``-expm1(-a)`` to keep its precision where ``a`` is small."""
    for c in range(d.shape[0]):
        d[c] = d[c] * -np.expm1(-a[c])


# --- output functions (an output head's; their derivative is the head's) ---


@jit(inline="always")
def softmax_forward(z):
    """The row maximum subtracted first, as scikit-learn does."""
    m = z.shape[0]
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


@jit(inline="always")
def exp_forward(z):
    for c in range(z.shape[0]):
        z[c] = np.exp(z[c])


# --- dispatch -------------------------------------------------------------


@jit(internal=True)
def activate(z, act):
    """Apply activation ``act`` to the 1-D row ``z`` in place (a hidden
    activation or an output head's function, SOFTMAX or EXP; IDENTITY
    leaves the row as it is)."""
    if act == RELU:
        relu_forward(z)
    elif act == LOGISTIC:
        logistic_forward(z)
    elif act == TANH:
        tanh_forward(z)
    elif act == GELU:
        gelu_forward(z)
    elif act == LEAKY_RELU:
        leaky_relu_forward(z)
    elif act == ELU:
        elu_forward(z)
    elif act == SILU:
        silu_forward(z)
    elif act == SOFTPLUS:
        softplus_forward(z)
    elif act == SOFTMAX:
        softmax_forward(z)
    elif act == EXP:
        exp_forward(z)


@jit(internal=True)
def derivative(z, a, d, act):
    """Multiply the delta row ``d`` in place by ``act``'s derivative at the
    pre-activation row ``z`` with output row ``a`` (IDENTITY: unchanged)."""
    if act == RELU:
        relu_backward(z, a, d)
    elif act == LOGISTIC:
        logistic_backward(z, a, d)
    elif act == TANH:
        tanh_backward(z, a, d)
    elif act == GELU:
        gelu_backward(z, a, d)
    elif act == LEAKY_RELU:
        leaky_relu_backward(z, a, d)
    elif act == ELU:
        elu_backward(z, a, d)
    elif act == SILU:
        silu_backward(z, a, d)
    elif act == SOFTPLUS:
        softplus_backward(z, a, d)

