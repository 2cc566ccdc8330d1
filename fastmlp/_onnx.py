"""ONNX export of fastmlp's MLPs, the graph written here.

:func:`to_onnx` turns a fitted :class:`~fastmlp.MLPClassifier` or
:class:`~fastmlp.MLPRegressor` into an ``onnx.ModelProto`` whose inputs and
outputs are those skl2onnx gives scikit-learn's MLPs with ``zipmap=False``:
input ``X``; a classifier's ``label`` and ``probabilities``, a regressor's
``variable``. Unlike ``to_sklearn()`` followed by skl2onnx, it exports
every hidden activation fastmlp has (one name, or one per hidden layer), the
Poisson head (``out_activation_ == 'exp'``) and multi-output regression in
its true shape.

:func:`register_onnx_converters` registers the same graph with skl2onnx, so
that ``skl2onnx.to_onnx`` converts pipelines that contain a fastmlp MLP.

The network is described once, by :func:`_write_mlp`, which writes through
a small writer interface: :class:`_ModelWriter` collects a standalone graph
for :func:`to_onnx`, :class:`_ContainerWriter` writes into skl2onnx's
container for its converters. Only ONNX's default domain is used, with ops
that onnxruntime's CPU provider runs in float and in double: its ``Elu``
and ``Erf`` have no double kernel, so elu is written with ``Where`` and
double graphs evaluate erf with a piecewise polynomial (:func:`_erf`).

Neither onnx nor skl2onnx is imported with this module: they are optional
dependencies, imported by the functions that need them.
"""

import math
import sys
from functools import lru_cache

import numpy as np
from sklearn.utils.validation import check_is_fitted

# The opset :func:`to_onnx` writes by default: onnxruntime runs it from
# release 1.14 on, and skl2onnx 1.20 converts with it (its own default is
# higher; a pipeline's opset is skl2onnx's choice, see register_onnx_converters).
TARGET_OPSET = 18
# The oldest opset the graph is written for: Softmax has its current
# (one-axis) definition from opset 13 on.
MIN_OPSET = 13

# Output functions (``estimator.out_activation_``).
OUT_ACTIVATIONS = ("softmax", "logistic", "identity", "exp")

# leaky_relu's slope for z <= 0.
LEAKY_RELU_SLOPE = 0.01

_INSTALL = 'pip install -e ".[onnx]" (from a checkout of fastmlp)'

# onnx's TensorProto element types used here (their values are fixed by
# the ONNX standard; onnx itself is imported only where needed).
_FLOAT, _INT64, _STRING, _DOUBLE = 1, 7, 8, 11
_ELEM_TYPES = {np.dtype(np.float32): _FLOAT, np.dtype(np.float64): _DOUBLE}


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            f"fastmlp.to_onnx needs the onnx package: {_INSTALL}, or pip install onnx."
        ) from exc
    return onnx


# ----------------------------------------------------------------------
# Writers: where the nodes and initialisers of the graph go


