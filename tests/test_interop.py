"""fastmlp in the scikit-learn ecosystem, for real: joblib's worker processes
and threads, forked children, concurrent prediction, persistence (pickle,
joblib, cloudpickle, skops, a fresh interpreter) and ONNX export.

dask (a LocalCluster) is in test_dask.py.
"""

import io
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import joblib
import numba
import numpy as np
import pytest
from numba.np.ufunc import parallel as numba_parallel
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    cross_val_score,
    cross_validate,
)

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, _engine, _threads

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, y


def _same_search(a, b):
    for key in ("mean_test_score", "std_test_score", "rank_test_score"):
        np.testing.assert_array_equal(a.cv_results_[key], b.cv_results_[key])
    assert a.best_params_ == b.best_params_
    for ca, cb in zip(a.best_estimator_.coefs_, b.best_estimator_.coefs_):
        np.testing.assert_array_equal(ca, cb)


# ---------------------------------------------------------------------------
# 1. Many fits on one machine: loky processes and joblib's threading backend

GRID = {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-1]}


@pytest.fixture(scope="module")
def serial_grid(digits):
    X, y = digits
    est = MLPClassifier(max_iter=30, random_state=0)
    return GridSearchCV(est, GRID, cv=3, n_jobs=1).fit(X, y)


def test_grid_search_loky_equals_serial(digits, serial_grid):
    X, y = digits
    par = clone(serial_grid).set_params(n_jobs=-1).fit(X, y)
    _same_search(serial_grid, par)


def test_grid_search_threading_backend_equals_serial(digits, serial_grid):
    X, y = digits
    with joblib.parallel_backend("threading"):
        par = clone(serial_grid).set_params(n_jobs=4).fit(X, y)
    _same_search(serial_grid, par)


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_randomized_search_and_cross_val_score_equal_serial(digits, backend):
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, learning_rate_init=0.01,
                        random_state=0)
    dist = {"alpha": [1e-5, 1e-3, 1e-1], "learning_rate_init": [1e-3, 3e-3, 1e-2]}
    rs = RandomizedSearchCV(est, dist, n_iter=4, cv=3, random_state=0)
    serial_rs = clone(rs).fit(X, y)
    serial_cv = cross_val_score(est, X, y, cv=4)
    with joblib.parallel_backend(backend):
        par_rs = clone(rs).set_params(n_jobs=-1 if backend == "loky" else 4).fit(X, y)
        par_cv = cross_val_score(est, X, y, cv=4, n_jobs=-1 if backend == "loky" else 4)
    _same_search(serial_rs, par_rs)
    np.testing.assert_array_equal(serial_cv, par_cv)
    assert serial_cv.mean() > 0.8


def test_regressor_grid_search_loky_equals_serial(diabetes):
    X, y = diabetes
    est = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=50, random_state=0)
    grid = GridSearchCV(est, {"alpha": [1e-4, 1.0]}, cv=3)
    _same_search(clone(grid).fit(X, y), clone(grid).set_params(n_jobs=-1).fit(X, y))


