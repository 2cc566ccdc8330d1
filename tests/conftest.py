"""Suite-wide fixtures."""

import os

import pytest

# The thread limit the suite started with (fastmlp honours OMP_NUM_THREADS).
_OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS")


@pytest.fixture(autouse=True)
def _restore_thread_limit():
    """Put OMP_NUM_THREADS back after each test.

    dask.distributed's ``LocalCluster`` (tests/test_dask.py, the README's
    dask example) sets ``OMP_NUM_THREADS=1`` in the process that creates it,
    for the workers it spawns, and leaves it set; fastmlp caps its threads by
    it, so every later test ran on one thread and the tests that compare
    thread counts compared one thread with one thread.
    """
    yield
    if _OMP_NUM_THREADS is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = _OMP_NUM_THREADS
