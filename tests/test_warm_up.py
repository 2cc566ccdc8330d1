"""fastmlp.warm_up prepares every kernel a later fit or prediction needs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import fastmlp

SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    import scipy.sparse as sp
    from numba.core.dispatcher import Dispatcher

    import fastmlp
    from fastmlp import _activations, _engine, _kernels, _linalg, _optim
    from fastmlp._codes import ACTIVATIONS

    def overloads():
        found = {}
        for mod in (_activations, _engine, _kernels, _linalg, _optim):
            for name, obj in vars(mod).items():
                if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod.__name__:
                    found[f"{mod.__name__}.{name}"] = len(obj.overloads)
        return found

    before = overloads()
    assert not any(before.values()), before  # nothing compiled or loaded yet
    seconds = fastmlp.warm_up(["float64"])
    ready = overloads()

    # every configuration a user can choose, float64, dense and sparse
    warnings.simplefilter("ignore")
    rng = np.random.RandomState(1)
    X = rng.normal(size=(300, 7))
    y = rng.randint(0, 2, 300)
    Y = rng.randint(0, 2, (300, 3))
    yr = np.abs(rng.normal(size=300))
    Xbig = np.tile(X, (40, 1))
    for data in (X, sp.csr_matrix(X), sp.csc_matrix(X)):
        for solver in ("sgd", "adam", "lbfgs"):
            for act in ACTIVATIONS:
                kw = dict(hidden_layer_sizes=(9, 5), solver=solver, activation=act,
                          max_iter=2, random_state=0)
                fastmlp.MLPClassifier(**kw, early_stopping=solver != "lbfgs").fit(data, y)
                clf = fastmlp.MLPClassifier(**kw).fit(data, Y)
                clf.predict_proba(data[:3]), clf.predict_proba(Xbig)
                fastmlp.MLPRegressor(**kw, loss="poisson").fit(data, yr).predict(data)
        fastmlp.MLPClassifier(max_iter=2, warm_start=True).fit(data, y).partial_fit(data, y)
    after = overloads()
    json.dump({"seconds": seconds, "ready": ready, "after": after}, sys.stdout)
    """
)


def test_warm_up_covers_every_configuration():
    # A fresh process: after warm_up, no fit or prediction of any solver,
    # activation, head or input kind adds a compiled (or cache-loaded)
    # kernel. Uses the default cache, which earlier tests have filled, so
    # the subprocess usually loads rather than compiles.
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=900, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert set(result["seconds"]) == {"float64"}
    for variant in ("dense", "sparse"):
        assert result["ready"][f"fastmlp._engine.train_epoch_{variant}"] == 1
    assert result["ready"]["fastmlp._kernels.predict_serial"] == 1
    assert result["ready"]["fastmlp._kernels.predict_serial_blocks"] == 1
    # large predictions run on the fit's network kernel, through an entry
    # the fits compile
    assert result["ready"]["fastmlp._engine.predict_chunk_dense"] == 1
    assert result["ready"]["fastmlp._engine.predict_chunk_sparse"] == 1
    assert result["after"] == result["ready"]


def test_warm_up_rejects_other_dtypes():
    with pytest.raises(ValueError, match="float64 or float32"):
        fastmlp.warm_up(["int64"])
    with pytest.raises(ValueError, match="float64 or float32"):
        fastmlp.warm_up("int64")  # one name, not its characters


def test_warm_up_takes_one_dtype_name():
    assert set(fastmlp.warm_up("float64")) == {"float64"}


def test_warm_up_command_line(capsys):
    from fastmlp.__main__ import main

    assert main(["warm-up", "--dtype", "float64"]) == 0
    assert "float64: kernels ready in" in capsys.readouterr().out
