"""Which BLAS library the matrix kernels call.

The layer kernels (:mod:`fastmlp._linalg`) make one single-threaded
``?gemm`` call per task. Two libraries can serve them:

* NumPy's own OpenBLAS, when NumPy ships one built with 64-bit integers
  (NumPy's pip wheels do: ``scipy_openblas64_``). Its ``sgemm_`` / ``dgemm_``
  are bound to the names :data:`SYMBOLS` and called with the Fortran
  calling convention. This is the default.
* scipy's BLAS (``scipy.linalg.cython_blas``) through Numba's
  ``numba_xxgemm`` helper, the function ``np.dot`` uses inside ``@njit``:
  with any other NumPy (conda's, MKL, Accelerate), or when the environment
  variable ``FASTMLP_BLAS=scipy`` asks for it.

Why NumPy's first. Measured here (2-core AMD EPYC, one thread, the same
Fortran call through ctypes, interleaved): NumPy 2.4's OpenBLAS 0.3.31 ran
float32 products of W2's and W3's task shapes 10-17% faster than scipy
1.17's OpenBLAS 0.3.30 (100x256 @ 256x256: 82 against 70 GFLOP/s;
128x512 @ 512x512: 88 against 78); float64 was equal. It is also the
library whose GEMM the benchmarks take as the machine's ceiling.

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

import numpy as np
from llvmlite import binding as _llvm

#: Names the compiled kernels call for float32 and float64 when NumPy's
#: ILP64 OpenBLAS is used.
SYMBOLS = {"float32": "fastmlp_sgemm_ilp64", "float64": "fastmlp_dgemm_ilp64"}


def _numpy_openblas():
    """Path and ``(sgemm, dgemm)`` addresses of NumPy's ILP64 OpenBLAS, or
    None.

    The library must lie in NumPy's own directories (``numpy.libs`` on Linux
    and Windows wheels, ``numpy/.dylibs`` on macOS), so that another
    package's OpenBLAS loaded earlier (in one session, not another) never
    changes the choice, and say ``USE64BITINT`` in its configuration: the
    kernels pass 64-bit integers.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return None
    np_dir = os.path.dirname(os.path.realpath(np.__file__))
    roots = (np_dir + os.sep, np_dir + ".libs" + os.sep)
    for lib in ThreadpoolController().select(internal_api="openblas").lib_controllers:
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
        address = ctypes.cast(sgemm, ctypes.c_void_p).value, ctypes.cast(dgemm, ctypes.c_void_p).value
        return path, address
    return None


def _choose():
    if os.environ.get("FASTMLP_BLAS", "").strip().lower() == "scipy":
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