class _Writer:
    """Where :func:`_write_mlp` writes nodes and constants.

    Parameters
    ----------
    dtype : numpy dtype
        float32 or float64: the dtype the network computes in, that of its
        weights and float constants.
    """

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self._shared = {}

    def op(self, op_type, inputs, out=None, **attrs):
        """Add node ``op_type(*inputs)`` with attributes ``attrs``.

        Returns the name of its output: ``out`` if given, else a new one.
        """
        if out is None:
            out = self._name(op_type.lower())
        self._node(op_type, list(inputs), out, attrs)
        return out

    def const(self, value, hint):
        """Add the array ``value`` (its own dtype and shape) as an
        initialiser; returns its name."""
        value = np.asarray(value)
        name = self._name(hint)
        self._initializer(name, value)
        return name

    def shared(self, key, value, hint):
        """:meth:`const`, one initialiser per ``key`` however often asked."""
        if key not in self._shared:
            self._shared[key] = self.const(value, hint)
        return self._shared[key]

    def scalar(self, value, dtype=None):
        """A 0-d constant in ``dtype`` (default: the network's dtype), one
        initialiser per value and dtype."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        return self.shared((dtype.str, value), np.array(value, dtype=dtype), "c")

    def _name(self, hint):
        raise NotImplementedError

    def _node(self, op_type, inputs, output, attrs):
        raise NotImplementedError

    def _initializer(self, name, value):
        raise NotImplementedError


class _ModelWriter(_Writer):
    """Collects the nodes and initialisers of a standalone graph."""

    def __init__(self, dtype, onnx):
        super().__init__(dtype)
        self.onnx = onnx
        self.nodes = []
        self.initializers = []
        self._counts = {}

    def _name(self, hint):
        # hints are lower case; the graph's own names (X, label, ...) have
        # no "_<n>" suffix
        n = self._counts.get(hint, 0)
        self._counts[hint] = n + 1
        return f"{hint}_{n}"

    def _node(self, op_type, inputs, output, attrs):
        self.nodes.append(self.onnx.helper.make_node(
            op_type, inputs, [output], name=self._name(f"n_{op_type}"), **attrs))

    def _initializer(self, name, value):
        self.initializers.append(_tensor(self.onnx, name, value))


class _ContainerWriter(_Writer):
    """Writes into skl2onnx's scope and container (a converter's)."""

    def __init__(self, dtype, scope, container):
        super().__init__(dtype)
        self.scope = scope
        self.container = container
        import onnx

        self.onnx = onnx

    def _name(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def _node(self, op_type, inputs, output, attrs):
        self.container.add_node(op_type, inputs, output,
                                name=self.scope.get_unique_operator_name(op_type), **attrs)

    def _initializer(self, name, value):
        tensor = _tensor(self.onnx, name, value)
        if value.dtype.kind in "OUS":
            self.container.add_initializer(name, _STRING, list(value.shape),
                                           list(tensor.string_data))
        else:
            self.container.add_initializer(name, tensor.data_type, list(value.shape), tensor)


def _tensor(onnx, name, value):
    """``value`` as a TensorProto (strings as UTF-8)."""
    if value.dtype.kind in "OUS":
        data = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in value.ravel()]
        return onnx.helper.make_tensor(name, _STRING, list(value.shape), data)
    return onnx.numpy_helper.from_array(np.ascontiguousarray(value), name)


# ----------------------------------------------------------------------
# Activations: ``act(w, z, out=None) -> name``, each in ops that
# onnxruntime's CPU provider has in float and in double


def _identity(w, z, out=None):
    # the layer writes its pre-activation to ``out`` itself
    return z


def _logistic(w, z, out=None):
    return w.op("Sigmoid", [z], out)


def _tanh(w, z, out=None):
    return w.op("Tanh", [z], out)


def _relu(w, z, out=None):
    return w.op("Relu", [z], out)


def _gelu(w, z, out=None):
    """``0.5 * z * (1 + erf(z / sqrt(2)))``, in the kernels' order."""
    half_z = w.op("Mul", [w.scalar(0.5), z])
    erf = _erf(w, w.op("Mul", [z, w.scalar(0.7071067811865476)]))
    return w.op("Mul", [half_z, w.op("Add", [w.scalar(1.0), erf])], out)


def _leaky_relu(w, z, out=None):
    """``z`` where ``z > 0``, else ``0.01 * z``. Not ONNX's LeakyRelu: its
    slope is a float attribute, 0.01 rounded to float32 in a double graph."""
    positive = w.op("Greater", [z, w.scalar(0.0)])
    return w.op("Where", [positive, z, w.op("Mul", [z, w.scalar(LEAKY_RELU_SLOPE)])], out)


