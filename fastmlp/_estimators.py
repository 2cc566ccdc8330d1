"""scikit-learn estimators: MLPClassifier and MLPRegressor.

The only module that knows scikit-learn. It validates input exactly as
scikit-learn 1.9's ``sklearn.neural_network`` does, builds the flat-buffer
network, drives the compiled engine epoch by epoch, and exposes the same
fitted attributes. Per-epoch, user-facing logic (learning-rate schedules,
stopping rules, early stopping, verbose lines, warnings) is here, in Python,
written in the order scikit-learn runs it so that traces match.
"""

import functools
import operator
import warnings
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp

from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    is_classifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    type_of_target,
    unique_labels,
)
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)

from ._codes import ACTIVATIONS, HEADS, SOLVERS
from ._engine import (
    PREDICT_CHUNK,
    FullBatchObjective,
    Inputs,
    Network,
    StochasticTrainer,
    predict_output,
    predict_serial_output,
    predict_serial_rows,
)
from ._layout import Layout
from ._monitor import HAS_SKLEARN_CALLBACKS, CallbackSupportMixin, TrainingMonitor, with_callbacks
from ._threads import resolve_threads, serial_predict_max_rows, threads

try:  # scikit-learn >= 1.7 passes iprint only to scipy versions that take it
    from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
except ImportError:  # pragma: no cover - older scikit-learn

    def _get_additional_lbfgs_options_dict(key, value):
        return {key: value}


_STOCHASTIC_SOLVERS = ["sgd", "adam"]


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


_SKLEARN_CONSTRAINTS = _sklearn_constraints()


class _SmallPredictor:
    """What a small dense prediction needs, kept on the model between calls.

    A one-row ``predict_proba`` is ~6 us of arithmetic on a (256, 256)
    float32 network; going through validation, the layer sizes, the
    memoised :class:`Network` and the flat buffer each time cost ~12 us
    of Python more. The first small prediction on the general path fills
    this with the kernel's arguments; they stay valid while ``coefs_`` /
    ``intercepts_`` are the very arrays they were made from (views of the
    flat buffer held here, so in-place edits reach it) with their shapes
    (numpy lets a view be reshaped in place, which the general path
    refuses), and ``activation`` / ``out_activation_`` are unchanged;
    anything else takes the general path, which fills it again.

    Each binding of a flat buffer (a fit, unpickling, a migration) makes a
    new, empty one; a prediction only fills the existing object, so the
    estimator's ``__dict__`` does not change in ``predict`` (scikit-learn's
    ``check_dict_unchanged``). The state is one tuple, replaced in one
    assignment, so concurrent predictions never see half of it. Never
    pickled.
    """

    __slots__ = ("state",)

    def __init__(self):
        self.state = None

    def fill(self, net, theta, coefs, intercepts, activation, out_activation):
        """Keep the kernel's arguments for ``net``, built from ``activation``,
        ``out_activation`` and the tuples ``coefs`` / ``intercepts``, which
        are views of the flat buffer ``theta``."""
        L = net.layout
        units = L.units.tolist()
        shapes = ([(units[l], units[l + 1]) for l in range(len(units) - 1)]
                  + [(u,) for u in units[1:]])
        self.state = (
            # the general path's serial criterion
            serial_predict_max_rows(L.n_weights), units[0], net.dtype,
            activation, out_activation, coefs, intercepts, shapes, units[-1],
            net.serial_args(theta))

    def __call__(self, est, X):
        """The output activations of ``X``, or None where this path does
        not apply (the caller then takes the general one)."""
        state = self.state
        if state is None:
            return None
        max_rows, n_in, dtype, activation, out_activation, coefs, intercepts, shapes, n_out, \
            args = state
        n = X.shape[0] if X.ndim == 2 else 0
        if not (0 < n <= max_rows and X.shape[1] == n_in and X.dtype == dtype
                and X.flags.c_contiguous and X.flags.writeable
                and "feature_names_in_" not in est.__dict__
                # scikit-learn's width check is against n_features_in_, which
                # a fit that failed after validating its X has changed
                and est.__dict__.get("n_features_in_", n_in) == n_in
                and est.activation == activation
                and est.out_activation_ == out_activation
                and len(est.coefs_) == len(coefs)
                and len(est.intercepts_) == len(intercepts)
                and all(map(operator.is_, est.coefs_, coefs))
                and all(map(operator.is_, est.intercepts_, intercepts))
                and [a.shape for a in coefs + intercepts] == shapes):
            return None
        out = np.empty((n, n_out), dtype=dtype)
        # scikit-learn's finiteness check, made by the kernel: on NaN or inf
        # the caller's validation raises its error.
        return out if predict_serial_rows(args, X, out) else None


# scikit-learn's indexing_dtype(numpy): the dtype of its thresholded labels
_INDEX_DTYPE = np.asarray(0).dtype


def _inverse_binarize(lb, y):
    """``lb.inverse_transform(y)`` for a model's fitted LabelBinarizer and
    its dense float outputs.

    The same numpy operations as scikit-learn's ``_inverse_binarize_multiclass``
    and ``_inverse_binarize_thresholding`` (argmax with its first-maximum and
    NaN rules; the ``(pos_label + neg_label) / 2`` threshold compared in
    ``y``'s dtype), without the checks and array-namespace dispatch around
    them: those cost ~75 us, seven times a one-row prediction. Anything
    else (a replaced binarizer, a sparse fit, unexpected shapes) goes to
    ``inverse_transform`` itself.
    """
    if type(lb) is LabelBinarizer and type(y) is np.ndarray and not lb.sparse_input_:
        classes = lb.classes_
        n_classes = classes.shape[0]
        if lb.y_type_ == "multiclass" and y.ndim == 2 and y.shape[1] == n_classes:
            # (scikit-learn clips the argmax to the classes: a no-op here, and
            # np.clip costs ~5 us)
            return classes[np.argmax(y, axis=1)]
        threshold = (lb.pos_label + lb.neg_label) / 2.0
        if lb.y_type_ == "binary" and y.ndim == 1:
            labels = np.asarray(y > threshold, dtype=_INDEX_DTYPE)
            return np.repeat(classes[0], len(labels)) if n_classes == 1 else classes[labels]
        if lb.y_type_ == "multilabel-indicator" and y.ndim == 2 and y.shape[1] == n_classes:
            return np.asarray(y > threshold, dtype=_INDEX_DTYPE)
    return lb.inverse_transform(y)


