"""Calls from the tests into fastmlp's internal kernels.

A kernel compiled with ``fastmlp._jit.jit(internal=True)`` has no CPython
entry point (only compiled code calls it in fastmlp), and refuses calls
from Python. A test calls one through :func:`native`: a compiled function
that calls the kernel, compiled for each kernel and argument types as any
caller of it is.
"""

from numba import njit


@njit
def _call(kernel, *args):
    return kernel(*args)


def native(kernel):
    """A Python callable that runs ``kernel`` (an internal kernel) on its
    arguments from compiled code and returns its result."""

    def call(*args):
        return _call(kernel, *args)

    return call
