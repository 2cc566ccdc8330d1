"""Calls between kernels by symbol (fastmlp._jit.call_by_symbol)."""

import os
import subprocess
import sys

import numpy as np
import pytest

MODULE = """
from fastmlp._jit import call_by_symbol, jit


@jit(internal=True)
def callee(x, out):
    if x < 0:
        raise ValueError("negative input")
    out[0] = x * 2
    return out[0] + 1


call_callee = call_by_symbol(callee)


@jit()
def caller(x, out):
    return call_callee(x, out) + 1


@jit()
def outer(x, out):
    # links caller's code the usual way
    return caller(x, out) + 1
"""

CHILD = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import symmod

kernel = getattr(symmod, sys.argv[2])
out_i = np.zeros(1, np.int64)
out_f = np.zeros(1)
print("RESULTS", [kernel(3, out_i), kernel(1.5, out_f), out_i[0], out_f[0]])
try:
    kernel(-1, out_i)
except ValueError as e:
    print("RAISED", e)
hits = sum(kernel.stats.cache_hits.values())
print("HITS", hits)
if hits == 0 and kernel is symmod.caller:
    for sig, cres in kernel.overloads.items():
        ir = cres.library.get_llvm_str()
        # the callee's code, inlined or not, would bring its exception message
        defined = "negative input" in ir
        declared = any(line.startswith("declare") and "@fastmlp.callee." in line
                       for line in ir.splitlines())
        print("LINKED" if defined else "NOT LINKED", "DECLARED" if declared else "NOT DECLARED")
