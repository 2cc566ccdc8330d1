"""fastmlp.to_onnx and the skl2onnx converters, run in onnxruntime.

Every exported model runs in onnxruntime's CPU provider and is compared
with the estimator's own ``predict`` / ``predict_proba``: float32 graphs
to float32 rounding, float64 graphs to ~1e-12. The hidden activations the
estimators have are fitted with; all the names the export supports are
also checked on the graph itself, by setting ``activation`` on a fitted
model and comparing with a NumPy forward pass.
"""

import copy
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import erf
from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, to_onnx
from fastmlp._codes import ACTIVATIONS
from fastmlp._onnx import _ERF_END, HIDDEN_ACTIVATIONS, TARGET_OPSET

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")

DTYPES = [np.float32, np.float64]


def _run(onx, X):
    """The model's outputs on ``X``, by name; checks that every
    initialiser is used."""
    used = {name for node in onx.graph.node for name in node.input}
    assert {init.name for init in onx.graph.initializer} <= used
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: X})))


def _close(got, want, dtype):
    """float32: float32 rounding; float64: ~1e-12 (relative to the scale)."""
    tol = 1e-5 if dtype == np.float32 else 1e-12
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _same_labels(got, want, proba, dtype):
    """Labels equal, except (float32) where the top two probabilities are
    within rounding of each other, or of the 0.5 threshold."""
    got, want = np.asarray(got), np.asarray(want)
    if dtype == np.float64:
        np.testing.assert_array_equal(got, want)
        return
    if got.ndim == 2 or proba.shape[1] == 2:  # multilabel / binary: threshold
        p = proba if got.ndim == 2 else proba[:, 1]
        clear = np.abs(p - 0.5) > 1e-5
    else:
        top = np.sort(proba, axis=1)
        clear = top[:, -1] - top[:, -2] > 1e-5
    np.testing.assert_array_equal(got[clear], want[clear])


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=200, n_features=6, n_targets=3, noise=1.0,
                           random_state=0)
    return X / X.std(0), y / y.std(0)


def _fit(est, X, y, dtype):
    return est.fit(X.astype(dtype), y)


# ----------------------------------------------------------------------
# Classifiers


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("task,labels", [("multiclass", "int"), ("multiclass", "str"),
                                         ("binary", "int"), ("binary", "str"),
                                         ("multilabel", "int")])
def test_classifier_matches_predict(iris, task, labels, dtype):
    X, y = iris
    if task == "binary":
        y = (y == 1).astype(int)
    if task == "multilabel":  # indicator columns
        y = np.stack([y == 1, y == 2, X[:, 0] > 5.8], axis=1).astype(int)
    elif labels == "str":
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    else:
        y = y * 10 + 3  # not 0..n-1: the labels are looked up
    clf = _fit(MLPClassifier((8,), max_iter=60, random_state=0), X, y, dtype)
    Xt = X.astype(dtype)
    onx = to_onnx(clf, Xt)
    out = _run(onx, Xt)

    assert list(out) == ["label", "probabilities"]
    proba = out["probabilities"]
    assert proba.dtype == dtype
    _close(proba, clf.predict_proba(Xt), dtype)
    _same_labels(out["label"], clf.predict(Xt), proba, dtype)
    if task == "multilabel":
        assert out["label"].dtype == np.int64 and out["label"].shape == (len(X), 3)
    else:
        assert out["label"].shape == (len(X),)
        assert out["label"].dtype == (object if labels == "str" else np.int64)