@functools.lru_cache(maxsize=32)
def _network(units, activation, out_activation, dtype):
    """The (immutable) kernel description of an architecture, memoised so
    a small prediction does not rebuild it."""
    n_hidden = len(units) - 2
    return Network(Layout(units), [ACTIVATIONS[activation]] * n_hidden,
                   HEADS[out_activation], dtype)


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
    # A plain loop over attributes first: this runs in every prediction,
    # where a one-row prediction costs ~20 us in all.
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


def _shares_best_weights(est):
    """Whether ``est``'s best weights are its ``coefs_`` list itself.

    scikit-learn restores the best weights of an early-stopping fit by
    ``self.coefs_ = self._best_coefs``, so the two are then the same arrays:
    a later warm_start fit trains them in place and, unless it finds a new
    best, its "restored best" weights are its last ones. fastmlp keeps that
    for parity, through pickling and migration both ways.
    """
    return est.__dict__.get("_best_coefs") is est.__dict__.get("coefs_", ())


def _share_best_weights(est):
    """Make ``est``'s best weights its current ``coefs_`` / ``intercepts_``."""
    est._best_coefs, est._best_intercepts = est.coefs_, est.intercepts_


def _check_weight_sums(sample_weight, starts):
    """Raise scikit-learn's ZeroDivisionError where a batch's weights (the
    runs of ``sample_weight`` from each of ``starts``) sum to zero.

    scikit-learn's loss averages each batch with ``np.average``, which raises
    it; the kernels would divide by zero and train on non-finite values.
    """
    if not np.add.reduceat(sample_weight, np.asarray(starts, dtype=np.intp)).all():
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")


class _OptimizerView:
    """What scikit-learn's ``_optimizer`` object shows, over fastmlp's state.

    scikit-learn's MLPs keep an ``SGDOptimizer`` or ``AdamOptimizer`` in
    ``_optimizer``, and code that follows a fit reads it: its tests, and
    users who watch the rate that ``learning_rate="adaptive"`` or
    ``"invscaling"`` has reached (``clf._optimizer.learning_rate``).
    fastmlp keeps the same state as a plain dict (so that pickle and skops
    files hold only built-in types); an estimator's ``_optimizer`` property
    wraps that dict in this view, made anew at each access and holding
    nothing of its own.

    It is live: ``ms``, ``vs`` and ``velocities`` are views of the state's
    flat buffers, so an in-place edit reaches the next ``partial_fit``, and
    SGD's ``learning_rate`` can be set, as on scikit-learn's object. Adam's
    ``learning_rate`` is scikit-learn's bias-corrected rate of the last
    step, computed from ``t`` by scikit-learn's formula.
    """

    def __init__(self, estimator, state):
        # __dict__ directly: __setattr__ below routes the public names.
        self.__dict__.update(_estimator=estimator, _state=state)

    @property
    def _hyper(self):
        return self._state.get("params") or self._estimator._optimizer_params()

    @property
    def _solver(self):
        return self._hyper["solver"]

    def __getattr__(self, name):
        # Called for the names the class does not define: those of one
        # kind of optimizer only, as scikit-learn's two classes have them.
        # Never for private names: copy and pickle look those up on an
        # instance without _state, and reading it would recurse.
        if name.startswith("_"):
            raise AttributeError(name)
        if self._solver == "sgd":
            if name in _SGD_SETTINGS:
                return self._hyper[_SGD_SETTINGS[name]]
            if name == "velocities":
                return self._per_layer("state1")
        else:
            if name in _ADAM_SETTINGS:
                return self._hyper[name]
            if name == "t":
                return self._state["t"]
            if name in ("ms", "vs"):
                return self._per_layer("state1" if name == "ms" else "state2")
        raise AttributeError(f"'{self._kind}' has no attribute '{name}'")

    def __setattr__(self, name, value):
        if name == "learning_rate" and self._solver == "sgd":
            self._state["learning_rate"] = float(value)
            return
        raise AttributeError(
            f"can't set '{name}': of fastmlp's optimizer state only SGD's "
            "learning_rate can be set"
        )

    @property
    def _kind(self):
        return "SGDOptimizer" if self._solver == "sgd" else "AdamOptimizer"

    def __repr__(self):
        return f"<fastmlp view of an {self._kind}: learning_rate={self.learning_rate!r}>"

    @property
    def learning_rate_init(self):
        return self._hyper["learning_rate_init"]

    @property
    def learning_rate(self):
        hp = self._hyper
        t = self._state["t"]
        if hp["solver"] == "adam" and t > 0:
            # AdamOptimizer._get_updates, the same expression
            return (hp["learning_rate_init"] * np.sqrt(1 - hp["beta_2"] ** t)
                    / (1 - hp["beta_1"] ** t))
        return self._state["learning_rate"]

    def __dir__(self):
        own = (["velocities", *_SGD_SETTINGS] if self._solver == "sgd"
               else ["t", "ms", "vs", *_ADAM_SETTINGS])
        return sorted({*super().__dir__(), *own})

    def _per_layer(self, key):
        # in the layer sizes of the fit that made the state: as in
        # scikit-learn, a later L-BFGS fit (of other sizes, maybe) leaves it
        units = self._state.get("units")
        layout = Layout(units) if units is not None else self._estimator._layout()
        coefs, intercepts = layout.views(self._state[key])
        return coefs + intercepts


# SGDOptimizer's attribute names -> keys of the settings; AdamOptimizer's
# are the keys themselves
_SGD_SETTINGS = {"lr_schedule": "schedule", "momentum": "momentum", "nesterov": "nesterov",
                 "power_t": "power_t"}
_ADAM_SETTINGS = ("beta_1", "beta_2", "epsilon")


