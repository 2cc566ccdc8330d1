"""Plots of training, in scikit-learn's Display style (matplotlib optional)."""

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils._optional_dependencies import check_matplotlib_support
from sklearn.utils.validation import check_is_fitted


class LossCurveDisplay:
    """Training loss, validation loss and validation score per epoch.

    Build it with :meth:`from_estimator` from a fitted fastmlp (or
    scikit-learn) MLP; :meth:`plot` draws the training loss on the left
    axis and, when early stopping recorded them, the validation loss on the
    same axis and the validation scores on a second axis on the right; it
    marks the best epoch (the one whose weights early stopping restored, or
    the lowest training loss), and puts the legend below the axes, where it
    covers no curve. An L-BFGS fit is drawn per iteration, from
    ``history_``.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss of each epoch (or L-BFGS iteration).

    validation_scores : array-like of shape (n_epochs,), default=None
        Validation score of each epoch.

    validation_loss : array-like of shape (n_epochs,), default=None
        Loss on the validation set of each epoch (fastmlp's ``history_``
        records it with early stopping).

    estimator_name : str, default=None
        Name used in the title.

    score_name : str, default="score"
        What the validation score is ("accuracy" for a classifier, "R²"
        for a regressor): the right axis reads "validation <score_name>".

    best_epoch : int, default=None
        The epoch (1-based) to mark: the best one. None marks none.

    step_name : str, default="epoch"
        What one point is ("epoch", or "iteration" for L-BFGS).

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the training loss.

    ax_validation_ : matplotlib Axes or None
        Twin axes with the validation scores, None without them.

    figure_ : matplotlib Figure
        Figure containing the curves.

    line_ : matplotlib Line2D
        The training-loss line.

    validation_line_ : matplotlib Line2D or None
        The validation-score line.

    validation_loss_line_ : matplotlib Line2D or None
        The validation-loss line.

    best_line_ : matplotlib Line2D or None
        The vertical line at the best epoch.

    legend_ : matplotlib Legend
        The legend, below the axes.

    Examples
    --------
    >>> from fastmlp import MLPClassifier
    >>> from fastmlp.plotting import LossCurveDisplay
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(early_stopping=True, max_iter=50).fit(X, y)
    >>> disp = LossCurveDisplay.from_estimator(clf)  # doctest: +SKIP
    """

    def __init__(self, *, loss_curve, validation_scores=None, validation_loss=None,
                 estimator_name=None, score_name="score", best_epoch=None, step_name="epoch"):
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.validation_loss = validation_loss
        self.estimator_name = estimator_name
        self.score_name = score_name
        self.best_epoch = best_epoch
        self.step_name = step_name

    def plot(self, ax=None, *, name=None, loss_kwargs=None, validation_kwargs=None,
             validation_loss_kwargs=None):
        """Plot the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.

        name : str, default=None
            Title prefix; defaults to ``estimator_name``.

        loss_kwargs, validation_kwargs, validation_loss_kwargs : dict, default=None
            Keyword arguments passed to ``ax.plot`` for each curve.

        Returns
        -------
        display : LossCurveDisplay
            The object, with the matplotlib artists stored as attributes.
        """
        check_matplotlib_support("LossCurveDisplay.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(layout="constrained")
        name = self.estimator_name if name is None else name
        loss = np.asarray(self.loss_curve, dtype=float)
        steps = np.arange(1, loss.size + 1)
        (self.line_,) = ax.plot(steps, loss, **{"color": "C0", "label": "training loss",
                                                **(loss_kwargs or {})})
        ax.set_xlabel(self.step_name)
        ax.set_ylabel("training loss")
        self.ax_validation_ = self.validation_line_ = self.validation_loss_line_ = None
        self.best_line_ = None
        handles = [self.line_]
        if self.validation_loss is not None and len(self.validation_loss):
            vloss = np.asarray(self.validation_loss, dtype=float)
            (self.validation_loss_line_,) = ax.plot(
                np.arange(1, vloss.size + 1), vloss,
                **{"color": "C2", "linestyle": "--", "label": "validation loss",
                   **(validation_loss_kwargs or {})})
            ax.set_ylabel("loss")
            handles.append(self.validation_loss_line_)
        if self.validation_scores is not None and len(self.validation_scores):
            scores = np.asarray(self.validation_scores, dtype=float)
            self.ax_validation_ = ax.twinx()
            label = f"validation {self.score_name}"
            (self.validation_line_,) = self.ax_validation_.plot(
                np.arange(1, scores.size + 1), scores,
                **{"color": "C1", "label": label, **(validation_kwargs or {})})
            self.ax_validation_.set_ylabel(label)
            handles.append(self.validation_line_)
        if self.best_epoch is not None:
            self.best_line_ = ax.axvline(self.best_epoch, color="0.5", linestyle=":",
                                         label=f"best {self.step_name} ({self.best_epoch})")
            handles.append(self.best_line_)
        # below the axes (in the figure's margin): the twin axis' curve is
        # not among what ``loc="best"`` avoids, so inside it may cover it
        self.legend_ = ax.legend(handles=handles, loc="upper center",
                                 bbox_to_anchor=(0.5, -0.15), ncol=min(len(handles), 3),
                                 frameon=False)
        if name:
            ax.set_title(f"{name} training")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, name=None, **kwargs):
        """Plot the loss curve of a fitted MLP.

        Parameters
        ----------
        estimator : fitted MLPClassifier or MLPRegressor
            fastmlp's or scikit-learn's. Solvers 'sgd' and 'adam' give one
            point per epoch (``loss_curve_``); a fastmlp 'lbfgs' fit one
            per iteration (its ``history_``).

        ax : matplotlib Axes, default=None
            Axes to draw on.

        name : str, default=None
            Title prefix; defaults to the estimator's class name.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : LossCurveDisplay
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        check_is_fitted(estimator)
        history = getattr(estimator, "history_", None) or []
        loss_curve = getattr(estimator, "loss_curve_", None)
        step_name = "epoch"
        if loss_curve is None:
            if not history:
                raise ValueError(
                    "LossCurveDisplay needs a loss per epoch or iteration: a fit with "
                    "solver='sgd' or 'adam' (loss_curve_), or a fastmlp fit (history_); got "
                    f"solver={estimator.solver!r} without either.")
            loss_curve = [r["loss"] for r in history]
            step_name = "iteration"
        # the records of the epochs of loss_curve_ (which, like history_,
        # goes on across warm starts)
        records = history[-len(loss_curve):]
        vloss = [r.get("validation_loss") for r in records]
        if len(vloss) != len(loss_curve) or None in vloss:
            vloss = None
        scores = getattr(estimator, "validation_scores_", None)
        if scores:
            best = int(np.nanargmax(scores)) + 1  # the first best: the restored weights
        elif step_name == "epoch":
            best = int(np.argmin(loss_curve)) + 1
        else:
            best = None  # L-BFGS keeps its last iterate
        disp = cls(loss_curve=loss_curve, validation_scores=scores, validation_loss=vloss,
                   estimator_name=type(estimator).__name__ if name is None else name,
                   score_name="accuracy" if is_classifier(estimator) else "R²",
                   best_epoch=best, step_name=step_name)
        return disp.plot(ax=ax, **kwargs)
