"""The libraries under test behind one interface, and timing helpers.

fastmlp and scikit-learn share :class:`EstimatorLibrary` (same estimator
API, same parameters); PyTorch's plain training loop is
:class:`bench._torch_mlp.TorchLibrary`, its modern-recipe loop
:class:`bench._torch_mlp.TorchRecipeLibrary`. Every library trains on the
same arrays with the same network, batch size and number of epochs.
"""

import statistics
import time

import numpy as np

# n_iter_no_change larger than any epoch count: with tol=0 every epoch runs.
NEVER_STOP = 1_000_000

# The "modern recipe" (issue 26): fastmlp parameters on top of
# estimator_params; bench._torch_mlp's recipe loop reads the same values.
RECIPE = dict(
    activation="silu",
    dropout=0.1,
    weight_decay=0.01,
    learning_rate="cosine",
    lr_warmup=1,
    clip_grad_norm=1.0,
    label_smoothing=0.1,
)


def estimator_params(net, random_state=0):
    """Constructor parameters shared by fastmlp's and scikit-learn's MLPClassifier.

    Parameters
    ----------
    net : bench._workloads.Net
        Network and schedule.
    random_state : int, default=0

    Returns
    -------
    params : dict
    """
    return dict(
        hidden_layer_sizes=tuple(net.hidden),
        activation="relu",
        solver="adam",
        batch_size=net.batch_size,
        max_iter=net.epochs,
        tol=0.0,
        n_iter_no_change=NEVER_STOP,
        random_state=random_state,
    )


class Library:
    """A library under test.

    Subclasses implement :meth:`fit` and :meth:`predict_proba`; a fitted
    model exposes the number of epochs it ran as ``n_iter_``.

    Attributes
    ----------
    name : str
        Column label.
    """

    name = "?"

    def fit(self, X, y, net):
        """Train a new model on ``X`` (float32 or float64) and labels ``y`` (0..k-1).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
        net : bench._workloads.Net

        Returns
        -------
        model : object
        """
        raise NotImplementedError

    def predict_proba(self, model, X):
        """Class probabilities of ``X``, shape (n_rows, n_classes), as a NumPy array."""
        raise NotImplementedError

    def accuracy(self, model, X, y):
        """Fraction of ``X``'s rows whose most probable class is ``y``."""
        return float(np.mean(np.argmax(self.predict_proba(model, X), axis=1) == y))

    def warm_up(self, X, y, net):
        """Fit one epoch on a few batches and predict, untimed.

        Takes compile, load and first-call costs out of the timed runs.
        """
        rows = min(len(X), 4 * net.batch_size)
        model = self.fit(X[:rows], y[:rows], net.with_epochs(1))
        self.predict_proba(model, X[:1])
        self.predict_proba(model, X[:rows])


class EstimatorLibrary(Library):
    """A scikit-learn-API ``MLPClassifier`` (fastmlp's or scikit-learn's).

    Parameters
    ----------
    name : str
        Column label.
    estimator : type
        The estimator class.
    extra : dict, optional
        Parameters on top of :func:`estimator_params` (fastmlp's ``n_threads``,
        the recipe's); they replace those of the same name.
    """

    def __init__(self, name, estimator, extra=None):
        self.name = name
        self.estimator = estimator
        self.extra = dict(extra or {})

    def fit(self, X, y, net):
        return self.estimator(**{**estimator_params(net), **self.extra}).fit(X, y)

    def predict_proba(self, model, X):
        return model.predict_proba(X)


def fastmlp_library(n_threads, name="fastmlp"):
    """fastmlp's MLPClassifier with ``n_threads`` threads."""
    import fastmlp

    return EstimatorLibrary(name, fastmlp.MLPClassifier, {"n_threads": n_threads})


def fastmlp_recipe_library(n_threads, name="fastmlp recipe"):
    """fastmlp's MLPClassifier with the :data:`RECIPE` parameters."""
    import fastmlp

    return EstimatorLibrary(name, fastmlp.MLPClassifier, {"n_threads": n_threads, **RECIPE})


def sklearn_library():
    """scikit-learn's MLPClassifier (its BLAS threads are set process-wide)."""
    from sklearn.neural_network import MLPClassifier

    return EstimatorLibrary("sklearn", MLPClassifier)


def torch_library(n_threads, recipe=False):
    """The PyTorch loop (the recipe's with ``recipe``), or None when torch cannot be imported."""
    try:
        from ._torch_mlp import TorchLibrary, TorchRecipeLibrary
    except ImportError:
        return None
    return (TorchRecipeLibrary if recipe else TorchLibrary)(n_threads)


def median_time(func, repeats):
    """Call ``func()`` ``repeats`` times.

    Returns
    -------
    seconds : float
        Median wall time of one call.
    result : object
        What the last call returned.
    """
    times = []
    result = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def median_call_time(func, calls, warm=5):
    """Median wall time of one call of ``func()`` over ``calls`` timed calls.

    ``warm`` untimed calls come first.
    """
    for _ in range(warm):
        func()
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        func()
        times[i] = time.perf_counter() - t0
    return float(np.median(times))
