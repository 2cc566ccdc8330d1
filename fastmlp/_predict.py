"""Forward passes: the network's outputs for new inputs.

:class:`_PredictMixin` gives the estimators ``_forward_pass_fast``, the one
place where prediction calls the compiled engine: the serial kernels on the
calling thread for a few rows, the parallel ones in chunks for many. A
small dense prediction repeated on an unchanged model skips validation and
set-up through :class:`_SmallPredictor`, which keeps the kernel's arguments
between calls.
"""

import functools
import operator

import numpy as np

from ._codes import HEADS
from ._engine import (
    PREDICT_CHUNK,
    Inputs,
    Network,
    predict_output,
    predict_serial_output,
    predict_serial_rows,
)
from ._layout import Layout
from ._threads import resolve_threads, serial_predict_max_rows, threads
from ._validation import _hidden_codes, _layer_units, _validate_for_predict


@functools.lru_cache(maxsize=32)
def _network(units, activation, out_activation, dtype):
    """The (immutable) kernel description of an architecture, memoised so
    a small prediction does not rebuild it (``activation``: one name, or a
    tuple of one per hidden layer)."""
    return Network(Layout(units), _hidden_codes(activation, len(units) - 2),
                   HEADS[out_activation], dtype)


def _hashable(activation):
    """``activation`` as a key of :func:`_network`'s memo (a list as a tuple)."""
    return activation if isinstance(activation, str) else tuple(activation)


class _SmallPredictor:
    """What a small dense prediction needs, kept on the model between calls.

    For a small network a one-row prediction's arithmetic is a fraction of
    what validation, the layer sizes, the memoised :class:`Network` and the
    flat buffer cost each time. The first small prediction on the general
    path fills this with the kernel's arguments; they stay valid while
    ``coefs_`` / ``intercepts_`` are the very arrays they were made from
    (views of the flat buffer held here, so in-place edits reach it) with
    their shapes (numpy lets a view be reshaped in place, which the general
    path refuses), and ``activation`` / ``out_activation_`` are unchanged;
    anything else takes the general path, which fills it again.

    Each binding of a flat buffer (a fit, unpickling, a migration) makes a
    new, empty one; a prediction only fills the existing object, so the
    estimator's ``__dict__`` does not change in ``predict`` (scikit-learn's
    ``check_dict_unchanged``). The state is one tuple, replaced in one
    assignment, so concurrent predictions never see half of it. Never
    pickled.
    """

    __slots__ = ("state",)

    def __init__(self):
        self.state = None

    def fill(self, net, theta, coefs, intercepts, activation, out_activation):
        """Keep the kernel's arguments for ``net``, built from ``activation``,
        ``out_activation`` and the tuples ``coefs`` / ``intercepts``, which
        are views of the flat buffer ``theta``."""
        L = net.layout
        units = L.units.tolist()
        shapes = ([(units[l], units[l + 1]) for l in range(len(units) - 1)]
                  + [(u,) for u in units[1:]])
        self.state = (
            # the general path's serial criterion
            serial_predict_max_rows(L.n_weights), units[0], net.dtype,
            activation, out_activation, coefs, intercepts, shapes, units[-1],
            net.serial_args(theta))

    def __call__(self, est, X):
        """The output activations of ``X``, or None where this path does
        not apply (the caller then takes the general one)."""
        state = self.state
        if state is None:
            return None
        max_rows, n_in, dtype, activation, out_activation, coefs, intercepts, shapes, n_out, \
            args = state
        n = X.shape[0] if X.ndim == 2 else 0
        if not (0 < n <= max_rows and X.shape[1] == n_in and X.dtype == dtype
                and X.flags.c_contiguous and X.flags.writeable
                and "feature_names_in_" not in est.__dict__
                # scikit-learn's width check is against n_features_in_, which
                # a fit that failed after validating its X has changed
                and est.__dict__.get("n_features_in_", n_in) == n_in
                and est.activation == activation
                and est.out_activation_ == out_activation
                and len(est.coefs_) == len(coefs)
                and len(est.intercepts_) == len(intercepts)
                and all(map(operator.is_, est.coefs_, coefs))
                and all(map(operator.is_, est.intercepts_, intercepts))
                and [a.shape for a in coefs + intercepts] == shapes):
            return None
        out = np.empty((n, n_out), dtype=dtype)
        # scikit-learn's finiteness check, made by the kernel: on NaN or inf
        # the caller's validation raises its error.
        return out if predict_serial_rows(args, X, out) else None


class _PredictMixin:
    """The estimators' forward pass (scikit-learn's ``_forward_pass_fast``)."""

    def _network(self, layout, dtype):
        """The kernel description of this model's network in ``layout``."""
        return _network(tuple(int(u) for u in layout.units), _hashable(self.activation),
                        self.out_activation_, np.dtype(dtype))

    def _forward_pass_fast(self, X, check_input=True):
        """Output-layer activations of the network for ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        check_input : bool, default=True
            Perform input data validation or not.

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_outputs)
            The network's output activations.
        """
        predictor = self.__dict__.get("_predictor")
        if predictor is not None and type(X) is np.ndarray:
            y_pred = predictor(self, X)
            if y_pred is not None:
                return y_pred
        if check_input:
            X = _validate_for_predict(self, X)
        # One reading of what the prediction depends on: another thread may
        # change the model meanwhile, and the kept predictor must describe
        # the buffer it keeps.
        coefs, intercepts = tuple(self.coefs_), tuple(self.intercepts_)
        activation, out_activation = self.activation, self.out_activation_
        units = _layer_units(coefs, intercepts)  # first: it raises for inconsistent coefs_
        param_dtype = coefs[0].dtype
        dtype = X.dtype if X.dtype == param_dtype else np.result_type(X.dtype, param_dtype)
        if dtype not in (np.float32, np.float64):
            dtype = np.dtype(np.float64)
        if X.shape[1] != units[0]:
            raise ValueError(
                f"X has {X.shape[1]} features, but coefs_[0] expects {units[0]} input "
                "features.")
        net = _network(units, _hashable(activation), out_activation, dtype)
        theta = self._flat_params(net.layout, dtype, coefs, intercepts)
        if type(X) is np.ndarray and X.shape[0] <= serial_predict_max_rows(net.layout.n_weights):
            # A small prediction: the serial kernels on the calling thread,
            # no thread-count switch, no work-buffer setup (see
            # _threads.SERIAL_PREDICT_MAX_WORK).
            if not (X.dtype == dtype and X.flags.c_contiguous and X.flags.writeable):
                X = np.require(X, dtype=dtype, requirements=["C", "W"])
            predictor = self.__dict__.get("_predictor")
            if (predictor is not None and theta is self.__dict__.get("_theta")
                    and "feature_names_in_" not in self.__dict__):
                # theta is the fitted buffer and coefs_ its views (a model
                # fitted with feature names always takes this path, for
                # scikit-learn's checks of the names)
                predictor.fill(net, theta, coefs, intercepts, activation, out_activation)
            return predict_serial_output(net, theta, X)
        rows = min(X.shape[0], PREDICT_CHUNK)
        with threads(resolve_threads(self.n_threads, rows * net.layout.n_weights)):
            return predict_output(net, theta, Inputs(X, dtype))
