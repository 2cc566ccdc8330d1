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
from fastmlp._bundles import make_batch, make_params, make_work, predict_params
from fastmlp._codes import (
    ACTIVATIONS,
    ADAM,
    BACKWARD,
    FORWARD,
    GRADIENT,
    H_ALPHA,
    H_LOG_EPS,
    H_STEP_LR,
    HEAD_ACTIVATIONS,
    HEADS,
    IDENTITY,
    N_HYPER,
    N_HYPER64,
    NO_STEP,
    OFF_A,
    OFF_B,
    OFF_W,
    PREDICT,
    ROWS,
    SGD,
    STEPS,
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


def _problem(units, n, dtype, activation, head, seed, solver):
    """``(net, X, Y, sw, params)``: a network, a batch, and a parameter
    bundle of ``solver`` with random parameters and optimizer state and
    a zero gradient."""
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
    params = make_params(theta, solver=solver, nesterov=True, m1=state1, m2=state2,
                         learning_rate=0.01, momentum=0.9, beta_1=0.9, beta_2=0.999,
                         epsilon=1e-8, alpha=0.3)
    params.hyper[H_STEP_LR] = 0.004  # the step's rate, as begin_step sets it
    return net, X, Y, sw, params


def _state(params):
    """What a step changes: the parameters and the optimizer state."""
    return params.theta, params.m1, params.m2


def _fresh(params):
    """A copy of ``params``' parameters and state, with a zero gradient."""
    return params._replace(theta=params.theta.copy(), grad=np.zeros_like(params.grad),
                           m1=params.m1.copy(), m2=params.m2.copy())


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


def _bundles(net, n, shares=None):
    """The shape and work bundles of a batch of ``n`` rows."""
    shape, size = net.shape(n)
    return shape, make_work(shape, size, net.dtype, shares=shares, rows=n)


def _block(buf, shape, l, n):
    m = shape.units[l + 1]
    o = shape.offsets[l, OFF_A]
    return buf[o:o + n * m].reshape(n, m)


def _by_layers(net, X, Y, sw, params):
    """The batch as one ``layer`` call per layer and operation, in order."""
    n_layers = len(net.layout.units) - 1
    n = X.shape[0]
    shape, work = _bundles(net, n)
    one = net.dtype.type(1)
    A = X
    for l in range(n_layers):
        act = int(shape.acts[l]) if l < n_layers - 1 else HEAD_ACTIVATIONS[shape.head]
        Out = _block(work.acts, shape, l, n)
        no_pre = np.zeros((0, shape.units[l + 1]), net.dtype)
        _linalg.layer(FORWARD, l, act, params, shape, (A, A, Out, no_pre), one)
        A = Out
    out = A.copy()
    native(_kernels.output_head)(A, Y, sw, shape.head, params.hyper[H_LOG_EPS],
                                 _block(work.deltas, shape, n_layers - 1, n), work.row_loss)
    sw_sum = sw.sum(dtype=sw.dtype)
    for l in range(n_layers - 1, -1, -1):
        D = _block(work.deltas, shape, l, n)
        Ain = X if l == 0 else _block(work.acts, shape, l - 1, n)
        if l > 0:
            _linalg.layer(BACKWARD, l, int(shape.acts[l - 1]), params, shape,
                          (Ain, D, _block(work.deltas, shape, l - 1, n), Ain), sw_sum)
        _linalg.layer(GRADIENT, l, IDENTITY, params, shape, (Ain, D, D, D), sw_sum)
    return out, work.row_loss, work.deltas, params.grad


def _n_row_tasks(n):
    return int(_linalg._n_tasks.py_func(n, _linalg.BR))


def _network(net, X, Y, sw, params, gather=False, split=False, shares=None):
    """The batch as :func:`network`'s ROWS and STEPS phases; with
    ``gather``, ROWS first gathers X's rows from a larger, shuffled array;
    with ``split``, the gradient is split by batch rows (a buffer of
    shares is given; ``shares``, that buffer). Returns the output layer's activations, the row
    losses, the deltas, the gradient, and the work buffers (activations,
    shares) for a closer look."""
    n = X.shape[0]
    if shares is None and split:
        shares = np.full((_n_row_tasks(n) - 1) * params.theta.size, np.nan, net.dtype)
    shape, work = _bundles(net, n, shares)
    if gather:
        Xs, bidx, X = _scatter(X)
        batch = make_batch(X, Y, sw, Xs=Xs, bidx=bidx)
    else:
        batch = make_batch(X, Y, sw)
    _kernels.network(ROWS, 0, net.dtype.type(1), params, shape, batch, work)
    out = _block(work.acts, shape, len(shape.units) - 2, n).copy()
    _kernels.network(STEPS, 0, sw.sum(dtype=sw.dtype), params, shape, batch, work)
    return out, work.row_loss, work.deltas, params.grad, (X, work.acts, shape, work.shares)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("units, n", NETWORKS)
@pytest.mark.parametrize("solver", [ADAM, SGD, NO_STEP])
def test_network_phases_equal_the_layer_sequence(dtype, units, n, solver):
    activation, head = ("relu", "softmax") if solver != SGD else ("tanh", "identity")
    seed = len(units) * 1000 + n + solver

    def problem():
        return _problem(units, n, dtype, activation, head, seed, solver)

    ref = problem()
    with threads(1):  # also OpenBLAS's: a threaded BLAS call may sum apart
        expected = _by_layers(*ref)
    for n_threads, gather in [(1, False), (2, False), (1, True), (2, True)]:
        mine = problem()
        with threads(n_threads):
            got = _network(*mine, gather=gather)
        # outputs, row losses, deltas and gradient
        for g, e in zip(got[:4], expected):
            np.testing.assert_array_equal(g, e)
        # theta and the optimizer state took the same step
        for g, e in zip(_state(mine[4]), _state(ref[4])):
            np.testing.assert_array_equal(g, e)
    if solver != NO_STEP:
        assert not np.array_equal(ref[4].theta, problem()[4].theta)


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
        return _problem(units, n, dtype, activation, head, seed, solver)

    ref = problem()
    with threads(1):
        expected = _by_layers(*ref)
    n_t = _n_row_tasks(n)
    assert n_t >= 2
    rtol = 1e-11 if dtype == np.float64 else 2e-5
    runs = []
    for n_threads, gather in [(1, False), (2, False), (1, True), (2, True)]:
        mine = problem()
        with threads(n_threads):
            got = _network(*mine, gather=gather, split=True)
        runs.append((got, mine))
        # the rows' work is the same as without shares
        for g, e in zip(got[:3], expected[:3]):
            np.testing.assert_array_equal(g, e)
        scale = np.abs(expected[3]).max()
        np.testing.assert_allclose(got[3], expected[3], rtol=rtol, atol=rtol * scale)
        theta, ref_theta = mine[4].theta, ref[4].theta
        np.testing.assert_allclose(theta, ref_theta, rtol=rtol,
                                   atol=rtol * np.abs(ref_theta).max())
    # each share is its task's rows of A.T @ D (task 0's went into the
    # gradient, so rows 1.. are checked)
    net = ref[0]
    L = net.layout
    X, acts, shape, shares = runs[0][0][4]
    deltas = runs[0][0][2]
    shares = shares.reshape(n_t - 1, L.size)
    for t in range(1, n_t):
        r0, r1 = _linalg._task_rows.py_func(t, n_t, n)
        for l in range(len(L.units) - 1):
            A = X if l == 0 else _block(acts, shape, l - 1, n)
            D = _block(deltas, shape, l, n)
            k, m = L.units[l], L.units[l + 1]
            wo, bo = shape.offsets[l, OFF_W], shape.offsets[l, OFF_B]
            W = shares[t - 1, wo:wo + k * m].reshape(k, m)
            want = A[r0:r1].astype(np.float64).T @ D[r0:r1].astype(np.float64)
            np.testing.assert_allclose(W, want, rtol=rtol, atol=rtol * np.abs(want).max())
            b = shares[t - 1, bo:bo + m]
            np.testing.assert_allclose(b, D[r0:r1].astype(np.float64).sum(axis=0), rtol=rtol,
                                       atol=rtol * np.abs(D).sum(axis=0).max())
    # same bits whatever the thread count or the gather
    for got, mine in runs[1:]:
        for g, e in zip(got[:4], runs[0][0][:4]):
            np.testing.assert_array_equal(g, e)
        for g, e in zip(_state(mine[4]), _state(runs[0][1][4])):
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_split_gradient_with_one_row_task(dtype):
    """A batch of fewer than 8 rows is one row task: with shares given (as
    for a short last batch), its share is the whole gradient and STEPS adds
    no other."""
    units, n = [3, 5, 2], 7

    def problem():
        return _problem(units, n, dtype, "relu", "softmax", 11, ADAM)

    ref = problem()
    with threads(1):
        expected = _by_layers(*ref)
    runs = []
    for n_threads in (1, 2):
        mine = problem()
        shares = np.full(1, np.nan, dtype)  # room for no share: none is written
        with threads(n_threads):
            grad = _network(*mine, shares=shares)[3]
        assert np.isnan(shares).all()
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(grad, expected[3], rtol=rtol,
                                   atol=rtol * np.abs(expected[3]).max())
        runs.append((grad, *_state(mine[4])))
    for g, e in zip(*runs):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_batch_objective_splits_the_gradient(dtype):
    """The L-BFGS objective of a small network uses the shares: its
    gradient has the bits of network's split phases, not those of the
    split by rows of ``W``."""
    net, X, Y, sw, params = _problem([12, 33, 4], 300, dtype, "relu", "softmax", 13, NO_STEP)
    sw[:] = 1  # the objective's sum of the weights and numpy's agree exactly
    objective = _engine.FullBatchObjective(net, _engine.Inputs(X, dtype), Y, sw,
                                           float(params.hyper[H_ALPHA]))
    assert objective.work.shares.size > 0
    loss, grad = objective(params.theta.astype(np.float64))
    split = _network(net, X, Y, sw, _fresh(params), split=True)
    by_w = _network(net, X, Y, sw, _fresh(params))
    np.testing.assert_array_equal(grad, split[3].astype(np.float64))
    assert not np.array_equal(grad, by_w[3].astype(np.float64))


def test_network_predict_phase_writes_every_layer():
    prob = _problem([70, 300, 520, 9], 130, np.float32, "relu", "softmax", 3, NO_STEP)
    net, X, Y, sw, params = prob
    with threads(1):
        expected = _by_layers(*prob)[0]
    shape, size = net.shape(X.shape[0])
    # the bundles of a prediction: no training buffers
    work = make_work(shape, size, net.dtype, train=False)
    with threads(2):
        _kernels.network(PREDICT, 0, net.dtype.type(1), predict_params(params.theta), shape,
                         make_batch(X), work)
    np.testing.assert_array_equal(_block(work.acts, shape, 2, X.shape[0]), expected)


def _fitting_bundles(prob):
    """``(params, shape, batch, work)`` of a problem, which fit each other."""
    net, X, Y, sw, params = prob
    shape, work = _bundles(net, X.shape[0])
    return params, shape, make_batch(X, Y, sw), work


def test_network_runs_on_fitting_bundles():
    # the bundles test_network_refuses_arrays_that_do_not_fit starts from
    prob = _problem([12, 33, 600, 17, 4], 20, np.float64, "relu", "softmax", 5, ADAM)
    params, shape, batch, work = _fitting_bundles(prob)
    before = params.theta.copy()
    for phase in (ROWS, STEPS):
        _kernels.network(phase, 0, 3.0, params, shape, batch, work)
    assert np.isfinite(params.theta).all() and not np.array_equal(params.theta, before)


@pytest.mark.parametrize("case", [
    "rows beyond the buffers", "short acts", "offsets", "layer offsets", "targets",
    "weights", "loss rows", "input width", "optimizer state", "first layer",
    "overlapping work blocks", "acts are deltas", "overlapping layers",
    "gather: row index too large", "gather: negative row index", "gather: short index",
    "gather: source width", "gather: source is the batch", "gather: sparse input",
    "short shares", "short shares (steps)", "shares are the gradient",
    "shares are the weights", "shares are the deltas", "short gradient with shares",
    "short gradient (steps)", "sgd: short velocity", "short hyper", "adam: short hyper64",
    "no step count", "head", "hidden activations", "activation code"])
def test_network_refuses_arrays_that_do_not_fit(case):
    prob = _problem([12, 33, 600, 17, 4], 20, np.float64, "relu", "softmax", 5, ADAM)
    net = prob[0]
    params, shape, batch, work = _fitting_bundles(prob)
    theta = params.theta
    P = theta.size
    before = theta.copy()
    offsets = shape.offsets.copy()
    first = 0
    phase = ROWS
    if case == "rows beyond the buffers":
        batch = batch._replace(n=21)
    elif case == "short acts":
        work = work._replace(acts=np.zeros(work.acts.size - 1))
    elif case == "offsets":
        # a layer's row of the offsets table missing
        shape = shape._replace(offsets=offsets[:-1].copy())
    elif case == "layer offsets":
        offsets[:, OFF_W] += 1
        shape = shape._replace(offsets=offsets)
    elif case == "targets":
        batch = batch._replace(Y=batch.Y[:, :-1].copy())
    elif case == "weights":
        batch = batch._replace(sw=batch.sw[:-1].copy())
    elif case == "loss rows":
        work = work._replace(row_loss=np.zeros(19))
    elif case == "input width":
        batch = batch._replace(X=np.zeros((20, 11)))
    elif case == "optimizer state":
        params = params._replace(m2=params.m2[:-1].copy())
        phase = STEPS
    elif case == "first layer":
        first = 2
    elif case == "overlapping work blocks":
        # every block fits the buffer, but the layers' blocks coincide
        offsets[:, OFF_A] = 0
        shape = shape._replace(offsets=offsets)
    elif case == "acts are deltas":
        work = work._replace(deltas=work.acts)
    elif case.startswith("short shares"):
        # 20 rows are 2 row tasks: one share beside the gradient's
        work = work._replace(shares=np.zeros(P - 1))
        if case.endswith("(steps)"):
            phase = STEPS
    elif case == "shares are the gradient":
        grad = np.zeros(2 * P)[:P]
        params = params._replace(grad=grad)
        work = work._replace(shares=grad)
    elif case == "shares are the weights":
        work = work._replace(shares=theta)
    elif case == "shares are the deltas":
        deltas = np.zeros(work.deltas.size + P)
        work = work._replace(deltas=deltas, shares=deltas)
    elif case == "short gradient with shares":
        # ROWS writes task 0's share into the gradient
        params = params._replace(grad=np.zeros(P - 1))
        work = work._replace(shares=np.zeros(P))
    elif case == "short gradient (steps)":
        params = params._replace(grad=np.zeros(P - 1))
        phase = STEPS
    elif case == "sgd: short velocity":
        # SGD's step reads m1, its velocity (m2 may have any length)
        params = params._replace(solver=SGD, m1=params.m1[:-1].copy(), m2=np.zeros(1))
        phase = STEPS
    elif case == "short hyper":
        params = params._replace(hyper=params.hyper[:N_HYPER - 1].copy())
    elif case == "adam: short hyper64":
        params = params._replace(hyper64=params.hyper64[:N_HYPER64 - 1].copy())
        phase = STEPS
    elif case == "no step count":
        params = params._replace(step=np.zeros(0, np.int64))
        phase = STEPS
    elif case == "head":
        shape = shape._replace(head=len(HEAD_ACTIVATIONS))
    elif case == "hidden activations":
        # three hidden layers, two activation codes
        shape = shape._replace(acts=shape.acts[:2].copy())
    elif case == "activation code":
        acts = shape.acts.copy()
        acts[1] = 99
        shape = shape._replace(acts=acts)
    elif case.startswith("gather"):
        Xs, bidx, X = _scatter(batch.X)
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
            first = 1
        batch = batch._replace(X=X, Xs=Xs, bidx=bidx)
    else:
        # layer 1's weights on top of layer 0's
        units = net.layout.units
        offsets[1, OFF_W] = 0
        offsets[1, OFF_B] = units[1] * units[2]
        shape = shape._replace(offsets=offsets)
    with pytest.raises(ValueError, match="fastmlp: "):
        _kernels.network(phase, first, 3.0, params, shape, batch, work)
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
    assert trainer.work.shares.size == net.layout.size
    objective = _engine.FullBatchObjective(net, _engine.Inputs(X, np.float64), Y,
                                           np.ones(300), 1e-4)
    assert objective.work.shares.size == 3 * net.layout.size  # 300 rows: four row tasks
    assert _engine.gradient_shares(256, Layout([200, 512, 512, 256, 10]).size,
                                   np.float32).size == 0
