"""Behaviour of the estimators that a scikit-learn user relies on."""

import pickle
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import neural_network as sk
from sklearn.datasets import load_iris, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastmlp import MLPClassifier, MLPRegressor

X_iris, y_iris = load_iris(return_X_y=True)
X_iris = StandardScaler().fit_transform(X_iris)
X_reg, y_reg = make_regression(n_samples=80, n_features=5, random_state=0)
y_reg = y_reg / y_reg.std()


@pytest.fixture(autouse=True)
def _no_convergence_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_signatures_and_defaults_match_sklearn():
    import inspect

    for ours, theirs in ((MLPClassifier, sk.MLPClassifier), (MLPRegressor, sk.MLPRegressor)):
        a = inspect.signature(ours.__init__).parameters
        b = inspect.signature(theirs.__init__).parameters
        # scikit-learn's parameters first, in order; fastmlp's extras after,
        # keyword-only with defaults that keep scikit-learn's behaviour.
        assert list(a)[: len(b)] == list(b)
        for name in b:
            assert a[name].default == b[name].default, name
            assert a[name].kind == b[name].kind, name
        for name in list(a)[len(b):]:
            assert a[name].kind == inspect.Parameter.KEYWORD_ONLY
        ours_params = ours().get_params()
        assert {k: ours_params[k] for k in theirs().get_params()} == theirs().get_params()
    assert MLPClassifier().loss == "log_loss"
    assert "loss" not in MLPClassifier().get_params()


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(hidden_layer_sizes=[5, 0]), "hidden_layer_sizes must be > 0, got [5, 0]."),
        (dict(solver="newton"), "The 'solver' parameter of MLPClassifier must be"),
        (dict(momentum=1.5), "The 'momentum' parameter of MLPClassifier must be"),
        (dict(learning_rate_init=0.0), "The 'learning_rate_init' parameter"),
        (dict(validation_fraction=1.0), "The 'validation_fraction' parameter"),
        (dict(n_iter_no_change=0), "The 'n_iter_no_change' parameter"),
    ],
)
def test_parameter_errors_match_sklearn(params, message):
    with pytest.raises(ValueError, match=re.escape(message)) as ours:
        MLPClassifier(**params).fit(X_iris, y_iris)
    with pytest.raises(ValueError) as theirs:
        sk.MLPClassifier(**params).fit(X_iris, y_iris)
    assert str(ours.value) == str(theirs.value)


def test_regressor_positional_loss():
    with pytest.raises(ValueError, match=re.escape("The 'loss' parameter of MLPRegressor")):
        MLPRegressor((5,)).fit(X_reg, y_reg)


@pytest.mark.parametrize("bad", ["nan", "inf", "empty", "3d", "features"])
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_bad_input_gets_sklearns_error(bad, Est):
    X, y = (X_iris, y_iris) if Est is MLPClassifier else (X_reg, y_reg)
    Sk = getattr(sk, Est.__name__)
    if bad == "features":
        est = Est(max_iter=2).fit(X, y)
        ref = Sk(max_iter=2).fit(X, y)
        calls = [lambda e: e.predict(X[:, :-1])]
    else:
        X = X.copy()
        if bad == "nan":
            X[3, 1] = np.nan
        elif bad == "inf":
            X[3, 1] = np.inf
        elif bad == "empty":
            X, y = X[:0], y[:0]
        elif bad == "3d":
            X = X[:, :, None]
        est, ref = Est(max_iter=2), Sk(max_iter=2)
        calls = [lambda e: e.fit(X, y)]
    for call in calls:
        with pytest.raises(ValueError) as theirs:
            call(ref)
        with pytest.raises(ValueError, match=re.escape(str(theirs.value)[:60])):
            call(est)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X_iris)


