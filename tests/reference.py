"""Plain-NumPy reference multilayer perceptron used to test fastmlp's kernels.

This module is deliberately independent of fastmlp (it must never import it):
it re-implements, with ordinary vectorised NumPy, the formulas of
scikit-learn 1.9's ``MLPClassifier`` / ``MLPRegressor``
(``sklearn/neural_network/_base.py``, ``_multilayer_perceptron.py``
``_backprop`` and ``_stochastic_optimizers.py``):

* forward pass ``A[i + 1] = act(A[i] @ W[i] + b[i])`` with the hidden
  activation on hidden layers and the output head's activation on the last;
* batch loss = sample-weighted average of the per-row losses
  ``+ 0.5 * alpha * sum(W ** 2) / sw_sum`` (biases are not penalised);
* gradients ``dW = (A.T @ delta + alpha * W) / sw_sum``,
  ``db = delta.sum(axis=0) / sw_sum`` with output delta ``(out - y) * sw``
  and hidden deltas ``(delta @ W.T) * act'(A)``;
* SGD with (Nesterov) momentum and Adam single steps.

Parameters are either lists of per-layer arrays (``coefs`` of shape
``(fan_in, fan_out)`` and ``intercepts`` of shape ``(fan_out,)``, as
scikit-learn's ``coefs_`` / ``intercepts_``) or one flat vector ``theta``
laid out as ``[W0 | b0 | W1 | b1 | ...]`` with every ``W`` row-major; see
:func:`unpack` and :func:`pack`.

All computations are carried out in the dtype of the arrays given, so the
reference can run in float64 on float32-rounded inputs.
"""

import numpy as np
import scipy.sparse as sp
from scipy.special import erf, expit, xlogy

#: Hidden activation names understood by this module.
HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "gelu", "leaky_relu", "elu",
                      "silu", "softplus")

#: Output head names (output activation + loss) understood by this module.
#: ``softmax``: softmax + categorical cross-entropy; ``logistic``: logistic +
#: binary cross-entropy (also multilabel); ``identity``: identity + half
#: squared error averaged over outputs; ``exp``: exp + half Poisson deviance.
HEADS = ("softmax", "logistic", "identity", "exp")


# --------------------------------------------------------------------------
# Flat parameter vector
# --------------------------------------------------------------------------


def unpack(theta, layer_units):
    """Split a flat parameter vector into per-layer weights and biases.

    Parameters
    ----------
    theta : ndarray of shape (n_params,)
        Flat parameters ``[W0 | b0 | W1 | b1 | ...]``, each ``W`` row-major.
    layer_units : sequence of int
        ``[n_features, hidden_1, ..., hidden_k, n_outputs]``.

    Returns
    -------
    coefs : list of ndarray
        ``coefs[i]`` has shape ``(layer_units[i], layer_units[i + 1])``.
    intercepts : list of ndarray
        ``intercepts[i]`` has shape ``(layer_units[i + 1],)``.

    Notes
    -----
    The arrays returned are copies, so modifying them leaves ``theta``
    unchanged.
    """
    theta = np.asarray(theta)
    coefs, intercepts = [], []
    pos = 0
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
        coefs.append(theta[pos : pos + fan_in * fan_out].reshape(fan_in, fan_out).copy())
        pos += fan_in * fan_out
        intercepts.append(theta[pos : pos + fan_out].copy())
        pos += fan_out
    if pos != theta.shape[0]:
        raise ValueError(f"theta has {theta.shape[0]} entries, layer_units need {pos}")
    return coefs, intercepts


def pack(coefs, intercepts):
    """Concatenate per-layer weights and biases into one flat vector.

    Parameters
    ----------
    coefs : list of ndarray of shape (fan_in, fan_out)
        Weight matrices.
    intercepts : list of ndarray of shape (fan_out,)
        Bias vectors.

    Returns
    -------
    theta : ndarray of shape (n_params,)
        ``[W0 | b0 | W1 | b1 | ...]`` with every ``W`` flattened row-major.
    """
    parts = []
    for w, b in zip(coefs, intercepts):
        parts.append(np.ravel(w))
        parts.append(np.ravel(b))
    return np.concatenate(parts)


def n_params(layer_units):
    """Number of entries of the flat parameter vector of ``layer_units``.

    Parameters
    ----------
    layer_units : sequence of int
        ``[n_features, hidden_1, ..., hidden_k, n_outputs]``.

    Returns
    -------
    int
    """
    return int(sum(i * o + o for i, o in zip(layer_units[:-1], layer_units[1:])))


