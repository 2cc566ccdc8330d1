"""Machine description and the GEMM ceiling every GFLOP/s is compared with."""

import atexit
import os
import platform
import shutil
import subprocess
import tempfile
import time

import numpy as np

GEMM_N = 2048


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo`` on Linux)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def _cpuinfo_field(name):
    """Field ``name`` of the first CPU in ``/proc/cpuinfo``, or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cache_size(index):
    try:
        with open(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size") as f:
            return f.read().strip()
    except OSError:
        return "?"


def cpu_details():
    """What decides which machine code runs: CPU family and model, LLVM's
    name for the host CPU (Numba compiles for it), AVX-512 (OpenBLAS picks
    its kernels by it), and the L2 and L3 caches of CPU 0.

    Two "AMD EPYC" machines can be a Zen 2 and a Zen 4, with different
    BLAS kernels and twice the L2: compare runs only where this agrees.
    """
    from llvmlite import binding

    flags = (_cpuinfo_field("flags") or "").split()
    family, model = _cpuinfo_field("cpu family"), _cpuinfo_field("model")
    return (f"family {family} model {model}, LLVM {binding.get_host_cpu_name()}, "
            f"AVX-512 {'yes' if 'avx512f' in flags else 'no'}, "
            f"L2 {_cache_size(2)}, L3 {_cache_size(3)}")


_PROBE = None


def core_round_trip_ns():
    """Median round trip of a cache line between the first two usable CPUs,
    in ns, by ``bench/_pingpong.c`` (built once with the system C compiler,
    in a temporary directory removed at exit).

    On a virtual machine the host places the virtual CPUs, and moves them:
    measured on the Zen 4 machine of bench/README.md, 50-90 ns most of the
    time and 350-750 ns for minutes at a time, during which two-thread fits
    took up to 1.8x longer (the threads hand each other cache lines many
    times per batch). The bench measures it before each section so a table
    says which state it ran in. Returns None where there are fewer than two
    CPUs, no C compiler, or the probe fails to build or run (the bench
    goes on without it).
    """
    global _PROBE
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cc = shutil.which("cc") or shutil.which("gcc")
    if len(cpus) < 2 or cc is None:
        return None
    try:
        if _PROBE is None:
            _PROBE = ""
            src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_pingpong.c")
            tmp = tempfile.mkdtemp(prefix="fastmlp-bench-")
            atexit.register(shutil.rmtree, tmp, ignore_errors=True)
            exe = os.path.join(tmp, "pingpong")
            built = subprocess.run([cc, "-O2", "-pthread", src, "-o", exe],
                                   capture_output=True, timeout=120)
            if built.returncode == 0:
                _PROBE = exe
        if not _PROBE:
            return None
        out = subprocess.run([_PROBE, str(cpus[0]), str(cpus[1])], capture_output=True,
                             text=True, timeout=60)
        return float(out.stdout) if out.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


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
        ("CPU details", cpu_details()),
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
