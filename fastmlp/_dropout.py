"""Inverted dropout on hidden-layer outputs, with masks from a counter-based
hash.

Whether unit ``u`` of hidden layer ``l`` is kept for training sample ``s``
in epoch ``e`` is a pure function of ``(seed, e, s, l, u)``: splitmix64's
finaliser over the key, its top 53 bits against ``p * 2**53``. No generator
state is carried between calls, so the forward pass and the backward pass
compute the same mask without storing it, any thread may compute any row,
and the model does not depend on the thread count or the batch split.
(Splitmix64: Steele, Lea and Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014.)
"""

import numpy as np

from ._jit import jit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@jit(inline="always")
def _mix(x):
    """splitmix64's finaliser: a bijection of uint64 that scatters every
    input bit over the output."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@jit(inline="always")
def row_key(seed, epoch, sample, layer):
    """The key of one row's mask in one layer (uint64)."""
    k = _mix(np.uint64(seed) + _GOLDEN * np.uint64(epoch + 1))
    k = _mix(k ^ np.uint64(sample))
    return _mix(k ^ (np.uint64(layer) * _GOLDEN))


@jit(inline="always")
def keep_threshold(p):
    """Units whose 53-bit draw is at least this are kept: a share ``1 - p``."""
    return np.uint64(p * 9007199254740992.0)  # 2**53


@jit(internal=True)
def drop_rows(src, dst, ids, r0, r1, seed, epoch, layer, p):
    """``dst[r] = src[r] * mask_r / (1 - p)`` for rows ``r0..r1``, in place
    where ``dst`` is ``src``.

    src, dst : (n, m) blocks of the parameter dtype; ids : (n,) int64, each
    row's sample index in the training set; ``mask_r[u]`` is 1 where unit
    ``u`` of ``layer`` is kept for sample ``ids[r]`` in ``epoch`` (see the
    module), else 0. The forward pass applies it to a hidden layer's
    output, the backward pass to the delta of that output: the same mask.
    The caller checks that the rows exist in all three arrays.
    """
    m = src.shape[1]
    scale = src.dtype.type(1.0 / (1.0 - p))
    zero = src.dtype.type(0)
    thr = keep_threshold(p)
    for r in range(r0, r1):
        key = row_key(seed, epoch, ids[r], layer)
        s = src[r]
        d = dst[r]
        x = key  # key + u * _GOLDEN, as an induction variable (no multiply)
        for u in range(m):
            h = _mix(x)
            x += _GOLDEN
            d[u] = s[u] * scale if (h >> np.uint64(11)) >= thr else zero
