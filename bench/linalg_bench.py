"""Micro-benchmark of the _linalg primitives vs numpy GEMM.

usage: python linalg_bench.py MODULE NTHREADS [dense]
MODULE: linalg_orig | linalg_dev | fastmlp._linalg
"""
import importlib, sys, time
import numpy as np, numba
from threadpoolctl import threadpool_limits

if __name__ == "__main__":
    mod = importlib.import_module(sys.argv[1])
    nt = int(sys.argv[2])
    numba.set_num_threads(nt)
    threadpool_limits(nt)
else:
    mod = None; nt = 1
dense = len(sys.argv) > 3 and sys.argv[3] == "dense"
RELU = 3
SHAPES = [("digits", 200, 64, 100), ("digits", 200, 100, 10),
          ("W2", 200, 100, 256), ("W2", 200, 256, 256), ("W2", 200, 256, 5),
          ("W3", 256, 200, 512), ("W3", 256, 512, 512), ("W3", 256, 512, 256), ("W3", 256, 256, 10)]


def med(f, rep):
    # 1 thread: CPU time of the process (robust to other processes on the
    # machine); more threads: wall time.
    clock = time.process_time if numba.get_num_threads() == 1 else time.perf_counter
    f()
    ts = []
    for _ in range(rep):
        t = clock(); f(); ts.append(clock() - t)
    return float(np.median(ts)), float(np.min(ts))


def inputs(dt, n, k, m, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, k)).astype(dt)
    if not dense:
        A[A < 0] = 0           # relu-like: ~50 % exact zeros
    W = rng.standard_normal((k, m)).astype(dt)
    b = rng.standard_normal(m).astype(dt)
    D = rng.standard_normal((n, m)).astype(dt)
    return A, W, b, D


def run_all(dt, n, k, m):
    A, W, b, D = inputs(dt, n, k, m)
    Z = np.empty((n, m), dt)
    dW = np.empty((k, m), dt); db = np.empty(m, dt)
    # the hand-written kernels of old took W.T, the BLAS ones take W
    WT = np.ascontiguousarray(W.T) if hasattr(mod, "transpose") else W
    Dp = np.empty((n, k), dt)
    alpha = dt(1e-4); sw = dt(n)
    fwd, grd, bwd = mod.linear_forward, mod.linear_grad, mod.linear_backward
    return dict(
        fwd=(lambda: fwd(A, W, b, Z, RELU), Z,
             np.maximum(A.astype(float) @ W + b, 0)),
        grad=(lambda: grd(A, D, W, alpha, sw, dW, db), dW,
              (A.astype(float).T @ D + float(alpha) * W) / float(sw)),
        back=(lambda: bwd(D, WT, A, RELU, Dp), Dp,
              (D.astype(float) @ W.T.astype(float)) * (A != 0)),
        db=(None, db, D.astype(float).sum(0) / float(sw)),
    )


out = {}
def main():
  for dt in (np.float32, np.float64):
      N = 2048 if nt > 1 else 1024
      G = np.random.default_rng(1).standard_normal((N, N)).astype(dt)
      tm, tb = med(lambda: G @ G, 7); gn = 2 * N ** 3 / tb / 1e9; gnm = 2 * N ** 3 / tm / 1e9
      print(f"{dt.__name__}: numpy GEMM {N}^2 best {gn:.1f} median {gnm:.1f} GFLOP/s ({nt} thr); entries: best GF/s (best% / median%)")
      # the kernels call BLAS inside their tasks: one BLAS thread there, as
      # fastmlp's fit and predict set it
      blas_one = threadpool_limits(1)
      for name, n, k, m in SHAPES:
          fl = 2 * n * k * m
          row = []
          prims = run_all(dt, n, k, m)
          for p in ("fwd", "grad", "back"):
              f, arr, ref = prims[p]
              tm, t = med(f, 60)
              f()
              err = np.abs(arr - ref).max() / max(np.abs(ref).max(), 1e-30)
              g = fl / t / 1e9; gm = fl / tm / 1e9
              row.append(f"{p} {g:5.1f} ({100*g/gn:3.0f}/{100*gm/gnm:3.0f}%) {err:.0e}")
              out[(dt.__name__, name, n, k, m, p)] = (g, g / gn, gm / gnm)
          print(f"  {name:6s} {n}x{k}@{k}x{m}: " + " | ".join(row))
      blas_one.restore_original_limits()
  

if __name__ == '__main__':
    main()