def weights_mask(layer_units):
    """Boolean mask of the flat vector's entries that are weights, not biases.

    Parameters
    ----------
    layer_units : sequence of int
        ``[n_features, hidden_1, ..., hidden_k, n_outputs]``.

    Returns
    -------
    mask : ndarray of shape (n_params,), dtype bool
    """
    coefs = [np.ones((i, o), dtype=bool) for i, o in zip(layer_units[:-1], layer_units[1:])]
    intercepts = [np.zeros(o, dtype=bool) for o in layer_units[1:]]
    return pack(coefs, intercepts)


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------


def _dot(a, b):
    """``a @ b`` as a dense ndarray, ``a`` and/or ``b`` possibly sparse."""
    out = a @ b
    if sp.issparse(out):
        out = out.toarray()
    return np.asarray(out)


def hidden_activation(Z, name):
    """Apply a hidden activation function.

    Parameters
    ----------
    Z : ndarray
        Pre-activations.
    name : str
        Activation name, one of :data:`HIDDEN_ACTIVATIONS`.

    Returns
    -------
    A : ndarray
        New array with the activations, same shape and dtype as ``Z``.
    """
    if name == "identity":
        return Z.copy()
    if name == "logistic":
        return expit(Z)
    if name == "tanh":
        return np.tanh(Z)
    if name == "relu":
        return np.maximum(Z, 0)
    if name == "gelu":
        return 0.5 * Z * (1 + erf(Z / np.sqrt(2)))
    if name == "leaky_relu":
        return np.where(Z > 0, Z, 0.01 * Z)
    if name == "elu":
        return np.where(Z > 0, Z, np.expm1(np.minimum(Z, 0)))
    if name == "silu":
        return Z * expit(Z)
    if name == "softplus":
        return np.logaddexp(Z, 0).astype(Z.dtype)
    raise ValueError(f"unknown hidden activation {name!r}")


def hidden_derivative(Z, A, name):
    """Derivative of a hidden activation at pre-activations ``Z``.

    Parameters
    ----------
    Z : ndarray
        Pre-activations of the layer.
    A : ndarray
        Its outputs, ``hidden_activation(Z, name)``.
    name : str
        Activation name.

    Returns
    -------
    dA : ndarray
        ``d act(z) / dz`` at ``Z``, same shape. scikit-learn's activations
        are differentiated through their output, as scikit-learn does (for
        ReLU the derivative where the output is exactly 0 is 0).
    """
    one = A.dtype.type(1)
    if name == "identity":
        return np.ones_like(A)
    if name == "logistic":
        return A * (one - A)
    if name == "tanh":
        return one - A**2
    if name == "relu":
        return (A != 0).astype(A.dtype)
    if name == "gelu":
        return 0.5 * (1 + erf(Z / np.sqrt(2))) + Z * np.exp(-Z**2 / 2) / np.sqrt(2 * np.pi)
    if name == "leaky_relu":
        return np.where(Z > 0, one, A.dtype.type(0.01))
    if name == "elu":
        return np.where(Z > 0, one, np.exp(np.minimum(Z, 0)))
    if name == "silu":
        s = expit(Z)
        return s * (one + Z * (one - s))
    if name == "softplus":
        return expit(Z)
    raise ValueError(f"unknown hidden activation {name!r}")