class ProbeMLP(MLPClassifier):
    """An MLPClassifier that records, during fit, the threads fastmlp asks
    Numba for and the compile-cache counters of its epoch kernel."""

    def fit(self, X, y, sample_weight=None):
        requested = []
        original = numba.set_num_threads

        def spy(n):
            requested.append(int(n))
            original(n)

        numba.set_num_threads = spy  # fastmlp._threads calls numba.set_num_threads
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                super().fit(X, y, sample_weight=sample_weight)
        finally:
            numba.set_num_threads = original
        stats = _engine.train_epoch_dense.stats
        self.probe_ = {
            "pid": os.getpid(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "environment_limit": _threads.environment_limit(),
            "numba_pool": numba.config.NUMBA_NUM_THREADS,
            # set_num_threads(k) on entry, set_num_threads(old) on exit
            "fit_threads": requested[0::2],
            "cache_hits": sum(stats.cache_hits.values()),
            "cache_misses": sum(stats.cache_misses.values()),
        }
        return self


# 200 rows x (64*512 + 512*10) weights: well above PARALLEL_MIN_WORK, so
# the thread count comes from the environment, not from the small-work rule.
PROBE = dict(hidden_layer_sizes=(512,), max_iter=2, batch_size=200, random_state=0)


def _cache_available():
    return getattr(_engine.train_epoch_dense, "_cache", None) is not None and type(
        _engine.train_epoch_dense._cache).__name__ != "NullCache"


def test_threads_in_loky_workers_are_bounded(digits):
    """joblib's loky workers set OMP_NUM_THREADS (and NUMBA_NUM_THREADS) to
    cpu_count // n_jobs; fastmlp never asks Numba for more than that."""
    X, y = digits
    n_jobs = 2
    bound = max(1, joblib.cpu_count() // n_jobs)
    out = cross_validate(ProbeMLP(**PROBE), X, y, cv=4, n_jobs=n_jobs, return_estimator=True)
    probes = [est.probe_ for est in out["estimator"]]
    assert {p["pid"] for p in probes}.isdisjoint({os.getpid()})  # really in workers
    for p in probes:
        assert p["OMP_NUM_THREADS"] == str(bound)
        assert p["environment_limit"] <= bound
        assert p["fit_threads"] and max(p["fit_threads"]) <= bound
    # the same probe in this process, where nothing caps the pool
    here = ProbeMLP(**PROBE).fit(X, y).probe_
    if os.environ.get("OMP_NUM_THREADS") is None:
        assert max(here["fit_threads"]) == numba.config.NUMBA_NUM_THREADS


def test_workers_load_compiled_kernels_from_cache(digits):
    """Once the on-disk cache is warm, a worker compiles nothing: every
    epoch-kernel signature it uses is a cache hit."""
    if not _cache_available():
        pytest.skip("no writable compile cache here")
    X, y = digits
    ProbeMLP(**PROBE).fit(X, y)  # warms the cache (compiles and saves if cold)
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(kill_workers=True).shutdown(wait=True)  # fresh workers
    out = cross_validate(ProbeMLP(**PROBE), X, y, cv=2, n_jobs=2, return_estimator=True)
    for est in out["estimator"]:
        assert est.probe_["pid"] != os.getpid()
        assert est.probe_["cache_misses"] == 0, est.probe_
        assert est.probe_["cache_hits"] >= 1, est.probe_


# ---------------------------------------------------------------------------
# 3. Process and thread safety

def _run_parallel_kernels():
    """Fit and predict with Numba's pool actually started (n_threads=2)."""
    X, y = make_classification(n_samples=600, n_features=64, n_informative=20,
                               n_classes=3, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(512,), max_iter=3, batch_size=200,
                        n_threads=2, random_state=0).fit(X, y)
    return X, y, clf


def _child_fit_predict(conn):
    try:
        X, y, clf = _run_parallel_kernels()
        conn.send(("ok", clf.predict_proba(X), clf.coefs_[0]))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        conn.send(("error", repr(exc), None))
    finally:
        conn.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fit_and_predict_in_forked_child_after_parent_fits():
    X, y, clf = _run_parallel_kernels()
    assert numba_parallel._is_initialized  # the parent's pool is running
    expected_proba, expected_w = clf.predict_proba(X), clf.coefs_[0]
    layer = numba.threading_layer()

    import multiprocessing as mp

    results = []
    # os.fork directly
    r, w = mp.Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            _child_fit_predict(w)
        except BaseException:
            code = 1
        os._exit(code)
    w.close()
    status, proba, w0 = r.recv()
    _, wait_status = os.waitpid(pid, 0)
    results.append((os.waitstatus_to_exitcode(wait_status), status, proba, w0))
    # multiprocessing's 'fork' context
    ctx = mp.get_context("fork")
    r, w = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_fit_predict, args=(w,))
    proc.start()
    w.close()
    status, proba, w0 = r.recv()
    proc.join(60)
    results.append((proc.exitcode, status, proba, w0))

    for exitcode, status, proba, w0 in results:
        if layer == "tbb":
            assert exitcode == 0 and status == "ok", proba
            np.testing.assert_array_equal(proba, expected_proba)
            np.testing.assert_array_equal(w0, expected_w)
        else:  # GNU OpenMP: fastmlp refuses with a clear error, no abort
            assert status == "error" and "forked" in proba


def test_eight_threads_predicting_at_once_equal_serial(digits):
    X, y = digits
    Xbig = np.repeat(X, 4, axis=0)
    models = [
        MLPClassifier(hidden_layer_sizes=(256,), max_iter=3, random_state=0).fit(X, y),
        MLPClassifier(hidden_layer_sizes=(256,), max_iter=3, random_state=0,
                      n_threads=2).fit(X, y),  # parallel regions from 8 threads
    ]
    for clf in models:
        serial = clf.predict_proba(Xbig)
        chunks = [Xbig[i::8] for i in range(8)]
        serial_chunks = [clf.predict_proba(c) for c in chunks]
        with ThreadPoolExecutor(8) as pool:
            for _ in range(3):
                whole = list(pool.map(lambda _: clf.predict_proba(Xbig), range(8)))
                parts = list(pool.map(clf.predict_proba, chunks))
                for out in whole:
                    np.testing.assert_array_equal(out, serial)
                for out, ref in zip(parts, serial_chunks):
                    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("where", ["main", "worker"])
def test_blas_held_to_one_thread_during_kernels_then_restored(where):
    # The kernels call BLAS inside their parallel tasks: OpenBLAS must run
    # on one thread there, also when the fit runs in a worker thread (where
    # OpenBLAS ignores openblas_set_num_threads), and get its count back.
    from threadpoolctl import threadpool_info

    from fastmlp._threads import threads

    def counts():
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

    from threadpoolctl import threadpool_limits

    seen = {}

    def body():
        with threads(2):
            seen["inside"] = counts()
        seen["after"] = counts()

    with threadpool_limits(2, user_api="blas"):
        before = counts()
        if max(before, default=1) < 2:
            pytest.skip("BLAS runs on one thread here anyway")
        if where == "main":
            body()
        else:
            t = threading.Thread(target=body)
            t.start()
            t.join()
        assert seen["inside"] == [1] * len(before)
        assert seen["after"] == before == counts()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_child_forked_during_a_fit_in_another_thread_can_fit():
    # The BLAS thread setting is guarded by a lock that a fit in another
    # thread holds when the parent forks; the child must not inherit it held.
    import time

    from fastmlp import _threads

    inside, release = threading.Event(), threading.Event()

    def hold():
        with _threads.threads(1):
            with _threads._blas_lock:  # as if mid-way through entering
                inside.set()
                release.wait()

    t = threading.Thread(target=hold)
    t.start()
    inside.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        with _threads.single_threaded_blas():
            pass
        os._exit(0)
    release.set()
    t.join()
    for _ in range(200):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child deadlocked on the BLAS lock")
    assert os.waitstatus_to_exitcode(status) == 0


def test_fits_in_four_threads_equal_serial():
    X, y = make_classification(n_samples=800, n_features=64, n_informative=20,
                               n_classes=3, random_state=0)
    params = [dict(hidden_layer_sizes=(h,), solver=s, random_state=i, max_iter=5, n_threads=nt)
              for i, (h, s, nt) in enumerate([(512, "adam", 2), (64, "sgd", None),
                                             (512, "lbfgs", None), (128, "adam", -1)] * 2)]
    serial = [MLPClassifier(**p).fit(X, y).coefs_ for p in params]
    with joblib.parallel_backend("threading"):
        par = joblib.Parallel(n_jobs=4)(
            joblib.delayed(lambda p: MLPClassifier(**p).fit(X, y).coefs_)(p) for p in params)
    for a, b in zip(serial, par):
        for ca, cb in zip(a, b):
            np.testing.assert_array_equal(ca, cb)


# ---------------------------------------------------------------------------
# 4. Persistence

@pytest.fixture(scope="module", params=["adam", "sgd", "lbfgs"])
def fitted_models(request, digits, diabetes):
    X, y = digits
    Xr, yr = diabetes
    solver = request.param
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver=solver, max_iter=20,
                        early_stopping=solver == "adam", random_state=0).fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(16,), solver=solver, max_iter=20,
                       random_state=0).fit(Xr, yr)
    return (clf, X), (reg, Xr)


