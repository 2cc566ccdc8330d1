"""Compile every kernel ahead of the first real fit."""

import time
import warnings

import numpy as np

_DTYPES = ("float64", "float32")


def warm_up(dtypes=_DTYPES):
    """Compile, or load from the on-disk cache, every fastmlp kernel.

    A process's first fit in a dtype compiles the kernels it needs (several
    seconds; bench/README.md's compile table) unless Numba's on-disk cache holds
    them; later processes only load them. Call this once where the cache is
    kept (an image build, right after installing) so that no user fit pays
    for compilation. Each kernel is compiled once per dtype for every
    solver, activation, output head and input kind (dense or sparse), so one
    small fit per dtype and input kind covers every configuration.

    Parameters
    ----------
    dtypes : {"float64", "float32"} or sequence of them, default=("float64", "float32")
        The parameter dtypes to prepare: float64 is what scikit-learn's
        estimators train in; float32 serves float32 input.

    Returns
    -------
    seconds : dict
        Wall time spent per dtype, keyed by dtype name.

    Examples
    --------
    >>> import fastmlp
    >>> seconds = fastmlp.warm_up(["float64"])  # doctest: +SKIP
    """
    import scipy.sparse as sp
    from sklearn.exceptions import ConvergenceWarning

    from ._estimators import MLPClassifier
    from ._threads import serial_predict_max_rows

    seconds = {}
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 4))
    y = rng.randint(0, 3, 40)
    if isinstance(dtypes, str):
        dtypes = [dtypes]
    for name in dtypes:
        dtype = np.dtype(name)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtypes must be float64 or float32, got {name!r}.")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # Dense and sparse inputs have kernels of their own; a small
            # dense prediction takes the serial kernel, a large one the
            # prediction entry the fit compiled (or loaded) with it.
            for data in (X.astype(dtype), sp.csr_matrix(X.astype(dtype))):
                for solver in ("adam", "lbfgs"):
                    clf = MLPClassifier(hidden_layer_sizes=(16,), solver=solver,
                                        batch_size=16, max_iter=2, random_state=0)
                    clf.fit(data, y).predict_proba(data)
            # small dense predictions: one row, and rows in blocks of four
            clf.predict_proba(X[:1].astype(dtype))
            clf.predict_proba(X[:4].astype(dtype))
            n_weights = sum(w.size for w in clf.coefs_)
            clf.predict_proba(
                np.tile(X, (serial_predict_max_rows(n_weights) // len(X) + 1, 1)).astype(dtype))
        seconds[dtype.name] = time.perf_counter() - start
    return seconds
