"""Machine description and the GEMM ceiling every GFLOP/s is compared with."""

import os
import platform
import time

import numpy as np

GEMM_N = 2048


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo`` on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores():
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count()


def gemm_gflops(dtype, n=GEMM_N, repeats=3):
    """NumPy GEMM throughput: ``n x n @ n x n`` in ``dtype``, best of ``repeats``.

    Runs on the BLAS threads set for the process.

    Returns
    -------
    gflops : float
        ``2 n^3 / best_time / 1e9``.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    a @ b  # first call: thread start-up, page faults
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def blas_description():
    """NumPy's BLAS as threadpoolctl sees it, e.g. ``openblas 0.3.31 (Haswell), 2 threads``."""
    from threadpoolctl import threadpool_info

    for lib in threadpool_info():
        if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", ""):
            arch = lib.get("architecture")
            arch = f" ({arch})" if arch else ""
            return f"{lib['internal_api']} {lib.get('version')}{arch}, {lib['num_threads']} threads"
    return "unknown"


def kernels_blas():
    """The BLAS library fastmlp's layer kernels call (``fastmlp._blas``)."""
    from fastmlp import _blas

    if _blas.ILP64:
        return f"numpy's OpenBLAS ({os.path.basename(_blas.LIBRARY)})"
    return "scipy's (scipy.linalg.cython_blas)"


def threading_layer():
    """Numba's threading layer once a parallel region has run, else its setting."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return f"{numba.config.THREADING_LAYER} (not started)"


def machine_info():
    """``(item, value)`` pairs for the header table."""
    import numba
    import scipy
    import sklearn

    import fastmlp

    return [
        ("CPU", cpu_model()),
        ("cores", f"{usable_cores()} usable ({os.cpu_count()} logical)"),
        ("Python", platform.python_version()),
        ("fastmlp", fastmlp.__version__),
        ("numba", f"{numba.__version__} (pool of {numba.config.NUMBA_NUM_THREADS} threads)"),
        ("numba threading layer", threading_layer()),
        ("numpy", np.__version__),
        ("numpy BLAS", blas_description()),
        ("fastmlp kernels' BLAS", kernels_blas()),
        ("scipy", scipy.__version__),
        ("scikit-learn", sklearn.__version__),
    ]
