"""The one place where fastmlp's kernels are compiled.

Every kernel is ``@njit`` with

* ``cache=True`` so a fresh process loads machine code from disk instead of
  compiling again. Numba tries the package's ``__pycache__`` first and falls
  back to a user cache directory when that is read-only; when no location is
  writable at all it raises at decoration time, and we then compile without
  a cache rather than fail to import.
* ``nogil=True`` so predictions may run from several Python threads at once.
* ``error_model='numpy'``: the default 'python' model adds a zero-division
  check that stops division loops (Adam's update) from vectorising.
* ``fastmath={'contract'}`` only: lets LLVM fuse ``a * b + c`` into one FMA,
  which doubles the arithmetic peak of the matrix loops. No ``nnan``/``ninf``
  (non-finite checks must stay meaningful) and no ``reassoc`` (a reduction's
  order, and so its rounding, must not depend on how LLVM vectorises it).
"""

from numba import njit

_OPTIONS = dict(nogil=True, error_model="numpy", fastmath={"contract"})


def jit(parallel=False):
    """Decorator: compile with fastmlp's options and the on-disk cache."""

    def decorate(func):
        try:
            return njit(cache=True, parallel=parallel, **_OPTIONS)(func)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(cache=False, parallel=parallel, **_OPTIONS)(func)

    return decorate
