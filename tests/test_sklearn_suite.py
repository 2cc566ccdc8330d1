"""scikit-learn's own MLP tests, run against fastmlp.

The drop-in promise is that code written for ``sklearn.neural_network``
keeps working after one changed import. This module makes that change to
the test file installed with scikit-learn
(``sklearn/neural_network/tests/test_mlp.py``) and runs every test in it
against ``fastmlp.MLPClassifier`` and ``fastmlp.MLPRegressor``: the same
assertions on fits, scores, warnings, messages, partial_fit, warm_start,
early stopping, sample weights, sparse input, pickling, and the private
members those tests use: the ``_optimizer`` object and the L-BFGS
objective ``_loss_grad_lbfgs`` (``test_gradient`` checks its gradient
against central differences for every activation).
"""

import pathlib

import pytest
import sklearn

_SOURCE = pathlib.Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"

if not _SOURCE.exists():  # a scikit-learn installed without its tests
    pytest.skip(f"{_SOURCE} is not installed", allow_module_level=True)


@pytest.fixture
def global_random_seed():
    # scikit-learn's conftest gives 42 unless SKLEARN_TESTS_GLOBAL_RANDOM_SEED
    # asks for others
    return 42


def _load():
    source = _SOURCE.read_text()
    # exactly one import of the estimators, so that no test can run
    # scikit-learn's classes by mistake
    assert source.count(_IMPORT) == 1, "scikit-learn's test_mlp.py imports its MLPs otherwise"
    assert "neural_network._multilayer_perceptron" not in source
    source = source.replace(_IMPORT, "from fastmlp import MLPClassifier, MLPRegressor")
    namespace = {"__name__": __name__, "__file__": str(_SOURCE)}
    exec(compile(source, str(_SOURCE), "exec"), namespace)
    return namespace


_NAMESPACE = _load()
_TESTS = {name: f for name, f in _NAMESPACE.items() if name.startswith("test_") and callable(f)}
globals().update(_TESTS)


def test_the_suite_runs_fastmlp():
    import fastmlp

    assert _NAMESPACE["MLPClassifier"] is fastmlp.MLPClassifier
    assert _NAMESPACE["MLPRegressor"] is fastmlp.MLPRegressor
    # 43 test functions at scikit-learn 1.9: a version that dropped most of
    # them would leave this module proving little
    assert len(_TESTS) >= 40