def output_activation(Z, head):
    """Apply the output activation of an output head.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_outputs)
        Output-layer pre-activations.
    head : {"softmax", "logistic", "identity", "exp"}
        Output head name.

    Returns
    -------
    out : ndarray of shape (n_samples, n_outputs)
        New array. Softmax subtracts each row's maximum before exponentiating.
    """
    if head == "softmax":
        e = np.exp(Z - Z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if head == "logistic":
        return expit(Z)
    if head == "identity":
        return Z.copy()
    if head == "exp":
        return np.exp(Z)
    raise ValueError(f"unknown output head {head!r}")


# --------------------------------------------------------------------------
# Forward pass and loss
# --------------------------------------------------------------------------


def layer_activation(activation, i):
    """Hidden layer ``i``'s activation: ``activation`` itself when it is one
    name, else its ``i``-th (a sequence of one name per hidden layer)."""
    return activation if isinstance(activation, str) else activation[i]


def forward(X, coefs, intercepts, activation, head):
    """Forward pass keeping every layer's activations.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
        Input.
    coefs, intercepts : list of ndarray
        Per-layer weights ``(fan_in, fan_out)`` and biases ``(fan_out,)``.
    activation : str or sequence of str
        Hidden activation (all hidden layers), or one per hidden layer.
    head : {"softmax", "logistic", "identity", "exp"}
        Output head.

    Returns
    -------
    activations : list of ndarray
        ``[X, A_1, ..., A_k, out]``: the input, every hidden layer's output
        and the output activations. ``activations[0]`` is ``X`` itself.
    """
    activations = [X]
    n_layers = len(coefs)
    for i, (w, b) in enumerate(zip(coefs, intercepts)):
        z = _dot(activations[-1], w) + b
        if i < n_layers - 1:
            activations.append(hidden_activation(z, layer_activation(activation, i)))
        else:
            activations.append(output_activation(z, head))
    return activations


def pre_activations(X, coefs, intercepts, activation):
    """Pre-activations ``A @ W + b`` of every hidden layer.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
    coefs, intercepts : list of ndarray
    activation : str
        Hidden activation.

    Returns
    -------
    zs : list of ndarray
        One array per hidden layer (the output layer is not included).
        Useful to check that no ReLU input sits on its kink.
    """
    zs = []
    a = X
    for i, (w, b) in enumerate(zip(coefs[:-1], intercepts[:-1])):
        z = _dot(a, w) + b
        zs.append(z)
        a = hidden_activation(z, layer_activation(activation, i))
    return zs


def predict(X, coefs, intercepts, activation, head):
    """Output activations of the network.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
    coefs, intercepts : list of ndarray
    activation : str
        Hidden activation.
    head : str
        Output head.

    Returns
    -------
    out : ndarray of shape (n_samples, n_outputs)
    """
    return forward(X, coefs, intercepts, activation, head)[-1]


def data_loss(Y, out, head, sample_weight=None, eps=None):
    """Sample-weighted data loss, exactly as scikit-learn's ``_base.py``.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_outputs)
        Targets (one-hot for softmax, 0/1 indicators for logistic).
    out : ndarray of shape (n_samples, n_outputs)
        Output activations.
    head : {"softmax", "logistic", "identity", "exp"}
        Output head, which selects the loss.
    sample_weight : ndarray of shape (n_samples,), default=None
        Row weights; None means all ones.
    eps : float, default=None
        Clip bound of the cross-entropies: probabilities are clipped to
        ``[eps, 1 - eps]``. None means ``np.finfo(out.dtype).eps``.

    Returns
    -------
    loss : float
        * softmax: ``-sum_c average_r(xlogy(y, p))``
        * logistic: ``-sum_c average_r(xlogy(y, p) + xlogy(1 - y, 1 - p))``
        * identity: ``0.5 * mean_c(average_r((y - out) ** 2))``
        * exp: ``sum_c average_r(xlogy(y, y / out) - y + out)``
    """
    if head in ("softmax", "logistic"):
        if eps is None:
            eps = np.finfo(out.dtype).eps
        p = np.clip(out, eps, 1 - eps)
        if head == "softmax":
            y = Y
            if p.shape[1] == 1:  # scikit-learn's log_loss special case
                p = np.append(1 - p, p, axis=1)
            if y.shape[1] == 1:
                y = np.append(1 - y, y, axis=1)
            per = xlogy(y, p)
        else:
            per = xlogy(Y, p) + xlogy(1 - Y, 1 - p)
        return float(-np.average(per, weights=sample_weight, axis=0).sum())
    if head == "identity":
        return float(0.5 * np.average((Y - out) ** 2, weights=sample_weight, axis=0).mean())
    if head == "exp":
        per = xlogy(Y, Y / out) - Y + out
        return float(np.average(per, weights=sample_weight, axis=0).sum())
    raise ValueError(f"unknown output head {head!r}")


def l2_penalty(coefs, alpha, sw_sum):
    """L2 term of the batch loss, ``0.5 * alpha * sum(W ** 2) / sw_sum``.

    Parameters
    ----------
    coefs : list of ndarray
        Weight matrices (biases are not penalised).
    alpha : float
        L2 strength.
    sw_sum : float
        Sum of the batch's sample weights.

    Returns
    -------
    float
    """
    values = sum(float(np.dot(w.ravel(), w.ravel())) for w in coefs)
    return 0.5 * alpha * values / sw_sum


def loss_and_gradients(X, Y, sample_weight, coefs, intercepts, activation, head, alpha,
                       eps=None):
    """Batch loss and its scikit-learn gradients (``MLP._backprop``).

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
        Batch input.
    Y : ndarray of shape (n_samples, n_outputs)
        Batch targets.
    sample_weight : ndarray of shape (n_samples,) or None
        Row weights; None means all ones.
    coefs, intercepts : list of ndarray
        Per-layer parameters.
    activation : str
        Hidden activation.
    head : str
        Output head.
    alpha : float
        L2 strength.
    eps : float, default=None
        Clip bound of the cross-entropies (see :func:`data_loss`).

    Returns
    -------
    loss : float
        :func:`data_loss` plus :func:`l2_penalty`.
    coef_grads : list of ndarray
        ``(A_i.T @ delta_i + alpha * W_i) / sw_sum``.
    intercept_grads : list of ndarray
        ``delta_i.sum(axis=0) / sw_sum``.

    Notes
    -----
    The output delta is ``(out - y) * sw`` for every head, as in
    scikit-learn. For the squared-error head with more than one output this
    is ``n_outputs`` times the derivative of the returned loss (the loss is
    averaged over outputs, the delta is not): scikit-learn's behaviour,
    reproduced on purpose.
    """
    n = X.shape[0]
    acts = forward(X, coefs, intercepts, activation, head)
    zs = pre_activations(X, coefs, intercepts, activation)
    out = acts[-1]
    if sample_weight is None:
        sw = np.ones(n, dtype=out.dtype)
    else:
        sw = np.asarray(sample_weight)
    sw_sum = sw.sum()
    loss = data_loss(Y, out, head, sw, eps) + l2_penalty(coefs, alpha, sw_sum)

    L = len(coefs)
    coef_grads = [None] * L
    intercept_grads = [None] * L
    delta = (out - Y) * sw.reshape(-1, 1)
    for i in range(L - 1, -1, -1):
        coef_grads[i] = (_dot(acts[i].T, delta) + alpha * coefs[i]) / sw_sum
        intercept_grads[i] = delta.sum(axis=0) / sw_sum
        if i > 0:
            delta = _dot(delta, coefs[i].T) * hidden_derivative(
                zs[i - 1], acts[i], layer_activation(activation, i - 1))
    return loss, coef_grads, intercept_grads


def flat_loss_and_gradient(theta, layer_units, X, Y, sample_weight, activation, head, alpha,
                           eps=None):
    """:func:`loss_and_gradients` on a flat parameter vector.

    Parameters
    ----------
    theta : ndarray of shape (n_params,)
        Flat parameters (see :func:`unpack`).
    layer_units : sequence of int
        Layer sizes.
    X, Y, sample_weight, activation, head, alpha, eps
        As in :func:`loss_and_gradients`.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,)
        Flat gradient, same layout as ``theta``.
    """
    coefs, intercepts = unpack(theta, layer_units)
    loss, cg, ig = loss_and_gradients(X, Y, sample_weight, coefs, intercepts, activation,
                                      head, alpha, eps)
    return loss, pack(cg, ig)


# --------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------


def sgd_step(theta, grad, velocity, lr, momentum, nesterov):
    """One SGD step with (Nesterov) momentum (``SGDOptimizer._get_updates``).

    Parameters
    ----------
    theta, grad, velocity : ndarray of the same shape
        Parameters, their gradient and the momentum velocity.
    lr : float
        Current learning rate.
    momentum : float
        Momentum coefficient.
    nesterov : bool
        Use Nesterov's momentum.

    Returns
    -------
    theta : ndarray
        Updated parameters (new array).
    velocity : ndarray
        Updated velocity ``momentum * velocity - lr * grad`` (new array).

    Notes
    -----
    The update added to ``theta`` is the new velocity, or with Nesterov
    ``momentum * new_velocity - lr * grad``.
    """
    velocity = momentum * velocity - lr * grad
    if nesterov:
        update = momentum * velocity - lr * grad
    else:
        update = velocity
    return theta + update, velocity


def adam_step_size(learning_rate_init, beta_1, beta_2, t):
    """Adam's bias-corrected step size at step ``t`` (1-based).

    Parameters
    ----------
    learning_rate_init : float
    beta_1, beta_2 : float
    t : int
        Number of steps taken including this one.

    Returns
    -------
    float
        ``lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)``, in float64.
    """
    return learning_rate_init * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)


