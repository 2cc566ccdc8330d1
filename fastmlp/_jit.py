"""Numba internals, in one place, behind one switch.

Every kernel is compiled by :func:`jit` with ``cache=True`` (falling back to
no cache where no cache directory is writable), ``nogil=True`` (predictions
run from several Python threads), ``error_model='numpy'`` (the 'python'
model's zero-division check stops Adam's division loop from vectorising)
and ``fastmath={'contract'}`` only (``a * b + c`` may become one FMA; no
``nnan``/``ninf``, so non-finite checks keep their meaning, and no
``reassoc``, so a reduction's order does not depend on the vectoriser; the
one exception is :func:`fastmlp._kernels.l2_sum`).

Beyond that, fastmlp reaches into Numba's internals for eight things,
each for compile time, call time or safety, none for a result's bits:

* **calls by symbol** (:func:`call_by_symbol`): Numba links a callee's
  whole module into every compiled caller and optimises it again there (a
  ``prange`` body three more times); called by a fixed symbol name, each
  kernel of a batch is compiled once. It roughly halves LLVM's share of a
  first fit's compilation.
* **a keyed cache file** (:class:`_KeyedCacheFile`): Numba's own writer
  numbers data files in order of arrival, so two processes compiling at
  once can leave an index entry pointing at the other's machine code (a
  segfault on loading); and its index is keyed on the defining file alone,
  where a kernel holds code of every kernel source (:data:`SOURCES_STAMP`)
  and of the chosen BLAS (:data:`fastmlp._blas.KEY`).
* **internal kernels** (``jit(internal=True)``): kernels only compiled code
  calls are built without the CPython and C entry points, whose code Numba
  would otherwise generate and optimise for each; their dispatchers refuse
  calls from Python with a TypeError instead of crashing.
* **the freeze intrinsic** (:func:`kept`): keeps ReLU's select a plain
  vector store; written the obvious way LLVM makes it a masked store of the
  zeros alone, which AMD Zen runs as slow microcode.
* **the pow2 intrinsic** (:func:`pow2`): ``2.0 ** k`` as a bit pattern,
  which LLVM vectorises, where ``math.ldexp`` is a library call per
  element: it lets :func:`fastmlp._activations.exp64` run in vector lanes.
* **entry points bound to one signature** (:func:`entry_point`): Numba's
  dispatcher types every argument at every call, and a named tuple (a
  bundle) takes its slow path, field by field; a one-row prediction's
  call would cost more than its arithmetic.
* **bundle references** (:func:`ref`, :class:`BundleRef`): a named tuple
  travels between compiled functions as every field of every array in
  it, with a reference counted for each array wherever it is bound; a
  pointer to it in the caller's frame travels as one argument, and a
  field is read where it is used. Numba's own extension API, but its
  data models' packing and its getattr lowering's reference rules are
  internals.
* **cold kernels** (``jit(cold=True)``): the checks and the bookkeeping
  around the loops (the epoch, the network's task list) are optimised
  by LLVM at a low level; at ``-O3`` they took about a third of LLVM's
  time in a first fit, for no speed that W1 or W2 shows.

``FASTMLP_PLAIN_NUMBA=1`` switches all eight off: plain calls, no on-disk
cache (Numba's own cache would load stale code after an edit of a callee's
file), entry points built as usual, ``kept`` the identity, ``pow2``
``math.ldexp``, bundles passed
as named tuples, every kernel at ``-O3``, calls through the dispatcher.
Results are the same; compilation and calls are slower. CI runs part of
the suite so, so that a Numba release that breaks an internal costs
speed, not correctness.
"""

import hashlib
import importlib
import math
import os
import sys

from llvmlite import binding as llvm
from llvmlite import ir
from numba import config, njit, types
from numba.core import cgutils
from numba.core.compiler import Compiler
from numba.core.imputils import impl_ret_borrowed
from numba.core.typing.templates import AttributeTemplate
from numba.core.typing.typeof import Purpose, typeof
from numba.extending import (infer_getattr, intrinsic, lower_getattr_generic, models,
                             register_model)

from . import _blas

try:
    from numba.core.caching import IndexDataCacheFile
except ImportError:  # pragma: no cover - a Numba without this class
    IndexDataCacheFile = object

#: Whether Numba's internals are used (see the module docstring).
PLAIN = os.environ.get("FASTMLP_PLAIN_NUMBA", "").strip() not in ("", "0")

