"""Which BLAS library the matrix kernels call.

The layer kernels (:mod:`fastmlp._linalg`) make one single-threaded
``?gemm`` call per task. Two libraries can serve them:

* NumPy's own OpenBLAS, when NumPy ships one built with 64-bit integers
  (NumPy's pip wheels do: ``scipy_openblas64_``). Its ``sgemm_`` / ``dgemm_``
  are bound to the names :data:`SYMBOLS` and called with the Fortran
  calling convention. This is the default.
* scipy's BLAS (``scipy.linalg.cython_blas``) through Numba's
  ``numba_xxgemm`` helper, the function ``np.dot`` uses inside ``@njit``:
  with any other NumPy (conda's, MKL, Accelerate: NumPy's macOS arm64
  wheels), or when the environment variable ``FASTMLP_BLAS=scipy`` asks
  for it (``auto``, the default, and ``numpy`` take NumPy's where there
  is one).

Why NumPy's first: its GEMM is the one the benchmarks take as the machine's
ceiling, and on the machine it was chosen on (a Zen 2/3 EPYC) it ran the
layer kernels' float32 products 9-17% faster than scipy's OpenBLAS 0.3.30;
on a Zen 4 neither is consistently faster (``bench/blas_compare.py``).

The choice is made once, at import, from the installed packages (never from
a timing), so a model's bits depend only on the environment: the same
``random_state`` gives the same weights run to run and with any thread
count. Two environments with different BLAS libraries may differ in the
last bits, as scikit-learn's results do. :data:`KEY` goes into every
kernel's cache key (:mod:`fastmlp._jit`): machine code compiled to call one
library is never loaded where the other is chosen.
"""

import ctypes
import os
import warnings

import numpy as np
from llvmlite import binding as _llvm

#: Names the compiled kernels call for float32 and float64 when NumPy's
#: ILP64 OpenBLAS is used.
SYMBOLS = {"float32": "fastmlp_sgemm_ilp64", "float64": "fastmlp_dgemm_ilp64"}


def _numpy_openblas():
    """Find NumPy's own ILP64 OpenBLAS.

    The library must lie in NumPy's own directories (``numpy.libs`` on Linux
    and Windows wheels, ``numpy/.dylibs`` on macOS), so that another
    package's OpenBLAS loaded earlier (in one session, not another) never
    changes the choice, and say ``USE64BITINT`` in its configuration: the
    kernels pass 64-bit integers.

    Returns
    -------
    found : tuple or None
        ``(path, (sgemm_address, dgemm_address))``, or None where there is no
        such library (or it cannot be inspected).
    """
    try:
        from threadpoolctl import ThreadpoolController

        libs = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception:  # no threadpoolctl, or it failed: the fallback works anywhere
        return None
    np_dir = os.path.dirname(os.path.realpath(np.__file__))
    roots = (np_dir + os.sep, np_dir + ".libs" + os.sep)
    for lib in libs:
        path = os.path.realpath(lib.filepath)
        if not path.startswith(roots):
            continue
        prefix = getattr(lib, "_symbol_prefix", "")
        suffix = getattr(lib, "_symbol_suffix", "")
        try:
            so = ctypes.CDLL(path)
        except OSError:  # pragma: no cover
            continue
        get_config = getattr(so, f"{prefix}openblas_get_config{suffix}", None)
        sgemm = getattr(so, f"{prefix}sgemm_{suffix}", None)
        dgemm = getattr(so, f"{prefix}dgemm_{suffix}", None)
        if get_config is None or sgemm is None or dgemm is None:
            continue
        get_config.restype = ctypes.c_char_p
        if b"USE64BITINT" not in (get_config() or b"").split():
            continue
        address = (ctypes.cast(sgemm, ctypes.c_void_p).value,
                   ctypes.cast(dgemm, ctypes.c_void_p).value)
        return path, address
    return None


#: Values of the environment variable ``FASTMLP_BLAS``.
CHOICES = ("auto", "numpy", "scipy")


def _choose():
    """Apply ``FASTMLP_BLAS``: ``scipy`` forces scipy's BLAS; ``auto`` (or
    unset) and ``numpy`` take NumPy's OpenBLAS where there is one. Any other
    value warns and counts as ``auto``.

    Returns
    -------
    found : tuple or None
        What :func:`_numpy_openblas` returns, or None for scipy's BLAS.
    """
    value = os.environ.get("FASTMLP_BLAS", "").strip().lower() or "auto"
    if value not in CHOICES:
        warnings.warn(f"FASTMLP_BLAS={value!r} is not one of {CHOICES}; using 'auto'.",
                      RuntimeWarning, stacklevel=2)
    if value == "scipy":
        return None
    return _numpy_openblas()


_found = _choose()

#: True when the kernels call NumPy's ILP64 OpenBLAS (through
#: :data:`SYMBOLS`), False when they call scipy's BLAS.
ILP64 = _found is not None

#: The library the kernels call: a file path, or ``"scipy.linalg.cython_blas"``.
LIBRARY = _found[0] if ILP64 else "scipy.linalg.cython_blas"

#: Part of every kernel's cache key: which calling convention, and so which
#: library, the compiled code was built for.
KEY = "numpy-openblas-ilp64" if ILP64 else "scipy-cython-blas"

if ILP64:
    for _dtype, _address in zip(("float32", "float64"), _found[1]):
        _llvm.add_symbol(SYMBOLS[_dtype], _address)
