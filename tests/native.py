"""Calls from the tests into fastmlp's internal kernels.

A kernel compiled with ``fastmlp._jit.jit(internal=True)`` has no CPython
entry point (only compiled code calls it in fastmlp), and refuses calls
from Python. A test calls one through :func:`native`: a compiled function
that calls the kernel by symbol (``fastmlp._jit.call_by_symbol``), as the
fits do, so the test runs the kernel's own machine code rather than a
copy linked into the caller and optimised again. Bundles (named tuples)
go to the kernel as references (``fastmlp._jit.ref``), as compiled
callers pass them, so a test runs the signature a fit compiles.
"""

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmlp import _jit
from fastmlp._jit import call_by_symbol

_CALLERS = {}


@intrinsic
def _refs(typingctx, args):
    """``args`` (a tuple) with every bundle in it as a reference."""
    out = types.Tuple([_jit.BundleRef(t) if isinstance(t, types.BaseNamedTuple) else t
                       for t in args.types])

    def codegen(context, builder, signature, llargs):
        vals = []
        for i, ty in enumerate(args.types):
            val = builder.extract_value(llargs[0], i)
            if isinstance(ty, types.BaseNamedTuple):
                slot = cgutils.alloca_once(builder, context.get_data_type(ty))
                context.pack_value(builder, ty, val, slot)
                val = slot
            else:
                context.nrt.incref(builder, ty, val)
            vals.append(val)
        return context.make_tuple(builder, out, vals)

    return out(args), codegen


@njit
def _same(args):
    return args


_as_refs = _same if _jit.PLAIN else _refs


def native(kernel):
    """A Python callable that runs ``kernel`` (an internal, module-level
    kernel) on its arguments from compiled code and returns its result."""
    caller = _CALLERS.get(kernel)
    if caller is None:
        call = call_by_symbol(kernel)

        @njit
        def caller(*args):
            return call(*_as_refs(args))

        _CALLERS[kernel] = caller
    return caller
