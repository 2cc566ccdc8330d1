"""Measurements that need a fresh interpreter.

The parent calls :func:`spawn`, which runs ``python -m bench._child ...``
and reads back the JSON object the child prints last. Two commands:

``memory``
    Import one library, optionally warm it up on a few batches, load a
    saved training set, fit; report resident memory after the imports,
    after the warm-up, with the data loaded, and the peak.
``compile``
    Time ``import fastmlp``, the first fit (kernels compiled, or loaded from
    the on-disk cache at ``NUMBA_CACHE_DIR``), then steady-state fits and
    predictions.

This module imports nothing heavy at its top, so that the child's import
timings and baseline memory are those of the library alone.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------
# Parent side


def spawn(args, env=None, timeout=1800):
    """Run ``python -m bench._child *args`` from the repository root.

    Parameters
    ----------
    args : list of str
        Command and options.
    env : dict, optional
        Variables added to this process's environment.
    timeout : float, default=1800
        Seconds before the child is killed.

    Returns
    -------
    result : dict
        The child's JSON result, or ``{"error": message}`` when it failed.
    """
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH")) if p
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench._child", *args],
            cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0]}"}
    return json.loads(lines[-1])


# ----------------------------------------------------------------------
# Child side


def _status_kib(field):
    """A ``/proc/self/status`` field in KiB (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_mib():
    """Resident memory now, MiB (falls back to the peak off Linux)."""
    kib = _status_kib("VmRSS")
    return kib / 1024 if kib is not None else peak_rss_mib()


def peak_rss_mib():
    """Peak resident memory of this process, MiB.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` on Linux also counts the address
    space the process had before ``exec`` (the parent's, when spawned with
    fork or vfork), so a child of a large benchmark process would report
    the parent's size. ``VmHWM`` is the same high-water mark for the
    child's own address space; it is used when available.
    """
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":  # bytes there
            kib /= 1024
    return kib / 1024


def _net(args):
    from bench._workloads import Net

    return Net(tuple(int(h) for h in args.hidden.split(",")), args.batch_size, args.epochs)


def memory(args):
    """Fit ``args.library`` once on the saved data; resident memory at each stage."""
    import warnings

    import numpy as np
    from threadpoolctl import threadpool_limits
    from sklearn.exceptions import ConvergenceWarning

    from bench._libs import fastmlp_library, sklearn_library

    threadpool_limits(args.threads, user_api="blas")
    lib = fastmlp_library(args.threads) if args.library == "fastmlp" else sklearn_library()
    imports = current_rss_mib()
    warnings.simplefilter("ignore", ConvergenceWarning)
    net = _net(args)

    data = np.load(args.data)  # members are read on access
    if args.warm_up:  # first-call costs (fastmlp: loading its kernels) before the data
        lib.warm_up(data["X_warm"], data["y_warm"], net)
    warmed = current_rss_mib()

    X, y = data["X"], data["y"]
    with_data = current_rss_mib()

    t0 = time.perf_counter()
    model = lib.fit(X, y, net)
    seconds = time.perf_counter() - t0
    return {
        "imports_mib": imports,
        "warmed_mib": warmed,
        "data_mib": with_data,
        "peak_mib": peak_rss_mib(),
        "fit_s": seconds,
        "epochs_run": int(model.n_iter_),
        "data_bytes": int(X.nbytes + y.nbytes),
    }


def compile_(args):
    """First-fit and first-predict overhead of fastmlp in this fresh process."""
    t0 = time.perf_counter()
    import fastmlp  # noqa: F401  (timed)

    import_s = time.perf_counter() - t0

    import statistics
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from bench._libs import fastmlp_library
    from bench._workloads import digits

    warnings.simplefilter("ignore", ConvergenceWarning)
    split = digits().astype(args.dtype)
    lib = fastmlp_library(args.threads)
    net = _net(args)

    def fit():
        t = time.perf_counter()
        model = lib.fit(split.X_train, split.y_train, net)
        return time.perf_counter() - t, model

    def predict(model, X=split.X_test):
        t = time.perf_counter()
        lib.predict_proba(model, X)
        return time.perf_counter() - t

    one_row = np.ascontiguousarray(split.X_test[:1])
    first_fit, model = fit()
    # the test set takes the parallel network kernel, one row the serial one
    first_predict = predict(model)
    first_predict_1 = predict(model, one_row)
    steady_fit = statistics.median(fit()[0] for _ in range(3))
    steady_predict = statistics.median(predict(model) for _ in range(5))
    steady_predict_1 = statistics.median(predict(model, one_row) for _ in range(5))
    cache = os.environ.get("NUMBA_CACHE_DIR")
    cache_files = sum(1 for _ in Path(cache).rglob("*.nbi")) if cache else None
    return {
        "import_s": import_s,
        "first_fit_s": first_fit,
        "steady_fit_s": steady_fit,
        "fit_compile_s": first_fit - steady_fit,
        "predict_compile_s": first_predict - steady_predict,
        "predict_1_compile_s": first_predict_1 - steady_predict_1,
        "cache_index_files": cache_files,
        "dtype": str(np.dtype(args.dtype)),
    }


def main(argv=None):
    """Parse the command, run it, print its JSON result as the last line."""
    parser = argparse.ArgumentParser(prog="python -m bench._child")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("memory", "compile"):
        p = sub.add_parser(name)
        p.add_argument("--threads", type=int, required=True)
        p.add_argument("--hidden", required=True, help="comma-separated, e.g. 256,256")
        p.add_argument("--batch-size", type=int, required=True)
        p.add_argument("--epochs", type=int, required=True)
        if name == "memory":
            p.add_argument("--library", choices=("fastmlp", "sklearn"), required=True)
            p.add_argument("--data", required=True,
                           help=".npz with X, y and a few warm-up rows X_warm, y_warm")
            p.add_argument("--warm-up", action="store_true",
                           help="fit a few batches before loading the data")
        else:
            p.add_argument("--dtype", choices=("float32", "float64"), required=True)
    args = parser.parse_args(argv)
    result = memory(args) if args.command == "memory" else compile_(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
