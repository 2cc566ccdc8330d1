"""fastmlp's training features against PyTorch's own optimizers, schedulers,
gradient clipping and losses.

Each test trains the same small network (tanh hidden units) from the same
initial weights for K full-batch float64 steps in both: fastmlp runs a
warm-start fit (a new optimizer, step count 0, the schedule restarted) with
``batch_size=n_samples, shuffle=False``, one step per epoch; torch runs a
plain loop over ``nn.Sequential`` with its own optimizer and scheduler. The
weights after the K steps, the loss of every step (``loss_curve_``) and the
rate of every step (``history_[k]['learning_rate']``) are compared.

Adam: fastmlp's is scikit-learn's, ``w -= lr_t m / (sqrt(v) + eps)`` with
``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``: epsilon outside the bias
correction, where torch adds it to ``sqrt(v / (1 - b2^t))``. With
``epsilon=1e-30`` in both the two differ by ~eps / sqrt(v), far below
rounding, so they agree to rounding (rtol 1e-9 over K steps; with the
default 1e-8 some weights with tiny gradients differ by ~10%). tanh hidden
units (no dead units, as relu's) keep exact-zero gradients to the weights
of the digits' blank pixels alone, which update nothing in either.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.datasets import load_digits  # noqa: E402

from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

F64 = torch.float64
K = 6  # steps (epochs) per test
EPS = 1e-30  # Adam's epsilon in both (see the module docstring)
# K steps of two float64 computations of the same thing summed in different
# orders: relative differences of ~1e-14 per step, grown by Adam's division
# by sqrt(v); 1e-9 leaves a wide margin and still catches any wrong formula.
TOL = dict(rtol=1e-9, atol=1e-12)


def _digits(n_classes=3):
    X, y = load_digits(return_X_y=True)
    return X[:150] / 16, y[:150] % n_classes


def _fastmlp(est, X, y, k=K):
    """Fit ``est`` one epoch (its initial weights), then ``k`` more steps by a
    warm start; returns the weights before the warm start and ``est``."""
    n = X.shape[0]
    est.set_params(batch_size=n, shuffle=False, max_iter=1, random_state=0).fit(X, y)
    coefs = [c.copy() for c in est.coefs_]
    intercepts = [b.copy() for b in est.intercepts_]
    est.set_params(warm_start=True, max_iter=k).fit(X, y)
    assert est.n_iter_ == k
    return coefs, intercepts, est


def _torch_net(coefs, intercepts):
    """``nn.Sequential`` of Linear and Tanh layers holding fastmlp's weights
    (a Linear's weight is ``coefs_[i].T``); the output layer is linear (the
    losses take logits)."""
    layers = []
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        lin = torch.nn.Linear(*W.shape, dtype=F64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(coefs) - 1:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def _groups(net, weight_decay=0.0):
    """Param groups: weights with ``weight_decay``, biases without (torch's
    AdamW decays all it is given; fastmlp decays weights only)."""
    weights = [m.weight for m in net if isinstance(m, torch.nn.Linear)]
    biases = [m.bias for m in net if isinstance(m, torch.nn.Linear)]
    return [{"params": weights, "weight_decay": weight_decay},
            {"params": biases, "weight_decay": 0.0}]


def _l2(net, alpha, n):
    """scikit-learn's L2 term, ``0.5 alpha sum(W^2) / n`` (weights only)."""
    return 0.5 * alpha * sum((m.weight ** 2).sum() for m in net
                             if isinstance(m, torch.nn.Linear)) / n


def _train_torch(net, loss_fn, opt, sched=None, clip=None, k=K):
    """``k`` full-batch steps; returns the loss, the lr and (with ``clip``)
    the unclipped gradient norm of each step."""
    losses, rates, norms = [], [], []
    params = list(net.parameters())
    for _ in range(k):
        opt.zero_grad()
        loss = loss_fn(net)
        loss.backward()
        if clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, clip)))
        losses.append(loss.item())
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return losses, rates, norms


