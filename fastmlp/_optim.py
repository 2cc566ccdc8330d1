"""Optimizer updates on a range of the flat parameter buffer.

:func:`optimizer_step` updates the elements ``[lo, hi)`` of ``theta`` and
of the optimizer state from the same range of ``grad``. The gradient
kernels of :mod:`fastmlp._linalg` call it on each block of weights right
after writing that block's gradient, while the block is still in cache:
there is no separate pass over the whole buffer, and no separate parallel
loop (each ``prange`` costs ~1 s of compilation, and a fork and join per
batch). It is compiled on its own, not inlined into the parallel loop's
body: the first fit compiled ~0.5 s faster so (interleaved runs). Every
element's update depends on that element alone, so the result does not
depend on how the buffer is split, and the blocks are fixed by the layer
shapes, not by the thread count.

Each loop indexes slices from 0 (``th = theta[lo:hi]``; ``for i in
range(hi - lo)``). Indexing the whole arrays with ``range(lo, hi)`` keeps
the loop scalar: Numba cannot prove an index that starts at a run-time
``lo`` is non-negative, so every access keeps its negative-index
wraparound select and LLVM does not vectorise the loop. Measured on W2's
93k parameters: Adam 435 -> 35 us per step (float32), 447 -> ~110-185 us
(float64), with scalar ``vsqrtsd``/``vdivsd`` replaced by their packed forms.

Formulas and their order of operations are scikit-learn's
(``_stochastic_optimizers.py``). Hyperparameters come from the ``hyper``
array (slots ``H_*`` of :mod:`fastmlp._codes`), which has the parameter
dtype, so float32 buffers are updated in float32.
"""

import numpy as np

from ._codes import (
    ADAM,
    H_BETA1,
    H_BETA2,
    H_EPSILON,
    H_LR,
    H_LR_T,
    H_MOMENTUM,
    H_ONE_MINUS_BETA1,
    H_ONE_MINUS_BETA2,
    SGD,
)
from ._jit import jit


@jit(internal=True)
def optimizer_step(theta, grad, state1, state2, lo, hi, solver, nesterov, hyper):
    """One optimizer step on elements ``[lo, hi)``, in place.

    ``solver`` SGD: ``state1`` is the velocity;
    ``velocity = momentum * velocity - lr * grad``, then ``theta`` grows by
    ``momentum * velocity - lr * grad`` when ``nesterov``, else by
    ``velocity``. ADAM: ``state1``/``state2`` are the moments;
    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``theta -= lr_t m / (sqrt(v) + eps)`` with ``lr_t = hyper[H_LR_T]``,
    this step's bias-corrected step size. Any other code (``NO_STEP``):
    nothing. theta, grad, state1 : (P,); state2 : (P,) for ADAM.
    The caller checks that ``[lo, hi)`` lies inside every buffer used.
    """
    if solver == SGD:
        lr = hyper[H_LR]
        momentum = hyper[H_MOMENTUM]
        th = theta[lo:hi]
        gs = grad[lo:hi]
        vel = state1[lo:hi]
        if nesterov:
            for i in range(hi - lo):
                v = momentum * vel[i] - lr * gs[i]
                vel[i] = v
                th[i] += momentum * v - lr * gs[i]
        else:
            for i in range(hi - lo):
                v = momentum * vel[i] - lr * gs[i]
                vel[i] = v
                th[i] += v
    elif solver == ADAM:
        lr_t = hyper[H_LR_T]
        beta1 = hyper[H_BETA1]
        one_minus_beta1 = hyper[H_ONE_MINUS_BETA1]
        beta2 = hyper[H_BETA2]
        one_minus_beta2 = hyper[H_ONE_MINUS_BETA2]
        eps = hyper[H_EPSILON]
        th = theta[lo:hi]
        gr = grad[lo:hi]
        mb = state1[lo:hi]
        vb = state2[lo:hi]
        for i in range(hi - lo):
            g = gr[i]
            mi = beta1 * mb[i] + one_minus_beta1 * g
            vi = beta2 * vb[i] + one_minus_beta2 * (g * g)
            mb[i] = mi
            vb[i] = vi
            th[i] += (-lr_t * mi) / (np.sqrt(vi) + eps)


@jit(inline="always")
def adam_step_size(lr_init, beta1, beta2, t):
    """Adam's bias-corrected step size at step ``t`` (float64, as sklearn)."""
    return lr_init * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