def _elu(w, z, out=None):
    """``z`` where ``z > 0``, else ``exp(z) - 1`` (alpha 1). Not ONNX's Elu:
    onnxruntime runs it in float only."""
    positive = w.op("Greater", [z, w.scalar(0.0)])
    return w.op("Where", [positive, z, w.op("Sub", [w.op("Exp", [z]), w.scalar(1.0)])], out)


def _silu(w, z, out=None):
    return w.op("Mul", [z, w.op("Sigmoid", [z])], out)


def _softplus(w, z, out=None):
    """``max(z, 0) + log(1 + exp(-|z|))``: ``log(1 + exp(z))`` without its
    overflow for large ``z`` (ONNX's Softplus is specified by the latter)."""
    tail = w.op("Exp", [w.op("Neg", [w.op("Abs", [z])])])
    log = w.op("Log", [w.op("Add", [w.scalar(1.0), tail])])
    return w.op("Add", [w.op("Relu", [z]), log], out)


_HIDDEN = {"identity": _identity, "logistic": _logistic, "tanh": _tanh, "relu": _relu,
           "gelu": _gelu, "leaky_relu": _leaky_relu, "elu": _elu, "silu": _silu,
           "softplus": _softplus}
# The hidden activations that can be exported (``estimator.activation``):
# every one of fastmlp._codes.ACTIVATIONS (tests/test_onnx.py checks it).
HIDDEN_ACTIVATIONS = tuple(_HIDDEN)


# erf in double: onnxruntime's Erf runs in float only. |x| < _ERF_END is cut
# into intervals of width _ERF_STEP, each with the Taylor polynomial of erf
# of degree _ERF_DEGREE at its centre (within an ulp of math.erf there);
# erf(|x|) is 1 in double from 6 on.
_ERF_STEP = 0.25
_ERF_END = 6.0
_ERF_DEGREE = 14


@lru_cache(maxsize=None)
def _erf_table():
    """The intervals' centres, shape (n_intervals,), and the Taylor
    coefficients of erf at each, shape (n_intervals, _ERF_DEGREE + 1).

    The m-th derivative of erf is ``2/sqrt(pi) (-1)^(m-1) H_(m-1)(x)
    exp(-x^2)``, ``H`` the physicists' Hermite polynomials, computed by
    their recurrence ``H_(n+1) = 2x H_n - 2n H_(n-1)``.
    """
    n = round(_ERF_END / _ERF_STEP)
    centres = (np.arange(n) + 0.5) * _ERF_STEP
    coefs = np.empty((n, _ERF_DEGREE + 1))
    for k, c in enumerate(centres):
        c = float(c)
        scale = 2.0 / math.sqrt(math.pi) * math.exp(-c * c)
        hermite = [1.0, 2.0 * c]
        for m in range(1, _ERF_DEGREE):
            hermite.append(2.0 * c * hermite[m] - 2.0 * m * hermite[m - 1])
        coefs[k, 0] = math.erf(c)
        for m in range(1, _ERF_DEGREE + 1):
            coefs[k, m] = (-1) ** (m - 1) * hermite[m - 1] * scale / math.factorial(m)
    return centres, coefs


def _erf(w, x):
    """erf(x): ONNX's Erf in float; in double, where onnxruntime has no Erf
    kernel, ``sign(x) * P_k(|x| - c_k)``, ``P_k`` the polynomial of the
    interval ``k`` that ``|x|`` falls in (:func:`_erf_table`), and 1 from
    ``_ERF_END`` on."""
    if w.dtype == np.float32:
        return w.op("Erf", [x])
    centres, coefs = _erf_table()
    a = w.op("Abs", [x])
    k = w.op("Cast", [w.op("Floor", [w.op("Mul", [a, w.scalar(1.0 / _ERF_STEP)])])],
             to=_INT64)
    # (|x| past the end, or NaN, casts to any integer: clipped here, and
    # Where takes 1, or keeps the NaN, below)
    k = w.op("Clip", [k, w.scalar(0, np.int64), w.scalar(len(centres) - 1, np.int64)])
    centre = w.shared("erf_centre", centres, "erf_centre")
    t = w.op("Sub", [a, w.op("Gather", [centre, k], axis=0)])
    y = None
    for j in range(_ERF_DEGREE, -1, -1):  # Horner
        coef = w.op("Gather", [w.shared(("erf", j), coefs[:, j], "erf_coef"), k], axis=0)
        y = coef if y is None else w.op("Add", [w.op("Mul", [y, t]), coef])
    inside = w.op("Less", [a, w.scalar(_ERF_END)])
    y = w.op("Where", [inside, y, w.scalar(1.0)])
    return w.op("Mul", [w.op("Sign", [x]), y])


