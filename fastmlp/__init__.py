"""fastmlp: Numba-compiled multilayer perceptrons for scikit-learn users.

``fastmlp.MLPClassifier`` and ``fastmlp.MLPRegressor`` are drop-in
replacements for scikit-learn's estimators of the same names.
"""

from . import _threads  # noqa: F401  (chooses the threading layer first)
from ._estimators import MLPClassifier, MLPRegressor
from ._onnx import register_onnx_converters, to_onnx  # (imports neither onnx nor skl2onnx)
from ._warmup import warm_up

__all__ = ["MLPClassifier", "MLPRegressor", "register_onnx_converters", "to_onnx", "warm_up"]
__version__ = "0.1.0"