class BaseMultilayerPerceptron(CallbackSupportMixin, BaseEstimator, ABC):
    """Base class for MLP classification and regression.

    Warning: This class should not be used directly.
    Use derived classes instead.
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in _SKLEARN_CONSTRAINTS.items() if k != "loss"},
        "n_threads": [None, Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
        "progress_bar": ["boolean"],
    }

    @abstractmethod
    def __init__(
        self,
        hidden_layer_sizes,
        activation,
        solver,
        alpha,
        batch_size,
        learning_rate,
        learning_rate_init,
        power_t,
        max_iter,
        loss,
        shuffle,
        random_state,
        tol,
        verbose,
        warm_start,
        momentum,
        nesterovs_momentum,
        early_stopping,
        validation_fraction,
        beta_1,
        beta_2,
        epsilon,
        n_iter_no_change,
        max_fun,
        n_threads=None,
        progress_bar=False,
    ):
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.n_threads = n_threads
        self.progress_bar = progress_bar

    # ------------------------------------------------------------------
    # The flat buffer behind coefs_ / intercepts_

    def _units(self):
        """Layer sizes of the fitted network (:func:`_layer_units` of
        ``coefs_`` and ``intercepts_``)."""
        return _layer_units(self.coefs_, self.intercepts_)

    def _layout(self):
        return Layout(self._units())

    def _bind(self, layout, theta):
        """Make coefs_ / intercepts_ views of the flat buffer ``theta``."""
        self._theta = theta
        self._predictor = _SmallPredictor()
        self.coefs_, self.intercepts_ = layout.views(theta)
        # The views handed out, to tell later whether coefs_ / intercepts_
        # still are them (in-place edits of a view reach theta; replacing an
        # array or the list does not).
        self._views = tuple(self.coefs_) + tuple(self.intercepts_)

    def _flat_params(self, layout, dtype, coefs=None, intercepts=None):
        """The flat buffer of ``coefs`` / ``intercepts`` (by default the
        current coefs_ / intercepts_), in ``dtype``.

        Returns the buffer the views share when they are all still in place
        (no copy); otherwise (arrays replaced by the user, another dtype)
        packs a new one.
        """
        if coefs is None:
            coefs, intercepts = self.coefs_, self.intercepts_
        theta = getattr(self, "_theta", None)
        views = getattr(self, "_views", ())
        current = tuple(coefs) + tuple(intercepts)
        if (theta is not None and theta.dtype == dtype and len(current) == len(views)
                and all(a is b for a, b in zip(current, views))):
            return theta
        return layout.pack(coefs, intercepts, dtype)

    def _network(self, layout, dtype):
        return _network(tuple(int(u) for u in layout.units), self.activation,
                        self.out_activation_, np.dtype(dtype))

    def __sklearn_is_fitted__(self):
        return hasattr(self, "coefs_")

    def _check_fitted(self):
        # check_is_fitted costs ~60 us (it builds the estimator's tags); a
        # fitted model has coefs_, so only an unfitted one pays for it,
        # getting scikit-learn's NotFittedError.
        if "coefs_" not in self.__dict__:
            check_is_fitted(self)

    def _validate_for_predict(self, X):
        """validate_data(reset=False), with a fast path for plain arrays.

        A C-contiguous float ndarray of the fitted width, for a model fitted
        without feature names, needs only a finiteness check; the generic
        validation costs ~0.4 ms, most of a small prediction. Anything else
        (or any NaN / inf) goes through validate_data and its errors.
        """
        if (type(X) is np.ndarray and X.ndim == 2 and X.shape[0] > 0
                and X.dtype in (np.float32, np.float64)
                and X.shape[1] == self.__dict__.get("n_features_in_")
                and "feature_names_in_" not in self.__dict__
                and X.flags.c_contiguous and np.isfinite(X).all()):
            return X
        return validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)

    def __getstate__(self):
        # A copy: outside sklearn.*, BaseEstimator.__getstate__ returns the
        # live __dict__, and popping from it would strip the buffer from the
        # model being pickled or copied (scikit-learn's callbacks copy it
        # every epoch).
        state = dict(super().__getstate__())
        # coefs_ / intercepts_ carry the weights; the buffer is rebuilt on load.
        state.pop("_theta", None)
        state.pop("_views", None)
        state.pop("_predictor", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "coefs_" in self.__dict__:
            # pickle keeps the identity of shared lists: after an
            # early-stopping fit the best weights are coefs_ itself
            aliased = _shares_best_weights(self)
            layout = self._layout()
            self._bind(layout, layout.pack(self.coefs_, self.intercepts_, self.coefs_[0].dtype))
            if aliased:
                _share_best_weights(self)

    # ------------------------------------------------------------------
    # Prediction

    def _forward_pass_fast(self, X, check_input=True):
        """Output-layer activations of the network for ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        check_input : bool, default=True
            Perform input data validation or not.

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_outputs)
            The network's output activations.
        """
        predictor = self.__dict__.get("_predictor")
        if predictor is not None and type(X) is np.ndarray:
            y_pred = predictor(self, X)
            if y_pred is not None:
                return y_pred
        if check_input:
            X = self._validate_for_predict(X)
        # One reading of what the prediction depends on: another thread may
        # change the model meanwhile, and the kept predictor must describe
        # the buffer it keeps.
        coefs, intercepts = tuple(self.coefs_), tuple(self.intercepts_)
        activation, out_activation = self.activation, self.out_activation_
        units = _layer_units(coefs, intercepts)  # first: it raises for inconsistent coefs_
        param_dtype = coefs[0].dtype
        dtype = X.dtype if X.dtype == param_dtype else np.result_type(X.dtype, param_dtype)
        if dtype not in (np.float32, np.float64):
            dtype = np.dtype(np.float64)
        if X.shape[1] != units[0]:
            raise ValueError(
                f"X has {X.shape[1]} features, but coefs_[0] expects {units[0]} input "
                "features.")
        net = _network(units, activation, out_activation, dtype)
        theta = self._flat_params(net.layout, dtype, coefs, intercepts)
        if type(X) is np.ndarray and X.shape[0] <= serial_predict_max_rows(net.layout.n_weights):
            # A small prediction: the serial kernels on the calling thread,
            # no thread-count switch, no work-buffer setup (see
            # _threads.SERIAL_PREDICT_MAX_WORK).
            if not (X.dtype == dtype and X.flags.c_contiguous and X.flags.writeable):
                X = np.require(X, dtype=dtype, requirements=["C", "W"])
            predictor = self.__dict__.get("_predictor")
            if (predictor is not None and theta is self.__dict__.get("_theta")
                    and "feature_names_in_" not in self.__dict__):
                # theta is the fitted buffer and coefs_ its views (a model
                # fitted with feature names always takes this path, for
                # scikit-learn's checks of the names)
                predictor.fill(net, theta, coefs, intercepts, activation, out_activation)
            return predict_serial_output(net, theta, X)
        rows = min(X.shape[0], PREDICT_CHUNK)
        with threads(resolve_threads(self.n_threads, rows * net.layout.n_weights)):
            return predict_output(net, theta, Inputs(X, dtype))

    # ------------------------------------------------------------------
    # Fitting

    def _initialize(self, y, layer_units, dtype, random_state):
        # set all attributes, allocate weights etc. for first call
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)

        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:  # binary and multilabel
            self.out_activation_ = "logistic"

        layout = Layout(layer_units)
        self._bind(layout, layout.glorot_init(random_state, dtype, self.activation))
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]
        self.history_ = []

        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
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
        hidden_layer_sizes = [operator.index(h) for h in hidden_layer_sizes]
        first_pass = not hasattr(self, "coefs_") or (
            not self.warm_start and not incremental
        )

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if not first_pass:
            # Training goes on in the fitted weights' dtype, whatever X's
            # (scikit-learn updates its coefs_ in place, keeping their dtype).
            self._units()  # first: it raises for inconsistent coefs_
            dtype = self.coefs_[0].dtype
            if dtype in (np.float32, np.float64) and X.dtype != dtype:
                X = X.astype(dtype) if sp.issparse(X) else np.asarray(X, dtype, order="C")
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)

        if y.ndim == 1:
            y = y.reshape((-1, 1))

        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]

        random_state = check_random_state(self.random_state)

        if first_pass:
            self._initialize(y, layer_units, X.dtype, random_state)

        layout = Layout(layer_units)
        old_units = list(self._units())
        if old_units != list(layer_units):
            raise ValueError(
                "warm_start and partial_fit need the layer sizes of the fitted "
                f"network {old_units}; got {layer_units}. Set warm_start=False "
                "to train a new network."
            )
        theta = self._flat_params(layout, X.dtype)
        self._bind(layout, theta)
        net = self._network(layout, X.dtype)

        # y stays as validated (bool for classifiers, as scikit-learn keeps
        # it, so the early-stopping split stratifies identically); the
        # engine casts it to the parameter dtype.
        if self.solver == "lbfgs" or self.batch_size == "auto":
            rows = n_samples if self.solver == "lbfgs" else min(200, n_samples)
        else:
            rows = min(self.batch_size, n_samples)
        if not hasattr(self, "history_"):  # a model from from_sklearn
            self.history_ = []
        # callbacks see the user's labels, not their binarized form
        y_user = (lambda: self._label_binarizer.inverse_transform(y)) if is_classifier(self) else y
        context = None
        if HAS_SKLEARN_CALLBACKS and not incremental and hasattr(self, "_skl_callbacks"):
            # one subtask per epoch; L-BFGS has one more, begun but never run
            context = self._init_callback_context(
                max_subtasks=self.max_iter + (self.solver == "lbfgs"))
            context.call_on_fit_task_begin(estimator=self, X=X, y=y_user)
        monitor = TrainingMonitor(
            self, context=context, X=X, y=y_user, total=self.max_iter,
            task="lbfgs-iter" if self.solver == "lbfgs" else "epoch",
            progress_bar=self.progress_bar,
        )
        with monitor, threads(resolve_threads(self.n_threads, rows * layout.n_weights)):
            if self.solver in _STOCHASTIC_SOLVERS:
                self._fit_stochastic(X, y, sample_weight, net, theta, incremental,
                                     random_state, monitor)
            elif self.solver == "lbfgs":
                self._fit_lbfgs(X, y, sample_weight, net, theta, monitor)
        if context is not None:
            context.call_on_fit_task_end(
                estimator=self, X=X, y=monitor.y,
                reconstruction_attributes=monitor._reconstruction_attributes)

        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _fit_lbfgs(self, X, y, sample_weight, net, theta, monitor):
        if sample_weight is None:
            sample_weight = np.ones(X.shape[0], dtype=X.dtype)
        else:
            _check_weight_sums(sample_weight, [0])
        objective = FullBatchObjective(net, Inputs(X, X.dtype), y, sample_weight, self.alpha)

        if self.verbose is True or self.verbose >= 1:
            iprint = 1
        else:
            iprint = -1

        def callback(intermediate_result):
            # scipy calls this after each iteration; its iterate becomes the
            # weights the callbacks see.
            theta[...] = intermediate_result.x
            if monitor.end(loss=intermediate_result.fun):
                raise StopIteration  # a callback asked to stop
            monitor.begin()

        monitor.begin()
        opt_res = scipy.optimize.minimize(
            objective,
            theta.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={
                "maxfun": self.max_fun,
                "maxiter": self.max_iter,
                "gtol": self.tol,
                **_get_additional_lbfgs_options_dict("iprint", iprint),
            },
        )
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = np.float64(opt_res.fun)
        theta[...] = opt_res.x

    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight, activations, deltas,
                         coef_grads, intercept_grads):
        """scikit-learn's private L-BFGS objective, for code written against it.

        scikit-learn's own ``test_gradient`` checks the gradient against
        central differences through it. As there, the parameters become
        the model's weights, and the gradient's blocks replace the items
        of ``coef_grads`` and ``intercept_grads``; the loss and gradient
        are those fastmlp's L-BFGS fits use.

        Parameters
        ----------
        packed_coef_inter : ndarray of shape (n_params,)
            Every ``coefs_[i]`` raveled, then every ``intercepts_[i]``
            (scikit-learn's order, not fastmlp's flat buffer's).
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The network's targets (a classifier's binarized labels).
        sample_weight : array-like of shape (n_samples,) or None
            Sample weights.
        activations, deltas : list
            scikit-learn's work arrays; not used (the kernels have their own).
        coef_grads, intercept_grads : list
            One item per layer, replaced by the gradient's blocks.

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_params,)
            The gradient, packed as ``packed_coef_inter``.
        """
        layout = self._layout()
        dtype = self.coefs_[0].dtype
        shapes = [c.shape for c in self.coefs_] + [b.shape for b in self.intercepts_]
        packed = column_or_1d(packed_coef_inter)
        if packed.shape[0] != layout.size:
            raise ValueError(f"packed_coef_inter has {packed.shape[0]} values, the network "
                             f"{layout.size} parameters.")
        ends = np.cumsum([int(np.prod(s)) for s in shapes])
        blocks = [b.reshape(s) for b, s in zip(np.split(packed, ends[:-1]), shapes)]
        n = len(self.coefs_)
        self._theta[...] = layout.pack(blocks[:n], blocks[n:], dtype)

        X = check_array(X, accept_sparse=["csr", "csc"], dtype=dtype)
        Y = np.asarray(y, dtype=dtype).reshape(X.shape[0], -1)
        if Y.shape[1] != layout.units[-1]:
            raise ValueError(f"y has {Y.shape[1]} outputs, the network {layout.units[-1]}.")
        sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype)
        objective = FullBatchObjective(self._network(layout, dtype), Inputs(X, dtype), Y,
                                       sample_weight, self.alpha)
        loss, grad = objective(self._theta)
        coefs, intercepts = layout.views(grad)
        coef_grads[:n] = coefs
        intercept_grads[:n] = intercepts
        return loss, np.hstack([g.ravel() for g in coefs + intercepts])

    def _optimizer_params(self):
        """The settings scikit-learn's optimizer objects take at creation."""
        return {"solver": self.solver, "learning_rate_init": self.learning_rate_init,
                "schedule": self.learning_rate, "power_t": self.power_t,
                "momentum": self.momentum, "nesterov": self.nesterovs_momentum,
                "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    @property
    def _optimizer(self):
        """scikit-learn's ``_optimizer``, as a live :class:`_OptimizerView`.

        The state itself is a dict in ``__dict__["_optimizer"]`` (what
        pickle and skops store); as in scikit-learn, there is none before
        the first fit with ``solver="sgd"`` or ``"adam"``.
        """
        state = self.__dict__.get("_optimizer")
        if state is None:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute '_optimizer'")
        return _OptimizerView(self, state)

    @_optimizer.setter
    def _optimizer(self, state):
        # another model's view (scikit-learn shares the object): its state
        if isinstance(state, _OptimizerView):
            state = state._state
        if not isinstance(state, dict):
            raise TypeError(
                "fastmlp keeps its optimizer state as a dict (read through the view "
                f"that _optimizer returns), not {type(state).__name__}; from_sklearn "
                "takes over a scikit-learn model's optimizer.")
        self.__dict__["_optimizer"] = state

    @_optimizer.deleter
    def _optimizer(self):
        # the next partial_fit starts a new optimizer, as in scikit-learn
        if self.__dict__.pop("_optimizer", None) is None:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute '_optimizer'")

    def _new_optimizer_state(self):
        return {"learning_rate": float(self.learning_rate_init), "t": 0, "state1": None,
                "state2": None, "params": self._optimizer_params()}

    def _fit_stochastic(self, X, y, sample_weight, net, theta, incremental, random_state,
                        monitor):
        # As scikit-learn: a fit makes a new optimizer, partial_fit goes on
        # with the one it has. Its settings are those of its creation, so
        # set_params between partial_fit calls (even of the solver) does
        # not reach it.
        opt = self.__dict__.get("_optimizer")
        if not incremental or opt is None:
            opt = self._new_optimizer_state()
        # (an optimizer unpickled from before the settings were kept, or
        # taken over from scikit-learn without them: the current ones)
        hp = opt.setdefault("params", self._optimizer_params())

        # early_stopping in partial_fit doesn't make sense
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # don't stratify in multilabel classification
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=random_state,
                    test_size=self.validation_fraction, stratify=stratify,
                )
                sample_weight_train = sample_weight_val = None
            else:
                (X_train, X_val, y_train, y_val, sample_weight_train,
                 sample_weight_val) = train_test_split(
                    X, y, sample_weight, random_state=random_state,
                    test_size=self.validation_fraction, stratify=stratify,
                )
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = sample_weight_val = None

        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.int64)

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        if sample_weight_train is None:
            sample_weight_train = np.ones(n_samples, dtype=X.dtype)
        # only then can a batch's weights sum to zero (checked per epoch order)
        zero_weights = not (sample_weight_train > 0).all()
        trainer = StochasticTrainer(
            net, Inputs(X_train, X.dtype), y_train, sample_weight_train, batch_size,
            SOLVERS[hp["solver"]], alpha=self.alpha,
            learning_rate_init=hp["learning_rate_init"], momentum=hp["momentum"],
            nesterov=hp["nesterov"], beta_1=hp["beta_1"], beta_2=hp["beta_2"],
            epsilon=hp["epsilon"],
        )
        if opt["state1"] is not None:
            trainer.state1[...] = opt["state1"]
            trainer.state2[...] = opt["state2"]
        trainer.step[0] = opt["t"]
        trainer.set_learning_rate(opt["learning_rate"])

        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                monitor.begin()
                epoch_learning_rate = opt["learning_rate"]
                if self.shuffle:
                    # sklearn.utils.shuffle draws exactly rs.permutation(n).
                    sample_idx = sample_idx[random_state.permutation(n_samples)]
                if zero_weights:
                    _check_weight_sums(sample_weight_train[sample_idx],
                                       range(0, n_samples, batch_size))

                self.loss_ = np.float64(trainer.run_epoch(theta, sample_idx,
                                                          shuffled=self.shuffle))
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                self._update_no_improvement_count(
                    early_stopping, X_val, y_val, sample_weight_val
                )
                callback_stop = monitor.end(
                    loss=self.loss_,
                    validation_score=self.validation_scores_[-1] if early_stopping else None,
                    learning_rate=epoch_learning_rate,
                )

                # learning rate schedules act at the end of an epoch
                if hp["solver"] == "sgd" and hp["schedule"] == "invscaling":
                    opt["learning_rate"] = (
                        float(hp["learning_rate_init"]) / (self.t_ + 1) ** hp["power_t"]
                    )
                    trainer.set_learning_rate(opt["learning_rate"])

                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = (
                            "Validation score did not improve more than "
                            "tol=%f for %d consecutive epochs."
                            % (self.tol, self.n_iter_no_change)
                        )
                    else:
                        msg = (
                            "Training loss did not improve more than tol=%f"
                            " for %d consecutive epochs."
                            % (self.tol, self.n_iter_no_change)
                        )
                    if self._trigger_stopping(opt, msg):
                        break
                    trainer.set_learning_rate(opt["learning_rate"])
                    self._no_improvement_count = 0

                if incremental or callback_stop:
                    break

                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) "
                        "reached and the optimization hasn't converged yet."
                        % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")

        opt["t"] = int(trainer.step[0])
        opt["state1"] = trainer.state1
        opt["state2"] = trainer.state2
        opt["units"] = [int(u) for u in net.layout.units]
        self._optimizer = opt

        if early_stopping:
            # restore best weights
            theta[...] = net.layout.pack(self._best_coefs, self._best_intercepts, theta.dtype)
            # as scikit-learn, which restores them by assignment
            _share_best_weights(self)

    def _trigger_stopping(self, opt, msg):
        """scikit-learn's optimizer ``trigger_stopping``: stop, or cut the rate."""
        hp = opt["params"]
        if hp["solver"] == "adam" or hp["schedule"] != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if opt["learning_rate"] <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        opt["learning_rate"] /= 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % opt["learning_rate"])
        return False

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            # compute validation score (can be NaN), use that for stopping
            val_score = self._score(X, y, sample_weight=sample_weight)

            self.validation_scores_.append(val_score)

            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            last_valid_score = self.validation_scores_[-1]

            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0

            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [i.copy() for i in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @with_callbacks
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : ndarray or sparse matrix of shape (n_samples, n_features)
            The input data.

        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Returns a trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic"
                " optimizers. %s is not stochastic." % self.solver
            )
        return True

    def _score_with_function(self, X, y, sample_weight, score_function):
        """Private score method without input validation."""
        # Input validation would remove feature names, so we disable it
        y_pred = self._predict(X, check_input=False)

        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan

        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------
    # Migration from and to scikit-learn

    _FITTED_ATTRIBUTES = (
        "n_iter_", "t_", "n_outputs_", "n_layers_", "out_activation_", "loss_",
        "best_loss_", "loss_curve_", "validation_scores_", "best_validation_score_",
        "n_features_in_", "feature_names_in_", "classes_", "_label_binarizer",
        "_no_improvement_count",
    )

    @classmethod
    def from_sklearn(cls, estimator):
        """Build a fitted fastmlp estimator from a fitted scikit-learn one.

        Parameters
        ----------
        estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
            A fitted scikit-learn estimator of the matching kind.

        Returns
        -------
        model : MLPClassifier or MLPRegressor
            A fastmlp estimator with the same parameters, identical weights
            (same dtype) and the same fitted attributes, including the
            stochastic optimizer's state, so ``partial_fit`` continues where
            scikit-learn stopped.
        """
        import copy

        check_is_fitted(estimator)
        wants_classifier = is_classifier(cls())
        if is_classifier(estimator) != wants_classifier:
            raise TypeError(
                f"{cls.__name__}.from_sklearn needs a fitted "
                f"{'classifier' if wants_classifier else 'regressor'}, got "
                f"{type(estimator).__name__}."
            )
        own = set(cls._get_param_names())
        params = {k: v for k, v in estimator.get_params(deep=False).items() if k in own}
        model = cls(**params)
        for name in cls._FITTED_ATTRIBUTES:
            if hasattr(estimator, name):
                setattr(model, name, copy.deepcopy(getattr(estimator, name)))
        units = _layer_units(estimator.coefs_, estimator.intercepts_)
        layout = Layout(units)
        dtype = estimator.coefs_[0].dtype
        model._bind(layout, layout.pack(estimator.coefs_, estimator.intercepts_, dtype))
        if _shares_best_weights(estimator):
            _share_best_weights(model)
        else:
            model._best_coefs = [
                c.copy() for c in getattr(estimator, "_best_coefs", model.coefs_)]
            model._best_intercepts = [
                c.copy() for c in getattr(estimator, "_best_intercepts", model.intercepts_)]
        sk_opt = getattr(estimator, "_optimizer", None)
        if sk_opt is not None and estimator.solver in _STOCHASTIC_SOLVERS:
            # the settings scikit-learn's optimizer object was made with (its
            # kind too: set_params(solver=...) does not replace it)
            kind = "sgd" if hasattr(sk_opt, "velocities") else "adam"
            opt = {"learning_rate": float(sk_opt.learning_rate), "t": 0, "state1": None,
                   "state2": None, "units": [int(u) for u in units],
                   "params": {**model._optimizer_params(), "solver": kind,
                              "learning_rate_init": sk_opt.learning_rate_init}}
            if kind == "sgd":
                opt["params"].update(schedule=sk_opt.lr_schedule, power_t=sk_opt.power_t,
                                     momentum=sk_opt.momentum, nesterov=sk_opt.nesterov)
                opt["state1"] = layout.pack(sk_opt.velocities[: len(units) - 1],
                                            sk_opt.velocities[len(units) - 1 :], dtype)
                opt["state2"] = np.zeros(1, dtype=dtype)
            else:
                opt["params"].update(beta_1=sk_opt.beta_1, beta_2=sk_opt.beta_2,
                                     epsilon=sk_opt.epsilon)
                n = len(units) - 1
                opt["t"] = int(sk_opt.t)
                opt["state1"] = layout.pack(sk_opt.ms[:n], sk_opt.ms[n:], dtype)
                opt["state2"] = layout.pack(sk_opt.vs[:n], sk_opt.vs[n:], dtype)
            model._optimizer = opt
        return model

    def to_sklearn(self):
        """A fitted scikit-learn estimator with this model's weights.

        Returns
        -------
        estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
            Predicts as this model to rounding (same weights, same dtype;
            scikit-learn's matrix products sum in another order), so
            tools that understand scikit-learn's MLP (skl2onnx, for one)
            can use it. Parameters that scikit-learn does not have are
            dropped.
        """
        import copy

        from sklearn import neural_network

        check_is_fitted(self)
        sk_cls = getattr(neural_network, type(self)._sklearn_name)
        own = set(sk_cls._get_param_names())
        est = sk_cls(**{k: v for k, v in self.get_params(deep=False).items() if k in own})
        for name in self._FITTED_ATTRIBUTES:
            if name in self.__dict__:
                setattr(est, name, copy.deepcopy(getattr(self, name)))
        est.coefs_ = [c.copy() for c in self.coefs_]
        est.intercepts_ = [b.copy() for b in self.intercepts_]
        if _shares_best_weights(self):
            _share_best_weights(est)
        elif hasattr(self, "_best_coefs"):
            est._best_coefs = [c.copy() for c in self._best_coefs]
            est._best_intercepts = [c.copy() for c in self._best_intercepts]
        opt = self.__dict__.get("_optimizer")
        if opt is not None and opt["state1"] is not None:
            est._optimizer = self._sklearn_optimizer(opt, est.coefs_ + est.intercepts_)
        return est

    def _sklearn_optimizer(self, opt, params):
        """scikit-learn's optimizer object with the state of ``opt`` (the
        inverse of what :meth:`from_sklearn` takes over), so its partial_fit
        goes on where this model's would."""
        from sklearn.neural_network._stochastic_optimizers import (
            AdamOptimizer,
            SGDOptimizer,
        )

        view = _OptimizerView(self, opt)
        hp = view._hyper

        def per_layer(name):
            return [np.array(a, dtype=self.coefs_[0].dtype) for a in getattr(view, name)]

        if hp["solver"] == "sgd":
            sk_opt = SGDOptimizer(params, hp["learning_rate_init"], hp["schedule"],
                                  hp["momentum"], hp["nesterov"], hp["power_t"])
            sk_opt.velocities = per_layer("velocities")
        else:
            sk_opt = AdamOptimizer(params, hp["learning_rate_init"], hp["beta_1"],
                                   hp["beta_2"], hp["epsilon"])
            sk_opt.t = opt["t"]
            sk_opt.ms = per_layer("ms")
            sk_opt.vs = per_layer("vs")
        sk_opt.learning_rate = opt["learning_rate"]
        return sk_opt


