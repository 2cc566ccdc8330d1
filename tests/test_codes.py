"""The option tables of fastmlp._codes and the parameter constraints built
from them: scikit-learn's own messages for scikit-learn's own options."""

import numpy as np
import pytest
from sklearn import neural_network
from sklearn.utils._param_validation import InvalidParameterError, StrOptions

import fastmlp
from fastmlp import _codes

X = np.random.RandomState(0).normal(size=(20, 3))
Y_CLASS = np.arange(20) % 2
Y_REG = X[:, 0]


def _message(est, y, **params):
    with pytest.raises(InvalidParameterError) as info:
        est.set_params(**params).fit(X, y)
    return str(info.value)


@pytest.mark.parametrize("name, table", [("activation", _codes.ACTIVATIONS),
                                         ("solver", _codes.SOLVERS),
                                         ("learning_rate", _codes.LEARNING_RATES)])
def test_string_options_are_the_tables(name, table):
    for cls in (fastmlp.MLPClassifier, fastmlp.MLPRegressor):
        constraint, *others = cls._parameter_constraints[name]
        # activation: also a list or tuple, one name per hidden layer
        assert others == ([list, tuple] if name == "activation" else [])
        assert isinstance(constraint, StrOptions)
        assert set(constraint.options) == set(table)


def test_every_option_fits():
    # every name of the tables is accepted and trains
    for activation in _codes.ACTIVATIONS:
        for solver in _codes.SOLVERS:
            clf = fastmlp.MLPClassifier((3,), activation=activation, solver=solver, max_iter=2,
                                        random_state=0)
            with pytest.warns(Warning):  # ConvergenceWarning after 2 iterations
                clf.fit(X, Y_CLASS)
            assert np.isfinite(clf.predict_proba(X)).all()


def _sklearn_options(name):
    (constraint,) = neural_network.MLPRegressor._parameter_constraints[name]
    return set(constraint.options)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("params", [
    dict(activation="bad"), dict(solver="bad"), dict(learning_rate="bad"),
    dict(batch_size="bad"), dict(alpha=-1.0), dict(momentum=2.0), dict(loss="bad"),
])
def test_messages_of_sklearns_options_are_sklearns(kind, params):
    (name,) = params
    if kind == "classifier" and name == "loss":
        pytest.skip("the classifier has no loss parameter")
    if name in ("activation", "solver", "learning_rate"):
        ours = set(getattr(_codes, name.upper() + "S"))
        if ours != _sklearn_options(name):
            # options beyond scikit-learn's: the message names every one
            cls = fastmlp.MLPClassifier if kind == "classifier" else fastmlp.MLPRegressor
            msg = _message(cls(), Y_CLASS, **params)
            assert all(repr(option) in msg for option in ours)
            return
    if kind == "classifier":
        pair = fastmlp.MLPClassifier(), neural_network.MLPClassifier(), Y_CLASS
    else:
        pair = fastmlp.MLPRegressor(), neural_network.MLPRegressor(), Y_REG
    ours, theirs, y = pair
    assert _message(ours, y, **params) == _message(theirs, y, **params)
