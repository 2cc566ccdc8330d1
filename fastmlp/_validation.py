"""Checks of parameters, inputs, weights and labels, as scikit-learn makes them.

The estimators' parameter constraints (scikit-learn's own objects), the
checks of ``hidden_layer_sizes``, ``X`` / ``y`` for fit and ``X`` for
predict, of a model's ``coefs_`` / ``intercepts_`` and of batch weights,
and the classifier's label binarizing both ways. Every error raised here is
scikit-learn's, with its type and message, unless it guards what only
fastmlp's kernels need. Nothing here calls the compiled engine.
"""

import operator
from numbers import Integral, Real

import numpy as np
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import _check_sample_weight, validate_data

from ._codes import ACTIVATIONS, LEARNING_RATES, SOLVERS


def _sklearn_constraints():
    """scikit-learn's own parameter constraints of its MLPs.

    Reusing its objects makes every InvalidParameterError message identical
    to scikit-learn's: a set of options prints in an order fixed when its
    module was byte-compiled, so an equal set written here could print its
    options in another order. The copy below is the fallback for versions
    whose constraints lack what fastmlp supports.
    """
    own = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions({"squared_error", "poisson"})],
    }
    try:
        from sklearn.neural_network import MLPRegressor as _SkRegressor

        theirs = dict(_SkRegressor._parameter_constraints)
    except (ImportError, AttributeError):  # pragma: no cover
        return own
    if set(theirs) != set(own) or "poisson" not in str(theirs["loss"][0]):
        return own  # pragma: no cover - older scikit-learn
    return theirs


def _options(names, theirs):
    """The constraint of a string parameter whose options are ``names``:
    scikit-learn's own object (``theirs``) where its options are the same
    names, so that its error messages stay byte-identical, else a new
    ``StrOptions`` of the names."""
    for constraint in theirs:
        if isinstance(constraint, StrOptions) and set(constraint.options) == set(names):
            return [constraint]
    return [StrOptions(set(names))]


def _hidden_codes(activation, n_hidden):
    """The activation code of each of ``n_hidden`` hidden layers, a tuple:
    ``activation`` is one name for all (validated by the constraints) or a
    list or tuple of one name per hidden layer, checked here."""
    if isinstance(activation, str):
        return (ACTIVATIONS[activation],) * n_hidden
    names = list(activation)
    bad = [a for a in names if not (isinstance(a, str) and a in ACTIVATIONS)]
    if bad:
        raise ValueError(
            f"activation lists one name per hidden layer among {sorted(ACTIVATIONS)}; got "
            f"{bad[0]!r}.")
    if len(names) != n_hidden:
        raise ValueError(
            f"activation lists {len(names)} names but the network has {n_hidden} hidden "
            "layers: give one per hidden layer (or one name for all).")
    return tuple(ACTIVATIONS[a] for a in names)


def _dropout_rates(dropout, n_hidden):
    """Each of ``n_hidden`` hidden layers' dropout rate, a tuple, or None
    where no layer drops units: ``dropout`` is one rate for all (validated
    by the constraints) or a list or tuple of one per hidden layer, each in
    [0, 1), checked here."""
    if isinstance(dropout, Real):
        rates = (float(dropout),) * n_hidden
    else:
        rates = tuple(dropout)
        bad = [r for r in rates if not (isinstance(r, Real) and 0 <= r < 1)]
        if bad:
            raise ValueError(
                f"dropout lists one rate in [0, 1) per hidden layer; got {bad[0]!r}.")
        if len(rates) != n_hidden:
            raise ValueError(
                f"dropout lists {len(rates)} rates but the network has {n_hidden} hidden "
                "layers: give one per hidden layer (or one rate for all).")
        rates = tuple(float(r) for r in rates)
    return rates if any(r > 0 for r in rates) else None


def _constraints():
    """The estimators' parameter constraints: scikit-learn's, with
    ``activation``, ``solver`` and ``learning_rate`` built from the option
    tables of :mod:`fastmlp._codes` (``activation`` also takes a list or
    tuple of names, one per hidden layer: :func:`_hidden_codes`)."""
    sk = _sklearn_constraints()
    return {**sk, "activation": _options(ACTIVATIONS, sk["activation"]) + [list, tuple],
            "solver": _options(SOLVERS, sk["solver"]),
            "learning_rate": _options(LEARNING_RATES, sk["learning_rate"])}


CONSTRAINTS = _constraints()


# ----------------------------------------------------------------------
# Fit: the architecture, X and y, sample weights


