"""The PyTorch baseline: a plain CPU training loop (import fails without torch).

``nn.Sequential`` of ``Linear`` + ``ReLU`` layers, ``Adam(lr=1e-3,
betas=(0.9, 0.999), eps=1e-8)``, ``CrossEntropyLoss``, manual mini-batches
over a ``torch.randperm`` order drawn every epoch, in the dtype of the
input (float32 or float64). PyTorch's default initialisation is kept.
"""

import numpy as np
import torch
from torch import nn

from ._libs import Library

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