_PARAMETERS_DOC = """
    hidden_layer_sizes : array-like of shape(n_layers - 2,), default=(100,)
        The ith element represents the number of neurons in the ith
        hidden layer.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function for the hidden layer.

        - 'identity', no-op activation, useful to implement linear bottleneck,
          returns f(x) = x

        - 'logistic', the logistic sigmoid function,
          returns f(x) = 1 / (1 + exp(-x)).

        - 'tanh', the hyperbolic tan function,
          returns f(x) = tanh(x).

        - 'relu', the rectified linear unit function,
          returns f(x) = max(0, x)

    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The solver for weight optimization.

        - 'lbfgs' is an optimizer in the family of quasi-Newton methods
          (scipy's L-BFGS-B, run directly on the flat parameter buffer).

        - 'sgd' refers to stochastic gradient descent.

        - 'adam' refers to a stochastic gradient-based optimizer proposed
          by Kingma, Diederik, and Jimmy Ba

    alpha : float, default=0.0001
        Strength of the L2 regularization term. The L2 regularization term
        is divided by the sample size when added to the loss.

    batch_size : int, default='auto'
        Size of minibatches for stochastic optimizers.
        If the solver is 'lbfgs', the model will not use minibatch.
        When set to "auto", `batch_size=min(200, n_samples)`.

    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning rate schedule for weight updates. Only used when
        ``solver='sgd'``.

        - 'constant' is a constant learning rate given by
          'learning_rate_init'.

        - 'invscaling' gradually decreases the learning rate at each
          time step 't' using an inverse scaling exponent of 'power_t'.
          effective_learning_rate = learning_rate_init / pow(t, power_t)

        - 'adaptive' keeps the learning rate constant to
          'learning_rate_init' as long as training loss keeps decreasing.
          Each time two consecutive epochs fail to decrease training loss by at
          least tol, or fail to increase validation score by at least tol if
          'early_stopping' is on, the current learning rate is divided by 5.

    learning_rate_init : float, default=0.001
        The initial learning rate used. It controls the step-size
        in updating the weights. Only used when solver='sgd' or 'adam'.

    power_t : float, default=0.5
        The exponent for inverse scaling learning rate.
        It is used in updating effective learning rate when the learning_rate
        is set to 'invscaling'. Only used when solver='sgd'.

    max_iter : int, default=200
        Maximum number of iterations. The solver iterates until convergence
        (determined by 'tol') or this number of iterations. For stochastic
        solvers ('sgd', 'adam'), note that this determines the number of epochs
        (how many times each data point will be used), not the number of
        gradient steps.

    shuffle : bool, default=True
        Whether to shuffle samples in each iteration. Only used when
        solver='sgd' or 'adam'.

    random_state : int, RandomState instance, default=None
        Determines random number generation for weights and bias
        initialization, train-test split if early stopping is used, and batch
        sampling when solver='sgd' or 'adam'. The draws are scikit-learn's, so
        the same seed gives the same initial weights and sample order as
        scikit-learn, and the same model bit for bit run to run and for any
        number of threads.

    tol : float, default=1e-4
        Tolerance for the optimization. When the loss or score is not improving
        by at least ``tol`` for ``n_iter_no_change`` consecutive iterations,
        unless ``learning_rate`` is set to 'adaptive', convergence is
        considered to be reached and training stops.

    verbose : bool, default=False
        Whether to print progress messages to stdout.

    warm_start : bool, default=False
        When set to True, reuse the solution of the previous
        call to fit as initialization, otherwise, just erase the
        previous solution.

    momentum : float, default=0.9
        Momentum for gradient descent update. Should be between 0 and 1. Only
        used when solver='sgd'.

    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum. Only used when solver='sgd' and
        momentum > 0.

    early_stopping : bool, default=False
        Whether to use early stopping to terminate training when validation
        score is not improving. If set to true, it will automatically set
        aside ``validation_fraction`` of training data as validation and
        terminate training when validation score is not improving by at least
        ``tol`` for ``n_iter_no_change`` consecutive epochs. The split is
        stratified for single-output classification. The best weights are
        restored at the end. Only effective when solver='sgd' or 'adam'.

    validation_fraction : float, default=0.1
        The proportion of training data to set aside as validation set for
        early stopping. Must be between 0 and 1.
        Only used if early_stopping is True.

    beta_1 : float, default=0.9
        Exponential decay rate for estimates of first moment vector in adam,
        should be in [0, 1). Only used when solver='adam'.

    beta_2 : float, default=0.999
        Exponential decay rate for estimates of second moment vector in adam,
        should be in [0, 1). Only used when solver='adam'.

    epsilon : float, default=1e-8
        Value for numerical stability in adam. Only used when solver='adam'.

    n_iter_no_change : int, default=10
        Maximum number of epochs to not meet ``tol`` improvement.
        Only effective when solver='sgd' or 'adam'.

    max_fun : int, default=15000
        Only used when solver='lbfgs'. Maximum number of loss function calls.
        The solver iterates until convergence (determined by 'tol'), number
        of iterations reaches max_iter, or this number of loss function calls.
        Note that number of loss function calls will be greater than or equal
        to the number of iterations for the `MLPClassifier`.

    n_threads : int, default=None
        Threads used by the compiled kernels in fit and predict (fastmlp
        only; scikit-learn has no such parameter). None uses every thread of
        Numba's pool (``NUMBA_NUM_THREADS``), capped by ``OMP_NUM_THREADS``
        when the environment sets it, as joblib and dask workers do; -1 is
        the same. A positive count is capped likewise. Small work (one
        forward pass of a batch under about a million multiply-adds) always
        runs on one thread, where synchronising threads costs more than it
        saves. Results are bit-identical for every thread count.

    progress_bar : bool, default=False
        Show a tqdm progress bar over epochs (L-BFGS: iterations) with the
        current loss and validation score (fastmlp only; needs ``tqdm``).
"""