def _outputs(model, X):
    return model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)


def _roundtrips():
    import cloudpickle

    def joblib_rt(m):
        buf = io.BytesIO()
        joblib.dump(m, buf)
        buf.seek(0)
        return joblib.load(buf)

    return {
        "pickle": lambda m: pickle.loads(pickle.dumps(m)),
        "joblib": joblib_rt,
        "cloudpickle": lambda m: cloudpickle.loads(cloudpickle.dumps(m)),
    }


@pytest.mark.parametrize("how", ["pickle", "joblib", "cloudpickle"])
def test_pickle_joblib_cloudpickle_round_trip(fitted_models, how):
    rt = _roundtrips()[how]
    for model, X in fitted_models:
        back = rt(model)
        assert type(back) is type(model)
        np.testing.assert_array_equal(_outputs(back, X), _outputs(model, X))
        # training state survives too: partial_fit continues identically
        if model.solver != "lbfgs" and not model.early_stopping:
            m1, m2 = pickle.loads(pickle.dumps(model)), back
            y = model.predict(X)
            m1.partial_fit(X, y)
            m2.partial_fit(X, y)
            for c1, c2 in zip(m1.coefs_, m2.coefs_):
                np.testing.assert_array_equal(c1, c2)


def test_skops_needs_only_fastmlp_classes_trusted(fitted_models, tmp_path):
    sio = pytest.importorskip("skops.io")
    for model, X in fitted_models:
        path = tmp_path / "model.skops"
        sio.dump(model, path)
        untrusted = sio.get_untrusted_types(file=path)
        assert untrusted == [f"fastmlp._estimators.{type(model).__name__}"]
        with pytest.raises(Exception, match="Untrusted types"):
            sio.load(path)
        back = sio.load(path, trusted=untrusted)
        assert type(back) is type(model)
        np.testing.assert_array_equal(_outputs(back, X), _outputs(model, X))