# ----------------------------------------------------------------------
# The network


def _hidden_activations(est):
    """The activation name of each hidden layer: ``est.activation``, one
    name or one per hidden layer."""
    n_hidden = len(est.coefs_) - 1
    activation = est.activation
    names = [activation] * n_hidden if isinstance(activation, str) else list(activation)
    if len(names) != n_hidden:
        raise ValueError(
            f"activation has {len(names)} names for {n_hidden} hidden layers: {activation!r}."
        )
    for name in names:
        if name not in _HIDDEN:
            raise ValueError(
                f"activation {name!r} has no ONNX export; supported: {HIDDEN_ACTIVATIONS}."
            )
    if est.out_activation_ not in OUT_ACTIVATIONS:
        raise ValueError(
            f"out_activation_ {est.out_activation_!r} has no ONNX export; "
            f"supported: {OUT_ACTIVATIONS}."
        )
    return names


def _task(est):
    """'regression', 'multiclass', 'binary' or 'multilabel'."""
    if not hasattr(est, "classes_"):
        return "regression"
    if est.out_activation_ == "softmax":
        return "multiclass"
    return "binary" if est.n_outputs_ == 1 else "multilabel"


def _class_labels(est):
    """``classes_`` as the label tensor holds them: int64 for integer,
    boolean and integer-valued float classes (as skl2onnx), else strings.

    Raises ValueError for float classes with a fractional part, which
    neither type holds.
    """
    classes = np.asarray(est.classes_)
    kind = classes.dtype.kind
    if kind in "biu":
        return classes.astype(np.int64)
    if kind == "f":
        if not np.all(np.isfinite(classes) & (classes == np.round(classes))):
            raise ValueError(
                "ONNX labels are int64 or strings: float class labels must be "
                f"integer-valued, got {classes!r}."
            )
        return classes.astype(np.int64)
    if kind == "O" and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                           for c in classes):
        return classes.astype(np.int64)
    return np.array([str(c) for c in classes], dtype=object)


def _output_spec(est, dtype, labels=None):
    """``[(name, ONNX element type, shape), ...]`` of the graph's outputs
    computed in ``dtype`` (``labels``: see :func:`_write_mlp`); ``None``
    is the number of samples."""
    elem = _ELEM_TYPES[np.dtype(dtype)]
    task = _task(est)
    if task == "regression":
        return [("variable", elem, [None, est.n_outputs_])]
    if task == "multilabel":
        return [("label", _INT64, [None, est.n_outputs_]),
                ("probabilities", elem, [None, est.n_outputs_])]
    labels = _class_labels(est) if labels is None else labels
    label = _INT64 if labels.dtype == np.int64 else _STRING
    return [("label", label, [None]), ("probabilities", elem, [None, len(est.classes_)])]