_ATTRIBUTES_DOC = """
    loss_ : float
        The current loss computed with the loss function.

    best_loss_ : float or None
        The minimum loss reached by the solver throughout fitting.
        If `early_stopping=True`, this attribute is set to `None`. Refer to
        the `best_validation_score_` fitted attribute instead.
        Only accessible when solver='sgd' or 'adam'.

    loss_curve_ : list of shape (`n_iter_`,)
        Loss value evaluated at the end of each training step.
        The ith element in the list represents the loss at the ith iteration.
        Only accessible when solver='sgd' or 'adam'.

    validation_scores_ : list of shape (`n_iter_`,) or None
        The score at each iteration on a held-out validation set. The score
        reported is the {score_name}. Only available if `early_stopping=True`,
        otherwise the attribute is set to `None`.
        Only accessible when solver='sgd' or 'adam'.

    best_validation_score_ : float or None
        The best validation score (i.e. {score_name}) that triggered the
        early stopping. Only available if `early_stopping=True`, otherwise the
        attribute is set to `None`.
        Only accessible when solver='sgd' or 'adam'.

    t_ : int
        The number of training samples seen by the solver during fitting.
        Mathematically equals `n_iters * X.shape[0]`, it means
        `time_step` and it is used by optimizer's learning rate scheduler.

    coefs_ : list of shape (n_layers - 1,)
        The ith element in the list represents the weight matrix corresponding
        to layer i. All of them are views of one flat parameter buffer.

    intercepts_ : list of shape (n_layers - 1,)
        The ith element in the list represents the bias vector corresponding to
        layer i + 1.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    n_iter_ : int
        The number of iterations the solver has run.

    n_layers_ : int
        Number of layers.

    n_outputs_ : int
        Number of outputs.

    out_activation_ : str
        Name of the output activation function.

    history_ : list of dict
        One record per epoch (L-BFGS: per iteration) with keys ``'epoch'``
        (counted across warm starts and partial_fit calls), ``'loss'``,
        ``'validation_score'`` (None without early stopping),
        ``'learning_rate'`` (the base rate of the epoch; None for L-BFGS) and
        ``'seconds'`` (wall time of the epoch). fastmlp only.
"""

