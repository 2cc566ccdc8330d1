"""How many threads a fit or a prediction uses, and BLAS's count meanwhile.

The count is ``min(requested, environment limit)``, and 1 when one forward
pass over a batch is below :data:`PARALLEL_MIN_WORK` multiply-adds. Why:
every parallel region ends in a barrier, which on small work costs more than
the work and, on shared cores (several fits, joblib workers), waits for a
descheduled thread; a small L-BFGS fit ran 13x slower on 2 threads than on 1
on a loaded 2-core machine. Results do not depend on the count: every kernel
partitions its work independently of it.

Threading layer. fastmlp selects Numba's TBB layer at import when the
``tbb`` package is installed (``pip install -e ".[tbb]"`` from a checkout),
unless ``NUMBA_THREADING_LAYER`` is set or Numba's threads already started. GNU
OpenMP's barrier waits for descheduled threads on a loaded machine, and
Numba aborts a child forked after its parent ran GNU OpenMP ("fork() called
from a process already using GNU OpenMP"); TBB runs parallel kernels from
several Python threads at once and in such children. Without TBB, a fit or
prediction in such a child raises a clear error instead
(:func:`check_fork_safety`).
"""

import ctypes
import os
import sys
import threading
from contextlib import contextmanager

import numba
from numba.np.ufunc import parallel as _numba_parallel

# Multiply-adds of one forward pass over one batch (rows x weights) below
# which a fit or prediction runs on a single thread.
PARALLEL_MIN_WORK = 1 << 20

# A dense prediction runs on the calling thread, in the serial kernels
# (four rows per pass over the weights), when it has at most
# SERIAL_PREDICT_MAX_ROWS rows and fewer than SERIAL_PREDICT_MAX_WORK
# multiply-adds (rows x weights), or at most SERIAL_PREDICT_ROW_CAP rows and
# fewer than PARALLEL_MIN_WORK. Why: for a few rows the parallel path's fork
# and join, and BLAS packing the whole weight matrix, cost more than the
# arithmetic; on narrow layers the serial kernels vectorise poorly, so past
# the row cap BLAS is faster even on one thread, validation included.
SERIAL_PREDICT_MAX_WORK = 1 << 21
SERIAL_PREDICT_MAX_ROWS = 32
SERIAL_PREDICT_ROW_CAP = 2048


