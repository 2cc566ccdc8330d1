"""scikit-learn's own estimator checks, on every solver of both estimators
and with each of fastmlp's training features switched on.

Configured as scikit-learn configures its own MLPs for these checks
(``max_iter=100``, sklearn/utils/_test_common/instance_generator.py). No
check is marked as an expected failure (scikit-learn's MLPs have none) but
those of two features, each for a reason of the feature's own: the
sample-weight equivalence checks with dropout on (dropout draws a mask per
training row, so a row of weight 2 is one draw where its two copies are
two); with ``class_weight='balanced'``, the same checks (the weights follow
the class counts), those that call ``partial_fit`` (which refuses
'balanced', as ``SGDClassifier``'s does) and the multilabel ones (class
weights of multilabel targets are refused).
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
    # fastmlp's own training features, switched on
    MLPClassifier(activation="silu", dropout=0.1, max_iter=100),
    MLPClassifier(label_smoothing=0.1, max_iter=100),
    MLPClassifier(class_weight="balanced", max_iter=100),
    MLPClassifier(activation=("elu",), learning_rate="cosine", lr_warmup=1,
                  weight_decay=0.01, clip_grad_norm=1.0, max_iter=100),
    MLPRegressor(activation="softplus", dropout=(0.1,), solver="sgd", max_iter=100),
    MLPRegressor(activation="leaky_relu", learning_rate="linear", weight_decay=0.01,
                 clip_grad_norm=1.0, max_iter=100),
]


def _expected_failures(estimator):
    params = estimator.get_params()
    failures = {}
    if params["dropout"] != 0:
        why = "dropout draws a mask per row: weight 2 is one draw, two copies are two"
        failures.update(dict.fromkeys(["check_sample_weight_equivalence_on_dense_data",
                                       "check_sample_weight_equivalence_on_sparse_data"], why))
    if params.get("class_weight") == "balanced":
        failures.update(dict.fromkeys(
            ["check_sample_weight_equivalence_on_dense_data",
             "check_sample_weight_equivalence_on_sparse_data"],
            "'balanced' weights come from the class counts, which repeated rows change"))
        failures.update(dict.fromkeys(
            ["check_fit_score_takes_y", "check_n_features_in_after_fitting",
             "check_estimators_partial_fit_n_features"],
            "partial_fit refuses class_weight='balanced', as SGDClassifier's does"))
        failures.update(dict.fromkeys(
            ["check_classifiers_multilabel_representation_invariance",
             "check_classifiers_multilabel_output_format_predict",
             "check_classifiers_multilabel_output_format_predict_proba",
             "check_classifiers_multilabel_output_format_decision_function"],
            "class weights of multilabel targets are refused (pass sample_weight)"))
    return failures


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
