"""fastmlp on plain Numba (``FASTMLP_PLAIN_NUMBA=1``).

The switch turns off everything fastmlp takes from Numba's internals
(calls by symbol, the keyed cache file, entry-point-less internal kernels,
the freeze intrinsic; see :mod:`fastmlp._jit`). A Numba release that
breaks one of them must cost speed, not correctness: part of the suite
runs here in a process with the switch on, and a model fitted so must be
the model fitted with the internals, bit for bit.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_FITS = r"""
import hashlib, json, warnings
import numpy as np, scipy.sparse as sp
from sklearn.datasets import load_digits
import fastmlp
from fastmlp import _jit
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X[:300] / 16
y = y[:300]
out = {"plain": _jit.PLAIN}
for name, Xin, params in [
        ("adam-f64", X, dict(solver="adam")),
        ("sgd-f32-csr", sp.csr_matrix(X.astype(np.float32)), dict(solver="sgd", activation="tanh")),
        ("lbfgs-f64", X, dict(solver="lbfgs", activation="logistic")),
]:
    clf = fastmlp.MLPClassifier((20,), max_iter=5, random_state=0, **params).fit(Xin, y)
    h = hashlib.sha256()
    for a in clf.coefs_ + clf.intercepts_ + [clf.predict_proba(Xin), clf.predict_proba(Xin[:3])]:
        h.update(np.ascontiguousarray(a).tobytes())
    out[name] = h.hexdigest()
print(json.dumps(out))
"""


def _run(args, plain):
    env = dict(os.environ)
    env.pop("FASTMLP_PLAIN_NUMBA", None)
    if plain:
        env["FASTMLP_PLAIN_NUMBA"] = "1"
    return subprocess.run([sys.executable, *args], cwd=_ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)


# In one process, as plain Numba has no on-disk cache: the fits, then
# scikit-learn parity of the main configurations.
_PLAIN = _FITS + r"""
import pytest
print("pytest exit", int(pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_parity.py",
      "-k", "test_same_random_state_same_model or test_sparse_matches_sklearn"])))
"""


def test_plain_numba_fits_the_same_models_and_passes_parity():
    normal = _run(["-c", _FITS], plain=False)
    assert normal.returncode == 0, normal.stderr[-3000:]
    plain = _run(["-c", _PLAIN], plain=True)
    assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr[-3000:]
    lines = plain.stdout.strip().splitlines()
    assert lines[-1] == "pytest exit 0", plain.stdout[-3000:]
    hashes = json.loads(normal.stdout.strip().splitlines()[-1])
    plain_hashes = json.loads(next(line for line in lines if line.startswith("{")))
    assert hashes.pop("plain") is False
    assert plain_hashes.pop("plain") is True
    assert plain_hashes == hashes