def test_binary_probabilities_and_threshold(iris):
    """[1 - p, p], and classes_[1] exactly where p > 0.5."""
    X, y = iris
    y = np.array(["no", "yes"])[(y == 2).astype(int)]
    clf = MLPClassifier((4,), max_iter=30, random_state=0).fit(X, y)
    out = _run(to_onnx(clf, X), X)
    p = out["probabilities"][:, 1]
    np.testing.assert_array_equal(out["probabilities"][:, 0], 1 - p)
    np.testing.assert_array_equal(out["label"], np.where(p > 0.5, "yes", "no"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_outputs_declared_like_skl2onnx(iris, dtype):
    """Input X [None, n_features]; label (N,) int64 / string; probabilities
    (N, n_classes) in X's dtype; the opset TARGET_OPSET."""
    X, y = iris
    elem = {np.float32: onnx.TensorProto.FLOAT, np.float64: onnx.TensorProto.DOUBLE}[dtype]
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    onx = to_onnx(clf, X.astype(dtype))
    assert [(o.domain, o.version) for o in onx.opset_import] == [("", TARGET_OPSET)]

    def shape(v):
        return [d.dim_value if d.HasField("dim_value") else None
                for d in v.type.tensor_type.shape.dim]

    (x,) = onx.graph.input
    assert (x.name, x.type.tensor_type.elem_type, shape(x)) == ("X", elem, [None, 4])
    label, proba = onx.graph.output
    assert (label.name, label.type.tensor_type.elem_type, shape(label)) == (
        "label", onnx.TensorProto.INT64, [None])
    assert (proba.name, proba.type.tensor_type.elem_type, shape(proba)) == (
        "probabilities", elem, [None, 3])

    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, np.array(list("abc"))[y])
    assert to_onnx(clf, X).graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.STRING

    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    (variable,) = to_onnx(reg, X.astype(dtype)).graph.output
    assert (variable.name, variable.type.tensor_type.elem_type, shape(variable)) == (
        "variable", elem, [None, 1])


# ----------------------------------------------------------------------
# Regressors


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["single", "multi", "poisson"])
def test_regressor_matches_predict(regression, kind, dtype):
    X, Y = regression
    if kind == "single":
        y, est = Y[:, 0], MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    elif kind == "multi":
        y, est = Y, MLPRegressor(hidden_layer_sizes=(8, 5), max_iter=50, random_state=0)
    else:
        y = np.random.default_rng(0).poisson(np.exp(0.5 * Y[:, 0]))
        est = MLPRegressor(hidden_layer_sizes=(8,), loss="poisson", max_iter=50, random_state=0)
    reg = _fit(est, X, y, dtype)
    Xt = X.astype(dtype)
    out = _run(to_onnx(reg, Xt), Xt)
    assert list(out) == ["variable"]
    variable = out["variable"]
    assert variable.dtype == dtype
    # the true shape: (N, n_outputs_), (N, 1) for one output as skl2onnx
    assert variable.shape == (len(X), reg.n_outputs_)
    _close(variable, reg.predict(Xt).reshape(len(X), -1), dtype)
    if kind == "poisson":
        assert reg.out_activation_ == "exp" and (variable > 0).all()


# ----------------------------------------------------------------------
# Activations


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_fitted_activation_matches_predict(iris, activation, dtype):
    """Every activation the estimators have, fitted with."""
    if activation not in ACTIVATIONS:
        pytest.skip(f"the estimators have no {activation!r} yet (its graph: below)")
    X, y = iris
    clf = _fit(MLPClassifier((6, 5), activation=activation, max_iter=40, random_state=0),
               X, y, dtype)
    Xt = X.astype(dtype)
    out = _run(to_onnx(clf, Xt), Xt)
    _close(out["probabilities"], clf.predict_proba(Xt), dtype)
    _same_labels(out["label"], clf.predict(Xt), out["probabilities"], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fitted_per_layer_activations_match_predict(regression, dtype):
    """One activation per hidden layer, fitted with (where the estimators
    take a list)."""
    X, Y = regression
    reg = MLPRegressor(hidden_layer_sizes=(6, 5), activation=("gelu", "softplus"),
                       max_iter=30, random_state=0)
    try:
        _fit(reg, X, Y, dtype)
    except ValueError:  # scikit-learn's InvalidParameterError included
        pytest.skip("the estimators take one activation name only (its graph: below)")
    Xt = X.astype(dtype)
    _close(_run(to_onnx(reg, Xt), Xt)["variable"], reg.predict(Xt), dtype)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


NUMPY_ACTIVATIONS = {
    "identity": lambda z: z,
    "logistic": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "silu": lambda z: z / (1 + np.exp(-z)),
    "softplus": lambda z: np.logaddexp(0, z),
    # output functions
    "softmax": _softmax,
    "exp": np.exp,
}


def _numpy_forward(est, X):
    """The network's output (probabilities / predictions), in float64."""
    acts = est.activation
    n_hidden = len(est.coefs_) - 1
    acts = [acts] * n_hidden if isinstance(acts, str) else list(acts)
    h = np.asarray(X, np.float64)
    for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        h = h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        h = NUMPY_ACTIVATIONS[acts[i] if i < n_hidden else est.out_activation_](h)
    return h


@pytest.fixture(scope="module")
def relu_models(iris, regression):
    X, y = iris
    clf = MLPClassifier((6, 5), max_iter=30, random_state=0).fit(X, y)
    Xr, Yr = regression
    reg = MLPRegressor(hidden_layer_sizes=(6, 5), max_iter=30, random_state=0).fit(Xr, Yr)
    return clf, reg


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_activation_graph(iris, relu_models, activation, dtype):
    """Each exportable activation's graph, against NumPy: a fitted relu
    model with ``activation`` set directly (whether or not the estimators
    take the name yet)."""
    X, _ = iris
    clf = copy.deepcopy(relu_models[0])
    clf.activation = activation  # bypasses set_params' validation on purpose
    Xt = 2 * X.astype(dtype) - 6  # pre-activations of both signs
    proba = _run(to_onnx(clf, Xt), Xt)["probabilities"]
    want = _numpy_forward(clf, Xt.astype(np.float64))
    _close(proba, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", [("tanh", "silu"), ["gelu", "softplus"],
                                        ("leaky_relu", "elu"), ("relu", "logistic")])
