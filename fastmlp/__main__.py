"""Command line: ``python -m fastmlp demo`` and ``python -m fastmlp warm-up``.

The demo trains fastmlp and scikit-learn side by side on scikit-learn's
bundled digits data (standardised, 1797 x 64, 10 classes) with the same
settings and the same random_state, then prints the threads each one ran
with, each one's test accuracy, fit time and the speed-up.
"""

import argparse
import sys
import time
import warnings


def demo(max_iter=200, repeats=3):
    """Fit both libraries on digits; print accuracy, time and speed-up.

    Parameters
    ----------
    max_iter : int, default=200
        Epochs of each fit (``tol=0`` so both run them all).
    repeats : int, default=3
        Timed fits per library; the median is reported. fastmlp's first fit
        in a fresh process also compiles (or loads from the on-disk cache)
        its kernels, which is timed and reported separately.
    """
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SkMLP
    from sklearn.preprocessing import StandardScaler

    from fastmlp import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    params = dict(hidden_layer_sizes=(100,), max_iter=max_iter, tol=0.0, random_state=0)
    print(f"digits: {X_train.shape[0]} train / {X_test.shape[0]} test rows, "
          f"{X_train.shape[1]} features; MLP(100,) relu, adam, {max_iter} epochs")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        MLPClassifier(**{**params, "max_iter": 1}).fit(X_train, y_train)
        warmup = time.perf_counter() - t0

        results = {}
        for name, cls in (("scikit-learn", SkMLP), ("fastmlp", MLPClassifier)):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model = cls(**params).fit(X_train, y_train)
                times.append(time.perf_counter() - t0)
            results[name] = (float(np.median(times)), model.score(X_test, y_test))

    print(f"fastmlp first call (kernel compile or cache load): {warmup:.2f} s")
    print(_thread_settings())
    print(f"{'library':<14}{'fit time (s)':>14}{'test accuracy':>16}")
    for name, (t, acc) in results.items():
        print(f"{name:<14}{t:>14.3f}{acc:>16.4f}")
    speedup = results["scikit-learn"][0] / results["fastmlp"][0]
    print(f"speed-up: fastmlp fits {speedup:.1f}x faster than scikit-learn")
    return results


def _thread_settings():
    """One line: the threads each library ran with (the speed-up depends on
    them: scikit-learn's products use its BLAS's threads, fastmlp's kernels
    Numba's)."""
    import os

    import numba
    from threadpoolctl import threadpool_info

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region ran yet
        layer = "not started"
    blas = ", ".join(dict.fromkeys(f"{p['internal_api']} {p['num_threads']}"
                                   for p in threadpool_info()
                                   if p.get("user_api") == "blas")) or "none found"
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                     "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
                    if k in os.environ) or "no thread variables set"
    return (f"threads: fastmlp {numba.get_num_threads()} (Numba, {layer} layer); "
            f"scikit-learn's BLAS: {blas}; {env}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastmlp")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="digits: fastmlp vs scikit-learn side by side")
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("warm-up", help="compile every kernel into Numba's on-disk cache")
    p.add_argument("--dtype", action="append", choices=["float64", "float32"],
                   help="dtype to prepare (repeatable; default: both)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(max_iter=args.max_iter, repeats=args.repeats)
    elif args.command == "warm-up":
        from fastmlp._warmup import _DTYPES, warm_up

        for name, s in warm_up(args.dtype or _DTYPES).items():
            print(f"{name}: kernels ready in {s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
