"""Migration to and from scikit-learn, and the private members its code reads.

:class:`_InteropMixin` gives the estimators :meth:`~_InteropMixin.from_sklearn`,
:meth:`~_InteropMixin.to_sklearn`, scikit-learn's ``_optimizer`` attribute
(a live :class:`_OptimizerView` over fastmlp's optimizer state) and its
L-BFGS objective ``_loss_grad_lbfgs``.

What a fastmlp solver's optimizer is in scikit-learn is one table,
:data:`SKLEARN_OPTIMIZERS`; a solver not in it has no scikit-learn
counterpart, and every path here says so explicitly: such a model has no
``_optimizer`` (AttributeError), and ``to_sklearn`` raises ValueError
rather than build a scikit-learn estimator that cannot go on from it.
"""

import copy
from typing import Callable, NamedTuple, Optional

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import (
    InvalidParameterError,
    validate_parameter_constraints,
)
from sklearn.utils.validation import _check_sample_weight, check_array, check_is_fitted

from ._codes import STEP_SCHEDULES
from ._fit import _STOCHASTIC_SOLVERS, _share_best_weights, _shares_best_weights
from ._layout import Layout
from ._validation import _layer_units


class _SklearnOptimizer(NamedTuple):
    """A fastmlp solver's counterpart in scikit-learn's optimizers.

    Attributes
    ----------
    cls : str
        Its class in ``sklearn.neural_network._stochastic_optimizers``.
    settings : dict
        The class's constructor arguments, which are also its attributes,
        to the keys of fastmlp's optimizer settings
        (:meth:`~fastmlp._fit._FitMixin._optimizer_params`).
    buffers : dict
        Its per-layer state lists (coefs first, then intercepts) to
        fastmlp's flat state buffers, ``'state1'`` / ``'state2'``.
    step : str or None
        Its attribute counting steps (fastmlp's ``'t'``), if it has one.
    step_rate : callable or None
        ``step_rate(settings, t)``: its ``learning_rate`` after ``t > 0``
        steps, where the class derives it from the step count; None where
        ``learning_rate`` is the rate the next step uses, which can be set.
    """

    cls: str
    settings: dict
    buffers: dict
    step: Optional[str]
    step_rate: Optional[Callable]


def _adam_rate(settings, t):
    """AdamOptimizer's ``learning_rate`` after ``t`` steps: the same
    expression as its ``_get_updates``."""
    return (settings["learning_rate_init"] * np.sqrt(1 - settings["beta_2"] ** t)
            / (1 - settings["beta_1"] ** t))


# fastmlp solver -> its scikit-learn optimizer
SKLEARN_OPTIMIZERS = {
    "sgd": _SklearnOptimizer(
        cls="SGDOptimizer",
        settings={"learning_rate_init": "learning_rate_init", "lr_schedule": "schedule",
                  "momentum": "momentum", "nesterov": "nesterov", "power_t": "power_t"},
        buffers={"velocities": "state1"},
        step=None,
        step_rate=None,
    ),
    "adam": _SklearnOptimizer(
        cls="AdamOptimizer",
        settings={"learning_rate_init": "learning_rate_init", "beta_1": "beta_1",
                  "beta_2": "beta_2", "epsilon": "epsilon"},
        buffers={"ms": "state1", "vs": "state2"},
        step="t",
        step_rate=_adam_rate,
    ),
}


def _no_counterpart(solver):
    return f"solver {solver!r} has no scikit-learn optimizer"


def _counterpart(solver):
    """The entry of :data:`SKLEARN_OPTIMIZERS` for ``solver``; ValueError
    naming the solver where it has none."""
    spec = SKLEARN_OPTIMIZERS.get(solver)
    if spec is None:
        raise ValueError(f"The {_no_counterpart(solver)}: scikit-learn cannot go on "
                         "from this model's optimizer state.")
    return spec


def _sklearn_class(spec):
    """scikit-learn's optimizer class named by ``spec``."""
    from sklearn.neural_network import _stochastic_optimizers

    return getattr(_stochastic_optimizers, spec.cls)


def _solver_of(sk_opt):
    """The fastmlp solver of an optimizer object: scikit-learn's, or a
    fastmlp model's :class:`_OptimizerView`."""
    if isinstance(sk_opt, _OptimizerView):
        return sk_opt._solver
    for solver, spec in SKLEARN_OPTIMIZERS.items():
        if isinstance(sk_opt, _sklearn_class(spec)):
            return solver
    raise ValueError(f"fastmlp has no solver for scikit-learn's {type(sk_opt).__name__}.")