def test_partial_fit_rules():
    clf = MLPClassifier(hidden_layer_sizes=(5,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X_iris, y_iris)
    classes = np.unique(y_iris)
    for i in range(3):
        clf.partial_fit(X_iris, y_iris, classes=classes)  # repeated classes accepted
        assert clf.n_iter_ == 1
        assert clf.t_ == (i + 1) * X_iris.shape[0]
        assert len(clf.loss_curve_) == i + 1
    with pytest.raises(ValueError, match=re.escape("`y` has classes not in `self.classes_`")):
        clf.partial_fit(X_iris, y_iris + 1)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        MLPClassifier(early_stopping=True).partial_fit(X_iris, y_iris, classes=classes)
    # availability follows scikit-learn, including its regressor quirk
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(AttributeError) as theirs:
        sk.MLPClassifier(solver="lbfgs").partial_fit
    with pytest.raises(AttributeError, match=re.escape(str(theirs.value))):
        MLPClassifier(solver="lbfgs").partial_fit
    reg = MLPRegressor(solver="lbfgs", max_iter=5, hidden_layer_sizes=(4,), random_state=0)
    assert hasattr(reg, "partial_fit")
    reg.partial_fit(X_reg, y_reg)
    ref = sk.MLPRegressor(solver="lbfgs", max_iter=5, hidden_layer_sizes=(4,), random_state=0)
    ref.partial_fit(X_reg, y_reg)
    np.testing.assert_allclose(reg.predict(X_reg), ref.predict(X_reg), rtol=1e-10)


def test_partial_fit_feature_count_checked():
    clf = MLPClassifier(hidden_layer_sizes=(5,)).partial_fit(X_iris, y_iris, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X_iris[:, :2], y_iris)


def test_warm_start_rules():
    clf = MLPClassifier(hidden_layer_sizes=(5,), warm_start=True, max_iter=3).fit(X_iris, y_iris)
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        clf.fit(X_iris, np.where(y_iris == 2, 3, y_iris))
    clf.set_params(hidden_layer_sizes=(6,))
    with pytest.raises(ValueError, match="need the layer sizes of the fitted network"):
        clf.fit(X_iris, y_iris)


def test_warnings_match_sklearn():
    with pytest.warns(ConvergenceWarning, match=re.escape(
            "Stochastic Optimizer: Maximum iterations (2) reached and the optimization "
            "hasn't converged yet.")):
        MLPClassifier(max_iter=2).fit(X_iris, y_iris)
    with pytest.warns(UserWarning, match="Got `batch_size` less than 1 or larger than sample"):
        MLPClassifier(max_iter=1, batch_size=1000).fit(X_iris, y_iris)
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 2 iteration"):
        MLPClassifier(solver="lbfgs", max_iter=2).fit(X_iris, y_iris)
    # partial_fit never warns about convergence
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MLPClassifier(max_iter=1).partial_fit(X_iris, y_iris, classes=[0, 1, 2])


def test_column_vector_y_warns():
    from sklearn.exceptions import DataConversionWarning

    with pytest.warns(DataConversionWarning):
        MLPRegressor(max_iter=1).fit(X_reg, y_reg[:, None])


def test_non_finite_weights_error():
    X = X_reg * 1e6
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            MLPRegressor(solver="sgd", learning_rate_init=10.0, max_iter=5).fit(X, y_reg * 1e6)


def test_keyboard_interrupt_stops_with_a_warning(monkeypatch):
    from fastmlp import _engine

    calls = {"n": 0}
    original = _engine.StochasticTrainer.run_epoch

    def interrupted(self, theta, idx, shuffled=True):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, theta, idx, shuffled)

    monkeypatch.setattr(_engine.StochasticTrainer, "run_epoch", interrupted)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        clf = MLPClassifier(max_iter=10, hidden_layer_sizes=(4,)).fit(X_iris, y_iris)
    assert clf.n_iter_ == 2
    assert clf.predict(X_iris).shape == y_iris.shape


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_float32_stays_float32(solver):
    X32 = X_iris.astype(np.float32)
    clf = MLPClassifier(solver=solver, max_iter=60, hidden_layer_sizes=(8,), random_state=0,
                        batch_size=16)
    clf.fit(X32, y_iris)
    assert all(c.dtype == np.float32 for c in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X32).dtype == np.float32
    # as scikit-learn: float64 input to a float32 model predicts in float64
    assert clf.predict_proba(X_iris).dtype == np.float64
    assert clf.score(X32, y_iris) > 0.8
    X64 = X_iris.astype(np.int64)
    assert MLPClassifier(max_iter=2).fit(X64, y_iris).coefs_[0].dtype == np.float64


