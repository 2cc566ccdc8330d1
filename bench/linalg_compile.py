"""Compile time of fastmlp._linalg.layer, per dtype, from an empty cache.
usage: NUMBA_CACHE_DIR=$(mktemp -d) python bench/linalg_compile.py"""
import time
import numpy as np
t0 = time.perf_counter()
from fastmlp import _linalg
from fastmlp._bundles import make_shape, predict_params
from fastmlp._codes import FORWARD, HEAD_IDENTITY, RELU
from fastmlp._layout import Layout
print(f"import {time.perf_counter() - t0:.1f}s", end="")
for dt in (np.float32, np.float64):
    t = time.perf_counter()
    n, k, m = 8, 6, 20
    A = np.ones((n, k), dt); Z = np.ones((n, m), dt); theta = np.ones(k * m + m, dt)
    shape, _ = make_shape(Layout([k, m]), [], HEAD_IDENTITY, n)
    _linalg.layer(FORWARD, 0, RELU, predict_params(theta), shape, (A, A, Z, Z[:0]), dt(1))
    print(f" | {dt.__name__}: {time.perf_counter() - t:.1f}s", end="")
print()
