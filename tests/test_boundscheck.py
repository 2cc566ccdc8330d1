"""Every kernel path under ``NUMBA_BOUNDSCHECK=1``.

A subprocess with bounds checking on (and an empty cache directory, so
that it compiles every kernel with the checks whatever is cached; fastmlp
also keeps bounds-checked code in cache files of its own, which Numba's
key alone would not) fits and predicts every solver, head, activation and
input kind.
An out-of-bounds access would raise IndexError there. Its predictions must
equal this process's, which run the unchecked code.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    import numpy as np
    import numba
    import scipy.sparse as sp
    from numba import njit

    assert numba.config.BOUNDSCHECK, "bounds checking is not on"

    @njit
    def _probe(a, i):
        return a[i]

    try:
        _probe(np.zeros(2), 5)
    except IndexError:
        pass
    else:
        raise SystemExit("bounds checking did not catch an out-of-bounds read")

    sys.path.insert(0, sys.argv[2])
    from boundscheck_cases import run_cases

    warnings.simplefilter("ignore")
    pred64, pred32 = run_cases()
    np.savez(sys.argv[1], pred64=pred64, pred32=pred32)
    """
)


def test_kernels_in_bounds(tmp_path):
    from boundscheck_cases import run_cases

    pred64, pred32 = run_cases()
    out = tmp_path / "out.npz"
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), here],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = np.load(out)
    np.testing.assert_allclose(got["pred64"], pred64, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["pred32"], pred32, rtol=1e-5, atol=1e-6)