_OPTIONS = dict(nogil=True, error_model="numpy", fastmath={"contract"})
if not PLAIN:
    _OPTIONS["no_cfunc_wrapper"] = True

# The modules whose code, or names, end up inside compiled kernels.
KERNEL_SOURCES = ("_activations.py", "_blas.py", "_bundles.py", "_codes.py", "_engine.py",
                  "_jit.py", "_kernels.py", "_linalg.py", "_optim.py")


def sources_stamp(directory=os.path.dirname(os.path.abspath(__file__))):
    """A digest of the kernel source files in ``directory`` (a missing file
    counts as empty): any edit of any of them changes it."""
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES:
        digest.update(name.encode())
        try:
            with open(os.path.join(directory, name), "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
        except OSError:
            pass
    return digest.hexdigest()


SOURCES_STAMP = sources_stamp()


class _KeyedCacheFile(IndexDataCacheFile):
    """Numba's index + data cache files, safe against concurrent writers.

    The data file of a key is named after a digest of the key, written
    before the index entry that points at it; the index is re-read just
    before it is written so entries that another process added meanwhile
    are kept (a lost entry only costs a recompilation, never a crash).
    Processes using different BLAS libraries use files of different names
    (:func:`_use_keyed_cache_file`), so neither overwrites the machine code
    the other's index points at.
    """

    def save(self, key, data):
        digest = int(hashlib.sha256(repr(key).encode()).hexdigest()[:12], 16)
        data_name = self._data_name(digest)
        self._save_data(data_name, data)
        overloads = self._load_index()
        if overloads.get(key) != data_name:
            overloads[key] = data_name
            self._save_index(overloads)


def _use_keyed_cache_file(dispatcher):
    cache = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    if type(cache_file) is IndexDataCacheFile:
        cache_file.__class__ = _KeyedCacheFile
        # an index saved under another stamp loads as empty: recompile
        stamp = (cache_file._source_stamp, SOURCES_STAMP, _blas.KEY)
        # Each BLAS library has files of its own, so that processes using
        # either (FASTMLP_BLAS=scipy) keep each other's cache entries; so
        # has bounds-checked code (NUMBA_BOUNDSCHECK=1), which Numba's own
        # key does not tell apart: a debugging run would load the unchecked
        # code, and a normal run the slower checked code.
        checked = ".boundscheck" if config.BOUNDSCHECK else ""
        base = cache_file._index_name[:-len(".nbi")]
        IndexDataCacheFile.__init__(cache_file, cache_file._cache_path,
                                    f"{base}.{_blas.KEY}{checked}", stamp)
        _keep_registrations(cache._impl)
    return dispatcher


def _keep_registrations(impl):
    """Make the libraries this cache loads keep their ``reload_init`` list.

    Numba stores the list with a cached compile result and runs it on
    loading, but the rebuilt library starts with an empty one, and a
    library compiled later that links it (a kernel calling this one the
    usual way) inherits only from the library: its own cache entry would
    lack the registrations of what this one calls by symbol
    (:func:`call_by_symbol`), and loading it in a fresh process would jump
    to an unresolved symbol.
    """
    rebuild = impl.rebuild

    def rebuild_keeping_registrations(target_context, payload):
        cres = rebuild(target_context, payload)
        cres.library._reload_init.update(cres.reload_init)
        return cres

    impl.rebuild = rebuild_keeping_registrations


class _ColdCompiler(Compiler):
    """Numba's compiler, but LLVM optimises the code it makes at
    :data:`COLD_OPT` (see :func:`jit`'s ``cold``): the compile result's
    library is of a subclass whose function passes and one module pass
    (with Numba's reference-count pruning) run at that level, where
    Numba's run at ``-O3`` after a cheap module pass of their own."""

    def _compile_core(self):
        state = self.state
        if state.library is None:  # made as Numba's lowering pass makes it
            state.library = state.targetctx.codegen().create_library(state.func_id.func_qualname)
            state.library.enable_object_caching()
        state.library.__class__ = _cold_library_class(type(state.library))
        return super()._compile_core()


#: LLVM's optimisation level for cold kernels' code.
COLD_OPT = 1

_COLD_LIBRARIES = {}


def _cold_library_class(base):
    cls = _COLD_LIBRARIES.get(base)
    if cls is None:
        def _optimize_functions(self, ll_module):
            ll_module.data_layout = self._codegen._data_layout
            for func in ll_module.functions:
                fpm, pb = self._codegen._function_pass_manager(opt=COLD_OPT)
                fpm.run(func, pb)

        def _optimize_final_module(self):
            mpm, pb = self._codegen._module_pass_manager(
                opt=COLD_OPT, loop_vectorize=False, slp_vectorize=False)
            mpm.run(self._final_module, pb)

        cls = type(f"Cold{base.__name__}", (base,),
                   {"_optimize_functions": _optimize_functions,
                    "_optimize_final_module": _optimize_final_module,
                    "__module__": __name__})
        _COLD_LIBRARIES[base] = cls
    return cls


def jit(parallel=False, inline="never", reassoc=False, internal=False, cold=False):
    """Decorator: compile with fastmlp's options and the on-disk cache.

    ``inline="always"`` inlines the function into its compiled callers at
    Numba IR level (see :mod:`fastmlp._engine` for why some kernels are).
    ``reassoc=True`` lets LLVM reorder floating-point additions (and so
    vectorise reductions); the order is still fixed by the compiled code,
    so results stay the same run to run.
    ``internal=True`` is for a kernel that only compiled code calls (the
    task functions, the checks, the helpers of the epoch and prediction
    kernels): it is compiled without the CPython entry point, whose
    unboxing of every argument Numba would otherwise build and compile for
    each kernel. Numba would crash the process if Python called such a
    kernel anyway, so calling it from Python raises TypeError instead
    (tests call them through a compiled function, ``tests/native.py``);
    the entry points its ``compile()`` returns or its ``overloads`` hold
    are as unusable from Python.
    ``cold=True`` is for a kernel whose time goes into what it calls, not
    into loops of its own (checks, the epoch's and the network's
    bookkeeping): LLVM optimises its code at :data:`COLD_OPT`, without the
    vectorisers, instead of ``-O3``. What such a kernel calls the usual way
    is linked into its code and so optimised alike: it calls hot kernels
    by symbol (:func:`call_by_symbol`).
    """

    def decorate(func):
        opts = dict(_OPTIONS, parallel=parallel, inline=inline)
        if reassoc:
            opts["fastmath"] = opts["fastmath"] | {"reassoc"}
        if internal and not PLAIN:
            opts["no_cpython_wrapper"] = True
        if cold and not PLAIN:
            opts["pipeline_class"] = _ColdCompiler
        if PLAIN:
            return njit(cache=False, **opts)(func)
        try:
            dispatcher = njit(cache=True, **opts)(func)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            dispatcher = njit(cache=False, **opts)(func)
        else:
            dispatcher = _use_keyed_cache_file(dispatcher)
        if internal and not config.DISABLE_JIT:
            dispatcher.__class__ = _internal_class(type(dispatcher))
        return dispatcher

    return decorate


_INTERNAL_CLASSES = {}


def _internal_class(base):
    """The subclass of Numba's dispatcher class ``base`` whose instances
    refuse calls from Python (their kernels have no CPython entry point);
    compiled callers type and call them as any dispatcher."""
    cls = _INTERNAL_CLASSES.get(base)
    if cls is None:
        def __call__(self, *args, **kwargs):
            raise TypeError(
                f"{self.py_func.__module__}.{self.py_func.__qualname__} is an internal "
                "fastmlp kernel: only compiled code can call it")

        cls = type(f"Internal{base.__name__}", (base,), {"__call__": __call__,
                                                           "__module__": __name__})
        _INTERNAL_CLASSES[base] = cls
    return cls


class _Symbol:
    """Registers one compiled signature of a kernel under a fixed symbol
    name (see :func:`call_by_symbol`). Picklable by reference, so Numba
    stores it with every cached caller and runs it when loading one."""

    def __init__(self, module, qualname, argtypes):
        self.module = module
        self.qualname = qualname
        self.argtypes = tuple(argtypes)

    def __eq__(self, other):
        return isinstance(other, _Symbol) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def key(self):
        return (self.module, self.qualname, self.argtypes)

    def name(self):
        digest = hashlib.sha256(repr(self.key()).encode()).hexdigest()[:16]
        return f"fastmlp.{self.qualname}.{digest}"

    def compile_result(self):
        """Compile (or load from the cache) the signature; register its
        entry point under :meth:`name`; return Numba's compile result."""
        dispatcher = getattr(importlib.import_module(self.module), self.qualname)
        dispatcher.compile(self.argtypes)
        cres = dispatcher.overloads[self.argtypes]
        address = cres.library.get_pointer_to_function(cres.fndesc.mangled_name)
        llvm.add_symbol(self.name(), address)
        return cres

    __call__ = compile_result


def call_by_symbol(dispatcher):
    """An intrinsic that calls ``dispatcher``'s compiled code by a fixed
    symbol name instead of linking it in.

    Numba links a callee's whole LLVM module into each compiled caller,
    where LLVM optimises it and generates its machine code again; a
    ``prange`` body is compiled into three more wrapper modules, each
    linking it once more. Called this way, the callee is compiled once, in
    its own module, and every caller holds one declaration and one call.

    The callee's entry point is registered with LLVM's dynamic linker
    (``llvmlite.binding.add_symbol``, as :mod:`fastmlp._blas` does for
    BLAS) when a caller is compiled, and again when a cached caller is
    loaded: the registration travels with the caller's compile result in
    Numba's ``reload_init`` list, which Numba runs before it links a cached
    library (and which a caller inherits from every library it links; for
    a library loaded from the cache, see :func:`_keep_registrations`).
    The call itself is Numba's own convention for calls between compiled
    functions (``BaseContext.call_internal``): same arguments, exceptions
    propagated. ``dispatcher`` must be a module-level kernel: a process
    loading a cached caller finds it by module and name.
    """
    if config.DISABLE_JIT or PLAIN:  # a plain call
        return dispatcher
    module = dispatcher.py_func.__module__
    qualname = dispatcher.py_func.__qualname__
    if getattr(sys.modules.get(module), qualname, None) is not dispatcher:
        # a process loading a cached caller finds the callee by these names
        raise ValueError(f"call_by_symbol needs a module-level kernel, not {qualname!r}")

    @intrinsic
    def call(typingctx, *args):
        argtypes = tuple(types.unliteral(a) for a in args)
        symbol = _Symbol(module, qualname, argtypes)
        restype = symbol.compile_result().signature.return_type

        def codegen(context, builder, signature, packed):
            llargs = cgutils.unpack_tuple(builder, packed[0], len(argtypes))
            cres = symbol.compile_result()
            fndesc = cres.fndesc
            fnty = context.call_conv.get_function_type(fndesc.restype, fndesc.argtypes)
            fn = cgutils.get_or_insert_function(builder.module, fnty, symbol.name())
            context.apply_target_attributes(fn, fndesc.argtypes, fndesc.restype)
            context.call_conv.decorate_function(fn, fndesc.args, fndesc.argtypes,
                                                noalias=fndesc.noalias)
            status, res = context.call_conv.call_function(builder, fn, fndesc.restype,
                                                          fndesc.argtypes, llargs)
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            context.active_code_library._reload_init.add(symbol)
            return res

        # a ``*args`` intrinsic takes its arguments as one tuple
        return restype(types.StarArgTuple.from_types(argtypes)), codegen

    return call


@intrinsic
def _freeze(typingctx, x):
    """``x`` unchanged, as an LLVM ``freeze`` of it: the identity on any
    loaded number, which hides from LLVM that a value stored back is the
    loaded element, so ``z[c] = 0 if z[c] <= 0 else kept(z[c])`` stays an
    ordinary vector store instead of a masked store of the zeros."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        (v,) = args
        instr = ir.instructions.Instruction(builder.block, v.type, "freeze", [v])
        builder._insert(instr)  # llvmlite's IRBuilder has no freeze method
        return instr

    return x(x), codegen


@njit(inline="always")
def _identity(x):
    return x


#: ``x`` unchanged, as :func:`_freeze` (plain Numba: the identity).
kept = _identity if (PLAIN or config.DISABLE_JIT) else _freeze


@intrinsic
def _pow2(typingctx, k):
    """``2.0 ** k`` (float64) for an integer ``k`` in [-1022, 1023]: the
    float64 whose exponent field is ``k + 1023``."""
    if not isinstance(k, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        v = context.cast(builder, args[0], k, types.int64)
        bits = builder.shl(builder.add(v, ir.Constant(i64, 1023)), ir.Constant(i64, 52))
        return builder.bitcast(bits, ir.DoubleType())

    return types.float64(k), codegen


@njit(inline="always")
def _pow2_plain(k):
    return math.ldexp(1.0, k)


#: ``2.0 ** k`` for an integer ``k`` in [-1022, 1023], as :func:`_pow2`
#: (plain Numba: ``math.ldexp``, the same value).
pow2 = _pow2_plain if (PLAIN or config.DISABLE_JIT) else _pow2


@intrinsic
def _apart(typingctx, a, b):
    """Whether the memory of arrays ``a`` and ``b`` does not overlap."""
    if not (isinstance(a, types.Array) and isinstance(b, types.Array)):
        return None

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        spans = []
        for ty, value in zip((a, b), args):
            ary = context.make_array(ty)(context, builder, value)
            start = builder.ptrtoint(ary.data, intp)
            size = builder.mul(ary.nitems, ary.itemsize)
            spans.append((start, builder.add(start, size)))
        (a0, a1), (b0, b1) = spans
        return builder.or_(builder.icmp_signed("<=", a1, b0), builder.icmp_signed("<=", b1, a0))

    return types.boolean(a, b), codegen


@njit(inline="always")
def _apart_plain(a, b):
    a0 = a.ctypes.data
    b0 = b.ctypes.data
    return a0 + a.size * a.itemsize <= b0 or b0 + b.size * b.itemsize <= a0


#: Whether the memory of arrays ``a`` and ``b`` does not overlap (an
#: intrinsic: inlined from Numba IR, each of its many call sites in the
#: checks would be compiled again; plain Numba: so inlined).
apart = _apart_plain if (PLAIN or config.DISABLE_JIT) else _apart


def entry_point(dispatcher, args):
    """``dispatcher``'s compiled code for arguments of the types of
    ``args``, as a callable that skips the dispatcher's typing of each
    argument at each call (compiled, or loaded from the cache, now).

    A caller must pass arguments of exactly those types (dtype, layout,
    writeability, bundle field types): the entry point converts them
    without checking. With ``FASTMLP_PLAIN_NUMBA=1`` (or the JIT off) it is
    the dispatcher itself.
    """
    if PLAIN or config.DISABLE_JIT:
        return dispatcher
    argtypes = tuple(typeof(a, Purpose.argument) for a in args)
    dispatcher.compile(argtypes)
    return dispatcher.overloads[argtypes].entry_point


class BundleRef(types.Type):
    """The Numba type of :func:`ref`'s result: a borrowed pointer to a
    bundle (a named tuple) in the frame of the compiled function that
    made it, whose fields read as the bundle's."""

    def __init__(self, bundle):
        self.bundle = bundle
        super().__init__(name=f"BundleRef({bundle})")


@register_model(BundleRef)
class _BundleRefModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, dmm.lookup(fe_type.bundle).get_data_type().as_pointer())


