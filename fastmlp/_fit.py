"""Training: the fit loops over the compiled engine.

:class:`_FitMixin` gives the estimators ``_fit`` and what it runs: the
first-fit set-up, the L-BFGS fit (scipy's minimiser over the engine's
full-batch objective) and the stochastic fit (the engine's trainer, one
compiled call per epoch). The per-epoch, user-facing logic stays here, in
Python, in the order scikit-learn runs it so that traces match: learning-rate
schedules, stopping rules, early stopping and its best weights, verbose
lines, warnings.
"""

import warnings

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network._base import LOSS_FUNCTIONS
from sklearn.utils import check_random_state
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight

from ._codes import NO_SCHEDULE, SOLVERS, STEP_SCHEDULES, STOCHASTIC_SOLVERS
from ._engine import FullBatchObjective, Inputs, StochasticTrainer
from ._layout import Layout
from ._monitor import HAS_SKLEARN_CALLBACKS, TrainingMonitor
from ._threads import resolve_threads, threads
from ._validation import (
    _check_hidden_layer_sizes,
    _check_weight_sums,
    _dropout_rates,
    _hidden_codes,
)

try:  # scikit-learn >= 1.7 passes iprint only to scipy versions that take it
    from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
except ImportError:  # pragma: no cover - older scikit-learn

    def _get_additional_lbfgs_options_dict(key, value):
        return {key: value}


# The solvers the engine's StochasticTrainer runs, epoch by epoch; any
# other ('lbfgs') is a full-batch fit.
_STOCHASTIC_SOLVERS = STOCHASTIC_SOLVERS

# The stochastic solvers whose step size follows the ``learning_rate``
# schedule ('constant', 'invscaling', 'adaptive'), as scikit-learn's SGD
# does; the others (Adam) have their own rule and ignore the parameter.
_SCHEDULED_SOLVERS = frozenset({"sgd"})


def _schedule(settings):
    """The learning-rate schedule of an optimizer made with ``settings``
    (:meth:`_FitMixin._optimizer_params`): its ``'schedule'`` for a solver
    that follows one, otherwise ``'constant'``."""
    return settings["schedule"] if settings["solver"] in _SCHEDULED_SOLVERS else "constant"


def _per_step_schedule(settings):
    """Whether an optimizer made with ``settings`` sets its learning rate at
    every step (a 'cosine' or 'linear' schedule, or a warm-up), in the
    compiled epoch, rather than once per epoch."""
    return settings["schedule"] in STEP_SCHEDULES or settings.get("lr_warmup", 0) > 0


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


