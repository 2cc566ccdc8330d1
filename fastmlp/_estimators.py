"""scikit-learn estimators: MLPClassifier and MLPRegressor.

The estimator classes, defined here so that pickles and skops files keep
naming them ``fastmlp._estimators.MLPClassifier`` / ``MLPRegressor``, and
their base class: parameters, the flat buffer behind ``coefs_`` /
``intercepts_``, pickling, and the public methods. The work is in the
modules below, each with one job, all written to scikit-learn 1.9's
``sklearn.neural_network`` so that inputs, errors, traces and fitted
attributes match:

- ``_validation``: parameter constraints, input and weight checks, labels;
- ``_predict``: the forward pass (and the small-prediction fast path);
- ``_fit``: the fit loops, schedules, stopping rules, early stopping;
- ``_interop``: from_sklearn / to_sklearn and scikit-learn's private
  members (``_optimizer``, ``_loss_grad_lbfgs``);
- ``_docstrings``: the shared docstring fragments.
"""

from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
)
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target
from sklearn.utils.validation import check_is_fitted

from ._docstrings import (
    _ATTRIBUTES_DOC,
    _CLASSIFIER_PARAMETERS_DOC,
    _FASTMLP_PARAMETERS_DOC,
    _NOTES_DOC,
    _PARAMETERS_DOC,
)
from ._fit import _STOCHASTIC_SOLVERS, _FitMixin, _share_best_weights, _shares_best_weights
from ._interop import _InteropMixin
from ._layout import Layout
from ._monitor import CallbackSupportMixin, with_callbacks
from ._predict import _PredictMixin, _SmallPredictor
from ._validation import (
    CONSTRAINTS,
    _class_sample_weight,
    _smooth_labels,
    _inverse_binarize,
    _layer_units,
    _validate_classifier_data,
    _validate_regressor_data,
)


class BaseMultilayerPerceptron(CallbackSupportMixin, _InteropMixin, _FitMixin, _PredictMixin,
                               BaseEstimator, ABC):
    """Base class for MLP classification and regression.

    Warning: This class should not be used directly.
    Use derived classes instead.

    Fitting, prediction and migration come from the mixins of ``_fit``,
    ``_predict`` and ``_interop``; this class holds the parameters and the
    flat buffer behind ``coefs_`` / ``intercepts_``.
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in CONSTRAINTS.items() if k != "loss"},
        "dropout": [Interval(Real, 0, 1, closed="left"), list, tuple],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "lr_warmup": [Interval(Real, 0, None, closed="left")],
        "clip_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
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
        dropout=0.0,
        weight_decay=0.0,
        lr_warmup=0.0,
        clip_grad_norm=None,
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
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.lr_warmup = lr_warmup
        self.clip_grad_norm = clip_grad_norm
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

    def __sklearn_is_fitted__(self):
        return hasattr(self, "coefs_")

    def _check_fitted(self):
        # check_is_fitted builds the estimator's tags, a large part of a
        # small prediction; a fitted model has coefs_, so only an unfitted
        # one pays for it, getting scikit-learn's NotFittedError.
        if "coefs_" not in self.__dict__:
            check_is_fitted(self)

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
    # Fitting (the loops are _FitMixin's)

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



class MLPClassifier(ClassifierMixin, BaseMultilayerPerceptron):
    __doc__ = (
        """Multi-layer Perceptron classifier.

    This model optimizes the log-loss function using LBFGS or stochastic
    gradient descent.

    Parameters
    ----------"""
        + _PARAMETERS_DOC
        + _CLASSIFIER_PARAMETERS_DOC
        + _FASTMLP_PARAMETERS_DOC
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

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    }

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
        class_weight=None,
        label_smoothing=0.0,
        dropout=0.0,
        weight_decay=0.0,
        lr_warmup=0.0,
        clip_grad_norm=None,
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
            dropout=dropout,
            weight_decay=weight_decay,
            lr_warmup=lr_warmup,
            clip_grad_norm=clip_grad_norm,
            n_threads=n_threads,
            progress_bar=progress_bar,
        )
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing

    def _validate_input(self, X, y, incremental, reset):
        return _validate_classifier_data(self, X, y, incremental, reset)

    def _weigh_samples(self, X, y, sample_weight, incremental):
        return _class_sample_weight(self, X, y, sample_weight, incremental)

    def _training_targets(self, y):
        return _smooth_labels(self, y)

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
        + _FASTMLP_PARAMETERS_DOC
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
        "loss": CONSTRAINTS["loss"],
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
        dropout=0.0,
        weight_decay=0.0,
        lr_warmup=0.0,
        clip_grad_norm=None,
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
            dropout=dropout,
            weight_decay=weight_decay,
            lr_warmup=lr_warmup,
            clip_grad_norm=clip_grad_norm,
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
        return _validate_regressor_data(self, X, y, reset)

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
