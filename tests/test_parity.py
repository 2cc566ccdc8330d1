"""Parity with scikit-learn's MLPs: same random draws, same trajectory.

fastmlp draws initial weights, the early-stopping split and every epoch's
sample order from the same random stream as scikit-learn, and applies the
same formulas in float64, so the weights after several epochs agree to
rounding (1e-10 here; typically ~1e-15).
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import neural_network as sk
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

import fastmlp

ATOL = 1e-10


def _data(kind, seed=0):
    if kind == "binary":
        X, y = make_classification(n_samples=120, n_features=8, random_state=seed)
    elif kind == "multiclass":
        X, y = make_classification(n_samples=120, n_features=8, n_informative=5,
                                   n_classes=4, random_state=seed)
    elif kind == "multilabel":
        X, y = make_multilabel_classification(n_samples=120, n_features=8, n_classes=3,
                                              random_state=seed)
    elif kind == "regression":
        X, y = make_regression(n_samples=120, n_features=8, random_state=seed)
        y = y / y.std()
    elif kind == "multioutput":
        X, y = make_regression(n_samples=120, n_features=8, n_targets=3, random_state=seed)
        y = y / y.std()
    elif kind == "poisson":
        rng = np.random.RandomState(seed)
        X = rng.normal(size=(120, 8))
        y = rng.poisson(np.exp(0.3 * X[:, 0]))
    return StandardScaler().fit_transform(X), y


def _assert_same_model(a, b, atol=ATOL):
    assert len(a.coefs_) == len(b.coefs_)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert p.dtype == q.dtype
        np.testing.assert_allclose(p, q, rtol=0, atol=atol)
    assert a.n_iter_ == b.n_iter_
    assert a.t_ == b.t_
    np.testing.assert_allclose(a.loss_, b.loss_, rtol=1e-10)
    if hasattr(b, "loss_curve_"):
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)
    for name in ("best_loss_", "best_validation_score_", "validation_scores_"):
        if getattr(b, name, None) is None:
            assert getattr(a, name, None) is None
        else:
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10)


CONFIGS = [
    ("classifier", "multiclass", dict(solver="adam")),
    ("classifier", "multiclass", dict(solver="sgd", activation="tanh")),
    ("classifier", "binary", dict(solver="sgd", nesterovs_momentum=False, activation="logistic")),
    ("classifier", "binary", dict(solver="lbfgs", activation="tanh")),
    ("classifier", "multilabel", dict(solver="adam", activation="identity")),
    ("classifier", "multiclass", dict(solver="adam", early_stopping=True)),
    ("classifier", "multiclass", dict(solver="sgd", learning_rate="invscaling",
                                      learning_rate_init=0.05)),
    ("classifier", "multiclass", dict(solver="sgd", learning_rate="adaptive",
                                      n_iter_no_change=1, tol=10.0)),
    ("regressor", "regression", dict(solver="adam")),
    ("regressor", "multioutput", dict(solver="sgd", learning_rate_init=0.01)),
    ("regressor", "regression", dict(solver="lbfgs")),
    ("regressor", "poisson", dict(loss="poisson", solver="adam")),
    ("regressor", "regression", dict(solver="adam", early_stopping=True,
                                     hidden_layer_sizes=(7, 5))),
]


def _classes(kind):
    return (fastmlp.MLPClassifier, sk.MLPClassifier) if kind == "classifier" else (
        fastmlp.MLPRegressor, sk.MLPRegressor)


@pytest.mark.parametrize("kind, data, params", CONFIGS)
@pytest.mark.parametrize("weighted", [False, True])
def test_same_random_state_same_model(kind, data, params, weighted):
    """From the same seed: same init, split, shuffles and trajectory."""
    X, y = _data(data)
    sw = np.random.RandomState(1).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    ours, theirs = _classes(kind)
    params = {"hidden_layer_sizes": (9,), "max_iter": 8, "random_state": 0,
              "batch_size": 32, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = ours(**params).fit(X, y, sample_weight=sw)
        b = theirs(**params).fit(X, y, sample_weight=sw)
    _assert_same_model(a, b)
    if kind == "classifier":
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
    else:
        np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind, data, params", [c for c in CONFIGS if "early_stopping" not in c[2]])
def test_warm_start_from_sklearn_weights(kind, data, params):
    """from_sklearn, then warm_start with shuffle=False: same trajectory."""
    X, y = _data(data)
    ours, theirs = _classes(kind)
    params = {"hidden_layer_sizes": (6, 5), "max_iter": 3, "random_state": 3,
              "batch_size": 25, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        b = theirs(**params).fit(X, y)
        a = ours.from_sklearn(b)
        for est in (a, b):
            est.set_params(warm_start=True, shuffle=False, max_iter=6)
            est.fit(X, y)
    _assert_same_model(a, b)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_continues_sklearn_optimizer(solver):
    """from_sklearn carries the optimizer state: partial_fit matches."""
    X, y = _data("multiclass")
    params = dict(hidden_layer_sizes=(7,), solver=solver, random_state=0, batch_size=40)
    b = sk.MLPClassifier(**params)
    for _ in range(2):
        b.partial_fit(X, y, classes=np.unique(y))
    a = fastmlp.MLPClassifier.from_sklearn(b)
    for _ in range(3):
        a.partial_fit(X, y)
        b.partial_fit(X, y)
    _assert_same_model(a, b)


def test_sparse_matches_sklearn():
    X, y = _data("multiclass")
    X[np.abs(X) < 0.8] = 0
    Xs = sp.csr_matrix(X)
    params = dict(hidden_layer_sizes=(9,), max_iter=5, random_state=0, batch_size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = fastmlp.MLPClassifier(**params).fit(Xs, y)
        b = sk.MLPClassifier(**params).fit(Xs, y)
        c = fastmlp.MLPClassifier(**params, solver="lbfgs").fit(Xs.tocsc(), y)
        d = sk.MLPClassifier(**params, solver="lbfgs").fit(Xs.tocsc(), y)
    _assert_same_model(a, b)
    _assert_same_model(c, d)
    np.testing.assert_allclose(a.predict_proba(Xs), b.predict_proba(Xs), atol=1e-12)


@pytest.mark.parametrize("cls_name", ["MLPClassifier", "MLPRegressor"])
def test_to_and_from_sklearn_predict_identically(cls_name):
    kind = "classifier" if cls_name == "MLPClassifier" else "regressor"
    X, y = _data("multiclass" if kind == "classifier" else "multioutput")
    ours = getattr(fastmlp, cls_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = ours(hidden_layer_sizes=(8, 4), max_iter=20, random_state=0).fit(X, y)
    b = a.to_sklearn()
    assert type(b) is getattr(sk, cls_name)
    c = ours.from_sklearn(b)
    method = "predict_proba" if kind == "classifier" else "predict"
    pa, pb, pc = (getattr(m, method)(X) for m in (a, b, c))
    np.testing.assert_allclose(pa, pb, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(pa, pc)
    np.testing.assert_array_equal(a.predict(X), c.predict(X))
    assert a.get_params() == c.get_params()
    for p, q in zip(a.coefs_, c.coefs_):
        np.testing.assert_array_equal(p, q)


def test_from_sklearn_rejects_wrong_kind():
    X, y = _data("binary")
    b = sk.MLPRegressor(max_iter=2, hidden_layer_sizes=(3,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        b.fit(X, y)
    with pytest.raises(TypeError, match="needs a fitted classifier"):
        fastmlp.MLPClassifier.from_sklearn(b)


def test_warm_start_after_early_stopping_keeps_sklearns_aliasing():
    # scikit-learn restores the best weights by `coefs_ = _best_coefs`, so a
    # later warm_start fit trains the "best" arrays in place: without a new
    # best, what it restores are its last weights. Three fits in a row, with
    # settings where later fits find no new best, agree with scikit-learn.
    X, y = _data("multiclass")
    params = dict(hidden_layer_sizes=(5,), random_state=0, max_iter=5, early_stopping=True,
                  warm_start=True)
    ours, theirs = fastmlp.MLPClassifier(**params), sk.MLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            ours.fit(X, y)
            theirs.fit(X, y)
            for p, q in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
                np.testing.assert_allclose(p, q, rtol=0, atol=ATOL)
            np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


@pytest.mark.parametrize("solver, change", [
    ("adam", dict(learning_rate_init=0.1)), ("adam", dict(beta_1=0.1, beta_2=0.5, epsilon=1e-3)),
    ("adam", dict(solver="sgd")), ("sgd", dict(momentum=0.1, nesterovs_momentum=False)),
    ("sgd", dict(learning_rate="invscaling", power_t=0.9)),
])
def test_partial_fit_keeps_the_optimizer_settings_of_its_creation(solver, change):
    # scikit-learn's partial_fit goes on with the optimizer object the first
    # call made: set_params between calls does not reach it.
    X, y = _data("multiclass")
    models = []
    for Est in (fastmlp.MLPClassifier, sk.MLPClassifier):
        est = Est(hidden_layer_sizes=(5,), random_state=0, solver=solver)
        est.partial_fit(X, y, classes=np.unique(y))
        est.set_params(**change)
        est.partial_fit(X, y)
        est.partial_fit(X, y)
        models.append(est)
    for p, q in zip(models[0].coefs_ + models[0].intercepts_,
                    models[1].coefs_ + models[1].intercepts_):
        np.testing.assert_allclose(p, q, rtol=0, atol=ATOL)


def test_loss_attributes_are_numpy_floats_and_loss_none_is_a_parameter():
    X, y = _data("multiclass")
    for solver in ("adam", "lbfgs"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours = fastmlp.MLPClassifier(max_iter=3, solver=solver, random_state=0).fit(X, y)
            theirs = sk.MLPClassifier(max_iter=3, solver=solver, random_state=0).fit(X, y)
        assert type(ours.loss_) is type(theirs.loss_)
        if solver == "adam":
            assert type(ours.best_loss_) is type(theirs.best_loss_)
            assert {type(v) for v in ours.loss_curve_} == {type(v) for v in theirs.loss_curve_}
    assert fastmlp.MLPClassifier().loss == sk.MLPClassifier().loss
    # loss=None is stored, so get_params, repr and clone work; fit rejects it
    from sklearn.base import clone
    reg = fastmlp.MLPRegressor(loss=None)
    assert reg.get_params()["loss"] is None and clone(reg).loss is None
    assert repr(reg) == repr(sk.MLPRegressor(loss=None))
    Xr, yr = _data("regression")
    with pytest.raises(ValueError, match="'loss' parameter"):
        reg.fit(Xr, yr)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_regressor_string_targets_raise_sklearns_error(solver):
    X, y = _data("regression")
    y = y.astype(str)
    errors = []
    for Est in (fastmlp.MLPRegressor, sk.MLPRegressor):
        with pytest.raises(TypeError) as info:
            Est(hidden_layer_sizes=(3,), max_iter=2, random_state=0, solver=solver).fit(X, y)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


def _warm_continuation(est, X, y):
    """A warm_start fit with settings under which no new best is found."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.set_params(max_iter=3, learning_rate_init=0.5).fit(X, y)
    return est.coefs_ + est.intercepts_