class _FitMixin:
    """The estimators' fit loops (scikit-learn's ``_fit`` and what it calls)."""

    def _weigh_samples(self, X, y, sample_weight, incremental):
        """The sample weights a fit trains with (the classifier folds its
        class weights in); ``sample_weight`` as validated, or None."""
        return sample_weight

    def _training_targets(self, y):
        """The targets the loss is taken against, ``(n, n_outputs)`` (the
        classifier smooths its labels here); ``y`` itself by default."""
        return y

    def _initialize(self, y, layout, dtype, random_state):
        # set all attributes, allocate weights etc. for first call
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layout.units)

        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:  # binary and multilabel
            self.out_activation_ = "logistic"

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
        hidden_layer_sizes = _check_hidden_layer_sizes(self.hidden_layer_sizes)
        _hidden_codes(self.activation, len(hidden_layer_sizes))
        dropout = _dropout_rates(self.dropout, len(hidden_layer_sizes))
        if self.solver not in STOCHASTIC_SOLVERS:
            if dropout is not None:
                raise ValueError(
                    f"dropout={self.dropout!r} needs solver='sgd' or 'adam': "
                    f"solver={self.solver!r} minimises the loss of the whole network, which "
                    "dropout's random masks change at every mini-batch.")
            self._check_full_batch_params()
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
        sample_weight = self._weigh_samples(X, y, sample_weight, incremental)

        if y.ndim == 1:
            y = y.reshape((-1, 1))

        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]

        random_state = check_random_state(self.random_state)
        layout = Layout(layer_units)

        if first_pass:
            self._initialize(y, layout, X.dtype, random_state)

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
                                     random_state, monitor, dropout)
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

    def _check_full_batch_params(self):
        """Raise ValueError for a setting that only a stochastic solver's
        steps have, asked of a full-batch one (L-BFGS)."""
        why = {
            "weight_decay": ("a decoupled weight decay is a rule of their steps; "
                             f"solver={self.solver!r} takes the L2 penalty `alpha` instead"),
            "lr_warmup": f"solver={self.solver!r} has no learning rate to warm up",
            "clip_grad_norm": (f"solver={self.solver!r} takes no gradient steps; its line "
                               "search sets their length"),
        }
        for name, reason in why.items():
            value = getattr(self, name, None)
            if value is not None and value != 0:
                raise ValueError(f"{name}={value!r} needs solver='sgd' or 'adam': {reason}.")

    def _fit_lbfgs(self, X, y, sample_weight, net, theta, monitor):
        if sample_weight is None:
            sample_weight = np.ones(X.shape[0], dtype=X.dtype)
        else:
            _check_weight_sums(sample_weight, [0])
        objective = self._objective(net, X, y, sample_weight)

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

    def _objective(self, net, X, y, sample_weight):
        """The loss and gradient over all of ``X`` of the network ``net``,
        with this model's L2 penalty: a callable of the flat parameters."""
        return FullBatchObjective(net, Inputs(X, net.dtype), self._training_targets(y),
                                  sample_weight, self.alpha)

    def _optimizer_params(self):
        """The settings an optimizer is made with (scikit-learn's optimizer
        objects take them at creation; they stay with the optimizer)."""
        return {"solver": self.solver, "learning_rate_init": self.learning_rate_init,
                "schedule": self.learning_rate, "power_t": self.power_t,
                "momentum": self.momentum, "nesterov": self.nesterovs_momentum,
                "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "weight_decay": self.weight_decay, "lr_warmup": self.lr_warmup,
                "clip_grad_norm": self.clip_grad_norm, "max_iter": self.max_iter}

    def _new_optimizer_state(self):
        """A new optimizer's state: a plain dict, so that pickle and skops
        files hold only built-in types and arrays."""
        return {"learning_rate": float(self.learning_rate_init), "t": 0, "epochs": 0,
                "state1": None, "state2": None, "params": self._optimizer_params()}

    def _fit_stochastic(self, X, y, sample_weight, net, theta, incremental, random_state,
                        monitor, dropout=None):
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
            # the validation loss is taken against the binarized targets
            Y_val = np.asarray(y_val, dtype=np.float64)
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = Y_val = sample_weight_val = None

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
        # drawn only with dropout on, so that without it the random stream
        # (the epochs' sample orders) stays scikit-learn's
        dropout_seed = 0 if dropout is None else int(random_state.randint(0, 2**53))
        trainer = StochasticTrainer(
            net, Inputs(X_train, X.dtype), self._training_targets(y_train), sample_weight_train,
            batch_size,
            SOLVERS[hp["solver"]], alpha=self.alpha,
            learning_rate_init=hp["learning_rate_init"], momentum=hp["momentum"],
            nesterov=hp["nesterov"], beta_1=hp["beta_1"], beta_2=hp["beta_2"],
            epsilon=hp["epsilon"], weight_decay=hp.get("weight_decay", 0.0),
            clip_grad_norm=hp.get("clip_grad_norm") or 0.0,
            schedule=STEP_SCHEDULES.get(hp["schedule"], NO_SCHEDULE),
            warmup=hp.get("lr_warmup", 0.0), horizon=hp.get("max_iter", self.max_iter),
            dropout=dropout, dropout_seed=dropout_seed,
        )
        per_step = _per_step_schedule(hp)
        if opt["state1"] is not None:
            trainer.state1[...] = opt["state1"]
            trainer.state2[...] = opt["state2"]
        trainer.step[0] = opt["t"]
        trainer.set_learning_rate(opt["learning_rate"])
        # compiled (or loaded) before the first epoch is timed
        trainer.prepare(theta)

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

                trainer.begin_epoch(opt.get("epochs", 0), n_samples)
                self.loss_ = np.float64(trainer.run_epoch(theta, sample_idx,
                                                          shuffled=self.shuffle))
                opt["epochs"] = opt.get("epochs", 0) + 1
                if per_step:
                    epoch_learning_rate = trainer.rate_reached
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    monitor.print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                self._update_no_improvement_count(
                    early_stopping, X_val, y_val, sample_weight_val, out=monitor.print
                )
                callback_stop = monitor.end(
                    loss=self.loss_,
                    validation_score=self.validation_scores_[-1] if early_stopping else None,
                    validation_loss=(self._validation_loss(X_val, Y_val, sample_weight_val)
                                     if early_stopping else None),
                    learning_rate=epoch_learning_rate,
                )

                # learning rate schedules act at the end of an epoch
                if _schedule(hp) == "invscaling":
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
                    if self._trigger_stopping(opt, msg, out=monitor.print):
                        break
                    trainer.set_learning_rate(opt["learning_rate"])
                    self._no_improvement_count = 0

                if incremental or callback_stop:
                    break

                if self.n_iter_ == self.max_iter:
                    # (with a progress bar, once the bar's line is closed)
                    monitor.warn(
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

    def _validation_loss(self, X, Y, sample_weight):
        """The loss of the current model on a validation set: scikit-learn's
        loss function of this model (its ``LOSS_FUNCTIONS``) against the
        true (binarized, unsmoothed) targets ``Y``, without the L2 term, as
        PyTorch users compute one."""
        out = self._forward_pass_fast(X, check_input=False)
        name = self.loss
        if name == "log_loss" and self.out_activation_ == "logistic":
            name = "binary_log_loss"
        return float(LOSS_FUNCTIONS[name](Y, out, sample_weight))

    def _trigger_stopping(self, opt, msg, out=print):
        """scikit-learn's optimizer ``trigger_stopping``: stop, or, under the
        'adaptive' schedule, cut the rate while it is not too small. Verbose
        lines go to ``out`` (the monitor's, above a progress bar)."""
        if _schedule(opt["params"]) != "adaptive":
            if self.verbose:
                out(msg + " Stopping.")
            return True
        if opt["learning_rate"] <= 1e-6:
            if self.verbose:
                out(msg + " Learning rate too small. Stopping.")
            return True
        opt["learning_rate"] /= 5.0
        if self.verbose:
            out(msg + " Setting learning rate to %f" % opt["learning_rate"])
        return False

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight, out=print):
        if early_stopping:
            # compute validation score (can be NaN), use that for stopping
            val_score = self._score(X, y, sample_weight=sample_weight)

            self.validation_scores_.append(val_score)

            if self.verbose:
                out("Validation score: %f" % self.validation_scores_[-1])
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