def test_float32_close_to_float64():
    params = dict(max_iter=30, hidden_layer_sizes=(8,), random_state=0)
    a = MLPClassifier(**params).fit(X_iris.astype(np.float32), y_iris)
    b = MLPClassifier(**params).fit(X_iris, y_iris)
    np.testing.assert_allclose(a.predict_proba(X_iris), b.predict_proba(X_iris), atol=1e-3)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_equals_dense(fmt):
    X = X_iris.copy()
    X[np.abs(X) < 0.5] = 0
    Xs = sp.csr_matrix(X).asformat(fmt)
    params = dict(max_iter=10, hidden_layer_sizes=(6,), random_state=0)
    a = MLPClassifier(**params).fit(Xs, y_iris)
    b = MLPClassifier(**params).fit(X, y_iris)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.predict_proba(Xs), b.predict_proba(X), atol=1e-12)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("corrupt", ["index_too_large", "negative_index", "indptr_decreasing"])
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_malformed_sparse_input_raises_before_any_kernel(corrupt, fmt, Est):
    # The kernels index the weights by a CSR input's column indices without
    # bounds checks, and scipy's CSC-to-CSR conversion itself crashes on a
    # corrupted CSC matrix: either must raise, not read out of bounds
    # (scikit-learn's own MLP crashes the process on these).
    X = sp.csr_matrix(np.where(np.abs(X_iris) < 0.5, 0, X_iris)).asformat(fmt)
    bad = X.copy()
    if corrupt == "index_too_large":
        bad.indices[3] = 10**6
        message = "indices must be <"
    elif corrupt == "negative_index":
        bad.indices[3] = -(10**6)
        message = "indices must be >= 0"
    else:
        bad.indptr[2] = bad.indptr[3] + 1
        message = "non-decreasing"
    kept = [bad.data.copy(), bad.indices.copy(), bad.indptr.copy()]
    est = Est(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    with pytest.raises(ValueError, match=message):
        est.fit(bad, y_iris)
    est.fit(X, y_iris)
    with pytest.raises(ValueError, match=message):
        est.predict(bad)
    for a, b in zip(kept, [bad.data, bad.indices, bad.indptr]):
        np.testing.assert_array_equal(a, b)  # the caller's matrix is not modified


def _edit_layers(est, edit):
    """Apply one inconsistent edit to a fitted model's coefs_/intercepts_."""
    c0, c1 = est.coefs_
    if edit == "first_layer_too_wide":
        est.coefs_ = [np.ones((4000, c0.shape[1])), c1]
    elif edit == "first_layer_too_narrow":
        est.coefs_ = [np.ones((2, c0.shape[1])), c1]
    elif edit == "intercept_missing":
        est.intercepts_ = est.intercepts_[:1]
    elif edit == "coef_broadcastable":
        est.coefs_ = [c0, np.full((1, c1.shape[1]), 0.5)]
    elif edit == "view_reshaped_in_place":
        c0.shape = (c0.shape[1], c0.shape[0])


@pytest.mark.parametrize("edit", ["first_layer_too_wide", "first_layer_too_narrow",
                                  "intercept_missing", "coef_broadcastable",
                                  "view_reshaped_in_place"])
@pytest.mark.parametrize("sparse", [False, True])
def test_inconsistent_layers_raise_before_any_kernel(edit, sparse):
    # The kernels read the flat buffer at offsets computed from coefs_'
    # shapes: layers that do not chain, or do not take X's width, must raise
    # (scikit-learn raises numpy's matmul or index errors here), not read out
    # of bounds or pack uninitialised memory.
    X = X_iris[:, :3] if edit == "view_reshaped_in_place" else X_iris
    Xin = sp.csr_matrix(X) if sparse else X
    params = dict(hidden_layer_sizes=(X.shape[1] + 2,), max_iter=2, random_state=0)
    est = MLPRegressor(**params).fit(X, y_iris)
    _edit_layers(est, edit)
    calls = [lambda: est.predict(Xin[:3]), lambda: est.predict(Xin),
             lambda: est.partial_fit(Xin, y_iris)]
    if not edit.startswith("first_layer"):  # those still chain: only X does not fit
        calls.append(lambda: pickle.loads(pickle.dumps(est)))
    for call in calls:
        with pytest.raises(ValueError, match="coefs_|features|layer sizes"):
            call()
    if edit != "view_reshaped_in_place":
        ref = sk.MLPRegressor(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref.fit(X, y_iris)
        _edit_layers(ref, edit)
        with pytest.raises(ValueError, match="coefs_|expected|features"):
            MLPRegressor.from_sklearn(ref).predict(X)


def test_non_integer_layer_size_raises_sklearns_error():
    with pytest.raises(TypeError) as ours:
        MLPClassifier(hidden_layer_sizes=(5.7,), max_iter=2).fit(X_iris, y_iris)
    with pytest.raises(TypeError) as theirs:
        sk.MLPClassifier(hidden_layer_sizes=(5.7,), max_iter=2).fit(X_iris, y_iris)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_batch_with_zero_weight_sum_raises_sklearns_error(Est):
    sw = np.ones(len(y_iris))
    sw[:10] = 0
    params = dict(hidden_layer_sizes=(5,), max_iter=2, batch_size=10, shuffle=False)
    with pytest.raises(ZeroDivisionError) as ours:
        Est(**params).fit(X_iris, y_iris, sample_weight=sw)
    sk_est = getattr(sk, Est.__name__)
    with pytest.raises(ZeroDivisionError) as theirs:
        sk_est(**params).fit(X_iris, y_iris, sample_weight=sw)
    assert str(ours.value) == str(theirs.value)
    # shuffled batches: the same check on each epoch's order, and no error
    # when no batch sums to zero
    Est(**{**params, "shuffle": True}, random_state=0).fit(X_iris, y_iris, sample_weight=sw + 1)


@pytest.mark.parametrize("first, then", [(np.float64, np.float32), (np.float32, np.float64)])
@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
def test_further_training_keeps_the_fitted_dtype(first, then, how):
    # scikit-learn updates coefs_ in place, so their dtype is the first fit's
    kw = dict(hidden_layer_sizes=(5,), max_iter=2, random_state=0, warm_start=how == "warm_start")
    dtypes = []
    for Est in (MLPClassifier, sk.MLPClassifier):
        est = Est(**kw).fit(X_iris.astype(first), y_iris)
        (est.partial_fit if how == "partial_fit" else est.fit)(X_iris.astype(then), y_iris)
        dtypes.append([c.dtype for c in est.coefs_ + est.intercepts_])
    assert dtypes[0] == dtypes[1] == [np.dtype(first)] * 4


def test_multilabel_and_multioutput():
    X, Y = make_multilabel_classification(n_samples=60, n_classes=4, random_state=0)
    clf = MLPClassifier(max_iter=50, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic"
    assert clf.predict(X).shape == Y.shape
    assert clf.predict_proba(X).shape == Y.shape
    Xr, Yr = make_regression(n_samples=60, n_features=4, n_targets=3, random_state=0)
    reg = MLPRegressor(max_iter=50, random_state=0).fit(Xr, Yr)
    assert reg.n_outputs_ == 3 and reg.predict(Xr).shape == (60, 3)


def test_binary_and_proba():
    y = (y_iris > 0).astype(int)
    clf = MLPClassifier(max_iter=50, random_state=0).fit(X_iris, y)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    proba = clf.predict_proba(X_iris)
    assert proba.shape == (150, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_allclose(clf.predict_log_proba(X_iris), np.log(proba))
    labels = np.array(["no", "yes"])[y]
    assert set(MLPClassifier(max_iter=5).fit(X_iris, labels).predict(X_iris)) <= {"no", "yes"}


def test_poisson_regression():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0] + 0.2))
    reg = MLPRegressor(loss="poisson", max_iter=200, random_state=0).fit(X, y)
    assert reg.out_activation_ == "exp"
    assert np.all(reg.predict(X) > 0)
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]


