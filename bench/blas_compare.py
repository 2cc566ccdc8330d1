"""NumPy's OpenBLAS against scipy's, one thread, on the layer kernel's task shapes.

usage: python bench/blas_compare.py [float32|float64]

Calls each library's Fortran ``?gemm_`` through ctypes (the same call, the
same overhead for both), in the three forms the layer kernel uses (forward
``X @ W``, delta propagation ``D @ W.T``, weight gradient ``X.T @ D``), and
prints GFLOP/s, best of 7 x 300 calls, the two libraries interleaved. This
is the measurement behind fastmlp/_blas.py's choice of NumPy's library.
Needs NumPy's ILP64 OpenBLAS (NumPy's pip wheels) and scipy's OpenBLAS
(scipy's pip wheels).
"""
import ctypes
import glob
import os
import sys
import time

import numpy as np
import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS)
from threadpoolctl import threadpool_limits

SHAPES = [(100, 256, 256), (200, 256, 256), (100, 100, 256), (128, 512, 512), (100, 256, 5)]


def _numpy_gemm(ch):
    """NumPy's ILP64 ``?gemm_``, found as fastmlp._blas finds it."""
    from fastmlp import _blas

    found = _blas._numpy_openblas()
    if found is None:
        sys.exit("NumPy ships no ILP64 OpenBLAS here")
    address = found[1][0 if ch == "s" else 1]
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)(address), ctypes.c_int64


def _scipy_gemm(ch):
    """scipy's ``?gemm_`` (32-bit integers) from its bundled OpenBLAS."""
    site = os.path.dirname(os.path.dirname(np.__file__))
    paths = glob.glob(os.path.join(site, "scipy.libs", "libscipy_openblas-*"))
    if not paths:
        sys.exit("scipy's bundled OpenBLAS not found")
    return getattr(ctypes.CDLL(paths[0]), f"scipy_{ch}gemm_"), ctypes.c_int32


def _caller(lib, dt):
    fn, int_type = lib
    P = ctypes.c_void_p

    def make(ta, tb, m, n, k, A, lda, B, ldb, C, ldc):
        scalars = np.array([1, 0], dt)  # alpha, beta: kept alive by the closure
        ints = [int_type(v) for v in (m, n, k, lda, ldb, ldc)]
        args = (ctypes.c_char_p(ta), ctypes.c_char_p(tb), *map(ctypes.byref, ints[:3]),
                P(scalars.ctypes.data), P(A.ctypes.data), ctypes.byref(ints[3]),
                P(B.ctypes.data), ctypes.byref(ints[4]), P(scalars.ctypes.data + dt().itemsize),
                P(C.ctypes.data), ctypes.byref(ints[5]))
        keep = (scalars, ints, A, B, C)
        return lambda: keep and fn(*args)

    return make


def _best(fs, reps=300):
    best = [np.inf] * len(fs)
    for _ in range(7):
        for i, f in enumerate(fs):
            t = time.perf_counter()
            for _ in range(reps):
                f()
            best[i] = min(best[i], (time.perf_counter() - t) / reps)
    return best


def main():
    dt = np.dtype(sys.argv[1] if len(sys.argv) > 1 else "float32").type
    ch = "s" if dt == np.float32 else "d"
    libs = {"numpy": _numpy_gemm(ch), "scipy": _scipy_gemm(ch)}
    threadpool_limits(1)
    rng = np.random.default_rng(0)
    print(f"{np.dtype(dt).name}, one thread, GFLOP/s (NumPy's / scipy's OpenBLAS)")
    for n, k, m in SHAPES:
        X = rng.standard_normal((n, k)).astype(dt)
        W = rng.standard_normal((k, m)).astype(dt)
        D = rng.standard_normal((n, m)).astype(dt)
        Z, P, G = np.zeros((n, m), dt), np.zeros((n, k), dt), np.zeros((k, m), dt)
        line = f"{n}x{k} @ {k}x{m}:"
        for form in ("forward", "backward", "gradient"):
            fs = []
            for lib in libs.values():
                make = _caller(lib, dt)
                # row-major products as column-major BLAS calls, as _linalg._mm makes them
                if form == "forward":
                    fs.append(make(b"N", b"N", m, n, k, W, m, X, k, Z, m))
                elif form == "backward":
                    fs.append(make(b"T", b"N", k, n, m, W, m, D, m, P, k))
                else:
                    fs.append(make(b"N", b"T", m, k, n, D, m, X, k, G, m))
            fs[0]()
            ref = {"forward": Z, "backward": P, "gradient": G}[form].copy()
            fs[1]()
            now = {"forward": Z, "backward": P, "gradient": G}[form]
            assert np.allclose(ref, now, rtol=1e-3, atol=1e-3), form
            t = _best(fs)
            flop = 2 * n * k * m / 1e9
            line += f"  {form} {flop / t[0]:.0f} / {flop / t[1]:.0f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
