"""Optimizer steps on ranges of the flat parameter buffer.

:func:`begin_step` is the one place where a step starts: it counts the
step and sets the step's learning rate (``hyper[H_STEP_LR]``), which every
update then reads; a schedule that changes the rate per mini-batch is a
change here. :func:`optimizer_step` updates elements ``[lo, hi)`` of the
parameters and of the optimizer state from the same range of the
gradient, knowing whether the range holds weights or biases (a decoupled
weight decay touches weights only). The gradient kernels of
:mod:`fastmlp._linalg` call it on each block right after writing that
block's gradient, while the block is in cache; every element's update
depends on that element alone, so the result does not depend on how the
buffer is split.

Each loop indexes slices from 0 (``th = theta[lo:hi]``; ``for i in
range(hi - lo)``): indexing the whole arrays from a run-time ``lo`` keeps
a negative-index select on every access, and LLVM does not vectorise the
loop.

Formulas and their order of operations are scikit-learn's
(``_stochastic_optimizers.py``); hyper-parameters come from the bundle's
``hyper`` array (slots ``H_*`` of :mod:`fastmlp._codes`), which has the
parameter dtype, so float32 buffers are updated in float32.
"""

import numpy as np

from ._codes import (
    ADAM,
    H64_BETA1,
    H64_BETA2,
    H64_LR_INIT,
    H_BETA1,
    H_BETA2,
    H_EPSILON,
    H_LR,
    H_MOMENTUM,
    H_ONE_MINUS_BETA1,
    H_ONE_MINUS_BETA2,
    H_STEP_LR,
    H_WEIGHT_DECAY,
    SGD,
    WEIGHTS,
)
from ._jit import jit


@jit(inline="always")
def adam_step_size(lr_init, beta1, beta2, t):
    """Adam's bias-corrected step size at step ``t`` (float64, as sklearn)."""
    return lr_init * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)


@jit(inline="always")
def begin_step(params):
    """Count one more step and set its learning rate, ``hyper[H_STEP_LR]``:
    Adam's bias-corrected step size at the new count (computed in float64
    from ``hyper64``), SGD's current rate ``hyper[H_LR]``."""
    params.step[0] += 1
    hyper = params.hyper
    if params.solver == ADAM:
        h64 = params.hyper64
        hyper[H_STEP_LR] = adam_step_size(h64[H64_LR_INIT], h64[H64_BETA1], h64[H64_BETA2],
                                          params.step[0])
    else:
        hyper[H_STEP_LR] = hyper[H_LR]


@jit(internal=True)
def optimizer_step(params, lo, hi, part):
    """One optimizer step on elements ``[lo, hi)`` of the buffers, in place.

    ``part`` is WEIGHTS or BIASES: what the range holds. On weights, a
    decoupled weight decay ``wd = hyper[H_WEIGHT_DECAY]`` first scales
    ``theta`` by ``1 - hyper[H_LR] * wd`` (Loshchilov and Hutter; the
    step's base rate, before Adam's bias correction, as
    ``torch.optim.AdamW``); with ``wd == 0`` nothing is touched.
    ``lr = hyper[H_STEP_LR]``, set by :func:`begin_step`.
    SGD: ``m1`` is the velocity; ``velocity = momentum * velocity - lr *
    grad``, then ``theta`` grows by ``momentum * velocity - lr * grad``
    when ``nesterov``, else by ``velocity``. ADAM: ``m = b1 m + (1 - b1)
    g``; ``v = b2 v + (1 - b2) g^2``; ``theta -= lr m / (sqrt(v) + eps)``,
    ``lr`` being the bias-corrected step size. Any other solver
    (``NO_STEP``): nothing. The caller checks that ``[lo, hi)`` lies in
    every buffer used.
    """
    solver = params.solver
    hyper = params.hyper
    wd = hyper[H_WEIGHT_DECAY]
    if part == WEIGHTS and wd != 0 and (solver == SGD or solver == ADAM):
        keep = hyper.dtype.type(1) - hyper[H_LR] * wd
        th = params.theta[lo:hi]
        for i in range(hi - lo):
            th[i] *= keep
    if solver == SGD:
        lr = hyper[H_STEP_LR]
        momentum = hyper[H_MOMENTUM]
        th = params.theta[lo:hi]
        gs = params.grad[lo:hi]
        vel = params.m1[lo:hi]
        if params.nesterov:
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
        lr_t = hyper[H_STEP_LR]
        beta1 = hyper[H_BETA1]
        one_minus_beta1 = hyper[H_ONE_MINUS_BETA1]
        beta2 = hyper[H_BETA2]
        one_minus_beta2 = hyper[H_ONE_MINUS_BETA2]
        eps = hyper[H_EPSILON]
        th = params.theta[lo:hi]
        gr = params.grad[lo:hi]
        mb = params.m1[lo:hi]
        vb = params.m2[lo:hi]
        for i in range(hi - lo):
            g = gr[i]
            mi = beta1 * mb[i] + one_minus_beta1 * g
            vi = beta2 * vb[i] + one_minus_beta2 * (g * g)
            mb[i] = mi
            vb[i] = vi
            th[i] += (-lr_t * mi) / (np.sqrt(vi) + eps)
