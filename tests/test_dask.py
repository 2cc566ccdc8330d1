"""fastmlp on a real dask.distributed LocalCluster (two worker processes on
loopback): grid search through joblib's dask backend, and out-of-core
training with dask_ml.wrappers.Incremental."""

import os

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from fastmlp import MLPClassifier

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    # distributed's own chatter on a short-lived local cluster
    "ignore::DeprecationWarning",
    "ignore::ResourceWarning",
)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _worker_threads():
    import numba

    from fastmlp import _threads

    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "environment_limit": _threads.environment_limit(),
            "numba_pool": numba.config.NUMBA_NUM_THREADS,
            "pid": os.getpid()}


def test_workers_are_separate_processes_capped_to_one_thread(client):
    info = client.run(_worker_threads)
    assert len(info) == 2
    assert os.getpid() not in {v["pid"] for v in info.values()}
    for v in info.values():
        # distributed's nanny sets OMP_NUM_THREADS=1 (not NUMBA_NUM_THREADS);
        # fastmlp honours it.
        assert v["OMP_NUM_THREADS"] == "1"
        assert v["environment_limit"] == 1


def test_grid_search_on_cluster_equals_local(client, digits):
    X, y = digits
    grid = GridSearchCV(MLPClassifier(max_iter=30, learning_rate_init=0.01, random_state=0),
                        {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-1]}, cv=3)
    local = clone(grid).fit(X, y)
    with joblib.parallel_backend("dask"):
        remote = clone(grid).set_params(n_jobs=-1).fit(X, y)
    np.testing.assert_array_equal(local.cv_results_["mean_test_score"],
                                  remote.cv_results_["mean_test_score"])
    assert local.best_params_ == remote.best_params_
    assert remote.best_score_ > 0.9


@pytest.mark.parametrize("chunk", [300, 257])
def test_incremental_equals_local_partial_fit_chain(client, digits, chunk):
    X, y = digits
    classes = np.unique(y)
    Xd = da.from_array(X, chunks=(chunk, X.shape[1]))
    yd = da.from_array(y, chunks=chunk)
    est = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0)
    inc = dask_ml_wrappers.Incremental(est, shuffle_blocks=False, scoring="accuracy")
    n_passes = 5
    for _ in range(n_passes):  # each call: one partial_fit per block, in order
        inc.partial_fit(Xd, yd, classes=classes)  # classes passed on every block

    local = clone(est)
    for _ in range(n_passes):
        for start in range(0, len(X), chunk):
            local.partial_fit(X[start:start + chunk], y[start:start + chunk], classes=classes)

    fitted = inc.estimator_
    assert type(fitted) is MLPClassifier
    for a, b in zip(fitted.coefs_ + fitted.intercepts_, local.coefs_ + local.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert fitted.t_ == local.t_
    # blockwise predict on the cluster
    pred = inc.predict(Xd).compute()
    np.testing.assert_array_equal(pred, local.predict(X))
    assert inc.score(Xd, yd) > 0.85