class _OptimizerView:
    """What scikit-learn's ``_optimizer`` object shows, over fastmlp's state.

    scikit-learn's MLPs keep an ``SGDOptimizer`` or ``AdamOptimizer`` in
    ``_optimizer``, and code that follows a fit reads it: its tests, and
    users who watch the rate that ``learning_rate="adaptive"`` or
    ``"invscaling"`` has reached (``clf._optimizer.learning_rate``).
    fastmlp keeps the same state as a plain dict (so that pickle and skops
    files hold only built-in types); an estimator's ``_optimizer`` property
    wraps that dict in this view, made anew at each access and holding
    nothing of its own. Its attributes are those of the solver's entry in
    :data:`SKLEARN_OPTIMIZERS`.

    It is live: the per-layer buffers (``ms``, ``vs``, ``velocities``) are
    views of the state's flat buffers, so an in-place edit reaches the next
    ``partial_fit``, and SGD's ``learning_rate`` can be set, as on
    scikit-learn's object. Adam's ``learning_rate`` is scikit-learn's
    bias-corrected rate of the last step, computed from ``t`` by
    scikit-learn's formula.
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

    @property
    def _spec(self):
        spec = SKLEARN_OPTIMIZERS.get(self._solver)
        if spec is None:
            raise AttributeError(_no_counterpart(self._solver))
        return spec

    def __getattr__(self, name):
        # Called for the names the class does not define: those of the
        # solver's scikit-learn class. Never for private names: copy and
        # pickle look those up on an instance without _state, and reading
        # it would recurse.
        if name.startswith("_"):
            raise AttributeError(name)
        spec = self._spec
        if name in spec.settings:
            return self._hyper[spec.settings[name]]
        if name in spec.buffers:
            return self._per_layer(spec.buffers[name])
        if name == spec.step:
            return self._state["t"]
        raise AttributeError(f"'{spec.cls}' has no attribute '{name}'")

    def __setattr__(self, name, value):
        if name == "learning_rate" and self._spec.step_rate is None:
            self._state["learning_rate"] = float(value)
            return
        raise AttributeError(
            f"can't set '{name}': of fastmlp's optimizer state only SGD's "
            "learning_rate can be set"
        )

    @property
    def _kind(self):
        return self._spec.cls

    def __repr__(self):
        return f"<fastmlp view of an {self._kind}: learning_rate={self.learning_rate!r}>"

    @property
    def learning_rate(self):
        t = self._state["t"]
        step_rate = self._spec.step_rate
        if step_rate is not None and t > 0:
            return step_rate(self._hyper, t)
        return self._state["learning_rate"]

    def __dir__(self):
        spec = self._spec
        own = [*spec.settings, *spec.buffers, *([spec.step] if spec.step else [])]
        return sorted({*super().__dir__(), *own})

    def _per_layer(self, key):
        # in the layer sizes of the fit that made the state: as in
        # scikit-learn, a later L-BFGS fit (of other sizes, maybe) leaves it
        units = self._state.get("units")
        layout = Layout(units) if units is not None else self._estimator._layout()
        coefs, intercepts = layout.views(self._state[key])
        return coefs + intercepts


def _optimizer_state(model, sk_opt, layout, dtype):
    """fastmlp's optimizer state for ``model`` (laid out by ``layout``, in
    ``dtype``) from an optimizer object: scikit-learn's, or another fastmlp
    model's view.

    The settings are those the object was made with (its kind too:
    scikit-learn's ``set_params(solver=...)`` does not replace it).
    """
    solver = _solver_of(sk_opt)
    spec = SKLEARN_OPTIMIZERS[solver]
    n = len(layout.units) - 1
    opt = {"learning_rate": float(sk_opt.learning_rate), "t": 0, "state1": None,
           "state2": None, "units": [int(u) for u in layout.units],
           "params": {**model._optimizer_params(), "solver": solver,
                      **{key: getattr(sk_opt, name) for name, key in spec.settings.items()}}}
    for name, key in spec.buffers.items():
        arrays = getattr(sk_opt, name)
        opt[key] = layout.pack(arrays[:n], arrays[n:], dtype)
    for key in ("state1", "state2"):
        if opt[key] is None:  # a buffer this solver does not use
            opt[key] = np.zeros(1, dtype=dtype)
    if spec.step is not None:
        opt["t"] = int(getattr(sk_opt, spec.step))
    return opt


def _sklearn_params(params):
    """scikit-learn's parameters for a model fitted with fastmlp's
    ``params`` (those scikit-learn has): what shaped training only and
    scikit-learn cannot take becomes what it can. A per-step schedule
    ('cosine', 'linear') becomes 'constant', the rate it started from; one
    activation named per hidden layer becomes that name when every layer
    has the same. The rest is validated as it is."""
    params = dict(params)
    if params.get("learning_rate") in STEP_SCHEDULES:
        params["learning_rate"] = "constant"
    act = params.get("activation")
    if isinstance(act, (list, tuple)) and len(set(act)) == 1:
        params["activation"] = act[0]
    return params


class _InteropMixin:
    """The estimators' migration both ways and scikit-learn's private members."""

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
            model._optimizer = _optimizer_state(model, sk_opt, layout, dtype)
        return model

    def to_sklearn(self):
        """A fitted scikit-learn estimator with this model's weights.

        Returns
        -------
        estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
            Predicts as this model to rounding (same weights, same dtype;
            scikit-learn's matrix products sum in another order), so
            tools that understand scikit-learn's MLP (skl2onnx, for one)
            can use it. Parameters that scikit-learn does not have shape
            training only (class weights, label smoothing, dropout, weight
            decay, warm-up, clipping) and are dropped; a 'cosine' or
            'linear' ``learning_rate`` becomes 'constant'. The stochastic
            optimizer's state is carried over.

        Raises
        ------
        ValueError
            Where scikit-learn's estimator cannot express this model: a
            parameter value it does not take (an activation it lacks, for
            one; :func:`fastmlp.to_onnx` exports such a model), or optimizer state of a solver that has no scikit-learn
            optimizer.
        """
        from sklearn import neural_network

        check_is_fitted(self)
        sk_cls = getattr(neural_network, type(self)._sklearn_name)
        own = set(sk_cls._get_param_names())
        params = {k: v for k, v in self.get_params(deep=False).items() if k in own}
        params = _sklearn_params(params)
        try:
            # scikit-learn's own constraint objects (their options are its
            # activations and solvers)
            validate_parameter_constraints(sk_cls._parameter_constraints, params,
                                           caller_name=sk_cls.__name__)
        except InvalidParameterError as exc:
            raise ValueError(
                f"scikit-learn cannot express this model: {exc} fastmlp.to_onnx(model, X) "
                "exports every fastmlp model.") from exc
        opt = self.__dict__.get("_optimizer")
        if opt is not None and opt["state1"] is None:
            opt = None  # (a state never trained)
        if opt is not None:
            _counterpart(_OptimizerView(self, opt)._solver)  # before building anything

        est = sk_cls(**params)
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
        if opt is not None:
            est._optimizer = self._sklearn_optimizer(opt, est.coefs_ + est.intercepts_)
        return est

    def _sklearn_optimizer(self, opt, params):
        """scikit-learn's optimizer object with the state of ``opt`` (the
        inverse of what :meth:`from_sklearn` takes over), so its partial_fit
        goes on where this model's would."""
        view = _OptimizerView(self, opt)
        spec = _counterpart(view._solver)
        hp = view._hyper
        settings = {name: hp[key] for name, key in spec.settings.items()}
        if settings.get("lr_schedule") in STEP_SCHEDULES:
            settings["lr_schedule"] = "constant"  # as the estimator's (_sklearn_params)
        sk_opt = _sklearn_class(spec)(params, **settings)
        dtype = self.coefs_[0].dtype
        for name in spec.buffers:
            setattr(sk_opt, name, [np.array(a, dtype=dtype) for a in getattr(view, name)])
        if spec.step is not None:
            setattr(sk_opt, spec.step, opt["t"])
        sk_opt.learning_rate = opt["learning_rate"]
        return sk_opt

    @property
    def _optimizer(self):
        """scikit-learn's ``_optimizer``, as a live :class:`_OptimizerView`.

        The state itself is a dict in ``__dict__["_optimizer"]`` (what
        pickle and skops store); as in scikit-learn, there is none before
        the first fit with a stochastic solver. A solver that has no
        scikit-learn optimizer has no view either.
        """
        state = self.__dict__.get("_optimizer")
        if state is None:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute '_optimizer'")
        view = _OptimizerView(self, state)
        if view._solver not in SKLEARN_OPTIMIZERS:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute '_optimizer': its "
                f"{_no_counterpart(view._solver)}")
        return view

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
        objective = self._objective(self._network(layout, dtype), X, Y, sample_weight)
        loss, grad = objective(self._theta)
        coefs, intercepts = layout.views(grad)
        coef_grads[:n] = coefs
        intercept_grads[:n] = intercepts
        return loss, np.hstack([g.ravel() for g in coefs + intercepts])

