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
* A race-free cache writer (:class:`_KeyedCacheFile`). Numba's own writer
  numbers data files in order of arrival and writes the index before the
  data, so two processes compiling different signatures at once can both
  write ``.1.nbc`` and leave an index entry pointing at the other one's
  machine code; loading it segfaults (seen here: a float64 call running
  float32 code). fastmlp names each data file after its key and writes the
  data before the index, so every index entry points at code compiled for
  that key.
* Every kernel's cache entry is also keyed on the contents of all kernel
  source files (:data:`SOURCES_STAMP`). Numba checks only the timestamp of
  the file that defines a function, but a compiled kernel contains the
  machine code of everything it calls or inlines from other files: after
  an edit of ``_linalg.py`` alone, ``_engine``'s epoch kernels would load
  stale code from the cache. It is keyed on the BLAS library the kernels
  call too (:data:`fastmlp._blas.KEY`): code built to call NumPy's OpenBLAS
  calls it by another convention than scipy's.
* ``fastmath={'contract'}`` only: lets LLVM fuse ``a * b + c`` into one FMA,
  which doubles the arithmetic peak of the matrix loops. No ``nnan``/``ninf``
  (non-finite checks must stay meaningful) and no ``reassoc`` (a reduction's
  order, and so its rounding, would depend on how LLVM vectorises it: the
  same in every run on one machine, but the gradient loops should not change
  with the compiler's choices). The one exception, ``jit(reassoc=True)``, is
  the loss's sum of squared weights (:func:`fastmlp._kernels.l2_sum`),
  vectorised 4x faster in float32, 1.6x in float64.
"""

import hashlib
import os

from numba import njit

from . import _blas

try:
    from numba.core.caching import IndexDataCacheFile
except ImportError:  # pragma: no cover - a Numba without this class
    IndexDataCacheFile = object

_OPTIONS = dict(nogil=True, error_model="numpy", fastmath={"contract"})

# The modules whose code, or names, end up inside compiled kernels.
KERNEL_SOURCES = ("_activations.py", "_blas.py", "_codes.py", "_engine.py", "_jit.py",
                  "_kernels.py", "_linalg.py", "_optim.py")


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
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if type(cache_file) is IndexDataCacheFile:
        cache_file.__class__ = _KeyedCacheFile
        # an index saved under another stamp loads as empty: recompile
        stamp = (cache_file._source_stamp, SOURCES_STAMP, _blas.KEY)
        # Each BLAS library has files of its own, so that processes using
        # either (FASTMLP_BLAS=scipy) keep each other's cache entries.
        base = cache_file._index_name[:-len(".nbi")]
        IndexDataCacheFile.__init__(cache_file, cache_file._cache_path, f"{base}.{_blas.KEY}",
                                    stamp)
    return dispatcher


def jit(parallel=False, inline="never", reassoc=False):
    """Decorator: compile with fastmlp's options and the on-disk cache.

    ``inline="always"`` inlines the function into its compiled callers at
    Numba IR level (see :mod:`fastmlp._engine` for why some kernels are).
    ``reassoc=True`` lets LLVM reorder floating-point additions (and so
    vectorise reductions); the order is still fixed by the compiled code,
    so results stay the same run to run.
    """

    def decorate(func):
        opts = dict(_OPTIONS, parallel=parallel, inline=inline)
        if reassoc:
            opts["fastmath"] = opts["fastmath"] | {"reassoc"}
        try:
            dispatcher = njit(cache=True, **opts)(func)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(cache=False, **opts)(func)
        return _use_keyed_cache_file(dispatcher)

    return decorate