def _write_mlp(w, est, x, outputs, labels=None):
    """Write the network of ``est`` from input ``x`` (in ``w.dtype``).

    Parameters
    ----------
    w : _Writer
        Where the graph goes.
    est : fitted fastmlp MLPClassifier or MLPRegressor
        The network: its ``coefs_``, ``intercepts_``, ``activation`` and
        ``out_activation_``.
    x : str
        The input, of shape (n_samples, n_features).
    outputs : list of str
        The names of the outputs, in :func:`_output_spec`'s order.
    labels : ndarray of shape (n_classes,), default=None
        What the multiclass or binary label output holds for each class:
        by default :func:`_class_labels`; skl2onnx's ``nocl`` option gives
        the class indices.
    """
    hidden = _hidden_activations(est)
    task = _task(est)
    n_layers = len(est.coefs_)
    h = x
    for i, (coef, intercept) in enumerate(zip(est.coefs_, est.intercepts_)):
        last = i == n_layers - 1
        act = hidden[i] if not last else None
        # a regressor's identity output layer writes ``variable`` directly
        out = outputs[0] if last and task == "regression" else None
        z = w.op("MatMul", [h, w.const(np.asarray(coef, w.dtype), f"coefs_{i}")])
        z = w.op("Add", [z, w.const(np.asarray(intercept, w.dtype), f"intercepts_{i}")],
                 out if last and est.out_activation_ == "identity" else None)
        h = _HIDDEN[act](w, z) if not last else z

    z, out = h, est.out_activation_
    if task == "regression":
        if out == "exp":
            w.op("Exp", [z], outputs[0])
        elif out != "identity":
            w.op({"logistic": "Sigmoid", "softmax": "Softmax"}[out], [z], outputs[0])
        return
    label, proba = outputs
    labels = _class_labels(est) if labels is None else labels
    if task == "multiclass":
        w.op("Softmax", [z], proba, axis=1)
        index = w.op("ArgMax", [proba], axis=1, keepdims=0)  # the first maximum
        w.op("Gather", [w.const(labels, "classes"), index], label, axis=0)
    elif task == "binary":
        p = w.op("Sigmoid", [z])
        w.op("Concat", [w.op("Sub", [w.scalar(1.0), p]), p], proba, axis=1)
        # LabelBinarizer's threshold, (pos_label + neg_label) / 2
        index = w.op("Cast", [w.op("Greater", [p, w.scalar(0.5)])], to=_INT64)
        index = w.op("Reshape", [index, w.const(np.array([-1], np.int64), "shape")])
        if len(labels) == 1:  # a one-class fit always predicts it
            labels = np.repeat(labels, 2)
        w.op("Gather", [w.const(labels, "classes"), index], label, axis=0)
    else:  # multilabel: one logistic output per label
        w.op("Sigmoid", [z], proba)
        w.op("Cast", [w.op("Greater", [proba, w.scalar(0.5)])], label, to=_INT64)


# ----------------------------------------------------------------------
# Public API


def _check_estimator(estimator):
    from ._estimators import BaseMultilayerPerceptron

    if not isinstance(estimator, BaseMultilayerPerceptron):
        raise TypeError(
            "fastmlp.to_onnx exports fastmlp's MLPClassifier and MLPRegressor, "
            f"got {type(estimator).__name__}. Convert other models with skl2onnx."
        )
    check_is_fitted(estimator)


def _input_type(X):
    """``(dtype of X, n_columns)`` of a sample of the input."""
    dtype, shape = getattr(X, "dtype", None), getattr(X, "shape", None)
    if not isinstance(dtype, np.dtype) or shape is None:
        X = np.asarray(X)
        dtype, shape = X.dtype, X.shape
    if len(shape) != 2:
        raise ValueError(
            "X must be a sample of the input of shape (n_samples, n_features), "
            f"got an array of shape {tuple(shape)}."
        )
    if dtype.kind not in "biuf" or dtype.itemsize > 8:  # (long double: no ONNX type)
        raise TypeError(f"X must be numeric, of at most 64 bits, got dtype {dtype}.")
    return dtype, shape[1]


