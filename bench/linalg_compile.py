"""Compile time of the dense _linalg kernels, per dtype, from an empty cache.
usage: NUMBA_CACHE_DIR=$(mktemp -d) python linalg_compile.py MODULE"""
import sys, time, importlib, numpy as np
t0 = time.perf_counter()
mod = importlib.import_module(sys.argv[1])
print(f"import {time.perf_counter() - t0:.1f}s", end="")
for dt in (np.float32, np.float64):
    t = time.perf_counter()
    n, k, m = 8, 6, 20
    A = np.ones((n, k), dt); W = np.ones((k, m), dt); b = np.ones(m, dt); Z = np.ones((n, m), dt)
    mod.linear_forward(A, W, b, Z, 3)
    mod.linear_grad(A, Z, W, dt(1), dt(1), np.ones((k, m), dt), b)
    if hasattr(mod, "transpose"):  # the hand-written kernels of old took W.T
        WT = np.ones((m, k), dt); mod.transpose(W, WT)
    else:
        WT = W
    mod.linear_backward(Z, WT, A, 3, np.ones((n, k), dt))
    print(f" | {dt.__name__}: {time.perf_counter() - t:.1f}s", end="")
print()