def test_early_stopping_restores_best_weights():
    clf = MLPClassifier(early_stopping=True, max_iter=60, random_state=0,
                        n_iter_no_change=3, validation_fraction=0.3)
    clf.fit(X_iris, y_iris)
    assert clf.best_loss_ is None and clf.validation_scores_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    for c, b in zip(clf.coefs_, clf._best_coefs):
        np.testing.assert_array_equal(c, b)
    with pytest.raises(ValueError, match="The validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.01).fit(X_reg[:60], y_reg[:60])


def test_pandas_feature_names():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X_iris, columns=["a", "b", "c", "d"])
    clf = MLPClassifier(max_iter=5).fit(df, y_iris)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        clf.predict(X_iris)


def test_sample_weight_zero_equals_dropping_rows():
    sw = np.ones(150)
    sw[::3] = 0
    params = dict(solver="lbfgs", max_iter=30, hidden_layer_sizes=(5,), random_state=0)
    a = MLPClassifier(**params).fit(X_iris, y_iris, sample_weight=sw)
    b = MLPClassifier(**params).fit(X_iris[sw > 0], y_iris[sw > 0])
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-8)


def test_metadata_routing_of_sample_weight():
    import sklearn

    with sklearn.config_context(enable_metadata_routing=True):
        clf = MLPClassifier(max_iter=5, hidden_layer_sizes=(4,), random_state=0)
        clf.set_fit_request(sample_weight=True)
        sw = np.random.RandomState(0).uniform(0.5, 1.5, 150)
        scaler = StandardScaler().set_fit_request(sample_weight=False)
        pipe = make_pipeline(scaler, clf).fit(X_iris, y_iris, sample_weight=sw)
        ref = MLPClassifier(max_iter=5, hidden_layer_sizes=(4,), random_state=0).fit(
            StandardScaler().fit_transform(X_iris), y_iris, sample_weight=sw)
    np.testing.assert_array_equal(pipe[-1].coefs_[0], ref.coefs_[0])


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_pipeline_grid_search(n_jobs):
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier(max_iter=50, batch_size=16, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(5,), (10,)],
                               "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3, n_jobs=n_jobs)
    grid.fit(X_iris, y_iris)
    assert grid.best_score_ > 0.8
    scores = cross_val_score(MLPRegressor(max_iter=50, random_state=0), X_reg, y_reg, cv=3)
    assert scores.shape == (3,)


