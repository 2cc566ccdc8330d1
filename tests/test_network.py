"""The whole-network kernel of fastmlp._kernels against the layer kernel.

:func:`fastmlp._kernels.network` runs a training batch in two parallel
loops (ROWS: forward, output head and deltas, a row block per task through
every layer; STEPS: every layer's gradient and optimizer step) where the
layer-by-layer sequence took one loop per layer and operation. It claims
the same bits as that sequence, on any thread count: these tests run both
on networks whose layers split into different numbers of tasks (one task
for fewer than 8 rows, four for 300 or 520), and check that arrays which do
not fit the layout are refused before any task runs. With a buffer of
gradient shares, the gradient is split by batch rows instead: the sums
differ in the last bits, so those tests compare with a tolerance, check
each share, and check the bits across thread counts.
"""

import numpy as np
import pytest

from native import native
from fastmlp import _engine, _kernels, _linalg
from fastmlp._codes import (
    ACTIVATIONS,
    ADAM,
    H_ALPHA,
    H_LOG_EPS,
    H_LR_T,
    HEAD_ACTIVATIONS,
    HEADS,
    NO_STEP,
    SGD,
)
from fastmlp._layout import Layout
from fastmlp._threads import threads

DTYPES = [np.float64, np.float32]
NETWORKS = [
    # (units, rows): layers of 1, 2 and 4 tasks, batches of 1 to 4 row tasks
    ([3, 5, 2], 7),
    ([3, 4], 1),
    ([70, 300, 520, 9], 130),
    ([12, 33, 600, 17, 4], 300),
    ([9, 6, 3], 520),
]


def _problem(units, n, dtype, activation, head, seed):
    rng = np.random.RandomState(seed)
    layout = Layout(units)
    net = _engine.Network(layout, [ACTIVATIONS[activation]] * (len(units) - 2), HEADS[head],
                          dtype)
    X = rng.normal(size=(n, units[0])).astype(dtype)
    if head == "softmax":
        Y = np.eye(units[-1], dtype=dtype)[rng.randint(0, units[-1], n)]
    else:
        Y = rng.normal(size=(n, units[-1])).astype(dtype)
    sw = rng.uniform(0.2, 2.0, size=n).astype(dtype)
    theta = (rng.normal(size=layout.size) / 4).astype(dtype)
    state1 = (rng.normal(size=layout.size) / 10).astype(dtype)
    state2 = rng.uniform(0, 0.1, size=layout.size).astype(dtype)
    hyper = _engine.make_hyper(dtype, learning_rate=0.01, momentum=0.9, beta_1=0.9,
                               beta_2=0.999, epsilon=1e-8, alpha=0.3)
    hyper[H_LR_T] = 0.004
    return net, X, Y, sw, theta, state1, state2, hyper


_NO_ROWS = np.zeros(0, np.int64)


def _scatter(X, seed=0):
    """``(Xs, bidx, Xb)``: X's rows spread among other rows of a larger
    array, so that ``Xs[bidx] == X``, and an empty batch buffer ``Xb``
    (NaN, so a row left ungathered shows) for the forward pass to fill."""
    rng = np.random.RandomState(seed)
    n, k = X.shape
    Xs = rng.normal(size=(3 * n + 5, k)).astype(X.dtype)
    bidx = rng.permutation(Xs.shape[0])[:n].astype(np.int64)
    Xs[bidx] = X
    return Xs, bidx, np.full_like(X, np.nan)


def _buffers(net, n):
    a_off, size = net.work_offsets(n)
    dt = net.dtype
    return a_off, np.zeros(size, dt), np.zeros(size, dt), np.zeros(n, np.float64)


def _block(buf, a_off, units, l, n):
    return buf[a_off[l]:a_off[l] + n * units[l + 1]].reshape(n, units[l + 1])


