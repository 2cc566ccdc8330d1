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

import math

import numpy as np
from numba import prange

from ._codes import (
    ADAM,
    COSINE,
    H64_BETA1,
    H64_BETA2,
    H64_EPOCH0,
    H64_EPOCH_STEPS,
    H64_HORIZON,
    H64_LR_INIT,
    H64_RATE,
    H64_SCHEDULE,
    H64_STEP0,
    H64_WARMUP,
    H_BASE_LR,
    H_BETA1,
    H_BETA2,
    H_CLIP,
    H_EPSILON,
    H_LR,
    H_MOMENTUM,
    H_ONE_MINUS_BETA1,
    H_ONE_MINUS_BETA2,
    H_STEP_LR,
    H_WEIGHT_DECAY,
    BIASES,
    LINEAR,
    OFF_B,
    OFF_W,
    SGD,
    WEIGHTS,
)
from ._jit import call_by_symbol, jit


@jit(inline="always")
def adam_step_size(lr_init, beta1, beta2, t):
    """Adam's bias-corrected step size at step ``t`` (float64, as sklearn)."""
    return lr_init * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)


@jit(inline="always")
def schedule_factor(e, schedule, warmup, horizon):
    """The learning rate's factor at ``e`` epochs into a schedule (float64).

    A linear warm-up from 0 over the first ``warmup`` epochs, then COSINE
    ``(1 + cos(pi p)) / 2`` or LINEAR ``1 - p``, ``p`` the share of the
    remaining ``horizon - warmup`` epochs done (clipped to [0, 1]: the rate
    is 0 from the horizon on), or 1 for NO_SCHEDULE: the rule of Hugging
    Face's ``get_cosine_schedule_with_warmup`` and
    ``get_linear_schedule_with_warmup``, counted in epochs.
    """
    if e < warmup:
        return e / warmup
    if schedule != COSINE and schedule != LINEAR:
        return 1.0
    span = horizon - warmup
    p = (e - warmup) / span if span > 0 else 1.0
    p = 1.0 if p > 1.0 else p  # (e >= warmup: p is not negative)
    if schedule == COSINE:
        return 0.5 * (1.0 + math.cos(math.pi * p))
    return 1.0 - p


@jit(inline="always")
def begin_step(params):
    """Count one more step and set its learning rate, ``hyper[H_STEP_LR]``,
    and its base rate, ``hyper[H_BASE_LR]`` (what a decoupled weight decay
    multiplies).

    Without a per-step schedule or warm-up: Adam's bias-corrected step size
    at the new count (computed in float64 from ``hyper64``, base rate
    ``learning_rate_init``), SGD's current rate ``hyper[H_LR]`` (both).
    With one, the base rate is the solver's rate (``learning_rate_init``,
    SGD's ``hyper[H_LR]``) times :func:`schedule_factor` at the epochs done
    before this step, ``hyper64[H64_EPOCH0] + (steps of this epoch done) /
    hyper64[H64_EPOCH_STEPS]``, also written to ``hyper64[H64_RATE]``; Adam
    bias-corrects it as above.
    """
    params.step[0] += 1
    t = params.step[0]
    hyper = params.hyper
    h64 = params.hyper64
    schedule = h64[H64_SCHEDULE]
    warmup = h64[H64_WARMUP]
    if schedule == 0 and warmup == 0:
        if params.solver == ADAM:
            hyper[H_STEP_LR] = adam_step_size(h64[H64_LR_INIT], h64[H64_BETA1], h64[H64_BETA2], t)
        else:
            hyper[H_STEP_LR] = hyper[H_LR]
        hyper[H_BASE_LR] = hyper[H_LR]
    else:
        e = h64[H64_EPOCH0] + (t - 1 - h64[H64_STEP0]) / h64[H64_EPOCH_STEPS]
        factor = schedule_factor(e, schedule, warmup, h64[H64_HORIZON])
        if params.solver == ADAM:
            base = factor * h64[H64_LR_INIT]
            hyper[H_STEP_LR] = adam_step_size(base, h64[H64_BETA1], h64[H64_BETA2], t)
        else:
            base = factor * np.float64(hyper[H_LR])
            hyper[H_STEP_LR] = base
        hyper[H_BASE_LR] = base
        h64[H64_RATE] = base