@infer_getattr
class _BundleRefAttributes(AttributeTemplate):
    key = BundleRef

    def generic_resolve(self, ty, attr):
        fields = ty.bundle.fields
        if attr in fields:
            return ty.bundle.types[fields.index(attr)]
        return None


@lower_getattr_generic(BundleRef)
def _bundle_ref_getattr(context, builder, typ, value, attr):
    i = typ.bundle.fields.index(attr)
    field = typ.bundle.types[i]
    val = context.unpack_value(builder, field, cgutils.gep_inbounds(builder, value, 0, i))
    return impl_ret_borrowed(context, builder, field, val)


@intrinsic
def _ref(typingctx, bundle):
    """A :class:`BundleRef` to a copy of ``bundle`` in this frame (a
    BundleRef passes through)."""
    if isinstance(bundle, BundleRef):
        return bundle(bundle), lambda context, builder, signature, args: args[0]
    if not isinstance(bundle, types.BaseNamedTuple):
        return None

    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, context.get_data_type(bundle))
        context.pack_value(builder, bundle, args[0], slot)
        return slot

    return BundleRef(bundle)(bundle), codegen


#: ``ref(bundle)``: the bundle as a :class:`BundleRef` (plain Numba: the
#: bundle itself). The arrays it holds must outlive the reference: take it
#: of a function's argument, or of a bundle of views of them.
ref = _identity if (PLAIN or config.DISABLE_JIT) else _ref
