"""fastmlp: Numba-compiled multilayer perceptrons for scikit-learn users.

``fastmlp.MLPClassifier`` and ``fastmlp.MLPRegressor`` are drop-in
replacements for scikit-learn's estimators of the same names.
"""

from ._estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
__version__ = "0.1.0"