@jit(internal=True)
def optimizer_step(params, lo, hi, part):
    """One optimizer step on elements ``[lo, hi)`` of the buffers, in place.

    ``part`` is WEIGHTS or BIASES: what the range holds. On weights, a
    decoupled weight decay ``wd = hyper[H_WEIGHT_DECAY]`` first scales
    ``theta`` by ``1 - hyper[H_BASE_LR] * wd`` (Loshchilov and Hutter; the
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
        keep = hyper.dtype.type(1) - hyper[H_BASE_LR] * wd
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


# called by symbol (fastmlp._jit.call_by_symbol): one compiled step for
# every caller, the gradient kernels of fastmlp._linalg included
_call_optimizer_step = call_by_symbol(optimizer_step)


@jit(reassoc=True, internal=True)
def grad_sq_norm(grad):
    """The squared L2 norm of a range of the gradient, in float64.

    Reassociation lets LLVM keep several partial sums (see
    :func:`fastmlp._kernels.l2_sum`); their order is fixed by the compiled
    code, so the result does not depend on the thread count or the run.
    """
    s = 0.0
    for i in range(grad.shape[0]):
        x = np.float64(grad[i])
        s += x * x
    return s


_call_grad_sq_norm = call_by_symbol(grad_sq_norm)

# Elements of the gradient per task of clip_and_step.
CLIP_BLOCK = 8192


@jit(internal=True)
def _clip_tasks(units, offs):
    """The tasks of :func:`clip_and_step`: each layer's weights in blocks of
    CLIP_BLOCK, then its biases in one."""
    count = 0
    for lay in range(offs.shape[0]):
        count += (units[lay] * units[lay + 1] + CLIP_BLOCK - 1) // CLIP_BLOCK + 1
    return count


@jit(internal=True)
def _clip_task(units, offs, i):
    """Task ``i``'s range ``[lo, hi)`` of the flat buffers and its part
    (WEIGHTS or BIASES)."""
    for lay in range(offs.shape[0]):
        w = offs[lay, OFF_W]
        b = offs[lay, OFF_B]
        nw = (b - w + CLIP_BLOCK - 1) // CLIP_BLOCK
        if i < nw:
            return w + i * CLIP_BLOCK, min(w + (i + 1) * CLIP_BLOCK, b), np.int64(WEIGHTS)
        if i == nw:
            return b, b + units[lay + 1], np.int64(BIASES)
        i -= nw + 1
    return np.int64(0), np.int64(0), np.int64(WEIGHTS)


@jit(parallel=True, internal=True)
def clip_and_step(params, shape):
    """Scale the whole gradient (every layer together) down to the L2 norm
    ``hyper[H_CLIP]``, then take one optimizer step on every layer's
    weights and biases, in place.

    The rule of ``torch.nn.utils.clip_grad_norm_``: ``grad *= c`` where
    ``c = clip / (norm + 1e-6)`` is below 1, ``norm`` the gradient's L2
    norm. The gradient kernels wrote ``params.grad`` without stepping
    (the norm needs every block first); ``shape.offsets`` says which
    ranges are weights and which biases. Two parallel loops over a fixed
    grid of ranges (:func:`_clip_task`): the squares' sums of the ranges,
    added in range order (so the norm does not depend on the thread
    count), then each range's scaling and step. The caller checks that
    every layer's range lies in the buffers.
    """
    grad = params.grad
    units = shape.units
    offs = shape.offsets
    count = _clip_tasks(units, offs)
    sums = np.empty(count, dtype=np.float64)
    for i in prange(count):
        lo, hi, part = _clip_task(units, offs, np.int64(i))
        sums[i] = _call_grad_sq_norm(grad[lo:hi])
    total = 0.0
    for i in range(count):
        total += sums[i]
    coef = np.float64(params.hyper[H_CLIP]) / (np.sqrt(total) + 1e-6)
    scale = coef < 1.0
    c = grad.dtype.type(coef)
    for i in prange(count):
        lo, hi, part = _clip_task(units, offs, np.int64(i))
        if scale:
            g = grad[lo:hi]
            for j in range(hi - lo):
                g[j] *= c
        _call_optimizer_step(params, lo, hi, part)