def _assert_same(est, net, losses=None, rates=None):
    """fastmlp's weights (and loss curve, rates) are torch's."""
    lins = [m for m in net if isinstance(m, torch.nn.Linear)]
    for W, b, lin in zip(est.coefs_, est.intercepts_, lins):
        np.testing.assert_allclose(W, lin.weight.detach().numpy().T, **TOL)
        np.testing.assert_allclose(b, lin.bias.detach().numpy(), **TOL)
    if losses is not None:
        np.testing.assert_allclose(est.loss_curve_[-len(losses):], losses, rtol=1e-12)
    if rates is not None:
        got = [h["learning_rate"] for h in est.history_[-len(rates):]]
        np.testing.assert_allclose(got, rates, rtol=1e-13, atol=1e-17)


def _cross_entropy(X, y, alpha=0.0, smoothing=0.0):
    """scikit-learn's multiclass loss (mean cross-entropy + its L2 term),
    torch's CrossEntropyLoss with its label smoothing."""
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
    ce = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)
    return lambda net: ce(net(Xt), yt) + _l2(net, alpha, len(X))


def _adam_clf(**kw):
    kw = {"learning_rate_init": 0.02, "alpha": 0.0, "epsilon": EPS, **kw}
    return MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", solver="adam", **kw)


def _cosine_lambda(warmup, horizon, schedule="cosine"):
    """The closed-form factor at step ``k`` (one step per epoch): ``k / w``
    in the warm-up, then cosine / linear / constant over the rest."""
    def factor(k):
        if k < warmup:
            return k / warmup
        p = min(max((k - warmup) / (horizon - warmup), 0.0), 1.0)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * p))
        return 1 - p if schedule == "linear" else 1.0
    return factor


# ---------------------------------------------------------------- AdamW, Adam


@pytest.mark.parametrize("alpha", [0.0, 1e-2])
def test_adamw_is_torch_adamw_on_the_weights_only(alpha):
    # weight_decay: w *= 1 - lr wd on weights, before the Adam step, as
    # torch's AdamW with the biases in a group without decay. alpha > 0: the
    # L2 term of scikit-learn's loss is added to torch's loss as is.
    X, y = _digits()
    lr, wd = 0.02, 0.5
    coefs, intercepts, clf = _fastmlp(_adam_clf(weight_decay=wd, alpha=alpha), X, y)
    net = _torch_net(coefs, intercepts)
    opt = torch.optim.AdamW(_groups(net, wd), lr=lr, eps=EPS)
    losses, rates, _ = _train_torch(net, _cross_entropy(X, y, alpha), opt)
    _assert_same(clf, net, losses, rates)
    # the decay did something: without it the weights differ
    _, _, plain = _fastmlp(_adam_clf(alpha=alpha), X, y)
    assert not np.allclose(plain.coefs_[0], clf.coefs_[0], rtol=1e-6)
    np.testing.assert_allclose(clf.history_[-1]["learning_rate"], lr)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_adam_with_a_schedule_is_torchs_scheduler(schedule):
    # learning_rate='cosine' / 'linear' over max_iter epochs of one step:
    # CosineAnnealingLR(T_max=max_iter) / LinearLR(1 -> 0 in max_iter).
    # Adam bias-corrects the scheduled rate, as torch's Adam does.
    X, y = _digits()
    coefs, intercepts, clf = _fastmlp(_adam_clf(learning_rate=schedule), X, y)
    net = _torch_net(coefs, intercepts)
    opt = torch.optim.Adam(net.parameters(), lr=0.02, eps=EPS)
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=K, eta_min=0.0)
    else:
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0,
                                                  total_iters=K)
    losses, rates, _ = _train_torch(net, _cross_entropy(X, y), opt, sched)
    assert rates[0] == 0.02 and rates[-1] < 0.02 / 2
    _assert_same(clf, net, losses, rates)


@pytest.mark.parametrize("schedule, warmup", [("cosine", 2), ("linear", 2),
                                              ("constant", 2), ("cosine", 2.5)])
