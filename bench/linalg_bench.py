"""Micro-benchmark of fastmlp._linalg.layer's operations vs numpy GEMM.

usage: python bench/linalg_bench.py NTHREADS [dense]
"""
import sys, time
import numpy as np, numba
from threadpoolctl import threadpool_limits

from fastmlp._bundles import make_params, make_shape, predict_params
from fastmlp._codes import (ADAM, BACKWARD, FORWARD, GRADIENT, H_ALPHA, H_STEP_LR, HEAD_IDENTITY,
                            IDENTITY, RELU)
from fastmlp._layout import Layout
from fastmlp._linalg import layer

if __name__ == "__main__":
    nt = int(sys.argv[1])
    numba.set_num_threads(nt)
    threadpool_limits(nt)
else:
    nt = 1
dense = len(sys.argv) > 2 and sys.argv[2] == "dense"
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
    """{op: (callable, output array, float64 reference)} for one shape; the
    gradient's parameters are unchanged (NO_STEP), "adam" steps them."""
    A, W, b, D = inputs(dt, n, k, m)
    # a one-layer network: the layer's weights at offset 0, its block of
    # the work buffers of n rows
    shape, _ = make_shape(Layout([k, m]), [], HEAD_IDENTITY, n)
    theta = np.concatenate([W.ravel(), b]).astype(dt)
    wo, bo = 0, k * m
    hyper = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, alpha=1e-4)
    fwd = predict_params(theta)
    grad = make_params(theta, **hyper)  # NO_STEP: the gradient alone
    adam = make_params(theta, grad=grad.grad, solver=ADAM, **hyper)
    adam.hyper[H_STEP_LR] = 1e-12  # Adam steps that leave theta (almost) as it is
    Z = np.empty((n, m), dt)
    Dp = np.empty((n, k), dt)
    none = Z[:0]  # no pre-activations kept
    sw = dt(n)
    alpha = float(grad.hyper[H_ALPHA])
    dW = grad.grad[wo:bo].reshape(k, m); db = grad.grad[bo:]
    return dict(
        fwd=(lambda: layer(FORWARD, 0, RELU, fwd, shape, (A, A, Z, none), sw), Z,
             np.maximum(A.astype(float) @ W + b, 0)),
        grad=(lambda: layer(GRADIENT, 0, IDENTITY, grad, shape, (A, D, D, D), sw), dW,
              (A.astype(float).T @ D + alpha * W) / float(sw)),
        back=(lambda: layer(BACKWARD, 0, RELU, fwd, shape, (A, D, Dp, A), sw), Dp,
              (D.astype(float) @ W.T.astype(float)) * (A != 0)),
        adam=(lambda: layer(GRADIENT, 0, IDENTITY, adam, shape, (A, D, D, D), sw), dW,
              (A.astype(float).T @ D + alpha * W) / float(sw)),
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
          for p in ("fwd", "grad", "back", "adam"):
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