def adam_step(theta, grad, m, v, t, learning_rate_init, beta_1, beta_2, epsilon):
    """One Adam step (``AdamOptimizer._get_updates``).

    Parameters
    ----------
    theta, grad, m, v : ndarray of the same shape
        Parameters, gradient, first and second moment estimates.
    t : int
        Step count including this step (1 for the first step).
    learning_rate_init : float
    beta_1, beta_2 : float
        Moment decay rates.
    epsilon : float
        Denominator stabiliser.

    Returns
    -------
    theta, m, v : ndarray
        New arrays: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
        ``theta - lr_t * m / (sqrt(v) + eps)`` with
        ``lr_t = adam_step_size(learning_rate_init, b1, b2, t)``.

    Notes
    -----
    Scalars are converted to ``theta``'s dtype first (``1 - beta`` formed in
    float64 then rounded), so a float32 call is evaluated in float32.
    """
    dt = theta.dtype.type
    m = dt(beta_1) * m + dt(1 - beta_1) * grad
    v = dt(beta_2) * v + dt(1 - beta_2) * (grad * grad)
    lr_t = dt(adam_step_size(learning_rate_init, beta_1, beta_2, t))
    return theta + (-lr_t * m) / (np.sqrt(v) + dt(epsilon)), m, v


class SGD:
    """State of a reference SGD optimizer over a flat parameter vector.

    Parameters
    ----------
    n_params : int
        Length of the parameter vector.
    learning_rate : float
    momentum : float
    nesterov : bool
    dtype : numpy dtype, default=float64
        Dtype of the velocity and of the scalars.
    """

    def __init__(self, n_params, learning_rate, momentum, nesterov, dtype=np.float64):
        self.dtype = np.dtype(dtype)
        self.learning_rate = self.dtype.type(learning_rate)
        self.momentum = self.dtype.type(momentum)
        self.nesterov = bool(nesterov)
        self.velocity = np.zeros(n_params, dtype=self.dtype)

    def step(self, theta, grad):
        """Return the updated parameters (see :func:`sgd_step`)."""
        theta, self.velocity = sgd_step(theta, grad, self.velocity, self.learning_rate,
                                        self.momentum, self.nesterov)
        return theta


