"""Calls between kernels by symbol (fastmlp._jit.call_by_symbol)."""

import os
import subprocess
import sys

import pytest

MODULE = """
from fastmlp._jit import call_by_symbol, jit


@jit()
def callee(x, out):
    if x < 0:
        raise ValueError("negative input")
    out[0] = x * 2
    return out[0] + 1


call_callee = call_by_symbol(callee)


@jit()
def caller(x, out):
    return call_callee(x, out) + 1
"""

CHILD = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import symmod

out_i = np.zeros(1, np.int64)
out_f = np.zeros(1)
print("RESULTS", [symmod.caller(3, out_i), symmod.caller(1.5, out_f), out_i[0], out_f[0]])
try:
    symmod.caller(-1, out_i)
except ValueError as e:
    print("RAISED", e)
hits = sum(symmod.caller.stats.cache_hits.values())
print("HITS", hits)
if hits == 0:
    for sig, cres in symmod.caller.overloads.items():
        ir = cres.library.get_llvm_str()
        # the callee's code, inlined or not, would bring its exception message
        defined = "negative input" in ir
        declared = any(line.startswith("declare") and "@fastmlp.callee." in line
                       for line in ir.splitlines())
        print("LINKED" if defined else "NOT LINKED", "DECLARED" if declared else "NOT DECLARED")
"""


@pytest.mark.slow
def test_call_by_symbol_compiles_once_and_reloads_from_the_cache(tmp_path):
    """The caller gets the callee's results and exceptions, holds a
    declaration of it instead of its code, and a fresh process loading the
    cached caller registers the callee again (else LLVM could not resolve
    the symbol)."""
    (tmp_path / "symmod.py").write_text(MODULE)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    outputs = []
    for run in range(2):
        res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], env=env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        outputs.append(res.stdout)
    first, second = outputs
    # caller(x) = callee(x) + 1 = (2 x + 1) + 1, the callee's write kept
    expected = f"RESULTS {[2 * 3 + 2, 2 * 1.5 + 2, 2 * 3, 2 * 1.5]}"
    for out in outputs:
        assert expected in out.replace("np.int64(", "").replace("np.float64(", "").replace(
            ")", ""), out
        assert "RAISED negative input" in out
    assert "HITS 0" in first
    assert first.count("NOT LINKED DECLARED") == 2, first
    assert "HITS 0" not in second  # loaded from the cache


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_kernels_carry_the_registration_of_what_they_call_by_symbol():
    """Every compiled (or cache-loaded) kernel that calls another by symbol
    carries that callee's registration, which loads the callee and its own
    registrations in turn. ``network``'s comes from its parallel loop's
    body, through the wrapper libraries it links: a fresh process that
    loads only ``network`` from the cache, to predict, must register the
    task function before LLVM links the loaded code."""
    import numpy as np
    from sklearn.datasets import load_digits

    from fastmlp import MLPClassifier, _engine, _jit, _kernels, _linalg

    X, y = load_digits(return_X_y=True)
    MLPClassifier(hidden_layer_sizes=(8,), max_iter=1, batch_size=64,
                  random_state=0).fit(X[:200].astype(np.float32), y[:200])

    def callees(kernel):
        found = set()
        for cres in kernel.overloads.values():
            assert cres.reload_init, kernel
            found.update(s.qualname for s in cres.reload_init if isinstance(s, _jit._Symbol))
        return found

    assert callees(_engine.train_epoch_dense) == {"network"}
    assert callees(_kernels.network) == {"_network_task"}
    assert callees(_kernels._network_task) == {"_layer_task"}
    assert _linalg._layer_task.overloads
