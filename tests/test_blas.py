"""The BLAS library the layer kernels call (fastmlp._blas)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastmlp import _blas


def _numpy_ships_ilp64_openblas():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # pragma: no cover - a NumPy without this report
        return False
    config = str(blas.get("openblas configuration", ""))
    return "openblas" in str(blas.get("name", "")) and "USE64BITINT" in config.split()


@pytest.mark.skipif(os.environ.get("FASTMLP_BLAS", "").strip().lower() == "scipy",
                    reason="FASTMLP_BLAS=scipy asks for scipy's BLAS")
def test_numpy_openblas_is_chosen_where_numpy_ships_one():
    if not _numpy_ships_ilp64_openblas():
        pytest.skip("this NumPy is not built with an ILP64 OpenBLAS")
    assert _blas.ILP64
    assert _blas.KEY == "numpy-openblas-ilp64"
    np_dir = os.path.dirname(os.path.realpath(np.__file__))
    assert _blas.LIBRARY.startswith((np_dir + os.sep, np_dir + ".libs" + os.sep))
    assert os.path.isfile(_blas.LIBRARY)


_CHILD = r"""
import json, sys
import numpy as np
from fastmlp import _blas, _linalg
from fastmlp._bundles import make_params, make_shape, predict_params
from fastmlp._codes import BACKWARD, FORWARD, GRADIENT, HEAD_IDENTITY, IDENTITY, RELU
from fastmlp._layout import Layout
from fastmlp._linalg import layer
from fastmlp._threads import threads

out = {"ilp64": _blas.ILP64, "library": _blas.LIBRARY, "key": _blas.KEY,
       "stamp": layer._cache._cache_file._source_stamp[2]}
rng = np.random.default_rng(0)
for dt in (np.float32, np.float64):
    n, k, m = 300, 70, 45  # several tasks, ragged last one
    shape, _ = make_shape(Layout([k, m]), [], HEAD_IDENTITY, n)
    theta = rng.standard_normal(k * m + m).astype(dt)
    X = np.abs(rng.standard_normal((n, k))).astype(dt)
    D = rng.standard_normal((n, m)).astype(dt)
    Z = np.empty((n, m), dt)
    P = np.empty((n, k), dt)
    params = make_params(theta)  # NO_STEP: the gradient alone
    W, b = theta[:k * m].reshape(k, m), theta[k * m:]
    with threads(2):
        layer(FORWARD, 0, RELU, predict_params(theta), shape, (X, X, Z, Z[:0]), dt(1))
        layer(BACKWARD, 0, RELU, params, shape, (X, D, P, X), dt(1))
        layer(GRADIENT, 0, IDENTITY, params, shape, (X, D, D, D), dt(n))
    grad = params.grad
    X64, D64, W64 = X.astype(float), D.astype(float), W.astype(float)
    err = lambda a, ref: float(np.abs(a - ref).max() / np.abs(ref).max())
    out[np.dtype(dt).name] = [
        err(Z, np.maximum(X64 @ W64 + b, 0)),
        err(P, (D64 @ W64.T) * (X64 > 0)),
        err(grad[:k * m].reshape(k, m), X64.T @ D64 / n),
        err(grad[k * m:], D64.sum(axis=0) / n),
    ]
print(json.dumps(out))
"""


def _child(blas, code=_CHILD):
    """Run ``code`` in a fresh process with FASTMLP_BLAS=``blas`` (None:
    unset); return its last line of output, parsed, and its stderr."""
    env = dict(os.environ)
    env.pop("FASTMLP_BLAS", None)
    if blas is not None:
        env["FASTMLP_BLAS"] = blas
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.parametrize("blas", ["scipy", None, "numpy", " SciPy ", "bogus"])
def test_each_blas_choice_computes_the_layer_products(blas):
    # Both processes share the package's kernel cache: each must compile
    # (or load) code for its own library, never the other's (calling
    # NumPy's OpenBLAS by scipy's convention, or the reverse, would crash).
    got, stderr = _child(blas)
    if blas is not None and blas.strip().lower() == "scipy":
        assert not got["ilp64"]
        assert got["library"] == "scipy.linalg.cython_blas"
    else:
        assert got["ilp64"] == (_blas._numpy_openblas() is not None)
    assert ("FASTMLP_BLAS='bogus' is not one of" in stderr) == (blas == "bogus")
    assert got["stamp"] == got["key"]
    for dtype, tol in (("float32", 1e-5), ("float64", 1e-13)):
        assert max(got[dtype]) < tol, (dtype, got[dtype])


_CACHE_CHILD = r"""
import json
import numpy as np
from fastmlp import _blas
from fastmlp._bundles import make_shape, predict_params
from fastmlp._codes import FORWARD, HEAD_IDENTITY, RELU
from fastmlp._layout import Layout
from fastmlp._linalg import layer
shape, _ = make_shape(Layout([2, 3]), [], HEAD_IDENTITY, 4)
theta = np.ones(9)
x = np.ones((4, 2))
z = np.empty((4, 3))
layer(FORWARD, 0, RELU, predict_params(theta), shape, (x, x, z, z[:0]), 1.0)
print(json.dumps({"hits": sum(layer.stats.cache_hits.values()),
                  "misses": sum(layer.stats.cache_misses.values()),
                  "index": layer._cache._cache_file._index_name, "key": _blas.KEY}))
"""


def test_each_blas_choice_keeps_its_own_cache_entries():
    # A process using the other library neither overwrites nor evicts this
    # library's cached kernels: they have files of their own.
    if _blas._numpy_openblas() is None:
        pytest.skip("only scipy's BLAS is available here")
    first, _ = _child("auto", _CACHE_CHILD)
    other, _ = _child("scipy", _CACHE_CHILD)
    again, _ = _child("auto", _CACHE_CHILD)
    assert first["key"] in first["index"] and other["key"] in other["index"]
    assert first["index"] != other["index"]
    assert again["hits"] >= 1 and again["misses"] == 0, again


def test_fits_agree_across_blas_libraries():
    # Another library may sum in another order: the same seed gives the same
    # model to rounding, not to the bit.
    from sklearn.datasets import load_digits

    from fastmlp import MLPClassifier

    if _blas._numpy_openblas() is None:
        pytest.skip("only scipy's BLAS is available here")
    code = (
        "import json, warnings\n"
        "from sklearn.datasets import load_digits\n"
        "from fastmlp import MLPClassifier, _blas\n"
        "warnings.simplefilter('ignore')\n"
        "X, y = load_digits(return_X_y=True)\n"
        "clf = MLPClassifier((32,), max_iter=5, random_state=0, tol=0).fit(X[:600] / 16, y[:600])\n"
        "print(json.dumps([_blas.KEY, [c.ravel().tolist() for c in clf.coefs_]]))\n"
    )
    # the library this process does not use
    (key, theirs), _ = _child("auto" if _blas.KEY == "scipy-cython-blas" else "scipy", code)
    assert key != _blas.KEY
    X, y = load_digits(return_X_y=True)
    with pytest.warns(Warning):  # ConvergenceWarning after 5 epochs
        ours = MLPClassifier((32,), max_iter=5, random_state=0, tol=0).fit(X[:600] / 16, y[:600])
    for a, b in zip(ours.coefs_, theirs):
        np.testing.assert_allclose(a.ravel(), b, rtol=1e-9, atol=1e-12)
