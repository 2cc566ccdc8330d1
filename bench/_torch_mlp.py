"""The PyTorch baseline: a plain CPU training loop (import fails without torch).

``nn.Sequential`` of ``Linear`` + ``ReLU`` layers, ``Adam(lr=1e-3,
betas=(0.9, 0.999), eps=1e-8)``, ``CrossEntropyLoss``, manual mini-batches
over a ``torch.randperm`` order drawn every epoch, in the dtype of the
input (float32 or float64). PyTorch's default initialisation is kept.

The "modern recipe" loop (:func:`build_recipe`, :func:`train_recipe`) is
the same loop with ``SiLU`` + ``Dropout``, ``AdamW`` on the weights, a
per-step warm-up + cosine ``LambdaLR``, ``clip_grad_norm_`` and label
smoothing: fastmlp's :data:`bench._libs.RECIPE` written in PyTorch.
"""

import math

import numpy as np
import torch
from torch import nn

from ._libs import RECIPE, Library

_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def build(units, dtype):
    """``nn.Sequential`` of Linear+ReLU for layer widths ``units`` (logits out)."""
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(units[:-1], units[1:])):
        layers.append(nn.Linear(fan_in, fan_out, dtype=dtype))
        if i < len(units) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train(model, X, y, batch_size, epochs, generator):
    """Mini-batch Adam on cross-entropy, in place.

    Parameters
    ----------
    model : torch.nn.Module
    X : torch.Tensor of shape (n_samples, n_features)
    y : torch.Tensor of shape (n_samples,), int64
    batch_size : int
    epochs : int
    generator : torch.Generator
        Draws each epoch's sample order.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = nn.CrossEntropyLoss()
    n = X.shape[0]
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[batch]), y[batch])
            loss.backward()
            optimizer.step()


def build_recipe(units, dtype, dropout):
    """``nn.Sequential`` of Linear + SiLU + Dropout(``dropout``) per hidden layer (logits out)."""
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(units[:-1], units[1:])):
        layers.append(nn.Linear(fan_in, fan_out, dtype=dtype))
        if i < len(units) - 2:
            layers += [nn.SiLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def recipe_factor(step, steps_per_epoch, warmup, horizon):
    """Learning-rate factor of the ``step``-th step (0-based) of a fit.

    fastmlp's rule (``fastmlp/_optim.py: schedule_factor``), Hugging Face's
    ``get_cosine_schedule_with_warmup`` counted in epochs: with ``e = step /
    steps_per_epoch`` the epochs done before the step, ``e / warmup`` while
    ``e < warmup``, then ``(1 + cos(pi p)) / 2`` with ``p`` the share of the
    remaining ``horizon - warmup`` epochs done, clipped to [0, 1].
    """
    e = step / steps_per_epoch
    if e < warmup:
        return e / warmup
    span = horizon - warmup
    p = min(max((e - warmup) / span if span > 0 else 1.0, 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * p))


def train_recipe(model, X, y, batch_size, epochs, generator):
    """The recipe: AdamW, warm-up + cosine per step, clipping, label smoothing; in place.

    Parameters are those of :func:`train`. ``AdamW(lr=1e-3, betas=(0.9,
    0.999), eps=1e-8)`` decays the weights by ``weight_decay`` and the
    biases not (fastmlp decays weights only). AdamW adds ``eps`` after the
    bias correction of the second moment, fastmlp (scikit-learn's Adam) to
    the uncorrected one: a different model, not a different cost, so it
    does not matter for timing.
    """
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if not name.endswith("weight")]
    optimizer = torch.optim.AdamW(
        [{"params": weights, "weight_decay": RECIPE["weight_decay"]},
         {"params": biases, "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    )
    n = X.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: recipe_factor(step, steps_per_epoch, RECIPE["lr_warmup"], epochs))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=RECIPE["label_smoothing"])
    params = weights + biases
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[batch]), y[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(params, RECIPE["clip_grad_norm"])
            optimizer.step()
            scheduler.step()


class TorchLibrary(Library):
    """PyTorch on the CPU with ``n_threads`` intra-op threads.

    Parameters
    ----------
    n_threads : int
        Passed to ``torch.set_num_threads``.
    """

    name = "torch"

    def __init__(self, n_threads):
        torch.set_num_threads(n_threads)
        self.threads = torch.get_num_threads()
        self.version = torch.__version__

    def fit(self, X, y, net):
        torch.manual_seed(0)
        units = [X.shape[1], *net.hidden, int(y.max()) + 1]
        model = build(units, _DTYPES[X.dtype])
        generator = torch.Generator().manual_seed(0)
        train(model, torch.from_numpy(X), torch.from_numpy(np.asarray(y, dtype=np.int64)),
              net.batch_size, net.epochs, generator)
        model.n_iter_ = net.epochs
        return model

    def predict_proba(self, model, X):
        model.eval()
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(X)), dim=1).numpy()


class TorchRecipeLibrary(TorchLibrary):
    """The recipe's PyTorch loop (:func:`build_recipe`, :func:`train_recipe`).

    ``model.train()`` while fitting; :meth:`predict_proba` switches to
    ``model.eval()`` (dropout off).
    """

    name = "torch recipe"

    def fit(self, X, y, net):
        torch.manual_seed(0)
        units = [X.shape[1], *net.hidden, int(y.max()) + 1]
        model = build_recipe(units, _DTYPES[X.dtype], RECIPE["dropout"])
        generator = torch.Generator().manual_seed(0)
        train_recipe(model, torch.from_numpy(X),
                     torch.from_numpy(np.asarray(y, dtype=np.int64)),
                     net.batch_size, net.epochs, generator)
        model.n_iter_ = net.epochs
        return model