class Adam:
    """State of a reference Adam optimizer over a flat parameter vector.

    Parameters
    ----------
    n_params : int
        Length of the parameter vector.
    learning_rate_init : float
    beta_1, beta_2 : float
    epsilon : float
    dtype : numpy dtype, default=float64
        Dtype of the moments.
    """

    def __init__(self, n_params, learning_rate_init, beta_1, beta_2, epsilon,
                 dtype=np.float64):
        self.learning_rate_init = float(learning_rate_init)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.t = 0
        self.m = np.zeros(n_params, dtype=dtype)
        self.v = np.zeros(n_params, dtype=dtype)

    def step(self, theta, grad):
        """Return the updated parameters (see :func:`adam_step`)."""
        self.t += 1
        theta, self.m, self.v = adam_step(theta, grad, self.m, self.v, self.t,
                                          self.learning_rate_init, self.beta_1,
                                          self.beta_2, self.epsilon)
        return theta


def run_epoch(theta, layer_units, X, Y, sample_weight, idx, batch_size, activation, head,
              alpha, optimizer, eps=None):
    """One epoch of mini-batch training, as scikit-learn's ``_fit_stochastic``.

    Parameters
    ----------
    theta : ndarray of shape (n_params,)
        Flat parameters at the start of the epoch (not modified).
    layer_units : sequence of int
        Layer sizes.
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
    sample_weight : ndarray of shape (n_samples,)
    idx : ndarray of int
        Sample order of the epoch; batches are ``idx[s:s + batch_size]``.
        The last batch is shorter when ``batch_size`` does not divide
        ``len(idx)``.
    batch_size : int
    activation, head : str
        Hidden activation and output head.
    alpha : float
        L2 strength.
    optimizer : SGD or Adam
        Its state is advanced in place, one step per batch.
    eps : float, default=None
        Clip bound of the cross-entropies (see :func:`data_loss`).

    Returns
    -------
    theta : ndarray of shape (n_params,)
        Parameters after the epoch (new array).
    mean_loss : float
        ``sum(batch_loss * batch_len) / len(idx)``, each batch loss taken
        before that batch's update.
    batch_losses : list of float
        Loss of every batch, in order.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X)
    n = len(idx)
    total = 0.0
    batch_losses = []
    for start in range(0, n, batch_size):
        b = idx[start : start + batch_size]
        loss, grad = flat_loss_and_gradient(theta, layer_units, X[b], Y[b], sample_weight[b],
                                            activation, head, alpha, eps)
        grad = grad.astype(theta.dtype, copy=False)
        batch_losses.append(loss)
        total += loss * len(b)
        theta = optimizer.step(theta, grad)
    return theta, total / n, batch_losses