def test_warm_up_is_a_lambda_lr_from_zero(schedule, warmup):
    # lr_warmup=w epochs: factor k / w at step k < w (0 at the first step:
    # the moments still update, as in torch's Adam with lr 0), then the
    # schedule over the remaining max_iter - w epochs. torch's LinearLR cannot
    # start from 0, so LambdaLR with the closed form. A fractional warm-up
    # ends inside an epoch: its step k = 2 already decays from p = 0.5 / 3.5.
    X, y = _digits()
    clf = _adam_clf(learning_rate=schedule, lr_warmup=warmup)
    coefs, intercepts, clf = _fastmlp(clf, X, y)
    net = _torch_net(coefs, intercepts)
    opt = torch.optim.Adam(net.parameters(), lr=0.02, eps=EPS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine_lambda(warmup, K, schedule))
    losses, rates, _ = _train_torch(net, _cross_entropy(X, y), opt, sched)
    assert rates[0] == 0.0
    _assert_same(clf, net, losses, rates)


# ------------------------------------------------------------------------ SGD


class SklearnSGD(torch.optim.Optimizer):
    """scikit-learn's momentum in velocity form, ``v = mu v - lr g`` then
    ``w += v`` (Nesterov: ``w += mu v - lr g``), with a decoupled decay
    ``w *= 1 - lr wd`` first. torch's SGD keeps ``b = mu b + g`` and steps
    ``w -= lr b``: the same while lr is constant (``v = -lr b``), not once
    lr changes (torch's past velocity is rescaled by the new lr), so the
    schedule tests run this optimizer under torch's schedulers instead."""

    def __init__(self, params, lr, momentum, nesterov, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                p.mul_(1 - lr * group["weight_decay"])
                v = self.state[p].setdefault("v", torch.zeros_like(p))
                v.mul_(mu).sub_(lr * p.grad)
                p.add_(mu * v - lr * p.grad if group["nesterov"] else v)


def _sgd_clf(**kw):
    return MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", solver="sgd",
                         learning_rate_init=0.3, momentum=0.9, alpha=0.0, **kw)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_with_a_constant_rate_is_torch_sgd(nesterov):
    # scikit-learn's velocity form equals torch's SGD(momentum, nesterov)
    # while the rate is constant (see SklearnSGD).
    X, y = _digits()
    coefs, intercepts, clf = _fastmlp(_sgd_clf(nesterovs_momentum=nesterov), X, y)
    net = _torch_net(coefs, intercepts)
    opt = torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.9, nesterov=nesterov)
    losses, rates, _ = _train_torch(net, _cross_entropy(X, y), opt)
    _assert_same(clf, net, losses, rates)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_with_warm_up_cosine_and_decay_is_the_velocity_form(nesterov):
    # With a schedule torch's SGD is another method (see SklearnSGD): the
    # velocity form under torch's LambdaLR, with the decoupled decay (torch's
    # SGD weight_decay is an L2 term in the gradient, not this).
    X, y = _digits()
    wd = 0.1
    clf = _sgd_clf(nesterovs_momentum=nesterov, learning_rate="cosine", lr_warmup=1,
                   weight_decay=wd)
    coefs, intercepts, clf = _fastmlp(clf, X, y)
    net = _torch_net(coefs, intercepts)
    groups = _groups(net, wd)
    opt = SklearnSGD(groups, lr=0.3, momentum=0.9, nesterov=nesterov)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine_lambda(1, K))
    losses, rates, _ = _train_torch(net, _cross_entropy(X, y), opt, sched)
    _assert_same(clf, net, losses, rates)


# ------------------------------------------------------------------- clipping


