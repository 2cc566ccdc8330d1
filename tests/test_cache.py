"""The on-disk compile cache: concurrent writers and read-only installs."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fastmlp import _blas, _jit

CHILD = r"""
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
import fastmlp
from fastmlp import MLPClassifier, _engine
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X = X[:400]; y = y[:400]
dtype = np.float32 if sys.argv[1] == "32" else np.float64
clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0, batch_size=64)
clf.fit(X.astype(dtype), y)
np.save(sys.argv[2], clf.predict_proba(X.astype(dtype)))
print("FILE", fastmlp.__file__)
print("HITS", sum(_engine.train_epoch_dense.stats.cache_hits.values()))
from fastmlp import _kernels, _linalg
sparse = (_linalg.sparse_layer, _kernels.gather_csr, _kernels.csr_to_csc,
          _engine.train_epoch_sparse)
print("SPARSE", sum(len(k.overloads) for k in sparse))
"""


def _run(args, env, **kw):
    return subprocess.run([sys.executable, "-c", CHILD, *args], env=env,
                          capture_output=True, text=True, timeout=600, **kw)


def _interleavings(a, b):
    """Every merge of sequences a and b that keeps each one's own order."""
    if not a or not b:
        yield list(a) + list(b)
        return
    for rest in _interleavings(a[1:], b):
        yield [a[0]] + rest
    for rest in _interleavings(a, b[1:]):
        yield [b[0]] + rest


def _outcomes(cls, path):
    """Replay two concurrent ``save`` calls in every interleaving of their
    file writes; both writers read the index before either wrote it."""
    results = []
    for n, order in enumerate(_interleavings(["a0", "a1"], ["b0", "b1"])):
        cache_path = str(path / f"{cls.__name__}{n}")
        os.makedirs(cache_path)
        writes = {}
        for name in "ab":
            w = cls(cache_path, "f-1", "stamp")
            w._load_index = lambda: {}  # the stale read of a racing writer
            ops = []
            w._save_index = lambda ov, ops=ops, w=w: ops.append(
                lambda: cls._save_index(w, ov))
            w._save_data = lambda nm, d, ops=ops, w=w: ops.append(
                lambda: cls._save_data(w, nm, d))
            w.save(f"key-{name}", f"code for {name}")
            writes[name + "0"], writes[name + "1"] = ops
        for step in order:
            writes[step]()
        fresh = cls(cache_path, "f-1", "stamp")
        results.append((fresh.load("key-a"), fresh.load("key-b")))
    return results


def test_keyed_cache_file_survives_interleaved_writers(tmp_path):
    """Two processes save different signatures of one kernel at once.

    With Numba's writer, some interleavings leave an index entry pointing at
    the other signature's machine code (loading it crashed a test run).
    With fastmlp's, a key found always maps to its own code.
    """
    from numba.core.caching import IndexDataCacheFile

    def wrong(results):
        return [r for r in results
                if r[0] not in (None, "code for a") or r[1] not in (None, "code for b")]

    assert wrong(_outcomes(IndexDataCacheFile, tmp_path))  # the bug exists
    ours = _outcomes(_jit._KeyedCacheFile, tmp_path)
    assert not wrong(ours)
    assert all(r[0] is not None or r[1] is not None for r in ours)  # something kept


def test_our_kernels_use_the_keyed_writer():
    from fastmlp import _engine, _kernels, _linalg

    for kernel in (_engine.train_epoch_dense, _engine.train_epoch_sparse,
                   _engine.full_batch_dense, _engine.full_batch_sparse, _kernels.loss_grad,
                   _kernels.network, _linalg.layer):
        assert type(kernel._cache._cache_file) is _jit._KeyedCacheFile