def test_activation_per_layer(regression, relu_models, activation, dtype):
    X, _ = regression
    reg = copy.deepcopy(relu_models[1])
    reg.activation = activation
    Xt = 3 * X.astype(dtype)
    variable = _run(to_onnx(reg, Xt), Xt)["variable"]
    _close(variable, _numpy_forward(reg, Xt.astype(np.float64)), dtype)


def test_bad_activation(relu_models, iris):
    X, _ = iris
    clf = copy.deepcopy(relu_models[0])
    clf.activation = ("relu",)
    with pytest.raises(ValueError, match="1 names for 2 hidden layers"):
        to_onnx(clf, X)
    clf.activation = "swish"
    with pytest.raises(ValueError, match="'swish' has no ONNX export"):
        to_onnx(clf, X)


def _hand_set_regressor(regression, z):
    """A one-hidden-layer regressor whose hidden pre-activations are ``z``
    for every sample and whose outputs are the hidden units."""
    X, Y = regression
    reg = MLPRegressor(hidden_layer_sizes=(3,), max_iter=1, random_state=0).fit(X, Y)
    reg.coefs_ = [np.zeros((X.shape[1], 3)), np.eye(3)]
    reg.intercepts_ = [np.asarray(z, float), np.zeros(3)]
    return reg


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_large_inputs(regression, dtype):
    """softplus(100) is 100, not inf, in float32 too."""
    X, _ = regression
    reg = _hand_set_regressor(regression, [100.0, -100.0, 0.0])
    reg.activation = "softplus"
    variable = _run(to_onnx(reg, X[:2].astype(dtype)), X[:2].astype(dtype))["variable"]
    assert np.isfinite(variable).all()
    np.testing.assert_allclose(variable, [[100.0, np.exp(-100.0), np.log(2.0)]] * 2,
                               rtol=1e-6, atol=1e-30 if dtype == np.float64 else 1e-7)


def test_double_erf(regression):
    """The double graph's erf (a piecewise polynomial: onnxruntime has no
    double Erf) is within a few ulps of scipy's, up to and beyond its end."""
    X, _ = regression
    reg = _hand_set_regressor(regression, [0.0, 0.0, 0.0])
    reg.activation = "gelu"
    z = np.concatenate([np.linspace(-2 * _ERF_END, 2 * _ERF_END, 30001), [-1e300, 1e300]])
    # one input column carries z; the rest are zero
    Xz = np.zeros((len(z), X.shape[1]))
    Xz[:, 0] = z
    reg.coefs_[0] = np.zeros((X.shape[1], 3))
    reg.coefs_[0][0] = 1.0
    variable = _run(to_onnx(reg, Xz), Xz)["variable"][:, 0]
    want = 0.5 * z * (1 + erf(z / np.sqrt(2)))
    np.testing.assert_allclose(variable[:-2], want[:-2], rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(variable[-2:], [0.0, 1e300])


# ----------------------------------------------------------------------
# Inputs and errors


def test_input_dtypes(iris):
    """Integer input: the graph takes it and computes in double."""
    X, y = iris
    clf = MLPClassifier((4,), max_iter=10, random_state=0).fit(X, y)
    Xi = (X * 10).astype(np.int64)
    onx = to_onnx(clf, Xi)
    assert onx.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    proba = _run(onx, Xi)["probabilities"]
    assert proba.dtype == np.float64
    _close(proba, clf.predict_proba(Xi), np.float64)
    with pytest.raises(TypeError, match="numeric"):
        to_onnx(clf, X.astype(str))


def test_errors(iris):
    X, y = iris
    with pytest.raises(NotFittedError):
        to_onnx(MLPClassifier(), X)
    with pytest.raises(TypeError, match="got LogisticRegression"):
        to_onnx(LogisticRegression().fit(X, y), X)
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        to_onnx(clf, X[:, :3])
    with pytest.raises(ValueError, match="shape"):
        to_onnx(clf, X[0])
    with pytest.raises(ValueError, match="target_opset"):
        to_onnx(clf, X, target_opset=9)
    assert to_onnx(clf, X, target_opset=21).opset_import[0].version == 21


def test_without_onnx(iris, monkeypatch):
    X, y = iris
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[onnx\]"'):
        to_onnx(clf, X)


def test_import_fastmlp_imports_no_onnx():
    code = ("import sys, fastmlp; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('onnx', 'onnxruntime', 'skl2onnx')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------
# skl2onnx: pipelines


@pytest.mark.parametrize("dtype", DTYPES)
def test_pipeline_classifier(iris, dtype):
    skl2onnx = pytest.importorskip("skl2onnx")
    fastmlp.register_onnx_converters()
    X, y = iris
    Xt = X.astype(dtype)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), activation="tanh", max_iter=50,
                                                         random_state=0)).fit(Xt, y)
    onx = skl2onnx.to_onnx(pipe, Xt, options={MLPClassifier: {"zipmap": False}})
    out = _run(onx, Xt)
    assert list(out) == ["label", "probabilities"]
    _close(out["probabilities"], pipe.predict_proba(Xt), dtype)
    _same_labels(out["label"], pipe.predict(Xt), out["probabilities"], dtype)

    if dtype == np.float64:
        return  # ONNX's ZipMap takes float only (so for skl2onnx's own classifiers)
    # skl2onnx's default, zipmap=True: a list of {class: probability}
    out = _run(skl2onnx.to_onnx(pipe, Xt), Xt)
    assert list(out) == ["output_label", "output_probability"]
    zipped = np.array([[row[c] for c in pipe.classes_] for row in out["output_probability"]])
    np.testing.assert_allclose(zipped, pipe.predict_proba(Xt), atol=1e-5)


