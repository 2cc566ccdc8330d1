"""Seeing training: per-epoch history, a progress bar, scikit-learn callbacks.

One :class:`TrainingMonitor` per fit wraps every epoch (stochastic solvers)
or iteration (L-BFGS): it times it, appends a record to the estimator's
``history_``, advances an optional tqdm progress bar, and calls the hooks of
scikit-learn 1.9's callback API (``sklearn.callback``) when the estimator has
callbacks set. On older scikit-learn the callback API is absent and only the
history and progress bar work.
"""

import time
import warnings

try:  # scikit-learn >= 1.9
    from sklearn.callback import CallbackSupportMixin, with_callbacks

    HAS_SKLEARN_CALLBACKS = True
except ImportError:  # pragma: no cover - older scikit-learn
    HAS_SKLEARN_CALLBACKS = False

    class CallbackSupportMixin:
        """Stand-in: this scikit-learn has no ``sklearn.callback``."""

    def with_callbacks(method):
        return method


def _progress_bar(total, desc):
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError(
            "progress_bar=True needs tqdm: pip install tqdm (from a checkout of fastmlp: "
            "pip install -e \".[progress]\")."
        ) from exc
    return tqdm(total=total, desc=desc, unit="epoch" if "epoch" in desc else "it",
                leave=True, dynamic_ncols=True)


class TrainingMonitor:
    """Records, displays and reports the steps of one fit.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor
        The estimator being fitted; its ``history_`` list receives records.
    context : sklearn.callback.CallbackContext or None
        The fit's root callback context, or None without callbacks.
    X, y : array-like
        Training data handed to the callback hooks.
    total : int
        Expected number of steps (``max_iter``), for the progress bar.
    task : {'epoch', 'lbfgs-iter'}
        Name of each step's callback task.
    progress_bar : bool
        Show a tqdm progress bar.
    """

    def __init__(self, estimator, *, context, X, y, total, task, progress_bar):
        self.estimator = estimator
        self.context = context
        self.X = X
        self.y = y
        self.task = task
        self.bar = _progress_bar(total, f"{type(estimator).__name__} {task}") if progress_bar else None
        self._step_context = None
        self._t0 = None
        self._warnings = []

    def print(self, message):
        """``print(message)``, on a line of its own above the progress bar."""
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message)

    def warn(self, message, category):
        """``warnings.warn(message, category)``; with a progress bar, once the
        bar is closed, so that the warning starts a line of its own."""
        if self.bar is not None:
            self._warnings.append((message, category))
        else:
            warnings.warn(message, category, stacklevel=2)

    def close(self):
        """Close the progress bar (then issue the warnings kept for after it)
        and end a step begun but never run."""
        if self._step_context is not None:
            self._step_context.call_on_fit_task_end(estimator=self.estimator)
            self._step_context = None
        if self.bar is not None:
            self.bar.close()
        kept, self._warnings = self._warnings, []
        for message, category in kept:
            # attributed to the fit's ``with monitor`` (close <- __exit__ <- fit)
            warnings.warn(message, category, stacklevel=3)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _reconstruction_attributes(self):
        est = self.estimator
        return {"coefs_": [c.copy() for c in est.coefs_],
                "intercepts_": [b.copy() for b in est.intercepts_]}

    def begin(self):
        """Start timing a step and call the callbacks' begin hooks. The
        progress bar's clock starts at the first step, after the kernels
        are compiled, so its rate and estimate are training's."""
        if self.bar is not None and self.bar.n == 0:
            self.bar.reset(total=self.bar.total)
        self._t0 = time.perf_counter()
        if self.context is not None:
            self._step_context = self.context.subcontext(task_name=self.task)
            self._step_context.call_on_fit_task_begin(
                estimator=self.estimator, X=self.X, y=self.y,
                reconstruction_attributes=self._reconstruction_attributes,
            )

    def end(self, *, loss, validation_score=None, validation_loss=None, learning_rate=None):
        """Record the finished step; return True when a callback asks to stop.

        Appends ``{'epoch', 'loss', 'validation_score', 'validation_loss',
        'learning_rate', 'seconds'}`` to ``estimator.history_``.
        """
        seconds = time.perf_counter() - self._t0
        history = self.estimator.history_
        history.append({
            "epoch": len(history) + 1,
            "loss": float(loss),
            "validation_score": None if validation_score is None else float(validation_score),
            "validation_loss": None if validation_loss is None else float(validation_loss),
            "learning_rate": None if learning_rate is None else float(learning_rate),
            "seconds": seconds,
        })
        if self.bar is not None:
            postfix = {"loss": f"{loss:.5g}"}
            if validation_score is not None:
                postfix["val"] = f"{validation_score:.4g}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)
        stop = False
        step, self._step_context = self._step_context, None
        if step is not None:
            stop = step.call_on_fit_task_end(
                estimator=self.estimator, X=self.X, y=self.y,
                reconstruction_attributes=self._reconstruction_attributes,
            )
        return bool(stop)