def test_grid_search_same_results_serial_and_parallel():
    grid = {"hidden_layer_sizes": [(5,), (8,)]}
    a = GridSearchCV(MLPClassifier(max_iter=20, random_state=0), grid, cv=2, n_jobs=1)
    b = GridSearchCV(MLPClassifier(max_iter=20, random_state=0), grid, cv=2, n_jobs=2)
    a.fit(X_iris, y_iris)
    b.fit(X_iris, y_iris)
    np.testing.assert_array_equal(a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"])


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_pickle_round_trip(solver):
    clf = MLPClassifier(solver=solver, max_iter=10, random_state=0).fit(X_iris, y_iris)
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clf.predict_proba(X_iris), clone.predict_proba(X_iris))
    # the loaded model trains on from the same state
    if solver != "lbfgs":
        clf.partial_fit(X_iris, y_iris)
        clone.partial_fit(X_iris, y_iris)
        for p, q in zip(clf.coefs_, clone.coefs_):
            np.testing.assert_array_equal(p, q)
    # fitted state holds plain Python / NumPy / scikit-learn objects only
    for value in vars(clone).values():
        assert "numba" not in type(value).__module__


def test_user_assigned_coefs_are_used():
    clf = MLPClassifier(max_iter=5, random_state=0).fit(X_iris, y_iris)
    before = clf.predict_proba(X_iris)
    clf.coefs_[0] = clf.coefs_[0] * 0  # replaced, not a view any more
    after = clf.predict_proba(X_iris)
    assert not np.allclose(before, after)
    # in-place edits of a view are seen too
    clf2 = MLPClassifier(max_iter=5, random_state=0).fit(X_iris, y_iris)
    clf2.intercepts_[-1][:] += 100 * np.arange(3)
    assert (clf2.predict(X_iris) == 2).all()


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("hidden", [(64, 32), (512, 512)], ids=["shares", "no-shares"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_same_random_state_bit_identical_across_thread_counts(solver, hidden, sparse):
    """n_threads=1 and 2 give the same bits, with the gradient split by batch
    rows (a small network) or by rows of W (a large one)."""
    from fastmlp import _engine
    from fastmlp._layout import Layout
    from fastmlp._threads import resolve_threads

    X, y = make_regression(n_samples=700, n_features=30, random_state=0)
    if sparse:
        X[np.abs(X) < 0.8] = 0
        X = sp.csr_matrix(X)
    layout = Layout([30, *hidden, 1])
    batch = 300
    # each fit really runs on two threads (small work runs on one)
    if resolve_threads(2, batch * layout.n_weights) < 2:
        pytest.skip("fewer than two threads available")
    shares = _engine.gradient_shares(700 if solver == "lbfgs" else batch, layout.size,
                                     np.float64)
    assert (shares.size > 0) == (hidden == (64, 32))
    params = dict(solver=solver, hidden_layer_sizes=hidden, max_iter=3, random_state=0,
                  batch_size=batch, learning_rate_init=1e-3)
    results = [MLPRegressor(**params, n_threads=t).fit(X, y / y.std()) for t in (1, 2, 1)]
    for other in results[1:]:
        for p, q in zip(results[0].coefs_ + results[0].intercepts_,
                        other.coefs_ + other.intercepts_):
            np.testing.assert_array_equal(p, q)


def test_verbose_output(capsys):
    MLPClassifier(max_iter=2, verbose=True, early_stopping=True).fit(X_iris, y_iris)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Validation score: " in out


def test_predict_fast_path_matches_validated_path():
    clf = MLPClassifier(max_iter=5, random_state=0).fit(X_iris, y_iris)
    fast = clf.predict_proba(np.ascontiguousarray(X_iris))
    for other in (np.asfortranarray(X_iris), X_iris.tolist(), X_iris.astype(np.float32),
                  sp.csr_matrix(X_iris)):
        np.testing.assert_allclose(clf.predict_proba(other), fast, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict_proba(X_iris[3:4]), fast[3:4])
    for bad in (np.nan, np.inf):
        X = X_iris.copy()
        X[0, 0] = bad
        with pytest.raises(ValueError) as theirs:
            sk.MLPClassifier(max_iter=5).fit(X_iris, y_iris).predict(X)
        with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
            clf.predict(X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "squared", "poisson"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_small_predictions_take_serial_kernel(kind, activation, dtype, monkeypatch):
    # Predictions below the parallel threshold run a serial kernel; it must
    # give every row what the parallel kernels give it in a big batch, to
    # rounding (those call BLAS, which may sum in another order), and the
    # same bits for the same rows however they arrive.
    from fastmlp import _engine, _predict
    from fastmlp._threads import serial_predict_max_rows

    rng = np.random.RandomState(0)
    X = rng.normal(size=(1200, 20)).astype(dtype)
    if kind == "multiclass":
        est, y = MLPClassifier(), rng.randint(3, size=1200)
    elif kind == "binary":
        est, y = MLPClassifier(), rng.randint(2, size=1200)
    elif kind == "multilabel":
        est, y = MLPClassifier(), rng.randint(2, size=(1200, 3))
    else:
        est, y = MLPRegressor(loss="squared_error" if kind == "squared" else kind), np.abs(X[:, :2].sum(axis=1)) + 0.1
    est.set_params(hidden_layer_sizes=(64, 33), activation=activation, max_iter=3,
                   random_state=0)
    est.fit(X, y)
    n_weights = 20 * 64 + 64 * 33 + 33 * est.n_outputs_
    assert 33 <= serial_predict_max_rows(n_weights) < X.shape[0]

    calls = {"serial": 0, "parallel": 0}

    def spy(name, real):
        def wrapper(*args):
            calls[name] += 1
            return real(*args)
        return wrapper

    # the one-row and four-row serial kernels
    monkeypatch.setattr(_engine, "predict_serial", spy("serial", _engine.predict_serial))
    monkeypatch.setattr(_engine, "predict_serial_blocks",
                        spy("serial", _engine.predict_serial_blocks))
    monkeypatch.setattr(_predict, "predict_output", spy("parallel", _predict.predict_output))
    out = est.predict_proba if kind != "squared" and kind != "poisson" else est.predict
    big = out(X)
    assert calls == {"serial": 0, "parallel": 1}
    small = np.concatenate([out(X[i:i + 1]) for i in range(25)] + [out(X[25:33])])
    assert calls == {"serial": 26, "parallel": 1}  # 8 rows: one block call
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(small, big[:33], **tol)
    # read-only and Fortran-ordered inputs are converted first
    Xr = X[:5].copy()
    Xr.setflags(write=False)
    np.testing.assert_array_equal(out(Xr), small[:5])
    np.testing.assert_array_equal(out(np.asfortranarray(X[:5])), small[:5])
    # rows in blocks of four get the bits they get alone
    np.testing.assert_array_equal(out(X[:25]), small[:25])
    assert calls == {"serial": 32, "parallel": 1}  # 5 rows, 5 rows, 25 rows: two calls each


def _reference_proba(est, X):
    from reference import predict

    return predict(X.astype(np.float64), [c.astype(np.float64) for c in est.coefs_],
                   [b.astype(np.float64) for b in est.intercepts_], est.activation,
                   est.out_activation_)


def _model_with_kept_predictor(dtype):
    X = X_iris.astype(dtype)
    est = MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=5, random_state=0).fit(X, y_iris)
    rows = X[:3].copy()
    first = est.predict_proba(rows)
    assert est._predictor.state is not None
    return est, rows, first


_CHANGES = {
    "in_place_edit": lambda est: est.coefs_[0].__setitem__((0, 0), est.coefs_[0][0, 0] + 1),
    "array_replaced": lambda est: est.coefs_.__setitem__(1, est.coefs_[1] * 0.5),
    "intercept_replaced": lambda est: est.intercepts_.__setitem__(0, est.intercepts_[0] + 1),
    "intercepts_list": lambda est: setattr(est, "intercepts_",
                                           [b + 0.25 for b in est.intercepts_]),
    "activation": lambda est: est.set_params(activation="tanh"),
    "out_activation": lambda est: setattr(est, "out_activation_", "logistic"),
    "refit": lambda est: est.set_params(random_state=1).fit(X_iris.astype(est.coefs_[0].dtype),
                                                            y_iris),
}


@pytest.mark.parametrize("change", list(_CHANGES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_kept_small_predictor_follows_the_model(change, dtype):
    # A small prediction keeps the serial kernel's arguments on the model
    # (the general path's Python cost ~2x the arithmetic of a one-row
    # prediction). Every change scikit-learn's prediction would see must
    # reach the next prediction.
    est, rows, first = _model_with_kept_predictor(dtype)
    _CHANGES[change](est)
    got = est.predict_proba(rows)
    assert got.dtype == dtype
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, _reference_proba(est, rows), **tol)
    assert np.abs(got - first).max() > 1e-3


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_kept_small_predictor_keeps_scikit_learn_errors(dtype):
    est, rows, first = _model_with_kept_predictor(dtype)
    np.testing.assert_array_equal(est.predict_proba(rows), first)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict_proba(np.where(np.arange(4) == 2, np.nan, rows).astype(dtype))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.predict_proba(np.where(np.arange(4) == 0, np.inf, rows).astype(dtype))
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        est.predict_proba(np.ascontiguousarray(rows[:, :3]))
    np.testing.assert_array_equal(est.predict_proba(rows), first)
    # never pickled; the copy builds its own, with the same bits
    assert "_predictor" not in est.__getstate__()
    copy = pickle.loads(pickle.dumps(est))
    assert copy._predictor.state is None
    np.testing.assert_array_equal(copy.predict_proba(rows), first)
    assert copy._predictor.state is not None
    # a view reshaped in place is refused, as on the general path
    est.coefs_[1].shape = est.coefs_[1].shape[::-1]
    with pytest.raises(ValueError, match="do not fit the network"):
        est.predict_proba(rows)


def test_kept_small_predictor_after_a_failed_refit():
    # A refit that fails after validating its X has set n_features_in_ (as
    # scikit-learn's does) but left coefs_: scikit-learn's width check
    # then refuses the old width, on either path.
    rng = np.random.RandomState(0)
    X, y = rng.randn(60, 4), rng.randint(3, size=60)
    ours = MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, y)
    theirs = sk.MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, y)
    ours.predict(X[:1].copy())
    assert ours._predictor.state is not None
    for est in (ours, theirs):
        with pytest.raises(ValueError):
            est.fit(rng.randn(60, 5), y, sample_weight=np.ones(3))
        assert est.n_features_in_ == 5
    msg = "X has 4 features, but MLP.* is expecting 5 features as input"
    for est in (ours, theirs):
        with pytest.raises(ValueError, match=msg):
            est.predict(X[:1].copy())


@pytest.mark.parametrize("change", ["coefs", "activation"])
def test_kept_small_predictor_describes_the_buffer_it_keeps(change, monkeypatch):
    # Another thread changing the model while a prediction fills the kept
    # predictor (forced here at the start of fill) must not leave the new
    # arrays or activation paired with the old buffer for later calls.
    from fastmlp._predict import _SmallPredictor

    est = MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=5, random_state=0).fit(X_iris,
                                                                                  y_iris)
    rows = X_iris[:2].copy()
    real_fill = _SmallPredictor.fill

    def fill(self, *args):
        if change == "coefs":
            est.coefs_ = [c * -3.0 for c in est.coefs_]
        else:
            est.set_params(activation="identity")
        return real_fill(self, *args)

    monkeypatch.setattr(_SmallPredictor, "fill", fill)
    est.predict_proba(rows)
    monkeypatch.undo()
    for _ in range(2):
        np.testing.assert_allclose(est.predict_proba(rows), _reference_proba(est, rows),
                                   rtol=1e-10, atol=1e-12)


