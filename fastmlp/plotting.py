"""Plots of training, in scikit-learn's Display style (matplotlib optional)."""

import numpy as np
from sklearn.utils._optional_dependencies import check_matplotlib_support
from sklearn.utils.validation import check_is_fitted


class LossCurveDisplay:
    """Training loss, validation loss and validation score per epoch.

    Build it with :meth:`from_estimator` from a fitted fastmlp (or
    scikit-learn) MLP trained with 'sgd' or 'adam'; :meth:`plot` draws the
    training loss on the left axis and, when early stopping recorded them,
    the validation loss on the same axis and the validation scores on a
    second axis on the right.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss of each epoch.

    validation_scores : array-like of shape (n_epochs,), default=None
        Validation score of each epoch (accuracy or R^2).

    validation_loss : array-like of shape (n_epochs,), default=None
        Loss on the validation set of each epoch (fastmlp's ``history_``
        records it with early stopping).

    estimator_name : str, default=None
        Name used in the title.

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
                 estimator_name=None):
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.validation_loss = validation_loss
        self.estimator_name = estimator_name

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
            _, ax = plt.subplots()
        name = self.estimator_name if name is None else name
        loss = np.asarray(self.loss_curve, dtype=float)
        epochs = np.arange(1, loss.size + 1)
        (self.line_,) = ax.plot(epochs, loss, **{"color": "C0", "label": "training loss",
                                                 **(loss_kwargs or {})})
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        self.ax_validation_ = self.validation_line_ = self.validation_loss_line_ = None
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
            (self.validation_line_,) = self.ax_validation_.plot(
                np.arange(1, scores.size + 1), scores,
                **{"color": "C1", "label": "validation score", **(validation_kwargs or {})})
            self.ax_validation_.set_ylabel("validation score")
            handles.append(self.validation_line_)
        ax.legend(handles=handles, loc="best")
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
            Trained with solver 'sgd' or 'adam' (which record ``loss_curve_``).

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
        if getattr(estimator, "loss_curve_", None) is None:
            raise ValueError(
                "LossCurveDisplay needs an estimator fitted with solver='sgd' or "
                f"'adam' (it records loss_curve_); got solver={estimator.solver!r}."
            )
        # the records of the epochs of loss_curve_ (which, like history_,
        # goes on across warm starts)
        records = getattr(estimator, "history_", [])[-len(estimator.loss_curve_):]
        vloss = [r.get("validation_loss") for r in records]
        if len(vloss) != len(estimator.loss_curve_) or None in vloss:
            vloss = None
        disp = cls(loss_curve=estimator.loss_curve_,
                   validation_scores=getattr(estimator, "validation_scores_", None),
                   validation_loss=vloss,
                   estimator_name=type(estimator).__name__ if name is None else name)
        return disp.plot(ax=ax, **kwargs)
