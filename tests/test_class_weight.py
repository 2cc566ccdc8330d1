"""``MLPClassifier(class_weight=...)``: the model ``sample_weight`` gives."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.estimator_checks import check_class_weight_classifiers

from fastmlp import MLPClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n_classes=3, n=240):
    X, y = load_digits(return_X_y=True)
    X, y = X[:n] / 16, y[:n] % n_classes
    return X, y


def _same(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.coefs_ + a.intercepts_,
                                                    b.coefs_ + b.intercepts_))


@pytest.mark.parametrize("class_weight", [{0: 1.0, 1: 3.0, 2: 0.25}, "balanced"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("sparse", [False, True])
def test_class_weight_is_sample_weight(class_weight, solver, sparse):
    X, y = _data()
    X = sp.csr_matrix(X) if sparse else X
    kw = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=4, batch_size=50,
              random_state=0)
    weighted = MLPClassifier(class_weight=class_weight, **kw).fit(X, y)
    by_samples = MLPClassifier(**kw).fit(X, y, sample_weight=compute_sample_weight(class_weight, y))
    assert _same(weighted, by_samples)
    np.testing.assert_array_equal(weighted.predict_proba(X), by_samples.predict_proba(X))
    assert not _same(weighted, MLPClassifier(**kw).fit(X, y))


def test_class_weight_multiplies_sample_weight_binary_string_labels_early_stopping():
    X, y = _data(2)
    labels = np.array(["no", "yes"])[y]
    sw = np.random.RandomState(0).uniform(0.5, 2.0, y.shape[0])
    kw = dict(hidden_layer_sizes=(8,), max_iter=6, random_state=0, early_stopping=True,
              validation_fraction=0.2, n_iter_no_change=2)
    cw = {"no": 0.3, "yes": 2.0}
    weighted = MLPClassifier(class_weight=cw, **kw).fit(X, labels, sample_weight=sw)
    product = sw * compute_sample_weight(cw, labels)
    by_samples = MLPClassifier(**kw).fit(X, labels, sample_weight=product)
    assert _same(weighted, by_samples)
    assert weighted.validation_scores_ == by_samples.validation_scores_


def test_class_weight_float32_keeps_dtype_and_equals_sample_weight():
    X, y = _data()
    X = X.astype(np.float32)
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    weighted = MLPClassifier(class_weight="balanced", **kw).fit(X, y)
    assert weighted.coefs_[0].dtype == np.float32
    by_samples = MLPClassifier(**kw).fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    assert _same(weighted, by_samples)


def test_partial_fit_takes_a_dict_and_refuses_balanced():
    X, y = _data()
    cw = {0: 2.0, 1: 1.0, 2: 0.5}
    a = MLPClassifier((8,), random_state=0, class_weight=cw)
    b = MLPClassifier((8,), random_state=0)
    for start in (0, 120):
        Xb, yb = X[start:start + 120], y[start:start + 120]
        a.partial_fit(Xb, yb, classes=[0, 1, 2])
        b.partial_fit(Xb, yb, classes=[0, 1, 2], sample_weight=compute_sample_weight(cw, yb))
    assert _same(a, b)
    with pytest.raises(ValueError, match="class_weight 'balanced' is not supported for "
                                         "partial_fit"):
        MLPClassifier((8,), class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_class_weight_errors_before_training():
    X, y = _data()
    with pytest.raises(InvalidParameterError, match="class_weight"):
        MLPClassifier(class_weight="uniform").fit(X, y)
    with pytest.raises(ValueError, match="not in class_weight|not found in"):
        MLPClassifier(class_weight={0: 1.0, 7: 2.0}, max_iter=1).fit(X, y)
    Y = np.stack([y == 0, y == 1], axis=1).astype(int)
    with pytest.raises(ValueError, match="multilabel"):
        MLPClassifier(class_weight={0: 1.0, 1: 2.0}, max_iter=1).fit(X, Y)
    # None keeps multilabel fits as they are
    MLPClassifier((4,), max_iter=1).fit(X, Y)


def test_default_is_scikit_learns_model_and_a_parameter():
    X, y = _data()
    clf = MLPClassifier((8,), max_iter=3, random_state=0)
    assert clf.get_params()["class_weight"] is None
    assert _same(clf.fit(X, y), MLPClassifier((8,), max_iter=3, random_state=0,
                                              class_weight=None).fit(X, y))
    assert clone(clf.set_params(class_weight="balanced")).class_weight == "balanced"
    grid = GridSearchCV(MLPClassifier((8,), max_iter=3, random_state=0),
                        {"class_weight": [None, "balanced"]}, cv=2).fit(X, y)
    assert grid.best_params_["class_weight"] in (None, "balanced")
    assert "class_weight" in MLPClassifier.__doc__


def test_scikit_learns_class_weight_check():
    # scikit-learn's check for classifiers with class_weight: on very noisy
    # blobs, a weight of 1000 on class 0 makes nearly every prediction 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_class_weight_classifiers("MLPClassifier", MLPClassifier(random_state=0))
