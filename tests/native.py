"""Calls from the tests into fastmlp's internal kernels.

A kernel compiled with ``fastmlp._jit.jit(internal=True)`` has no CPython
entry point (only compiled code calls it in fastmlp), and refuses calls
from Python. A test calls one through :func:`native`: a compiled function
that calls the kernel by symbol (``fastmlp._jit.call_by_symbol``), as the
fits do, so the test runs the kernel's own machine code rather than a
copy linked into the caller and optimised again.
"""

from numba import njit

from fastmlp._jit import call_by_symbol

_CALLERS = {}


def native(kernel):
    """A Python callable that runs ``kernel`` (an internal, module-level
    kernel) on its arguments from compiled code and returns its result."""
    caller = _CALLERS.get(kernel)
    if caller is None:
        call = call_by_symbol(kernel)

        @njit
        def caller(*args):
            return call(*args)

        _CALLERS[kernel] = caller
    return caller