def _by_layers(net, X, Y, sw, theta, state1, state2, hyper, solver):
    """The batch as one ``layer`` call per layer and operation, in order."""
    L = net.layout
    units = L.units
    n_layers = len(units) - 1
    n = X.shape[0]
    a_off, acts, deltas, row_loss = _buffers(net, n)
    grad = np.zeros_like(theta)
    one = net.dtype.type(1)
    A = X
    for l in range(n_layers):
        act = (int(net.acts_code[l]) if l < n_layers - 1
               else HEAD_ACTIVATIONS[net.head])
        Z = _block(acts, a_off, units, l, n)
        _linalg.layer(_linalg.FORWARD, theta, theta, theta, theta, L.w_off[l], L.b_off[l],
                      A, A, Z, act, NO_STEP, False, theta, one)
        A = Z
    out = A.copy()
    native(_kernels.output_head)(A, Y, sw, net.head, hyper[H_LOG_EPS],
                                 _block(deltas, a_off, units, n_layers - 1, n), row_loss)
    sw_sum = sw.sum(dtype=sw.dtype)
    for l in range(n_layers - 1, -1, -1):
        D = _block(deltas, a_off, units, l, n)
        Ain = X if l == 0 else _block(acts, a_off, units, l - 1, n)
        if l > 0:
            _linalg.layer(_linalg.BACKWARD, theta, grad, state1, state2, L.w_off[l],
                          L.b_off[l], Ain, D, _block(deltas, a_off, units, l - 1, n),
                          int(net.acts_code[l - 1]), solver, True, hyper, sw_sum)
        _linalg.layer(_linalg.GRADIENT, theta, grad, state1, state2, L.w_off[l], L.b_off[l],
                      Ain, D, D, 0, solver, True, hyper, sw_sum)
    return out, row_loss, deltas, grad


def _n_row_tasks(n):
    return int(_linalg._n_tasks.py_func(n, _linalg.BR))


def _network(net, X, Y, sw, theta, state1, state2, hyper, solver, gather=False, split=False,
             shares=None):
    """The batch as :func:`network`'s ROWS and STEPS phases; with
    ``gather``, ROWS first gathers X's rows from a larger, shuffled array;
    with ``split``, the gradient is split by batch rows (a buffer of
    shares is given; ``shares``, that buffer). Returns the output layer's activations, the row
    losses, the deltas, the gradient, and the work buffers (activations,
    shares) for a closer look."""
    L = net.layout
    n = X.shape[0]
    a_off, acts, deltas, row_loss = _buffers(net, n)
    grad = np.zeros_like(theta)
    if shares is None:
        shares = np.full((_n_row_tasks(n) - 1) * theta.size if split else 0, np.nan,
                         net.dtype)
    Xs, bidx = X, _NO_ROWS  # not read: X's type, as the engine passes
    if gather:
        Xs, bidx, X = _scatter(X)
    args = (L.units, L.w_off, L.b_off, net.acts_code, net.head, X, Y, sw, acts, deltas, a_off,
            row_loss, Xs, bidx, shares)
    _kernels.network(_kernels.ROWS, 0, n, theta, grad, state1, state2, solver, True, hyper,
                     net.dtype.type(1), *args)
    out = _block(acts, a_off, L.units, len(L.units) - 2, n).copy()
    _kernels.network(_kernels.STEPS, 0, n, theta, grad, state1, state2, solver, True, hyper,
                     sw.sum(dtype=sw.dtype), *args)
    return out, row_loss, deltas, grad, (X, acts, a_off, shares)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("units, n", NETWORKS)
@pytest.mark.parametrize("solver", [ADAM, SGD, NO_STEP])
def test_network_phases_equal_the_layer_sequence(dtype, units, n, solver):
    activation, head = ("relu", "softmax") if solver != SGD else ("tanh", "identity")
    seed = len(units) * 1000 + n + solver

    def problem():
        return _problem(units, n, dtype, activation, head, seed)

    ref = problem()
    with threads(1):  # also OpenBLAS's: a threaded BLAS call may sum apart
        expected = _by_layers(*ref, solver)
    for n_threads, gather in [(1, False), (2, False), (1, True), (2, True)]:
        mine = problem()
        with threads(n_threads):
            got = _network(*mine, solver, gather=gather)
        # outputs, row losses, deltas and gradient
        for g, e in zip(got[:4], expected):
            np.testing.assert_array_equal(g, e)
        # theta and the optimizer state took the same step
        for g, e in zip(mine[4:7], ref[4:7]):
            np.testing.assert_array_equal(g, e)
    if solver != NO_STEP:
        assert not np.array_equal(ref[4], problem()[4])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("units, n", [u for u in NETWORKS if u[1] >= 8])
