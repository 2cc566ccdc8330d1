"""The benchmark's workloads: data sets, network shapes and FLOP counts."""

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

TEST_SIZE = 0.2
RANDOM_STATE = 0


@dataclass(frozen=True)
class Net:
    """Network and training schedule shared by every library.

    Parameters
    ----------
    hidden : tuple of int
        Hidden layer sizes (ReLU).
    batch_size : int
        Mini-batch rows.
    epochs : int
        Epochs run (all of them: no early stopping).
    """

    hidden: tuple
    batch_size: int
    epochs: int

    def with_epochs(self, epochs):
        """The same network and batch size, trained for ``epochs`` epochs."""
        return replace(self, epochs=epochs)


def layer_units(n_features, hidden, n_classes):
    """``[n_features, *hidden, n_classes]``: the width of every layer."""
    return [int(n_features), *map(int, hidden), int(n_classes)]


def n_weights(units):
    """Number of weights (biases excluded) of a network of ``units``."""
    return sum(a * b for a, b in zip(units[:-1], units[1:]))


def train_flops_per_sample(units):
    """FLOPs of one training sample in one epoch.

    ``2 W`` (forward) ``+ 2 W`` (weight gradients) ``+ 2 (W - W0)``
    (deltas back-propagated through every layer but the first), with ``W``
    the number of weights and ``W0`` those of the first layer. Biases,
    activations, the loss and the optimizer step are not counted.
    """
    w = n_weights(units)
    w0 = units[0] * units[1]
    return 2 * w + 2 * w + 2 * (w - w0)


def predict_flops_per_row(units):
    """FLOPs of one predicted row: ``2 W`` (the forward pass)."""
    return 2 * n_weights(units)


@dataclass
class Split:
    """A train/test split, float64 features and integer labels ``0..k-1``."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self):
        """Number of classes (labels are ``0..k-1``)."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def units(self, hidden):
        """Layer widths of a network with ``hidden`` layers on this data."""
        return layer_units(self.X_train.shape[1], hidden, self.n_classes)

    def astype(self, dtype):
        """The same split with C-contiguous features of ``dtype``."""
        return Split(
            np.ascontiguousarray(self.X_train, dtype=dtype),
            np.ascontiguousarray(self.X_test, dtype=dtype),
            self.y_train,
            self.y_test,
        )


def holdout(X, y):
    """Hold out 20% of the rows as the test set (fixed seed)."""
    from sklearn.model_selection import train_test_split

    return Split(*train_test_split(X, y, test_size=TEST_SIZE, random_state=RANDOM_STATE))


def digits():
    """scikit-learn's digits (1797 x 64), standardised on the training rows."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    split = holdout(*load_digits(return_X_y=True))
    scaler = StandardScaler().fit(split.X_train)
    split.X_train = scaler.transform(split.X_train)
    split.X_test = scaler.transform(split.X_test)
    return split


def classification(n_samples, n_features, n_informative, n_classes):
    """``make_classification`` data, ``random_state=0``: ``(X, y)``."""
    from sklearn.datasets import make_classification

    return make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_informative,
        n_classes=n_classes,
        random_state=RANDOM_STATE,
    )


def w2_data(n_samples):
    """W2's data set (100 features, 50 informative, 5 classes) with ``n_samples`` rows."""
    return classification(n_samples, n_features=100, n_informative=50, n_classes=5)


class Workload:
    """One training workload: its data (built on first use) and network.

    Parameters
    ----------
    name : str
        Short name, ``"W1"`` ...
    description : str
        One line for table titles.
    net : Net
        Network and schedule.
    dtypes : tuple of str
        Feature dtypes it is run in, each its own row.
    make : callable
        Returns the float64 :class:`Split`.
    """

    def __init__(self, name, description, net, dtypes, make):
        self.name = name
        self.description = description
        self.net = net
        self.dtypes = tuple(dtypes)
        self._make = make
        self._by_dtype = {}

    @cached_property
    def base(self):
        """The float64 split."""
        return self._make()

    def split(self, dtype):
        """The split with features in ``dtype`` (cached)."""
        dtype = np.dtype(dtype).name
        if dtype not in self._by_dtype:
            self._by_dtype[dtype] = self.base.astype(dtype)
        return self._by_dtype[dtype]

    @property
    def units(self):
        """Layer widths ``[n_features, *hidden, n_classes]`` of the network."""
        return self.base.units(self.net.hidden)


def make_workloads(quick=False, w3_float64=False):
    """W1, W2 and W3 keyed by name.

    Parameters
    ----------
    quick : bool, default=False
        Smoke-test sizes: W2 on 5,000 rows, W3 on 10,000.
    w3_float64 : bool, default=False
        Also run W3 in float64.
    """
    w2_rows = 5_000 if quick else 50_000
    w3_rows = 10_000 if quick else 200_000
    return {
        "W1": Workload(
            "W1", "digits 1797x64 (standardised), (100,), adam, batch 200, 200 epochs",
            Net((100,), 200, 200), ("float64",), digits,
        ),
        "W2": Workload(
            "W2", f"make_classification {w2_rows:,}x100, 5 classes, (256, 256), adam, "
            "batch 200, 5 epochs",
            Net((256, 256), 200, 5), ("float64", "float32"),
            lambda: holdout(*w2_data(w2_rows)),
        ),
        "W3": Workload(
            "W3", f"make_classification {w3_rows:,}x200, 10 classes, (512, 512, 256), "
            "adam, batch 256, 2 epochs",
            Net((512, 512, 256), 256, 2),
            ("float32", "float64") if w3_float64 else ("float32",),
            lambda: holdout(*classification(w3_rows, n_features=200, n_informative=100,
                                            n_classes=10)),
        ),
    }