def to_onnx(estimator, X, *, target_opset=None):
    """Export a fitted fastmlp MLP as an ONNX model.

    The graph computes ``estimator``'s forward pass: per layer
    ``MatMul(h, coefs_[i]) + intercepts_[i]``, then the hidden activation
    (any of :data:`HIDDEN_ACTIVATIONS`, one for all hidden layers or one
    per layer), and the output function ``out_activation_``. Its input and
    outputs are named and shaped as skl2onnx names and shapes scikit-learn's
    MLPs with ``zipmap=False``, so serving code written for those runs
    these too.

    Parameters
    ----------
    estimator : fitted fastmlp.MLPClassifier or fastmlp.MLPRegressor
        The model to export.

    X : array-like of shape (n_samples, n_features)
        A sample of the input (as skl2onnx's ``to_onnx`` takes it): its
        dtype and number of columns define the graph's input ``X``, of
        shape ``[None, n_features]``. float32 gives a float graph, float64
        a double graph; the weights are cast to that dtype. Any other
        numeric dtype (integers, bool, float16) is the input's type and is
        cast to double in the graph, as scikit-learn's validation turns it
        into float64.

    target_opset : int, default=None
        The ONNX opset of the default domain, from :data:`MIN_OPSET` to
        onnx's newest; None: :data:`TARGET_OPSET`.

    Returns
    -------
    model : onnx.ModelProto
        The checked model (``onnx.checker.check_model``). Its outputs, N
        the number of samples:

        - classifier: ``label``, then ``probabilities`` of shape
          (N, n_classes) in X's float dtype. Multiclass and binary: label
          of shape (N,), int64 for integer classes, string otherwise;
          binary probabilities are ``[1 - p, p]``, label ``classes_[1]``
          where ``p > 0.5``. Multilabel: label int64 of shape
          (N, n_labels), 1 where the label's probability exceeds 0.5.
        - regressor: ``variable`` of shape (N, n_outputs_), single output
          included (skl2onnx's (N, 1)); a Poisson model's is ``exp`` of
          the output layer.

    Raises
    ------
    TypeError
        If ``estimator`` is not a fastmlp MLP, or X is not numeric.
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If X's number of columns is not ``estimator.n_features_in_``, or
        the model has an activation or labels ONNX cannot hold.
    ImportError
        If onnx is not installed.

    See Also
    --------
    register_onnx_converters : Convert pipelines with skl2onnx.

    Notes
    -----
    When skl2onnx is already imported, this also registers fastmlp's
    converters with it (:func:`register_onnx_converters`).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from fastmlp import MLPClassifier, to_onnx
    >>> X, y = load_iris(return_X_y=True)
    >>> X = X.astype(np.float32)
    >>> clf = MLPClassifier(max_iter=300, random_state=0).fit(X, y)
    >>> onx = to_onnx(clf, X)
    >>> [o.name for o in onx.graph.output]
    ['label', 'probabilities']
    """
    _check_estimator(estimator)
    dtype, n_features = _input_type(X)
    if n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    onnx = _import_onnx()
    opset = TARGET_OPSET if target_opset is None else int(target_opset)
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"target_opset must be from {MIN_OPSET} to {newest}, got {target_opset!r}.")
    if "skl2onnx" in sys.modules:
        register_onnx_converters()

    compute = dtype if dtype in _ELEM_TYPES else np.dtype(np.float64)
    w = _ModelWriter(compute, onnx)
    x = "X" if compute == dtype else w.op("Cast", ["X"], to=_ELEM_TYPES[compute])
    spec = _output_spec(estimator, compute)
    _write_mlp(w, estimator, x, [name for name, _, _ in spec])

    helper = onnx.helper
    inputs = [helper.make_tensor_value_info(
        "X", helper.np_dtype_to_tensor_dtype(dtype), [None, n_features])]
    outputs = [helper.make_tensor_value_info(name, elem, shape) for name, elem, shape in spec]
    graph = helper.make_graph(w.nodes, f"fastmlp_{type(estimator).__name__}", inputs, outputs,
                              initializer=w.initializers)
    opsets = [helper.make_opsetid("", opset)]
    import fastmlp

    model = helper.make_model(graph, opset_imports=opsets, producer_name="fastmlp",
                              producer_version=fastmlp.__version__)
    # the oldest IR version the opset allows, for older runtimes
    model.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(model, full_check=True)
    return model