_NOTES_DOC = """
    Notes
    -----
    fastmlp is a drop-in replacement for scikit-learn's estimator of the same
    name: same parameters, defaults, fitted attributes, methods, warnings and
    errors. Training runs in Numba-compiled kernels over one flat buffer of
    all weights and biases; a whole epoch is one compiled call.

    float32 input is trained and predicted in float32 end to end, for every
    solver (scikit-learn's 'lbfgs' solver returns float64 weights for float32
    input; fastmlp keeps them float32). Other numeric input is cast to
    float64.

    Use :meth:`from_sklearn` and :meth:`to_sklearn` to convert fitted models
    in either direction; predictions agree to rounding both ways.
"""


class MLPClassifier(ClassifierMixin, BaseMultilayerPerceptron):
    __doc__ = (
        """Multi-layer Perceptron classifier.

    This model optimizes the log-loss function using LBFGS or stochastic
    gradient descent.

    Parameters
    ----------"""
        + _PARAMETERS_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray or list of ndarray of shape (n_classes,)
        Class labels for each output.
"""
        + _ATTRIBUTES_DOC.format(score_name="accuracy")
        + """
    See Also
    --------
    MLPRegressor : Multi-layer Perceptron regressor.
    sklearn.neural_network.MLPClassifier : The scikit-learn estimator this
        one replaces.
"""
        + _NOTES_DOC
        + """
    Examples
    --------
    >>> from fastmlp import MLPClassifier
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.model_selection import train_test_split
    >>> X, y = make_classification(n_samples=100, random_state=1)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y,
    ...                                                     random_state=1)
    >>> clf = MLPClassifier(random_state=1, max_iter=300).fit(X_train, y_train)
    >>> clf.predict(X_test[:5, :]).shape
    (5,)
    """
    )

    _sklearn_name = "MLPClassifier"
    # scikit-learn sets ``loss`` in __init__ without making it a parameter.
    loss = "log_loss"

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        n_threads=None,
        progress_bar=False,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            loss="log_loss",
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            n_threads=n_threads,
            progress_bar=progress_bar,
        )

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
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
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )

        # bool keeps float32 data from being upcast
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def predict(self, X):
        """Predict using the multi-layer perceptron classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray, shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        self._check_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        """Private predict method with optional input validation"""
        y_pred = self._forward_pass_fast(X, check_input=check_input)

        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()

        return _inverse_binarize(self._label_binarizer, y_pred)

    def _score(self, X, y, sample_weight=None):
        return super()._score_with_function(
            X, y, sample_weight=sample_weight, score_function=accuracy_score
        )

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        y : array-like of shape (n_samples,)
            The target values.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit.
            Can be obtained via `np.unique(y_all)`, where y_all is the
            target vector of the entire dataset.
            This argument is required for the first call to partial_fit
            and can be omitted in the subsequent calls.
            Note that y doesn't need to contain all labels in `classes`.

        Returns
        -------
        self : object
            Trained MLP model.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)

        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X):
        """Return the log of probability estimates.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            The predicted log-probability of the sample for each class
            in the model, where classes are ordered as they are in
            `self.classes_`. Equivalent to `log(predict_proba(X))`.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The predicted probability of the sample for each class in the
            model, where classes are ordered as they are in `self.classes_`.
        """
        self._check_fitted()
        y_pred = self._forward_pass_fast(X)

        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()

        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        else:
            return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMultilayerPerceptron):
    __doc__ = (
        """Multi-layer Perceptron regressor.

    This model optimizes the squared error using LBFGS or stochastic gradient
    descent.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        The loss function to use when training the weights. Note that the
        "squared error" and "poisson" losses actually implement
        "half squares error" and "half poisson deviance" to simplify the
        computation of the gradient. Furthermore, the "poisson" loss internally
        uses a log-link (exponential as the output activation function) and
        requires ``y >= 0``.
"""
        + _PARAMETERS_DOC
        + """
    Attributes
    ----------"""
        + _ATTRIBUTES_DOC.format(score_name="coefficient of determination")
        + """
    See Also
    --------
    MLPClassifier : Multi-layer Perceptron classifier.
    sklearn.neural_network.MLPRegressor : The scikit-learn estimator this
        one replaces.
"""
        + _NOTES_DOC
        + """
    Examples
    --------
    >>> from fastmlp import MLPRegressor
    >>> from sklearn.datasets import make_regression
    >>> X, y = make_regression(n_samples=200, n_features=20, random_state=1)
    >>> regr = MLPRegressor(random_state=1, max_iter=2000, tol=0.1).fit(X, y)
    >>> regr.predict(X[:2]).shape
    (2,)
    """
    )

    _sklearn_name = "MLPRegressor"

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": _SKLEARN_CONSTRAINTS["loss"],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        n_threads=None,
        progress_bar=False,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            loss=loss,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            n_threads=n_threads,
            progress_bar=progress_bar,
        )

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples, n_outputs)
            The predicted values.
        """
        self._check_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        """Private predict method with optional input validation"""
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return super()._score_with_function(
            X, y, sample_weight=sample_weight, score_function=r2_score
        )

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
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

    # scikit-learn passes the method itself (always truthy) rather than
    # calling it, so partial_fit is available for every solver and with
    # 'lbfgs' runs a full L-BFGS fit. Kept for drop-in compatibility.
    @available_if(lambda est: est._check_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        y : ndarray of shape (n_samples,)
            The target values.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