LOAD_IN_FRESH_PROCESS = textwrap.dedent("""
    import sys, joblib, numpy as np
    import skops.io as sio
    for path, data, out in zip(*[iter(sys.argv[1:])] * 3):
        if path.endswith(".skops"):
            model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        else:
            model = joblib.load(path)
        X = np.load(data)
        y = model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)
        np.save(out, y)
""")


def test_saved_model_predicts_bitwise_in_fresh_process(digits, diabetes, tmp_path):
    """joblib and skops files, every solver, loaded by a new interpreter."""
    sio = pytest.importorskip("skops.io")
    np.save(tmp_path / "clf.npy", digits[0])
    np.save(tmp_path / "reg.npy", diabetes[0])
    args, expected = [], {}
    for solver in ("adam", "sgd", "lbfgs"):
        for kind, cls, (X, y) in (("clf", MLPClassifier, digits), ("reg", MLPRegressor, diabetes)):
            model = cls(hidden_layer_sizes=(16,), solver=solver, max_iter=20,
                        random_state=0).fit(X, y)
            for fmt in ("joblib", "skops"):
                path = tmp_path / f"{solver}-{kind}.{fmt}"
                (sio.dump if fmt == "skops" else joblib.dump)(model, path)
                out = tmp_path / f"{solver}-{kind}-{fmt}-out.npy"
                args += [str(path), str(tmp_path / f"{kind}.npy"), str(out)]
                expected[out] = _outputs(model, X)
    subprocess.run([sys.executable, "-c", LOAD_IN_FRESH_PROCESS, *args], check=True,
                   timeout=300)
    for out, want in expected.items():
        got = np.load(out)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), out.name