@pytest.mark.parametrize("solver", [ADAM, SGD, NO_STEP])
def test_network_split_gradient(dtype, units, n, solver):
    """With a buffer of shares, each row task's share of every layer's
    gradient is its rows' ``A.T @ D``; their sum is the gradient of the
    layer sequence up to rounding, and the same bits on 1 or 2 threads,
    gathered or not."""
    activation, head = ("relu", "softmax") if solver != SGD else ("tanh", "identity")
    seed = len(units) * 1000 + n + solver + 7

    def problem():
        return _problem(units, n, dtype, activation, head, seed)

    ref = problem()
    with threads(1):
        expected = _by_layers(*ref, solver)
    n_t = _n_row_tasks(n)
    assert n_t >= 2
    rtol = 1e-11 if dtype == np.float64 else 2e-5
    runs = []
    for n_threads, gather in [(1, False), (2, False), (1, True), (2, True)]:
        mine = problem()
        with threads(n_threads):
            got = _network(*mine, solver, gather=gather, split=True)
        runs.append((got, mine))
        # the rows' work is the same as without shares
        for g, e in zip(got[:3], expected[:3]):
            np.testing.assert_array_equal(g, e)
        scale = np.abs(expected[3]).max()
        np.testing.assert_allclose(got[3], expected[3], rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(mine[4], ref[4], rtol=rtol, atol=rtol * np.abs(ref[4]).max())
    # each share is its task's rows of A.T @ D (task 0's went into the
    # gradient, so rows 1.. are checked)
    net = ref[0]
    L = net.layout
    X, acts, a_off, shares = runs[0][0][4]
    deltas = runs[0][0][2]
    shares = shares.reshape(n_t - 1, L.size)
    for t in range(1, n_t):
        r0, r1 = _linalg._task_rows.py_func(t, n_t, n)
        for l in range(len(L.units) - 1):
            A = X if l == 0 else _block(acts, a_off, L.units, l - 1, n)
            D = _block(deltas, a_off, L.units, l, n)
            k, m = L.units[l], L.units[l + 1]
            W = shares[t - 1, L.w_off[l]:L.w_off[l] + k * m].reshape(k, m)
            want = A[r0:r1].astype(np.float64).T @ D[r0:r1].astype(np.float64)
            np.testing.assert_allclose(W, want, rtol=rtol, atol=rtol * np.abs(want).max())
            b = shares[t - 1, L.b_off[l]:L.b_off[l] + m]
            np.testing.assert_allclose(b, D[r0:r1].astype(np.float64).sum(axis=0), rtol=rtol,
                                       atol=rtol * np.abs(D).sum(axis=0).max())
    # same bits whatever the thread count or the gather
    for got, mine in runs[1:]:
        for g, e in zip(got[:4], runs[0][0][:4]):
            np.testing.assert_array_equal(g, e)
        for g, e in zip(mine[4:7], runs[0][1][4:7]):
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_split_gradient_with_one_row_task(dtype):
    """A batch of fewer than 8 rows is one row task: with shares given (as
    for a short last batch), its share is the whole gradient and STEPS adds
    no other."""
    units, n = [3, 5, 2], 7

    def problem():
        return _problem(units, n, dtype, "relu", "softmax", 11)

    ref = problem()
    with threads(1):
        expected = _by_layers(*ref, ADAM)
    runs = []
    for n_threads in (1, 2):
        mine = problem()
        shares = np.full(1, np.nan, dtype)  # room for no share: none is written
        with threads(n_threads):
            grad = _network(*mine, ADAM, shares=shares)[3]
        assert np.isnan(shares).all()
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(grad, expected[3], rtol=rtol,
                                   atol=rtol * np.abs(expected[3]).max())
        runs.append((grad, *mine[4:7]))
    for g, e in zip(*runs):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_batch_objective_splits_the_gradient(dtype):
    """The L-BFGS objective of a small network uses the shares: its
    gradient has the bits of network's split phases, not those of the
    split by rows of ``W``."""
    net, X, Y, sw, theta, state1, state2, hyper = _problem([12, 33, 4], 300, dtype, "relu",
                                                           "softmax", 13)
    sw[:] = 1  # the objective's sum of the weights and numpy's agree exactly
    objective = _engine.FullBatchObjective(net, _engine.Inputs(X, dtype), Y, sw,
                                           float(hyper[H_ALPHA]))
    assert objective.shares.size > 0
    loss, grad = objective(theta.astype(np.float64))
    split = _network(net, X, Y, sw, theta.copy(), state1, state2, hyper, NO_STEP, split=True)
    by_w = _network(net, X, Y, sw, theta.copy(), state1, state2, hyper, NO_STEP)
    np.testing.assert_array_equal(grad, split[3].astype(np.float64))
    assert not np.array_equal(grad, by_w[3].astype(np.float64))


def test_network_predict_phase_writes_every_layer():
    prob = _problem([70, 300, 520, 9], 130, np.float32, "relu", "softmax", seed=3)
    net, X, Y, sw, theta = prob[:5]
    with threads(1):
        expected = _by_layers(*prob, NO_STEP)[0]
    L = net.layout
    a_off, acts, _, _ = _buffers(net, X.shape[0])
    empty = np.zeros(0, net.dtype)
    with threads(2):
        _kernels.network(_kernels.PREDICT, 0, X.shape[0], theta, theta, theta, theta, NO_STEP,
                         False, theta, net.dtype.type(1), L.units, L.w_off, L.b_off,
                         net.acts_code, net.head, X, X, empty, acts, acts, a_off, np.zeros(0),
                         X, _NO_ROWS, empty)
    np.testing.assert_array_equal(_block(acts, a_off, L.units, 2, X.shape[0]), expected)


def _call(phase, net, X, Y, sw, theta, state1, state2, hyper, *, n=None, a_off=None,
          acts=None, deltas=None, row_loss=None, w_off=None, b_off=None, first=0, Xs=None,
          bidx=_NO_ROWS, shares=None, grad=None):
    L = net.layout
    n = X.shape[0] if n is None else n
    off, a, d, rl = _buffers(net, X.shape[0])
    grad = np.zeros_like(theta) if grad is None else grad
    shares = np.zeros(0, theta.dtype) if shares is None else shares
    _kernels.network(phase, first, n, theta, grad, state1, state2, ADAM, True,
                     hyper, net.dtype.type(3), L.units, L.w_off if w_off is None else w_off,
                     L.b_off if b_off is None else b_off, net.acts_code, net.head, X, Y, sw,
                     a if acts is None else acts, d if deltas is None else deltas,
                     off if a_off is None else a_off, rl if row_loss is None else row_loss,
                     X if Xs is None else Xs, bidx, shares)


def _read_only(a):
    a = np.array(a, dtype=np.int64)
    a.flags.writeable = False  # as the engine passes a_off
    return a


@pytest.mark.parametrize("case", [
    "rows beyond the buffers", "short acts", "offsets", "layer offsets", "targets",
    "weights", "loss rows", "input width", "optimizer state", "first layer",
    "overlapping work blocks", "acts are deltas", "overlapping layers",
    "gather: row index too large", "gather: negative row index", "gather: short index",
    "gather: source width", "gather: source is the batch", "gather: sparse input",
    "short shares", "short shares (steps)", "shares are the gradient",
    "shares are the weights", "shares are the deltas", "short gradient with shares"])
def test_network_refuses_arrays_that_do_not_fit(case):
    prob = _problem([12, 33, 600, 17, 4], 20, np.float64, "relu", "softmax", seed=5)
    net, X, Y, sw, theta, state1, state2, hyper = prob
    before = theta.copy()
    kw = {}
    phase = _kernels.ROWS
    if case == "rows beyond the buffers":
        kw["n"] = 21
    elif case == "short acts":
        kw["acts"] = np.zeros(_buffers(net, 20)[1].size - 1)
    elif case == "offsets":
        kw["a_off"] = net.work_offsets(20)[0][:-1]
    elif case == "layer offsets":
        kw["w_off"] = net.layout.w_off + 1
    elif case == "targets":
        Y = Y[:, :-1].copy()
    elif case == "weights":
        sw = sw[:-1].copy()
    elif case == "loss rows":
        kw["row_loss"] = np.zeros(19)
    elif case == "input width":
        X = np.zeros((20, 11))
    elif case == "optimizer state":
        state2 = state2[:-1].copy()
        phase = _kernels.STEPS
    elif case == "first layer":
        kw["first"] = 2
    elif case == "overlapping work blocks":
        # every block fits the buffer, but the layers' blocks coincide
        kw["a_off"] = _read_only(np.zeros(4))
    elif case == "acts are deltas":
        kw["deltas"] = kw["acts"] = _buffers(net, 20)[1]
    elif case.startswith("short shares"):
        # 20 rows are 2 row tasks: one share beside the gradient's
        kw["shares"] = np.zeros(theta.size - 1)
        if case.endswith("(steps)"):
            phase = _kernels.STEPS
    elif case == "shares are the gradient":
        kw["grad"] = np.zeros(2 * theta.size)[:theta.size]
        kw["shares"] = kw["grad"]
    elif case == "shares are the weights":
        kw["shares"] = theta
    elif case == "shares are the deltas":
        kw["deltas"] = kw["shares"] = np.zeros(_buffers(net, 20)[1].size + theta.size)
    elif case == "short gradient with shares":
        # ROWS writes task 0's share into the gradient
        kw["grad"] = np.zeros(theta.size - 1)
        kw["shares"] = np.zeros(theta.size)
    elif case.startswith("gather"):
        Xs, bidx, X = _scatter(X)
        if case == "gather: row index too large":
            bidx[7] = Xs.shape[0]
        elif case == "gather: negative row index":
            bidx[19] = -1
        elif case == "gather: short index":
            bidx = bidx[:19].copy()
        elif case == "gather: source width":
            Xs = np.zeros((Xs.shape[0], 13))
        elif case == "gather: source is the batch":
            Xs = X
            bidx[:] = 0
        else:
            kw["first"] = 1
        kw["Xs"], kw["bidx"] = Xs, bidx
    else:
        # layer 1's weights on top of layer 0's
        units = net.layout.units
        w_off = net.layout.w_off.copy()
        w_off[1] = 0
        b_off = net.layout.b_off.copy()
        b_off[1] = units[1] * units[2]
        kw["w_off"], kw["b_off"] = w_off, b_off
    with pytest.raises(ValueError, match="fastmlp: "):
        _call(phase, net, X, Y, sw, theta, state1, state2, hyper, **kw)
    np.testing.assert_array_equal(theta, before)



def test_gradient_shares_only_where_they_are_small():
    """The engine splits the gradient by batch rows only where the shares
    fit in SHARES_MAX_BYTES, and never for a single row task."""
    cap = _engine.SHARES_MAX_BYTES
    P = cap // 8
    # 200 rows are two row tasks: one share beside the gradient
    assert _engine.gradient_shares(200, P, np.float64).shape == (P,)
    assert _engine.gradient_shares(200, P + 1, np.float64).size == 0
    assert _engine.gradient_shares(200, P + 1, np.float32).dtype == np.float32
    assert _engine.gradient_shares(200, P + 1, np.float32).size == P + 1
    # 520 rows are six row tasks; 7 rows are one
    assert _engine.gradient_shares(520, 100, np.float64).size == 5 * 100
    assert _engine.gradient_shares(7, 100, np.float64).size == 0
    # what a fit allocates: W1's network on digits-sized batches, not W3's
    net = _engine.Network(Layout([64, 100, 10]), [ACTIVATIONS["relu"]], HEADS["softmax"],
                          np.float64)
    X = np.zeros((300, 64))
    Y = np.zeros((300, 10))
    trainer = _engine.StochasticTrainer(net, _engine.Inputs(X, np.float64), Y,
                                        np.ones(300), 200, ADAM, alpha=1e-4,
                                        learning_rate_init=1e-3)
    assert trainer.shares.size == net.layout.size
    objective = _engine.FullBatchObjective(net, _engine.Inputs(X, np.float64), Y,
                                           np.ones(300), 1e-4)
    assert objective.shares.size == 3 * net.layout.size  # 300 rows: four row tasks
    assert _engine.gradient_shares(256, Layout([200, 512, 512, 256, 10]).size,
                                   np.float32).size == 0