"""


def _run_in_fresh_processes(tmp_path, kernels):
    """Run each of ``kernels`` in a fresh process, one after the other, on
    one cache; check every result; return the outputs."""
    (tmp_path / "symmod.py").write_text(MODULE)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    outputs = []
    for name in kernels:
        res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), name], env=env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, (name, res.stderr[-3000:])
        # caller(x) = callee(x) + 1 = (2 x + 1) + 1, the callee's write kept;
        # outer adds one more
        extra = 1 if name == "outer" else 0
        expected = f"RESULTS {[8 + extra, 5.0 + extra, 2 * 3, 2 * 1.5]}"
        out = res.stdout
        assert expected in out.replace("np.int64(", "").replace("np.float64(", "").replace(
            ")", ""), out
        assert "RAISED negative input" in out
        outputs.append(out)
    return outputs


@pytest.mark.slow
def test_call_by_symbol_compiles_once_and_reloads_from_the_cache(tmp_path):
    """The caller gets the callee's results and exceptions, holds a
    declaration of it instead of its code, and a fresh process loading the
    cached caller registers the callee again (else LLVM could not resolve
    the symbol)."""
    first, second = _run_in_fresh_processes(tmp_path, ["caller", "caller"])
    assert "HITS 0" in first
    assert first.count("NOT LINKED DECLARED") == 2, first
    assert "HITS 0" not in second  # loaded from the cache


@pytest.mark.slow
def test_a_kernel_linking_a_cached_caller_registers_its_callees(tmp_path):
    """``outer`` links ``caller``'s code, which calls ``callee`` by symbol.
    Compiled where ``caller`` came from the cache, ``outer`` must still
    carry ``callee``'s registration, or a later process loading ``outer``
    alone would jump to an unresolved symbol (it crashed so)."""
    outputs = _run_in_fresh_processes(tmp_path, ["caller", "outer", "outer"])
    assert "HITS 0" in outputs[1] and "HITS 0" not in outputs[2]


def test_call_by_symbol_needs_a_module_level_kernel():
    from numba import njit

    from fastmlp._jit import call_by_symbol

    with pytest.raises(ValueError, match="module-level kernel"):
        call_by_symbol(njit(lambda x: x))


def test_internal_kernels_refuse_calls_from_python():
    """A kernel compiled without its CPython entry point (``internal=True``)
    raises a clear TypeError when Python calls it, where Numba would crash
    the process; compiled code calls it as usual."""
    import numpy as np
    from native import native

    from fastmlp import _kernels, _linalg, _optim
    from fastmlp._bundles import make_params
    from fastmlp._codes import H_STEP_LR, SGD, WEIGHTS

    for kernel in (_optim.optimizer_step, _kernels._network_task, _linalg._layer_task,
                   _linalg._check_compressed, _kernels.output_head):
        assert kernel.targetoptions["no_cpython_wrapper"], kernel
        with pytest.raises(TypeError, match="internal fastmlp kernel: only compiled code"):
            kernel(1, 2)
    theta = np.zeros(4)
    params = make_params(theta, grad=np.ones(4), solver=SGD, learning_rate=0.5, momentum=0.0)
    params.hyper[H_STEP_LR] = 0.5  # the step's rate, as begin_step sets it
    with pytest.raises(TypeError, match="fastmlp._optim.optimizer_step is an internal"):
        _optim.optimizer_step(params, 0, 4, WEIGHTS)
    native(_optim.optimizer_step)(params, 1, 3, WEIGHTS)
    np.testing.assert_array_equal(theta, [0.0, -0.5, -0.5, 0.0])
    # the kernels Python calls keep their entry point
    assert not _kernels.network.targetoptions.get("no_cpython_wrapper", False)


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

    assert callees(_engine.train_epoch_dense) == {"_network", "gather_rows", "l2_sum"}
    assert callees(_kernels._network) == {"_network_task"}
    assert callees(_kernels._network_task) == {"_layer_task", "gather_rows", "output_head"}
    assert callees(_linalg._layer_task) == {"optimizer_step", "activate", "derivative",
                                            "_keep_rows"}
    assert _linalg._layer_task.overloads


def test_entry_point_runs_the_compiled_code_of_those_types():
    # a bundle-taking kernel bound to its argument types, called without
    # the dispatcher's typing: the same result, and no new signature
    from fastmlp._bundles import make_shape
    from fastmlp._codes import HEAD_IDENTITY, RELU
    from fastmlp._jit import PLAIN, entry_point
    from fastmlp._kernels import predict_serial
    from fastmlp._layout import Layout

    rng = np.random.RandomState(0)
    layout = Layout([3, 4, 2])
    shape, _ = make_shape(layout, [RELU], HEAD_IDENTITY, 0)
    theta = rng.normal(size=layout.size)
    X = rng.normal(size=(2, 3))
    out, expected = np.empty((2, 2)), np.empty((2, 2))
    assert predict_serial(shape, theta, X, expected)
    n_signatures = len(predict_serial.signatures)
    bound = entry_point(predict_serial, (shape, theta, X, out))
    assert (bound is predict_serial) == PLAIN
    assert bound(shape, theta, X, out)
    assert out.tobytes() == expected.tobytes()
    assert len(predict_serial.signatures) == n_signatures


def test_small_predictions_of_other_arrays_go_through_the_dispatcher():
    # only an aligned, C-contiguous, writeable X of the parameters' dtype
    # takes the bound entry point
    from fastmlp import _engine, _jit
    from fastmlp._codes import HEAD_IDENTITY, RELU
    from fastmlp._layout import Layout

    net = _engine.Network(Layout([3, 4, 2]), [RELU], HEAD_IDENTITY, np.float64)
    args = net.serial_args(np.random.RandomState(0).normal(size=net.layout.size))
    out = np.empty((2, 2))
    X = np.random.RandomState(1).normal(size=(2, 3))
    readonly = X.copy()
    readonly.flags.writeable = False
    for other in (readonly, np.asfortranarray(np.ones((2, 3))), X.astype(np.float32)):
        assert _engine._serial(_engine.predict_serial, args, other, out) is _engine.predict_serial
    bound = _engine._serial(_engine.predict_serial, args, X, out)
    assert (bound is _engine.predict_serial) == _jit.PLAIN
