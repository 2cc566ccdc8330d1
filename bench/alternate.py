"""Two commits of fastmlp in ONE process, their calls alternating.

``python -m bench.alternate REF [--only w1,w2f32,row1,row1f64,cold] [--pairs N]``

Imports the working tree's ``fastmlp`` and REF's package (extracted with
``git archive`` into a temporary directory and imported as ``fastmlp_ref``;
fastmlp imports itself only relatively, and each copy compiles into a cache
of its own), then times the same work on both in alternating pairs (A B,
B A, ...): on this noisy 2-vCPU host, whole-process timings of one commit
and then the other differ by more than an engine change does, and pairs
in one process see the same host state. Prints, per workload, each side's
median and minimum and the median of the pairwise ratios working tree /
REF. Workloads:

- ``w1``: bench's W1 fit (digits' 1437 training rows, standardised,
  ``(100,)``, adam, batch 200, 200 epochs), float64, 2 threads;
- ``w2f32``: W2's fit in float32 (40,000 rows, ``(256, 256)``, 5 epochs);
- ``row1`` / ``row1f64``: ``predict_proba`` of one row on W2's network;
- ``cold``: a first fit from an empty cache (digits, ``(100,)``, adam,
  float64, 2 epochs, ``n_threads=1``), each in a fresh process with a new
  ``NUMBA_CACHE_DIR``: the fit's CPU seconds, nearly all compilation
  (not among the defaults: about 10 s a process).
"""

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _import_ref(ref, into):
    """REF's ``fastmlp`` package as the module ``fastmlp_ref``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "fastmlp"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    Path(into, "fastmlp").rename(Path(into, "fastmlp_ref"))
    sys.path.insert(0, into)
    return importlib.import_module("fastmlp_ref")


_COLD_FIT = """
import importlib, resource, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])
lib = importlib.import_module(sys.argv[2])
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
before = resource.getrusage(resource.RUSAGE_SELF)
lib.MLPClassifier((100,), max_iter=2, random_state=0, n_threads=1).fit(X, y)
after = resource.getrusage(resource.RUSAGE_SELF)
print(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
"""


def _cold_fit(lib):
    """CPU seconds of ``lib``'s first fit in a fresh process and cache."""
    root = str(Path(lib.__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", _COLD_FIT, root, lib.__name__], env=env,
                             check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def _workload(name):
    """``run(lib) -> seconds`` for workload ``name``."""
    from sklearn.datasets import load_digits, make_classification
    from sklearn.preprocessing import StandardScaler

    if name == "cold":
        return _cold_fit

    if name in ("w1", "w2f32"):
        if name == "w1":
            X, y = load_digits(return_X_y=True)
            X, y = StandardScaler().fit_transform(X[:1437]), y[:1437]
            kw = dict(hidden_layer_sizes=(100,), batch_size=200, max_iter=200)
        else:
            X, y = make_classification(n_samples=40_000, n_features=100, n_informative=50,
                                       n_classes=5, random_state=0)
            X = X.astype(np.float32)
            kw = dict(hidden_layer_sizes=(256, 256), batch_size=200, max_iter=5)

        def run(lib):
            t = time.perf_counter()
            lib.MLPClassifier(random_state=0, tol=0, n_iter_no_change=10**9, n_threads=2,
                              **kw).fit(X, y)
            return time.perf_counter() - t

        return run
    X, y = make_classification(n_samples=2000, n_features=100, n_informative=50, n_classes=5,
                               random_state=0)
    X = X.astype(np.float64 if name == "row1f64" else np.float32)
    x = X[:1].copy()
    models = {}

    def run(lib):
        clf = models.get(lib)
        if clf is None:
            clf = models[lib] = lib.MLPClassifier((256, 256), max_iter=2,
                                                  random_state=0).fit(X, y)
            clf.predict_proba(x)
        t = time.perf_counter()
        for _ in range(3000):
            clf.predict_proba(x)
        return (time.perf_counter() - t) / 3000

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.alternate")
    parser.add_argument("ref", help="the git ref to compare the working tree with")
    parser.add_argument("--only", default="w1,w2f32,row1,row1f64")
    parser.add_argument("--pairs", type=int, default=10)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import fastmlp

    with tempfile.TemporaryDirectory() as tmp:
        libs = {"ref": _import_ref(args.ref, tmp), "tree": fastmlp}
        print(f"working tree ({Path(fastmlp.__file__).parent}) / {args.ref}, "
              f"{args.pairs} alternating pairs in one process")
        for name in args.only.split(","):
            run = _workload(name)
            for lib in libs.values() if name != "cold" else ():
                run(lib)  # compile or load, and warm
            times = {"ref": [], "tree": []}
            for p in range(args.pairs):
                for side in ("ref", "tree") if p % 2 == 0 else ("tree", "ref"):
                    times[side].append(run(libs[side]))
            ratio = statistics.median(t / r for r, t in zip(times["ref"], times["tree"]))
            unit, scale = ("us", 1e6) if name.startswith("row") else ("s", 1.0)
            print(f"{name:8s} ref median {statistics.median(times['ref']) * scale:.4g} {unit} "
                  f"(min {min(times['ref']) * scale:.4g}) | tree median "
                  f"{statistics.median(times['tree']) * scale:.4g} {unit} "
                  f"(min {min(times['tree']) * scale:.4g}) | tree/ref {ratio:.3f}")


if __name__ == "__main__":
    main()