def test_kept_small_predictor_keeps_feature_name_checks():
    # A model with feature names takes the general path, for scikit-learn's
    # checks of the names, even where it has a predictor kept from before.
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X_iris, columns=["a", "b", "c", "d"])
    est, rows, first = _model_with_kept_predictor(np.float64)
    est.feature_names_in_ = np.array(df.columns, dtype=object)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_array_equal(est.predict_proba(rows), first)
    with pytest.raises(ValueError, match="feature names"):
        est.predict_proba(df.iloc[:1].rename(columns={"a": "z"}))
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(df, y_iris)
    want = est.predict_proba(df.iloc[:1])
    assert est._predictor.state is None
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_array_equal(est.predict_proba(X_iris[:1].copy()), want)


def test_small_predictions_from_many_python_threads():
    # The serial kernel releases the GIL: concurrent one-row predictions
    # must not share work buffers.
    from concurrent.futures import ThreadPoolExecutor

    X = np.random.RandomState(0).normal(size=(400, 30))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 0)
    est = MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=5, random_state=0).fit(X, y)
    rows = [X[i : i + 1].copy() for i in range(400)]
    want = [est.predict_proba(r) for r in rows]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(est.predict_proba, rows))
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "one_class"])
@pytest.mark.parametrize("labels", ["int", "str"])
def test_inverse_binarize_matches_label_binarizer(kind, labels, dtype):
    # predict's labels come from scikit-learn's operations without its
    # checks around them; the outputs here include ties, the threshold
    # itself, NaN and values out of [0, 1].
    from sklearn.preprocessing import LabelBinarizer

    from fastmlp._validation import _inverse_binarize

    rng = np.random.RandomState(0)
    if kind == "multilabel":
        y_fit = rng.randint(2, size=(30, 4))
    else:
        n = {"multiclass": 5, "binary": 2, "one_class": 1}[kind]
        y_fit = rng.randint(n, size=30)
        if labels == "str":
            y_fit = np.array(["ab", "c", "zz", "d", "e"])[y_fit]
    lb = LabelBinarizer().fit(y_fit)
    width = 1 if kind in ("binary", "one_class") else len(lb.classes_)
    Y = rng.choice([0.0, 0.25, 0.5, 0.5, 1.0, -1.0, 2.0, np.nan], size=(200, width))
    Y = Y.astype(dtype)
    if width == 1:
        Y = Y.ravel()
    want = lb.inverse_transform(Y)
    got = _inverse_binarize(lb, Y)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_predict_labels_match_scikit_learn_binarizer():
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    y = np.array(["setosa", "versicolor", "virginica"])[y_iris]
    est.fit(X_iris, y)
    for rows in (X_iris[:1], X_iris):
        want = est._label_binarizer.inverse_transform(est.predict_proba(rows))
        got = est.predict(rows)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_serial_prediction_rule():
    # Small predictions of wide networks stay on the calling thread up to
    # 2^21 multiply-adds and 32 rows; others below 2^20 multiply-adds, and
    # at most 2048 rows (many rows of narrow networks, where the serial
    # kernels vectorise poorly, go through BLAS).
    from fastmlp._threads import serial_predict_max_rows

    w2 = 100 * 256 + 256 * 256 + 256 * 5
    assert serial_predict_max_rows(w2) == (2**21 - 1) // w2 == 22
    assert serial_predict_max_rows(3491) == (2**20 - 1) // 3491 == 300
    assert serial_predict_max_rows(1024) == 1023
    assert serial_predict_max_rows(512) == 2047
    assert serial_predict_max_rows(500) == 2048
    assert serial_predict_max_rows(40) == 2048
    assert serial_predict_max_rows(40_000) == 32
    assert serial_predict_max_rows(2**21) == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_signed_zero_predictions_match_scikit_learn_bit_for_bit(dtype):
    # Hidden pre-activations of -0.0 (bias -0.0, inputs 0, weights -1): the
    # ReLU gives +0.0, as scikit-learn's np.maximum does, so the output
    # (weights 1, bias -0.0) is +0.0. Every prediction path: the serial
    # kernels (1 to 3 rows, blocks of 4, a block plus one row) and the
    # layer kernels (many rows). assert_allclose would not see the sign.
    X = np.zeros((8, 2), dtype=dtype)
    model = MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, np.arange(8.0))
    model.coefs_[0][:] = -1  # in place: the model's flat buffer
    model.intercepts_[0][:] = -0.0
    model.coefs_[1][:] = 1
    model.intercepts_[1][:] = -0.0
    theirs = model.to_sklearn()
    for n in (1, 3, 4, 5, 8, 5000):
        Xn = np.zeros((n, 2), dtype=dtype)
        ours = model.predict(Xn)
        expected = theirs.predict(Xn).astype(ours.dtype)
        assert not np.signbit(ours).any(), n
        assert ours.tobytes() == expected.tobytes(), n