def test_cache_entries_are_keyed_on_every_kernel_source(tmp_path):
    """An edit of any kernel module invalidates every kernel's cache entry:
    the epoch kernel contains _linalg's code, but Numba alone would only
    notice edits of _engine.py (where it is defined)."""
    from fastmlp import _activations, _engine, _kernels, _linalg, _optim

    for mod in (_activations, _engine, _kernels, _linalg, _optim):
        for obj in vars(mod).values():
            cache_file = getattr(getattr(obj, "_cache", None), "_cache_file", None)
            if cache_file is not None:
                assert cache_file._source_stamp[1:] == (_jit.SOURCES_STAMP, _blas.KEY), obj

    package = os.path.dirname(_jit.__file__)
    copy = tmp_path / "fastmlp"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _jit.sources_stamp(str(copy)) == _jit.SOURCES_STAMP
    for name in _jit.KERNEL_SOURCES:
        path = copy / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n# edited\n")
        assert _jit.sources_stamp(str(copy)) != _jit.SOURCES_STAMP, name
        path.write_bytes(original)
    assert _jit.sources_stamp(str(copy)) == _jit.SOURCES_STAMP

    # a saved index whose stamp differs loads as empty (the kernel recompiles)
    old = _jit._KeyedCacheFile(str(tmp_path), "k-1", ("own", "old sources"))
    old.save("key", "code")
    assert old.load("key") == "code"
    assert _jit._KeyedCacheFile(str(tmp_path), "k-1", ("own", "new sources")).load("key") is None


def test_bounds_checked_code_has_cache_files_of_its_own():
    """Numba's cache key ignores NUMBA_BOUNDSCHECK: without a name of its
    own, a debugging run would load the unchecked machine code."""
    from fastmlp import _kernels

    code = "from fastmlp import _kernels; print(_kernels.network._cache._cache_file._index_name)"
    names = {}
    for flag in ("0", "1"):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, NUMBA_BOUNDSCHECK=flag), timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        names[flag] = res.stdout.strip()
    assert names["0"] == _kernels.network._cache._cache_file._index_name
    assert names["1"] != names["0"] and names["1"].endswith(".boundscheck.nbi")


@pytest.mark.slow
def test_processes_filling_one_cache_at_once(tmp_path):
    """Racing writers of both dtypes, then readers: no crash, same results."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    racers = [subprocess.Popen([sys.executable, "-c", CHILD, dt, str(tmp_path / f"race{i}.npy")],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i, dt in enumerate(["32", "64"])]
    for p in racers:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
        # they compiled from an empty cache: a dense fit and prediction
        # compile none of the sparse-input kernels (their branches are pruned)
        assert "SPARSE 0" in out, out
    for i, dt in enumerate(["32", "64"]):
        res = _run([dt, str(tmp_path / f"load{i}.npy")], env)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "HITS 0" not in res.stdout  # loaded from the cache the racers wrote
        np.testing.assert_array_equal(np.load(tmp_path / f"load{i}.npy"),
                                      np.load(tmp_path / f"race{i}.npy"))


def _as_other_user():
    return {}


@pytest.mark.slow
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores file modes, so nothing is read-only for it")
def test_read_only_package_uses_user_cache_then_no_cache(tmp_path):
    import fastmlp

    site = tmp_path / "site"
    shutil.copytree(os.path.dirname(fastmlp.__file__), site / "fastmlp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for root, dirs, files in os.walk(site):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o555)
        for f in files:
            os.chmod(os.path.join(root, f), 0o444)
    os.chmod(site, 0o555)
    user_cache = tmp_path / "xdg"
    user_cache.mkdir()
    os.chmod(user_cache, 0o777)
    os.chmod(tmp_path, 0o755)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(user_cache), HOME=str(user_cache))
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    try:
        for attempt in range(2):
            res = _run(["64", str(out / f"p{attempt}.npy")], env, **_as_other_user())
            assert res.returncode == 0, res.stderr[-3000:]
            assert f"FILE {site}" in res.stdout
        assert "HITS 0" not in res.stdout  # second run loaded the user cache
        assert any(name.endswith(".nbi") for _, _, files in os.walk(user_cache) for name in files)
        # nothing writable at all: compiles without a cache, still works
        os.chmod(user_cache, 0o555)
        res = _run(["64", str(out / "p2.npy")], env, **_as_other_user())
        assert res.returncode == 0, res.stderr[-3000:]
        np.testing.assert_array_equal(np.load(out / "p2.npy"), np.load(out / "p0.npy"))
    finally:
        for root, dirs, files in os.walk(tmp_path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