# ---------------------------------------------------------------------------
# 5. ONNX through to_sklearn() + skl2onnx

def _onnx_run(model, X):
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    import onnxruntime as ort
    from skl2onnx.common.data_types import FloatTensorType

    options = {"zipmap": False} if hasattr(model, "predict_proba") else None
    onx = skl2onnx.convert_sklearn(
        model.to_sklearn(), initial_types=[("X", FloatTensorType([None, X.shape[1]]))],
        options=options)
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": X.astype(np.float32)})


@pytest.mark.parametrize("n_classes", [2, 3, 10])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_onnx_classifier_matches(n_classes, activation):
    X, y = make_classification(n_samples=300, n_features=12, n_informative=8,
                               n_classes=n_classes, random_state=0)
    X = X.astype(np.float32)
    clf = MLPClassifier(hidden_layer_sizes=(20, 10), activation=activation, max_iter=200,
                        random_state=0).fit(X, y)
    labels, proba = _onnx_run(clf, X)
    expected = clf.predict_proba(X)
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    confident = np.abs(np.sort(expected, axis=1)[:, -1] - np.sort(expected, axis=1)[:, -2]) > 1e-4
    np.testing.assert_array_equal(labels[confident], clf.predict(X)[confident])


def test_onnx_string_labels_and_float64_model():
    X, y = load_digits(return_X_y=True)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=50, random_state=0).fit(X / 16, names[y])
    assert clf.coefs_[0].dtype == np.float64
    labels, proba = _onnx_run(clf, X / 16)
    np.testing.assert_allclose(proba, clf.predict_proba(X / 16), atol=1e-5)
    assert (labels == clf.predict(X / 16)).mean() > 0.995


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_onnx_regressor_matches(diabetes, activation):
    X, y = diabetes
    X = X.astype(np.float32)
    reg = MLPRegressor(hidden_layer_sizes=(32,), activation=activation, solver="lbfgs",
                       max_iter=200, random_state=0).fit(X, y)
    (pred,) = _onnx_run(reg, X)
    np.testing.assert_allclose(pred.ravel(), reg.predict(X), rtol=1e-5, atol=1e-3)


def test_onnx_poisson_regressor_is_not_expressible(diabetes):
    """skl2onnx's MLP converter knows identity, tanh, logistic, relu and
    softmax outputs only; the Poisson head's 'exp' fails (KeyError 'exp')."""
    X, y = diabetes
    reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), max_iter=20,
                       random_state=0).fit(X, y)
    assert reg.out_activation_ == "exp"
    with pytest.raises(KeyError, match="exp"):
        _onnx_run(reg, X)


def test_onnx_multilabel_classifier_matches():
    from sklearn.datasets import make_multilabel_classification

    X, Y = make_multilabel_classification(n_samples=200, n_features=6, n_classes=4,
                                          random_state=0)
    X = X.astype(np.float32)
    clf = MLPClassifier(max_iter=50, random_state=0).fit(X, Y)
    labels, proba = _onnx_run(clf, X)
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(labels, clf.predict(X))


@pytest.mark.xfail(raises=(ValueError, AssertionError), strict=False,
                   reason="skl2onnx reshapes MLP regressor output to (-1, 1) "
                          "(onnx/sklearn-onnx#474): multi-output regression is wrong")
def test_onnx_multi_output_regressor():
    from sklearn.datasets import make_regression

    X, Y = make_regression(n_samples=200, n_features=5, n_targets=3, random_state=0)
    X = X.astype(np.float32)
    reg = MLPRegressor(max_iter=50, random_state=0).fit(X, Y.astype(np.float32))
    (pred,) = _onnx_run(reg, X)
    np.testing.assert_allclose(pred, reg.predict(X), rtol=1e-4, atol=1e-3)
