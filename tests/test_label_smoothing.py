"""``MLPClassifier(label_smoothing=e)``: the loss against smoothed targets."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils._param_validation import InvalidParameterError

import reference as ref
from fastmlp import MLPClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n_classes):
    X, y = load_digits(return_X_y=True)
    return X[:150] / 16, y[:150] % n_classes


@pytest.mark.parametrize("e", [0.1, 0.35])
@pytest.mark.parametrize("n_classes, head", [(3, "softmax"), (2, "logistic")])
def test_one_step_follows_the_smoothed_loss_and_gradient(e, n_classes, head):
    # One full-batch SGD step from known weights (a warm start): the loss
    # recorded and the new weights are the reference's with targets
    # (1 - e) * y + e / K, K the classes (softmax) or 2 (logistic).
    X, y = _data(n_classes)
    lr, alpha = 0.3, 1e-3
    clf = MLPClassifier((6,), activation="tanh", solver="sgd", momentum=0.0,
                        learning_rate_init=lr, alpha=alpha, batch_size=X.shape[0],
                        shuffle=False, max_iter=1, random_state=0, label_smoothing=e)
    clf.fit(X, y)
    coefs = [c.copy() for c in clf.coefs_]
    intercepts = [b.copy() for b in clf.intercepts_]
    clf.set_params(warm_start=True).fit(X, y)

    onehot = (y[:, None] == np.arange(n_classes)).astype(float)
    Y = onehot if head == "softmax" else onehot[:, 1:]
    K = n_classes if head == "softmax" else 2
    loss, gW, gb = ref.loss_and_gradients(X, (1 - e) * Y + e / K, None, coefs, intercepts,
                                          "tanh", head, alpha)
    assert clf.loss_curve_[-1] == pytest.approx(loss, rel=1e-12)
    for got, w, g in zip(clf.coefs_ + clf.intercepts_, coefs + intercepts, gW + gb):
        np.testing.assert_allclose(got, w - lr * g, rtol=1e-10, atol=1e-13)


def test_multilabel_targets_are_smoothed_towards_one_half():
    X, y = _data(3)
    Y = np.stack([y == 0, y != 1], axis=1).astype(int)
    e, lr = 0.2, 0.5
    clf = MLPClassifier((5,), solver="sgd", momentum=0.0, learning_rate_init=lr,
                        batch_size=X.shape[0], shuffle=False, max_iter=1, random_state=0,
                        label_smoothing=e).fit(X, Y)
    coefs = [c.copy() for c in clf.coefs_]
    intercepts = [b.copy() for b in clf.intercepts_]
    clf.set_params(warm_start=True).fit(X, Y)
    loss, gW, gb = ref.loss_and_gradients(X, (1 - e) * Y + e / 2, None, coefs, intercepts,
                                          "relu", "logistic", clf.alpha)
    assert clf.loss_curve_[-1] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(clf.coefs_[0], coefs[0] - lr * gW[0], rtol=1e-10, atol=1e-13)


def test_zero_is_the_default_model_and_bad_values_are_refused():
    X, y = _data(3)
    kw = dict(hidden_layer_sizes=(6,), max_iter=3, random_state=0)
    a = MLPClassifier(**kw).fit(X, y)
    b = MLPClassifier(label_smoothing=0.0, **kw).fit(X, y)
    c = MLPClassifier(label_smoothing=0.1, **kw).fit(X, y)
    assert all(np.array_equal(p, q) for p, q in zip(a.coefs_, b.coefs_))
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    assert MLPClassifier().get_params()["label_smoothing"] == 0.0
    for bad in (1.0, -0.1, "0.1"):
        with pytest.raises(InvalidParameterError, match="label_smoothing"):
            MLPClassifier(label_smoothing=bad).fit(X, y)


def test_validation_accuracy_uses_the_true_labels():
    X, y = _data(3)
    clf = MLPClassifier((10,), max_iter=30, random_state=0, early_stopping=True,
                        label_smoothing=0.3, validation_fraction=0.2).fit(X, y)
    # accuracies of hard predictions: multiples of 1 / 30 validation rows
    scores = np.array(clf.validation_scores_) * 30
    np.testing.assert_allclose(scores, np.round(scores), atol=1e-9)
    assert set(clf.predict(X)) <= {0, 1, 2}