def _check_hidden_layer_sizes(hidden_layer_sizes):
    """``hidden_layer_sizes`` (an int or an iterable of them) as a list of
    ints, with scikit-learn's errors."""
    if not hasattr(hidden_layer_sizes, "__iter__"):
        hidden_layer_sizes = [hidden_layer_sizes]
    hidden_layer_sizes = list(hidden_layer_sizes)

    if np.any(np.array(hidden_layer_sizes) <= 0):
        raise ValueError(
            "hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes
        )
    # scikit-learn's weight initialisation raises this TypeError for a
    # non-integer size ("'float' object cannot be interpreted as an
    # integer"); Layout would silently truncate it.
    return [operator.index(h) for h in hidden_layer_sizes]


def _validate_classifier_data(est, X, y, incremental, reset):
    """scikit-learn's ``MLPClassifier._validate_input``: ``X`` and ``y``
    validated, ``y``'s classes checked against a warm or partial fit's, and
    ``y`` binarized (the label binarizer made on a fresh fit)."""
    X, y = validate_data(
        est,
        X,
        y,
        accept_sparse=["csr", "csc"],
        multi_output=True,
        dtype=(np.float64, np.float32),
        reset=reset,
    )
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)

    # incremental warm_start classes_ defined -> action, as scikit-learn:
    # fresh fit defines classes_; warm start checks the same classes;
    # partial_fit checks y's classes are known.
    if (not hasattr(est, "classes_")) or (not est.warm_start and not incremental):
        est._label_binarizer = LabelBinarizer()
        est._label_binarizer.fit(y)
        est.classes_ = est._label_binarizer.classes_
    else:
        classes = unique_labels(y)
        if est.warm_start:
            if set(classes) != set(est.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same "
                    "classes as in the previous call to fit. Previously "
                    f"got {est.classes_}, `y` has {classes}"
                )
        elif len(np.setdiff1d(classes, est.classes_, assume_unique=True)):
            raise ValueError(
                "`y` has classes not in `self.classes_`. "
                f"`self.classes_` has {est.classes_}. 'y' has {classes}."
            )

    # bool keeps float32 data from being upcast
    y = est._label_binarizer.transform(y).astype(bool)
    return X, y


def _class_sample_weight(est, X, y, sample_weight, incremental):
    """``sample_weight`` (None: ones) times each sample's class weight,
    ``est.class_weight``'s (scikit-learn's ``compute_class_weight``), for
    ``y`` as :func:`_validate_classifier_data` returns it; None and
    ``sample_weight`` unchanged where ``class_weight`` is None."""
    class_weight = est.class_weight
    if class_weight is None:
        return sample_weight
    if est._label_binarizer.y_type_.startswith("multilabel"):
        raise ValueError(
            "class_weight is not supported for multilabel targets; "
            "pass sample_weight instead.")
    if incremental and isinstance(class_weight, str):
        # scikit-learn's SGDClassifier.partial_fit message
        raise ValueError(
            "class_weight '{0}' is not supported for partial_fit. In order to use "
            "'balanced' weights, use compute_class_weight('{0}', classes=classes, y=y). "
            "In place of y you can use a large enough sample of the full training set "
            "target to properly estimate the class frequency distributions. Pass the "
            "resulting weights as the class_weight parameter.".format(class_weight))
    # each sample's class: its column of the indicator (binary: 0 or 1)
    index = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else np.ravel(y).astype(np.intp)
    classes = est.classes_
    weights = compute_class_weight(class_weight, classes=classes, y=classes[index])[index]
    if sample_weight is not None:
        weights = sample_weight * weights
    return _check_sample_weight(weights, X)


def _smooth_labels(est, Y):
    """The binarized targets ``Y`` (n, n_outputs) smoothed by
    ``est.label_smoothing`` ``e``: ``(1 - e) * Y + e / K``, ``K`` the
    classes of a softmax output (multiclass), 2 for logistic outputs
    (binary, multilabel), as PyTorch's ``CrossEntropyLoss`` and
    ``BCELoss`` with smoothed targets; ``Y`` itself where ``e`` is 0."""
    e = est.label_smoothing
    if e == 0:
        return Y
    K = Y.shape[1] if est._label_binarizer.y_type_ == "multiclass" else 2
    return (1.0 - e) * Y + e / K


def _validate_regressor_data(est, X, y, reset):
    """scikit-learn's ``MLPRegressor._validate_input``: ``X`` and numeric
    ``y`` validated, a one-column ``y`` raveled with its warning."""
    X, y = validate_data(
        est,
        X,
        y,
        accept_sparse=["csr", "csc"],
        multi_output=True,
        y_numeric=True,
        dtype=(np.float64, np.float32),
        reset=reset,
    )
    if y.dtype.kind in "SU":
        # y_numeric converts only object arrays: scikit-learn's loss then
        # fails on string targets with numpy's error, which this
        # subtraction raises (the engine would parse numeric strings).
        y - np.zeros(1, dtype=X.dtype)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    return X, y