@pytest.mark.parametrize("how", ["pickle", "copy", "from_sklearn", "to_sklearn"])
def test_early_stopping_weight_sharing_survives_copies_and_migration(how):
    # After an early-stopping fit scikit-learn's best weights ARE coefs_; a
    # pickled, copied or migrated model must go on as the original does.
    # Pickling also must not strip the original's buffer (BaseEstimator's
    # __getstate__ returns the live __dict__ outside sklearn.*).
    import copy
    import pickle

    X, y = _data("multiclass")
    kw = dict(hidden_layer_sizes=(8,), max_iter=60, early_stopping=True, warm_start=True,
              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = (sk.MLPClassifier if how == "from_sklearn" else fastmlp.MLPClassifier)(**kw)
        start.fit(X, y)
    if how == "pickle":
        other = pickle.loads(pickle.dumps(start))
        assert "_theta" in start.__dict__
    elif how == "copy":
        other = copy.deepcopy(start)
        copy.copy(start)
        assert "_theta" in start.__dict__
    elif how == "from_sklearn":
        other = fastmlp.MLPClassifier.from_sklearn(start)
    else:
        other = start.to_sklearn()
    for p, q in zip(_warm_continuation(start, X, y), _warm_continuation(other, X, y)):
        np.testing.assert_allclose(p, q, rtol=0, atol=ATOL)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_to_sklearn_carries_the_optimizer_state(solver):
    X, y = _data("multiclass")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                                     solver=solver, momentum=0.8).fit(X, y)
    theirs = ours.to_sklearn()
    again = fastmlp.MLPClassifier.from_sklearn(theirs)
    for est in (ours, theirs, again):
        est.partial_fit(X, y)
        est.partial_fit(X, y)
    for other in (theirs, again):
        for p, q in zip(ours.coefs_ + ours.intercepts_, other.coefs_ + other.intercepts_):
            np.testing.assert_allclose(p, q, rtol=0, atol=ATOL)


