"""Fits covering every kernel path, shared by test_boundscheck.py."""

import warnings

import numpy as np
import scipy.sparse as sp


def run_cases():
    """Fit and predict each case.

    Returns
    -------
    pred64, pred32 : ndarray
        The float64 cases' predictions concatenated, and a float32 fit's.
    """
    from fastmlp import MLPClassifier, MLPRegressor

    rng = np.random.RandomState(0)
    X = rng.normal(size=(57, 6))
    X[np.abs(X) < 0.7] = 0  # sparse-ish, with empty rows and entries
    X[5] = 0
    y3 = rng.randint(0, 3, 57)
    y2 = rng.randint(0, 2, 57)
    Y = rng.randint(0, 2, (57, 3))
    yr = rng.normal(size=(57, 2))
    yp = rng.poisson(1.0, 57)
    sw = rng.uniform(0.5, 2, 57)
    out = []
    common = dict(hidden_layer_sizes=(7, 5), max_iter=3, random_state=0, batch_size=20)
    cases = [
        (MLPClassifier, dict(solver="adam", activation="relu"), y3),
        (MLPClassifier, dict(solver="sgd", activation="tanh"), y2),
        (MLPClassifier, dict(solver="lbfgs", activation="logistic"), Y),
        (MLPClassifier, dict(solver="adam", activation="identity", early_stopping=True), y3),
        (MLPRegressor, dict(solver="adam"), yr),
        (MLPRegressor, dict(solver="sgd", loss="poisson", learning_rate_init=1e-3), yp),
        (MLPRegressor, dict(solver="lbfgs"), yr[:, 0]),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for Est, params, y in cases:
            for data in (X, sp.csr_matrix(X)):
                est = Est(**common, **params).fit(data, y, sample_weight=sw)
                pred = est.predict_proba(data) if hasattr(est, "predict_proba") else est.predict(data)
                out.append(np.asarray(pred, dtype=np.float64).ravel())
            # enough rows for the parallel layer kernels (the rest are
            # below the threshold and take the serial one)
            big = np.tile(X, (250, 1))
            f = est.predict_proba if hasattr(est, "predict_proba") else est.predict
            out.append(np.asarray(f(big)[::97], dtype=np.float64).ravel())
            # small predictions again: the arguments kept on the model
            for rows in (X[:1].copy(), X[3:9].copy(), X[:1].copy()):
                out.append(np.asarray(f(rows), dtype=np.float64).ravel())
            assert est._predictor.state is not None
            bad = X[:2].copy()
            bad[1, 3] = np.nan  # the kernel's finiteness check, then the error
            try:
                f(bad)
            except ValueError:
                pass
            else:
                raise AssertionError("NaN input was accepted")
        X32 = X.astype(np.float32)
        est = MLPClassifier(**common).fit(X32, y3)
        pred32 = est.predict_proba(X32).ravel()
    return np.concatenate(out), pred32