# ----------------------------------------------------------------------
# skl2onnx


def _compute_dtype(variable):
    """A converter's compute dtype for input ``variable``: double for a
    double tensor, else float (skl2onnx's rule for its MLPs)."""
    from skl2onnx.common.data_types import DoubleTensorType

    return np.float64 if isinstance(variable.type, DoubleTensorType) else np.float32


def _converter_labels(scope, est):
    """The label values under skl2onnx's options: the class indices with
    ``nocl=True``, else None (the classes)."""
    if _task(est) in ("regression", "multilabel"):
        return None
    if scope.get_options(est, dict(nocl=False))["nocl"]:
        return np.arange(len(est.classes_), dtype=np.int64)
    return None


def _calculate_shapes(operator):
    """skl2onnx shape calculator: the outputs' types from
    :func:`_output_spec`."""
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )
    from skl2onnx.common.utils import check_input_and_output_numbers

    est = operator.raw_operator
    n_outputs = 1 if _task(est) == "regression" else 2
    check_input_and_output_numbers(operator, input_count_range=1,
                                   output_count_range=n_outputs)
    n = operator.inputs[0].get_first_dimension()
    types = {_FLOAT: FloatTensorType, _DOUBLE: DoubleTensorType, _INT64: Int64TensorType,
             _STRING: StringTensorType}
    labels = _converter_labels(operator.scope_inst, est)
    spec = _output_spec(est, _compute_dtype(operator.inputs[0]), labels)
    for variable, (_, elem, shape) in zip(operator.outputs, spec):
        variable.type = types[elem]([n] + shape[1:])


def _convert(scope, operator, container):
    """skl2onnx converter: :func:`_write_mlp` into the container."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    dtype = _compute_dtype(operator.inputs[0])
    w = _ContainerWriter(dtype, scope, container)
    x = operator.inputs[0].full_name
    same = DoubleTensorType if dtype == np.float64 else FloatTensorType
    if not isinstance(operator.inputs[0].type, same):
        x = w.op("Cast", [x], to=_ELEM_TYPES[np.dtype(dtype)])
    est = operator.raw_operator
    _write_mlp(w, est, x, [o.full_name for o in operator.outputs],
               _converter_labels(scope, est))


def register_onnx_converters():
    """Register fastmlp's MLPs with skl2onnx.

    After this call ``skl2onnx.to_onnx`` (and ``convert_sklearn``) convert
    fastmlp's MLPClassifier and MLPRegressor, alone or inside a Pipeline,
    with the graph :func:`to_onnx` writes. Classifiers take skl2onnx's
    options as its own classifiers do: ``zipmap`` (``False`` gives the
    outputs ``label`` and ``probabilities``; the default ``True``, and
    ``'columns'``, append skl2onnx's ZipMap, which ONNX defines for float
    input only: use ``zipmap=False`` for double), ``nocl`` (labels are
    class indices) and ``output_class_labels``. Calling it again does
    nothing new.

    Raises
    ------
    ImportError
        If skl2onnx is not installed.
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:
        raise ImportError(
            f"fastmlp.register_onnx_converters needs skl2onnx: {_INSTALL}."
        ) from exc
    from ._estimators import MLPClassifier, MLPRegressor

    update_registered_converter(MLPClassifier, "FastmlpMLPClassifier", _calculate_shapes,
                                _convert, options={"zipmap": [True, False, "columns"],
                                                   "nocl": [False, True],
                                                   "output_class_labels": [False, True]})
    update_registered_converter(MLPRegressor, "FastmlpMLPRegressor", _calculate_shapes,
                                _convert)