def test_pipeline_options(iris):
    """skl2onnx's classifier options nocl (labels are class indices) and
    output_class_labels."""
    skl2onnx = pytest.importorskip("skl2onnx")
    fastmlp.register_onnx_converters()
    X, y = iris
    X = X.astype(np.float32)
    y = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = MLPClassifier((6,), max_iter=30, random_state=0).fit(X, y)
    onx = skl2onnx.to_onnx(clf, X, options={MLPClassifier: {"zipmap": False, "nocl": True}})
    out = _run(onx, X)
    assert out["label"].dtype == np.int64
    _same_labels(clf.classes_[out["label"]], clf.predict(X), out["probabilities"], np.float32)
    onx = skl2onnx.to_onnx(clf, X, options={MLPClassifier: {"zipmap": False,
                                                             "output_class_labels": True}})
    np.testing.assert_array_equal(list(_run(onx, X).values())[-1], clf.classes_)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pipeline_regressor(regression, dtype):
    skl2onnx = pytest.importorskip("skl2onnx")
    fastmlp.register_onnx_converters()
    X, Y = regression
    Xt = X.astype(dtype)
    pipe = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(8,), max_iter=50,
                                                        random_state=0)).fit(Xt, Y)
    out = _run(skl2onnx.to_onnx(pipe, Xt), Xt)
    assert list(out) == ["variable"] and out["variable"].shape == Y.shape
    _close(out["variable"], pipe.predict(Xt), dtype)


def test_pipeline_multilabel_and_poisson(iris, regression):
    """What scikit-learn's own converter cannot: a multilabel label of the
    declared shape, a Poisson head."""
    skl2onnx = pytest.importorskip("skl2onnx")
    fastmlp.register_onnx_converters()
    X, y = iris
    Y = np.stack([y == 1, y == 2], axis=1).astype(int)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((6,), max_iter=30,
                                                         random_state=0)).fit(X, Y)
    onx = skl2onnx.to_onnx(pipe, X, options={MLPClassifier: {"zipmap": False}})
    label = onx.graph.output[0].type.tensor_type.shape.dim
    assert len(label) == 2 and label[1].dim_value == 2
    out = _run(onx, X)
    np.testing.assert_array_equal(out["label"], pipe.predict(X))
    _close(out["probabilities"], pipe.predict_proba(X), np.float64)

    Xr, Yr = regression
    yp = np.random.default_rng(0).poisson(np.exp(0.5 * Yr[:, 0]))
    reg = MLPRegressor(hidden_layer_sizes=(6,), loss="poisson", max_iter=30, random_state=0)
    pipe = make_pipeline(StandardScaler(), reg).fit(Xr, yp)
    out = _run(skl2onnx.to_onnx(pipe, Xr), Xr)
    _close(out["variable"][:, 0], pipe.predict(Xr), np.float64)


def test_every_activation_of_the_estimators_is_exported():
    assert set(HIDDEN_ACTIVATIONS) == set(ACTIVATIONS)
