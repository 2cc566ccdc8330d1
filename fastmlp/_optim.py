"""Optimizer updates: each one loop over the whole flat parameter buffer.

The loops run ``prange`` over fixed blocks of ``BLOCK`` elements rather than
over elements: a ``prange`` over elements is split where the thread count
says, and a vectorised body and its scalar tail may round differently, so
results would change with the number of threads. Fixed blocks make every
element's arithmetic independent of the thread count.

Formulas and their order of operations are scikit-learn's
(``_stochastic_optimizers.py``). Scalars arrive already cast to the
parameter dtype so float32 buffers are updated in float32.
"""

import numpy as np
from numba import prange

from ._jit import jit

BLOCK = 4096


@jit(parallel=True)
def sgd_step(theta, grad, velocity, lr, momentum, nesterov):
    """One SGD step with (Nesterov) momentum, in place.

    ``velocity = momentum * velocity - lr * grad``; then ``theta`` grows by
    ``momentum * velocity - lr * grad`` when ``nesterov``, else by
    ``velocity``. theta, grad, velocity : (P,) same dtype.
    """
    P = theta.shape[0]
    for blk in prange((P + BLOCK - 1) // BLOCK):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, P)
        if nesterov:
            for i in range(lo, hi):
                v = momentum * velocity[i] - lr * grad[i]
                velocity[i] = v
                theta[i] += momentum * v - lr * grad[i]
        else:
            for i in range(lo, hi):
                v = momentum * velocity[i] - lr * grad[i]
                velocity[i] = v
                theta[i] += v


@jit(parallel=True)
def adam_step(theta, grad, m, v, lr_t, beta1, one_minus_beta1, beta2, one_minus_beta2, eps):
    """One Adam step, in place.

    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``theta -= lr_t m / (sqrt(v) + eps)`` where ``lr_t`` is the
    bias-corrected step size of this step. All arrays (P,), same dtype.
    """
    P = theta.shape[0]
    for blk in prange((P + BLOCK - 1) // BLOCK):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, P)
        for i in range(lo, hi):
            g = grad[i]
            mi = beta1 * m[i] + one_minus_beta1 * g
            vi = beta2 * v[i] + one_minus_beta2 * (g * g)
            m[i] = mi
            v[i] = vi
            theta[i] += (-lr_t * mi) / (np.sqrt(vi) + eps)


@jit()
def adam_step_size(lr_init, beta1, beta2, t):
    """Adam's bias-corrected step size at step ``t`` (float64, as sklearn)."""
    return lr_init * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
