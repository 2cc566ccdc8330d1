"""scikit-learn's own estimator checks, on every solver of both estimators.

Configured as scikit-learn configures its own MLPs for these checks
(``max_iter=100``, sklearn/utils/_test_common/instance_generator.py). No
check is marked as an expected failure: scikit-learn's MLPs have none.
"""

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastmlp import MLPClassifier, MLPRegressor

ESTIMATORS = [
    MLPClassifier(max_iter=100),
    MLPClassifier(solver="sgd", max_iter=100),
    MLPClassifier(solver="lbfgs", max_iter=100),
    MLPRegressor(max_iter=100),
    MLPRegressor(solver="sgd", max_iter=100),
    MLPRegressor(solver="lbfgs", max_iter=100),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