def _check_weight_sums(sample_weight, starts):
    """Raise scikit-learn's ZeroDivisionError where a batch's weights (the
    runs of ``sample_weight`` from each of ``starts``) sum to zero.

    scikit-learn's loss averages each batch with ``np.average``, which raises
    it; the kernels would divide by zero and train on non-finite values.
    """
    if not np.add.reduceat(sample_weight, np.asarray(starts, dtype=np.intp)).all():
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")


# ----------------------------------------------------------------------
# A fitted model's weights, and predict's X


def _layer_units(coefs, intercepts):
    """Layer sizes of a network given as per-layer arrays.

    Parameters
    ----------
    coefs, intercepts : sequences of arrays
        ``coefs_`` and ``intercepts_``, which a user may assign, or edit
        before unpickling.

    Returns
    -------
    units : tuple of int
        ``(n_features, hidden_1, ..., n_outputs)``.

    Raises
    ------
    ValueError
        Unless the arrays form a chain of layers: the kernels read the flat
        buffer at offsets computed from these sizes, with no bounds checks.
    """
    # A plain loop over attributes first: this runs in every prediction.
    try:
        units = [coefs[0].shape[0]]
        fits = len(coefs) == len(intercepts)
        for c, b in zip(coefs, intercepts):
            shape = c.shape
            if len(shape) != 2 or shape[0] != units[-1] or b.shape != shape[1:]:
                fits = False
                break
            units.append(shape[1])
    except (AttributeError, IndexError, TypeError):
        fits = False
    if fits:
        return tuple(units)
    shapes = [np.shape(c) for c in coefs]
    bshapes = [np.shape(b) for b in intercepts]
    if len(shapes) == 0 or len(shapes) != len(bshapes):
        raise ValueError(
            f"coefs_ and intercepts_ must have one array per layer; got {len(shapes)} "
            f"coefs_ and {len(bshapes)} intercepts_.")
    for i, (shape, bshape) in enumerate(zip(shapes, bshapes)):
        if len(shape) != 2 or bshape != shape[1:] or (i > 0 and shape[0] != shapes[i - 1][1]):
            expected = f"({'n' if i == 0 else shapes[i - 1][1]}, m) and (m,)"
            raise ValueError(
                f"coefs_[{i}] of shape {shape} and intercepts_[{i}] of shape {bshape} "
                f"do not fit the network: expected shapes {expected}.")
    # nested lists or other array-likes that chain
    return (shapes[0][0],) + tuple(c[1] for c in shapes)


def _validate_for_predict(est, X):
    """``validate_data(est, X, reset=False)``, with a fast path for plain arrays.

    A C-contiguous float ndarray of the fitted width, for a model fitted
    without feature names, needs only a finiteness check; the generic
    validation is most of the cost of a small prediction. Anything else
    (or any NaN / inf) goes through validate_data and its errors.
    """
    if (type(X) is np.ndarray and X.ndim == 2 and X.shape[0] > 0
            and X.dtype in (np.float32, np.float64)
            and X.shape[1] == est.__dict__.get("n_features_in_")
            and "feature_names_in_" not in est.__dict__
            and X.flags.c_contiguous and np.isfinite(X).all()):
        return X
    return validate_data(est, X, accept_sparse=["csr", "csc"], reset=False)


# ----------------------------------------------------------------------
# Labels from a classifier's outputs

# scikit-learn's indexing_dtype(numpy): the dtype of its thresholded labels
_INDEX_DTYPE = np.asarray(0).dtype


def _inverse_binarize(lb, y):
    """``lb.inverse_transform(y)`` for a model's fitted LabelBinarizer and
    its dense float outputs.

    The same numpy operations as scikit-learn's ``_inverse_binarize_multiclass``
    and ``_inverse_binarize_thresholding`` (argmax with its first-maximum and
    NaN rules; the ``(pos_label + neg_label) / 2`` threshold compared in
    ``y``'s dtype), without the checks and array-namespace dispatch around
    them, which cost several times a one-row prediction. Anything else (a
    replaced binarizer, a sparse fit, unexpected shapes) goes to
    ``inverse_transform`` itself.
    """
    if type(lb) is LabelBinarizer and type(y) is np.ndarray and not lb.sparse_input_:
        classes = lb.classes_
        n_classes = classes.shape[0]
        if lb.y_type_ == "multiclass" and y.ndim == 2 and y.shape[1] == n_classes:
            # (scikit-learn clips the argmax to the classes: a no-op here)
            return classes[np.argmax(y, axis=1)]
        threshold = (lb.pos_label + lb.neg_label) / 2.0
        if lb.y_type_ == "binary" and y.ndim == 1:
            labels = np.asarray(y > threshold, dtype=_INDEX_DTYPE)
            return np.repeat(classes[0], len(labels)) if n_classes == 1 else classes[labels]
        if lb.y_type_ == "multilabel-indicator" and y.ndim == 2 and y.shape[1] == n_classes:
            return np.asarray(y > threshold, dtype=_INDEX_DTYPE)
    return lb.inverse_transform(y)
