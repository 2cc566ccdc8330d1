"""Matrix primitives of the training and prediction kernels.

Every primitive is parallel over rows of its OUTPUT, and each output element
is produced by one fixed sequence of operations whatever thread runs it, so
results are bit-identical for any thread count. No BLAS: mixing OpenBLAS
threads with Numba's parallel loops in one training loop was measured to
collapse speed, and BLAS results change with the thread count.

The inner loops are row updates (``z[:] += a * w[:]``), which vectorise;
dot-product-shaped inner loops do not without ``reassoc`` fast-math. Inputs
equal to zero are skipped: after a ReLU about half of the activations are
exactly zero, and ``0 * w`` contributes nothing for finite ``w``.

Shapes: ``A`` (n, k) layer input, ``W`` (k, m) weights, ``b`` (m,) bias,
``Z`` (n, m) layer output, ``D`` (n, m) output deltas.
"""

from numba import prange

from ._activations import activate, derivative
from ._jit import jit


@jit(parallel=True)
def linear_forward(A, W, b, Z, act):
    """Write ``Z = act(A @ W + b)`` in place.

    A : (n, k); W : (k, m); b : (m,); Z : (n, m), overwritten; act : int,
    an activation code (IDENTITY for the output layer, whose head applies
    its own function).
    """
    n, k = A.shape
    m = W.shape[1]
    for r in prange(n):
        z = Z[r]
        for c in range(m):
            z[c] = b[c]
        a_row = A[r]
        for kk in range(k):
            a = a_row[kk]
            if a != 0:
                w = W[kk]
                for c in range(m):
                    z[c] += a * w[c]
        activate(z, act)


@jit(parallel=True)
def csr_linear_forward(data, indices, indptr, W, b, Z, act):
    """Write ``Z = act(X @ W + b)`` in place for a CSR matrix ``X``.

    data, indices, indptr : CSR arrays of X with n = indptr.size - 1 rows;
    W : (k, m); b : (m,); Z : (n, m), overwritten; act : activation code.
    """
    n = indptr.shape[0] - 1
    m = W.shape[1]
    for r in prange(n):
        z = Z[r]
        for c in range(m):
            z[c] = b[c]
        for p in range(indptr[r], indptr[r + 1]):
            a = data[p]
            w = W[indices[p]]
            for c in range(m):
                z[c] += a * w[c]
        activate(z, act)


@jit()
def _finish_weight_grad_row(g, w, alpha, sw_sum):
    # scikit-learn: (A.T @ D + alpha * W) / sw_sum, divided (not multiplied
    # by a reciprocal) to round as it does.
    for c in range(g.shape[0]):
        g[c] = (g[c] + alpha * w[c]) / sw_sum


@jit()
def _bias_grad(D, sw_sum, db):
    m = D.shape[1]
    for c in range(m):
        db[c] = 0
    for r in range(D.shape[0]):
        d = D[r]
        for c in range(m):
            db[c] += d[c]
    for c in range(m):
        db[c] /= sw_sum


@jit(parallel=True)
def linear_grad(A, D, W, alpha, sw_sum, dW, db):
    """Weight and bias gradients of a layer, L2 included.

    Writes ``dW = (A.T @ D + alpha * W) / sw_sum`` and
    ``db = D.sum(axis=0) / sw_sum`` in place.
    A : (n, k); D : (n, m); W, dW : (k, m); db : (m,).
    One task per row of ``dW`` plus one for ``db``.
    """
    n, k = A.shape
    m = D.shape[1]
    for j in prange(k + 1):
        if j == k:
            _bias_grad(D, sw_sum, db)
        else:
            g = dW[j]
            for c in range(m):
                g[c] = 0
            for r in range(n):
                a = A[r, j]
                if a != 0:
                    d = D[r]
                    for c in range(m):
                        g[c] += a * d[c]
            _finish_weight_grad_row(g, W[j], alpha, sw_sum)


@jit(parallel=True)
def csc_linear_grad(data, rows, colptr, D, W, alpha, sw_sum, dW, db):
    """:func:`linear_grad` for a sparse input given in CSC form.

    data, rows, colptr : CSC arrays of the (n, k) input; the rest as in
    :func:`linear_grad`.
    """
    k = colptr.shape[0] - 1
    m = D.shape[1]
    for j in prange(k + 1):
        if j == k:
            _bias_grad(D, sw_sum, db)
        else:
            g = dW[j]
            for c in range(m):
                g[c] = 0
            for p in range(colptr[j], colptr[j + 1]):
                a = data[p]
                d = D[rows[p]]
                for c in range(m):
                    g[c] += a * d[c]
            _finish_weight_grad_row(g, W[j], alpha, sw_sum)


@jit(parallel=True)
def transpose(W, WT):
    """Write ``WT = W.T``. W : (k, m); WT : (m, k)."""
    k, m = W.shape
    for c in prange(m):
        wt = WT[c]
        for j in range(k):
            wt[j] = W[j, c]


@jit(parallel=True)
def linear_backward(D, WT, Aprev, act, Dprev):
    """Write ``Dprev = (D @ W.T) * act'(Aprev)`` in place.

    D : (n, m); WT : (m, k), the transposed weights; Aprev : (n, k), the
    output of the previous layer's activation ``act``; Dprev : (n, k).
    """
    n, m = D.shape
    k = WT.shape[1]
    for r in prange(n):
        dp = Dprev[r]
        for j in range(k):
            dp[j] = 0
        d = D[r]
        for c in range(m):
            v = d[c]
            if v != 0:
                wt = WT[c]
                for j in range(k):
                    dp[j] += v * wt[j]
        derivative(Aprev[r], dp, act)