def test_clip_grad_norm_is_torchs_clip_grad_norm():
    # A small max norm (every step clips: checked on torch's unclipped
    # norms) over all weights and biases together, after backward, before
    # the Adam step.
    X, y = _digits()
    c = 0.05
    coefs, intercepts, clf = _fastmlp(_adam_clf(clip_grad_norm=c), X, y)
    net = _torch_net(coefs, intercepts)
    opt = torch.optim.Adam(net.parameters(), lr=0.02, eps=EPS)
    losses, rates, norms = _train_torch(net, _cross_entropy(X, y), opt, clip=c)
    assert min(norms) > 2 * c
    _assert_same(clf, net, losses, rates)
    # Adam is nearly scale-invariant; SGD shows the clipping in full
    coefs, intercepts, clf = _fastmlp(_sgd_clf(clip_grad_norm=c), X, y)
    net = _torch_net(coefs, intercepts)
    opt = torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.9, nesterov=True)
    losses, rates, norms = _train_torch(net, _cross_entropy(X, y), opt, clip=c)
    assert min(norms) > 2 * c
    _assert_same(clf, net, losses, rates)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_large_clip_norm_clips_nothing(solver):
    # A max norm above every gradient's: the same bits as no clipping.
    X, y = _digits()
    make = _adam_clf if solver == "adam" else _sgd_clf
    _, _, clipped = _fastmlp(make(clip_grad_norm=1e6), X, y)
    _, _, plain = _fastmlp(make(), X, y)
    for a, b in zip(clipped.coefs_ + clipped.intercepts_, plain.coefs_ + plain.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert clipped.loss_curve_ == plain.loss_curve_


# ------------------------------------------------------------ label smoothing


def test_label_smoothing_multiclass_is_cross_entropy_loss_label_smoothing():
    # softmax targets (1 - e) y + e / K: CrossEntropyLoss(label_smoothing=e)
    X, y = _digits()
    e = 0.2
    coefs, intercepts, clf = _fastmlp(_adam_clf(label_smoothing=e), X, y)
    net = _torch_net(coefs, intercepts)
    opt = torch.optim.Adam(net.parameters(), lr=0.02, eps=EPS)
    losses, rates, _ = _train_torch(net, _cross_entropy(X, y, smoothing=e), opt)
    _assert_same(clf, net, losses, rates)


def test_label_smoothing_binary_is_bce_on_targets_smoothed_to_one_half():
    # one logistic output: targets (1 - e) y + e / 2, BCEWithLogitsLoss
    X, y = _digits(n_classes=2)
    e = 0.2
    coefs, intercepts, clf = _fastmlp(_adam_clf(label_smoothing=e), X, y)
    assert clf.coefs_[-1].shape[1] == 1
    net = _torch_net(coefs, intercepts)
    Xt = torch.from_numpy(X)
    target = torch.from_numpy((1 - e) * y[:, None] + e / 2)
    bce = torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(net.parameters(), lr=0.02, eps=EPS)
    losses, rates, _ = _train_torch(net, lambda net: bce(net(Xt), target), opt)
    _assert_same(clf, net, losses, rates)


# ------------------------------------------------------------- all together


def test_modern_recipe_classifier():
    # AdamW + warm-up + cosine + clipping + label smoothing, with an L2 term
    X, y = _digits()
    wd, c, e, alpha = 0.01, 1.0, 0.1, 1e-3
    clf = _adam_clf(weight_decay=wd, learning_rate="cosine", lr_warmup=1, clip_grad_norm=c,
                    label_smoothing=e, alpha=alpha, learning_rate_init=0.05)
    coefs, intercepts, clf = _fastmlp(clf, X, y)
    net = _torch_net(coefs, intercepts)
    opt = torch.optim.AdamW(_groups(net, wd), lr=0.05, eps=EPS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine_lambda(1, K))
    losses, rates, norms = _train_torch(net, _cross_entropy(X, y, alpha, e), opt, sched,
                                        clip=c)
    assert max(norms) > c  # some step clipped
    _assert_same(clf, net, losses, rates)


def test_modern_recipe_regressor():
    # MLPRegressor: scikit-learn's loss is half the mean squared error;
    # AdamW + warm-up + cosine + clipping (norms above c at the start).
    X, y = _digits(n_classes=10)
    y = y.astype(float)
    wd, c = 0.05, 1.0
    reg = MLPRegressor(hidden_layer_sizes=(8,), activation="tanh", solver="adam",
                       learning_rate_init=0.05, epsilon=EPS, alpha=0.0, weight_decay=wd,
                       learning_rate="cosine", lr_warmup=2, clip_grad_norm=c)
    coefs, intercepts, reg = _fastmlp(reg, X, y)
    net = _torch_net(coefs, intercepts)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y[:, None])
    opt = torch.optim.AdamW(_groups(net, wd), lr=0.05, eps=EPS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine_lambda(2, K))
    losses, rates, norms = _train_torch(net, lambda net: 0.5 * ((net(Xt) - yt) ** 2).mean(),
                                        opt, sched, clip=c)
    assert norms[0] > c
    _assert_same(reg, net, losses, rates)