def serial_predict_max_rows(n_weights):
    """The most rows of a dense prediction with ``n_weights`` weights that
    run on the calling thread (the rule above; it is monotone in the rows)."""
    return min(SERIAL_PREDICT_ROW_CAP,
               max((PARALLEL_MIN_WORK - 1) // n_weights,
                   min(SERIAL_PREDICT_MAX_ROWS, (SERIAL_PREDICT_MAX_WORK - 1) // n_weights)))

_ENV_LIMITS = ("OMP_NUM_THREADS",)


def environment_limit():
    """Threads the environment allows: Numba's pool size, capped by
    ``OMP_NUM_THREADS`` when set (joblib's loky workers and dask set it to
    bound nested parallelism in each worker)."""
    limit = numba.config.NUMBA_NUM_THREADS
    for name in _ENV_LIMITS:
        value = os.environ.get(name, "")
        try:
            limit = min(limit, max(1, int(value)))
        except ValueError:
            pass
    return limit


def resolve_threads(n_threads, work):
    """Thread count for ``work`` multiply-adds per call.

    Parameters
    ----------
    n_threads : int or None
        The estimator's ``n_threads``: None for the environment's limit, a
        positive count, or -1 for every thread of Numba's pool (still capped
        by the environment).
    work : int
        Multiply-adds of one forward pass over one batch.
    """
    limit = environment_limit()
    if n_threads is None or n_threads == -1:
        wanted = limit
    else:
        wanted = min(int(n_threads), limit)
    if work < PARALLEL_MIN_WORK:
        return 1
    return max(1, wanted)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved = []
_BLAS_SETTERS = None


class _BlasThreads:
    """Set one BLAS library's thread count.

    OpenBLAS (0.3.30 and 0.3.31 at least) ignores
    ``openblas_set_num_threads`` called from any thread but the main one, so
    a fit in a worker thread (joblib's threading backend, a thread pool)
    would run its BLAS calls on OpenBLAS's threads, whose split of the work
    changes the results' last bits. ``openblas_set_num_threads_local``, where
    the library has it, takes effect from any thread; threadpoolctl's setter
    is the fallback.
    """

    def __init__(self, lib):
        self.lib = lib
        self.local = None
        if lib.internal_api == "openblas":
            so = ctypes.CDLL(lib.filepath)
            prefix = getattr(lib, "_symbol_prefix", "")
            suffix = getattr(lib, "_symbol_suffix", "")
            for name in (f"{prefix}openblas_set_num_threads_local{suffix}",
                         "openblas_set_num_threads_local"):
                fn = getattr(so, name, None)
                if fn is not None:
                    fn.argtypes = [ctypes.c_int]
                    fn.restype = ctypes.c_int
                    self.local = fn
                    break

    def set(self, n):
        """Set the count to ``n``; return the previous one."""
        if self.local is not None:
            return self.local(n)
        old = self.lib.num_threads
        self.lib.set_num_threads(n)
        return old


def _blas_setters():
    """One :class:`_BlasThreads` per BLAS library loaded in the process
    (looked up once: by then the library the kernels call is loaded, NumPy's
    own or scipy's, see :mod:`fastmlp._blas`)."""
    global _BLAS_SETTERS
    if _BLAS_SETTERS is None:
        from threadpoolctl import ThreadpoolController

        libs = ThreadpoolController().select(user_api="blas").lib_controllers
        _BLAS_SETTERS = [_BlasThreads(lib) for lib in libs]
    return _BLAS_SETTERS


@contextmanager
def single_threaded_blas():
    """Run the body with every BLAS library on one thread, then restore.

    The kernels call BLAS from inside Numba's parallel loops, one call per
    task: an OpenBLAS thread pool there would oversubscribe the cores, and
    its split of the work would make results depend on its thread count.
    BLAS thread counts are process-wide, so concurrent users (several Python
    threads fitting or predicting at once) share one setting: the first sets
    it, the last restores it.
    """
    global _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            _blas_saved = [(b, b.set(1)) for b in _blas_setters()]
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for b, n in _blas_saved:
                    if n != 1:
                        b.set(n)
                _blas_saved = []


@contextmanager
def threads(count):
    """Run the body with Numba's thread count set to ``count`` and BLAS on
    one thread (:func:`single_threaded_blas`), then restore both."""
    check_fork_safety()
    old = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        with single_threaded_blas():
            yield
    finally:
        numba.set_num_threads(old)


def _load_tbb():
    """Make pip's libtbb loadable by Numba; True when it is.

    The ``tbb`` wheel puts ``libtbb.so.12`` in the environment's ``lib``
    directory, which the dynamic loader does not search, so Numba's TBB
    layer fails to load it. Loading it first, by path, satisfies Numba's
    dependency.
    """
    try:
        from importlib.metadata import PackageNotFoundError, files
    except ImportError:  # pragma: no cover
        return False
    try:
        candidates = [f for f in (files("tbb") or []) if f.name.startswith("libtbb.so.12")]
    except PackageNotFoundError:
        return False
    for f in candidates:
        try:
            ctypes.CDLL(str(f.locate()), mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        try:
            from numba.np.ufunc import tbbpool  # noqa: F401
        except ImportError:
            return False
        return True
    return False


def _choose_threading_layer():
    if _numba_parallel._is_initialized:
        return  # Numba's threads already run: an earlier choice stands
    tbb = _load_tbb()  # also what NUMBA_THREADING_LAYER=tbb needs
    if tbb and not os.environ.get("NUMBA_THREADING_LAYER"):
        numba.config.THREADING_LAYER = "tbb"


_choose_threading_layer()

_PID = os.getpid()
_OMP_USED_BEFORE_FORK = False


def _after_fork_in_child():
    global _OMP_USED_BEFORE_FORK, _blas_lock, _blas_users, _blas_saved
    if _numba_parallel._is_initialized and numba.threading_layer() == "omp":
        _OMP_USED_BEFORE_FORK = True
    # Another thread of the parent may have held the lock or been inside a
    # fit at the fork: the child has only this thread, so start afresh.
    _blas_lock = threading.Lock()
    _blas_users = 0
    _blas_saved = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def check_fork_safety():
    """Raise a clear error where Numba would abort the process.

    A child forked after its parent ran a parallel kernel on GNU OpenMP
    cannot run parallel kernels.
    """
    if _OMP_USED_BEFORE_FORK:
        raise RuntimeError(
            "fastmlp cannot run in a process forked after its parent ran parallel "
            "kernels on GNU OpenMP (Numba aborts such a child). Install the 'tbb' "
            "package (pip install tbb; from a checkout, pip install -e \".[tbb]\") so "
            "fastmlp uses the fork-safe TBB threading layer, or start worker processes "
            "with 'spawn' or 'forkserver'."
        )