def _optimizer_pair(solver, **params):
    X, y = _data("multiclass")
    pair = []
    for Est in (fastmlp.MLPClassifier, sk.MLPClassifier):
        est = Est(hidden_layer_sizes=(6,), random_state=0, solver=solver, batch_size=40,
                  **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        pair.append(est)
    return X, y, pair


@pytest.mark.parametrize("solver, params", [
    ("adam", {}), ("adam", dict(beta_1=0.5, epsilon=1e-4)),
    ("sgd", dict(learning_rate="invscaling", power_t=0.3)),
    ("sgd", dict(learning_rate="adaptive", tol=0.5, max_iter=40, nesterovs_momentum=False)),
])
def test_optimizer_attribute_shows_sklearns_optimizer(solver, params):
    # scikit-learn's tests and users read _optimizer after a fit (the rate
    # an adaptive or invscaling schedule has reached, Adam's step count).
    X, y, (ours, theirs) = _optimizer_pair(solver, **params)
    a, b = ours._optimizer, theirs._optimizer
    assert a.learning_rate == b.learning_rate
    assert type(a.learning_rate) is type(b.learning_rate)
    names = (["t", "beta_1", "beta_2", "epsilon"] if solver == "adam"
             else ["lr_schedule", "momentum", "nesterov", "power_t"])
    for name in ["learning_rate_init"] + names:
        assert getattr(a, name) == getattr(b, name), name
    states = ["ms", "vs"] if solver == "adam" else ["velocities"]
    for name in states:
        for p, q in zip(getattr(a, name), getattr(b, name)):
            assert p.shape == q.shape
            np.testing.assert_allclose(p, q, rtol=0, atol=ATOL)
    assert set(names + states) <= set(dir(a))
    other = "velocities" if solver == "adam" else "ms"
    assert not hasattr(a, other) and not hasattr(b, other)
    if params.get("learning_rate") == "adaptive":
        # the schedule cut the rate (and the fit stopped when it was small)
        assert a.learning_rate < a.learning_rate_init


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_optimizer_attribute_edits_reach_partial_fit_as_in_sklearn(solver):
    X, y, (ours, theirs) = _optimizer_pair(solver, max_iter=3)
    for est in (ours, theirs):
        opt = est._optimizer
        if solver == "sgd":
            opt.learning_rate = 0.05
            opt.velocities[0][...] = 0.25
        else:
            opt.ms[1] *= 3.0
            opt.vs[-1][...] = 0.5
        est.partial_fit(X, y)
    assert ours._optimizer.learning_rate == theirs._optimizer.learning_rate
    for p, q in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(p, q, rtol=0, atol=ATOL)


def test_optimizer_attribute_is_stored_as_plain_data():
    import copy
    import pickle

    X, y, (ours, _) = _optimizer_pair("sgd", max_iter=2)
    assert type(ours.__dict__["_optimizer"]) is dict
    with pytest.raises(AttributeError, match="only SGD's learning_rate"):
        ours._optimizer.momentum = 0.1
    adam = _optimizer_pair("adam", max_iter=2)[2][0]
    with pytest.raises(AttributeError, match="only SGD's learning_rate"):
        adam._optimizer.learning_rate = 0.1
    again = pickle.loads(pickle.dumps(adam))
    assert type(again.__dict__["_optimizer"]) is dict
    assert again._optimizer.learning_rate == adam._optimizer.learning_rate
    for p, q in zip(again._optimizer.vs, adam._optimizer.vs):
        np.testing.assert_array_equal(p, q)
    # as scikit-learn: none before a stochastic fit, none from L-BFGS
    assert not hasattr(fastmlp.MLPClassifier(), "_optimizer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lbfgs = fastmlp.MLPClassifier(solver="lbfgs", max_iter=3).fit(X, y)
    assert not hasattr(lbfgs, "_optimizer")
    # the view itself copies and pickles (with its model), as scikit-learn's
    # optimizer objects do
    for saved in (copy.deepcopy(adam._optimizer), pickle.loads(pickle.dumps(adam._optimizer))):
        assert saved.t == adam._optimizer.t
        np.testing.assert_array_equal(saved.ms[0], adam._optimizer.ms[0])
    # from_sklearn takes a fastmlp model's optimizer through the same view
    copy = fastmlp.MLPClassifier.from_sklearn(adam)
    for est in (copy, adam):
        est.partial_fit(X, y)
    for p, q in zip(copy.coefs_ + copy.intercepts_, adam.coefs_ + adam.intercepts_):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_loss_grad_lbfgs_is_sklearns(kind):
    # scikit-learn's private L-BFGS objective: same loss and gradient at
    # the same packed parameters, which become the model's weights.
    X, y = _data(kind)
    Ours, Theirs = ((fastmlp.MLPClassifier, sk.MLPClassifier) if kind != "regression"
                    else (fastmlp.MLPRegressor, sk.MLPRegressor))
    params = dict(hidden_layer_sizes=(6, 4), activation="tanh", solver="lbfgs", max_iter=2,
                  alpha=0.3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = Ours(**params).fit(X, y), Theirs(**params).fit(X, y)
    Y = (theirs._label_binarizer.transform(y) if kind != "regression" else y.reshape(-1, 1))
    packed = np.random.RandomState(1).normal(size=sum(c.size for c in theirs.coefs_
                                                      + theirs.intercepts_))
    sw = np.random.RandomState(2).uniform(0.5, 2, size=len(y))
    out = []
    for est in (ours, theirs):
        n = len(est.coefs_)
        grads = [[None] * n, [None] * n]
        loss, grad = est._loss_grad_lbfgs(packed, X, Y, sw, [X] + [None] * n, [None] * n,
                                          *grads)
        out.append((loss, grad, grads))
        np.testing.assert_array_equal(
            np.hstack([p.ravel() for p in est.coefs_ + est.intercepts_]), packed)
    (l1, g1, (c1, i1)), (l2, g2, (c2, i2)) = out
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=0, atol=1e-12)
    for p, q in zip(c1 + i1, c2 + i2):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-12)
    # the model predicts with the parameters it was given
    method = "predict" if kind == "regression" else "predict_proba"
    np.testing.assert_allclose(getattr(ours, method)(X), getattr(theirs, method)(X),
                               rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="packed_coef_inter has"):
        ours._loss_grad_lbfgs(packed[1:], X, Y, None, [], [], [], [])


def test_optimizer_attribute_assignment_and_deletion_as_in_sklearn():
    # scikit-learn's _optimizer is a plain attribute: assigning another
    # model's shares it, deleting it makes the next partial_fit start anew
    X, y = _data("multiclass")
    models = {}
    for name, Est in (("ours", fastmlp.MLPClassifier), ("theirs", sk.MLPClassifier)):
        params = dict(hidden_layer_sizes=(6,), random_state=0, batch_size=40, max_iter=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            a = Est(**params).fit(X, y)
            b = Est(**params, solver="sgd").fit(X, y)
        a._optimizer = a._optimizer
        b._optimizer = a._optimizer  # b goes on with a's Adam state
        for est in (a, b):
            est.partial_fit(X, y)
        del a._optimizer
        assert not hasattr(a, "_optimizer")
        a.partial_fit(X, y)  # a new Adam: t restarts
        models[name] = (a, b)
    for p, q in zip(models["ours"], models["theirs"]):
        assert p._optimizer.t == q._optimizer.t
        for u, v in zip(p.coefs_ + p.intercepts_, q.coefs_ + q.intercepts_):
            np.testing.assert_allclose(u, v, rtol=0, atol=ATOL)
    ours = models["ours"][0]
    with pytest.raises(TypeError, match="keeps its optimizer state as a dict"):
        ours._optimizer = models["theirs"][0]._optimizer
    del ours._optimizer
    with pytest.raises(AttributeError, match="no attribute '_optimizer'"):
        del ours._optimizer


def test_optimizer_attribute_keeps_its_fits_shapes():
    # a later L-BFGS fit of other layer sizes leaves the optimizer of the
    # stochastic fit before it, in that fit's shapes, as in scikit-learn
    X, y = _data("multiclass")
    shapes = []
    for Est in (fastmlp.MLPClassifier, sk.MLPClassifier):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = Est(hidden_layer_sizes=(6,), solver="sgd", max_iter=3, random_state=0)
            est.fit(X, y)
            est.set_params(solver="lbfgs", hidden_layer_sizes=(10,)).fit(X, y)
        shapes.append([v.shape for v in est._optimizer.velocities])
    assert shapes[0] == shapes[1] == [(8, 6), (6, 4), (6,), (4,)]


def test_solver_without_sklearn_optimizer_is_explicit(monkeypatch):
    # A solver the engine runs that scikit-learn has no optimizer for (Adam,
    # taken out of the interop table): training goes on with its state, but
    # there is no _optimizer view and to_sklearn / from_sklearn say why.
    from fastmlp import _interop

    X, y, (ours, theirs) = _optimizer_pair("adam", max_iter=2)
    t = ours._optimizer.t
    monkeypatch.delitem(_interop.SKLEARN_OPTIMIZERS, "adam")
    ours.partial_fit(X, y)
    assert ours.__dict__["_optimizer"]["t"] > t
    with pytest.raises(AttributeError, match="solver 'adam' has no scikit-learn optimizer"):
        ours._optimizer  # noqa: B018
    assert not hasattr(ours, "_optimizer")
    with pytest.raises(ValueError, match="solver 'adam' has no scikit-learn optimizer"):
        ours.to_sklearn()
    with pytest.raises(ValueError, match="no solver for scikit-learn's AdamOptimizer"):
        fastmlp.MLPClassifier.from_sklearn(theirs)
    # without the state the model converts; SGD models are unaffected
    del ours._optimizer
    assert not hasattr(ours.to_sklearn(), "_optimizer")
    sgd, sk_sgd = _optimizer_pair("sgd", max_iter=2)[2]
    assert type(sgd.to_sklearn()._optimizer) is type(sk_sgd._optimizer)


def test_to_sklearn_refuses_an_activation_sklearn_lacks():
    # scikit-learn's constraint names its activations: one it lacks (set
    # here after the fit) would make an estimator it cannot use
    X, y = _data("multiclass")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = fastmlp.MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, random_state=0)
        ours.fit(X, y)
    ours.set_params(activation="gelu")
    with pytest.raises(ValueError, match="'activation' parameter .*'gelu'"):
        ours.to_sklearn()


def test_learning_rate_schedule_applies_to_the_solvers_that_follow_one(monkeypatch):
    # Only the solvers in _fit's table follow learning_rate: taken out of
    # it, SGD with 'adaptive' trains as with 'constant' (stops at the first
    # stall, rate never cut), as Adam always does.
    from fastmlp import _fit

    X, y = _data("multiclass")
    params = dict(hidden_layer_sizes=(6,), solver="sgd", random_state=0, batch_size=40,
                  tol=0.5, max_iter=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        adaptive = fastmlp.MLPClassifier(learning_rate="adaptive", **params).fit(X, y)
        assert adaptive._optimizer.learning_rate < adaptive._optimizer.learning_rate_init
        constant = fastmlp.MLPClassifier(learning_rate="constant", **params).fit(X, y)
        monkeypatch.setattr(_fit, "_SCHEDULED_SOLVERS", frozenset())
        unscheduled = fastmlp.MLPClassifier(learning_rate="adaptive", **params).fit(X, y)
    assert unscheduled.n_iter_ == constant.n_iter_ < adaptive.n_iter_
    assert unscheduled._optimizer.learning_rate == unscheduled.learning_rate_init
    for p, q in zip(unscheduled.coefs_ + unscheduled.intercepts_,
                    constant.coefs_ + constant.intercepts_):
        np.testing.assert_array_equal(p, q)
