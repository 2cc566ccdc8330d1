"""How many threads a fit or a prediction uses.

Numba's parallel loops run on an OpenMP-style pool whose every parallel
region ends in a barrier. On small work that barrier costs more than the
work, and when the cores are shared (several fits at once, joblib workers,
a busy machine) a region waits for a descheduled thread: a small L-BFGS fit
was measured 13x slower on 2 threads than on 1 on a loaded 2-core machine.
So small work runs on one thread, and the thread count never exceeds what
the environment grants.

The count used is ``min(requested, environment limit)``, and 1 when the
work per compiled call is below :data:`PARALLEL_MIN_WORK`. Results do not
depend on it: every kernel partitions its work independently of the thread
count.
"""

import os
from contextlib import contextmanager

import numba

# Multiply-adds of one forward pass over one batch (rows x weights) below
# which a fit or prediction runs on a single thread.
PARALLEL_MIN_WORK = 1 << 20

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


@contextmanager
def threads(count):
    """Run the body with Numba's thread count set to ``count``, then restore."""
    old = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(old)
