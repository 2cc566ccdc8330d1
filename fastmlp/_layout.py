"""Flat parameter buffer layout.

All weights and biases of a network live in ONE contiguous buffer ``theta``::

    [W0 | b0 | W1 | b1 | ... ]

Each ``W_i`` is row-major with shape ``(fan_in, fan_out)``, so a reshaped view
of it has exactly the shape of scikit-learn's ``coefs_[i]``. Gradients, Adam
moments and momentum velocities are buffers of the same length and layout, so
every optimizer is a single loop over the buffer.
"""

import numpy as np


class Layout:
    """Offsets of every layer's weights and biases in the flat buffer.

    Parameters
    ----------
    layer_units : sequence of int
        ``[n_features, hidden_1, ..., hidden_k, n_outputs]``.

    Attributes
    ----------
    units : ndarray of shape (n_layers,), dtype int64
        The layer sizes.
    w_off : ndarray of shape (n_layers - 1,), dtype int64
        Offset of each weight matrix in the flat buffer.
    b_off : ndarray of shape (n_layers - 1,), dtype int64
        Offset of each bias vector in the flat buffer.
    size : int
        Length of the flat buffer.
    """

    def __init__(self, layer_units):
        self.units = np.asarray(layer_units, dtype=np.int64)
        n = len(self.units) - 1
        self.w_off = np.empty(n, dtype=np.int64)
        self.b_off = np.empty(n, dtype=np.int64)
        pos = 0
        for i in range(n):
            self.w_off[i] = pos
            pos += int(self.units[i]) * int(self.units[i + 1])
            self.b_off[i] = pos
            pos += int(self.units[i + 1])
        self.size = pos
        #: Number of weights (biases excluded): multiply-adds per row.
        self.n_weights = int(sum(int(self.units[i]) * int(self.units[i + 1])
                                 for i in range(n)))

    @property
    def n_weight_layers(self):
        return len(self.w_off)

    def coef_view(self, theta, i):
        """Weight matrix ``i`` as a ``(fan_in, fan_out)`` view of ``theta``."""
        fi, fo = int(self.units[i]), int(self.units[i + 1])
        o = int(self.w_off[i])
        return theta[o : o + fi * fo].reshape(fi, fo)

    def intercept_view(self, theta, i):
        """Bias vector ``i`` as a view of ``theta``."""
        o = int(self.b_off[i])
        return theta[o : o + int(self.units[i + 1])]

    def views(self, theta):
        """Lists of coefficient and intercept views of ``theta``."""
        n = self.n_weight_layers
        return ([self.coef_view(theta, i) for i in range(n)],
                [self.intercept_view(theta, i) for i in range(n)])

    def pack(self, coefs, intercepts, dtype):
        """Copy per-layer arrays into a new flat buffer of ``dtype``.

        Every array must have exactly its layer's shape: no broadcasting,
        and one array per layer, so no part of the buffer is left unset.
        """
        n = self.n_weight_layers
        if len(coefs) != n or len(intercepts) != n:
            raise ValueError(f"expected {n} coefficient and intercept arrays, got "
                             f"{len(coefs)} and {len(intercepts)}.")
        theta = np.empty(self.size, dtype=dtype)
        for i, (c, b) in enumerate(zip(coefs, intercepts)):
            cv, bv = self.coef_view(theta, i), self.intercept_view(theta, i)
            if np.shape(c) != cv.shape or np.shape(b) != bv.shape:
                raise ValueError(f"layer {i}: expected shapes {cv.shape} and {bv.shape}, "
                                 f"got {np.shape(c)} and {np.shape(b)}.")
            cv[...] = c
            bv[...] = b
        return theta

    def glorot_init(self, random_state, dtype, activation):
        """Glorot-uniform initial buffer, drawn exactly as scikit-learn does.

        For each layer in turn, ``W = rs.uniform(-b, b, (fan_in, fan_out))``
        then ``b = rs.uniform(-b, b, fan_out)`` with
        ``b = sqrt(f / (fan_in + fan_out))``, ``f = 2`` for the logistic
        activation and 6 otherwise, drawn in float64 and cast to ``dtype``.
        ``activation`` is one name, or one per hidden layer (a sequence):
        then each layer's is that of the hidden layer it feeds, the output
        layer's that of the last hidden layer.
        The same ``random_state`` therefore gives scikit-learn's initial
        weights bit for bit.
        """
        theta = np.empty(self.size, dtype=dtype)
        n_hidden = self.n_weight_layers - 1
        for i in range(self.n_weight_layers):
            act = activation if isinstance(activation, str) else activation[min(i, n_hidden - 1)]
            factor = 2.0 if act == "logistic" else 6.0
            fi, fo = int(self.units[i]), int(self.units[i + 1])
            bound = np.sqrt(factor / (fi + fo))
            self.coef_view(theta, i)[...] = random_state.uniform(-bound, bound, (fi, fo))
            self.intercept_view(theta, i)[...] = random_state.uniform(-bound, bound, fo)
        return theta
