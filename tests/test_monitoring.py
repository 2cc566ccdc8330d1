"""Seeing training: history_, progress bar, sklearn.callback, LossCurveDisplay."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from fastmlp import MLPClassifier, MLPRegressor

X, y = load_iris(return_X_y=True)
X = StandardScaler().fit_transform(X)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_history_records_every_epoch():
    clf = MLPClassifier(max_iter=12, early_stopping=True, n_iter_no_change=50,
                        random_state=0).fit(X, y)
    h = clf.history_
    assert [r["epoch"] for r in h] == list(range(1, clf.n_iter_ + 1))
    np.testing.assert_array_equal([r["loss"] for r in h], clf.loss_curve_)
    np.testing.assert_array_equal([r["validation_score"] for r in h], clf.validation_scores_)
    assert all(r["learning_rate"] == 0.001 and r["seconds"] > 0 for r in h)
    # accumulates across partial_fit and warm starts, restarts on a fresh fit
    reg = MLPRegressor(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1,
                       random_state=0)
    for _ in range(3):
        reg.partial_fit(X, y)
    assert [r["epoch"] for r in reg.history_] == [1, 2, 3]
    rates = [r["learning_rate"] for r in reg.history_]
    assert rates[0] == 0.1 and rates[0] > rates[1] > rates[2]
    assert all(r["validation_score"] is None for r in reg.history_)
    reg.set_params(max_iter=2).fit(X, y)
    assert len(reg.history_) == 2


def test_history_for_lbfgs_iterations():
    clf = MLPClassifier(solver="lbfgs", max_iter=15, random_state=0).fit(X, y)
    losses = [r["loss"] for r in clf.history_]
    assert len(losses) == clf.n_iter_
    assert losses[-1] == pytest.approx(clf.loss_)
    assert losses[-1] < losses[0]
    assert all(r["learning_rate"] is None for r in clf.history_)


def test_progress_bar_off_by_default_and_on_when_asked(capsys):
    MLPClassifier(max_iter=3).fit(X, y)
    assert capsys.readouterr().err == ""
    MLPClassifier(max_iter=3, progress_bar=True).fit(X, y)
    err = capsys.readouterr().err
    assert "3/3" in err and "epoch" in err and "loss=" in err


class _Recorder:
    """A callback following sklearn.callback's FitCallback protocol."""

    def __init__(self, stop_at=None):
        self.events = []
        self.stop_at = stop_at

    def setup(self, estimator, context):
        self.events.append(("setup", None))

    def teardown(self, estimator, context):
        self.events.append(("teardown", None))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None,
                          fitted_estimator=None):
        self.events.append(("begin", context.task_name))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.events.append(("end", context.task_name))
        self.y = y
        if context.task_name in ("epoch", "lbfgs-iter") and fitted_estimator is not None:
            self.last_model = fitted_estimator
            self.last_proba = fitted_estimator.predict_proba(X[:5])
        n_done = sum(1 for e in self.events if e[0] == "end" and e[1] != "fit")
        return self.stop_at is not None and n_done >= self.stop_at


@pytest.mark.parametrize("solver, task", [("adam", "epoch"), ("lbfgs", "lbfgs-iter")])
def test_sklearn_callbacks_see_every_step_and_can_stop(solver, task):
    pytest.importorskip("sklearn.callback")
    rec = _Recorder()
    clf = MLPClassifier(solver=solver, max_iter=6, random_state=0).set_callbacks(rec)
    clf.fit(X, y)
    names = [e for e in rec.events if e[1] == task]
    assert names.count(("begin", task)) >= clf.n_iter_
    assert names.count(("end", task)) == names.count(("begin", task))
    assert rec.events[0] == ("setup", None) and rec.events[-1] == ("teardown", None)
    np.testing.assert_array_equal(rec.y, y)  # the user's labels, not binarized ones
    # the model handed to the last step's hook is the fitted model
    np.testing.assert_allclose(rec.last_proba, clf.predict_proba(X[:5]), rtol=1e-12)
    # fit leaves no callback machinery on the estimator
    assert not any(k.startswith("_callback") for k in vars(clf))
    pickle.loads(pickle.dumps(clf))

    stopper = _Recorder(stop_at=3)
    clf = MLPClassifier(solver=solver, max_iter=50, random_state=0).set_callbacks(stopper)
    clf.fit(X, y)
    assert clf.n_iter_ == 3
    assert len(clf.history_) == 3


def test_loss_curve_display_renders_png(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from fastmlp.plotting import LossCurveDisplay

    clf = MLPClassifier(max_iter=20, early_stopping=True, n_iter_no_change=50,
                        random_state=0).fit(X, y)
    disp = LossCurveDisplay.from_estimator(clf)
    np.testing.assert_array_equal(disp.line_.get_ydata(), clf.loss_curve_)
    np.testing.assert_array_equal(disp.validation_line_.get_ydata(), clf.validation_scores_)
    assert disp.ax_.get_xlabel() == "epoch"
    path = tmp_path / "loss.png"
    disp.figure_.savefig(path)
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # something was drawn
    # without early stopping: one curve; on given axes
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    reg = MLPRegressor(max_iter=5).fit(X, y)
    disp = LossCurveDisplay.from_estimator(reg, ax=ax, name="reg")
    assert disp.ax_ is ax and disp.validation_line_ is None
    assert ax.get_title() == "reg training"
    # a scikit-learn L-BFGS fit has neither loss_curve_ nor history_
    from sklearn.neural_network import MLPClassifier as SkMLP

    with pytest.raises(ValueError, match="solver='sgd' or 'adam'"):
        LossCurveDisplay.from_estimator(SkMLP(solver="lbfgs", max_iter=5).fit(X, y))
    plt.close("all")


@pytest.mark.parametrize("kind", ["multiclass", "binary", "regressor", "poisson"])
def test_history_records_the_validation_loss(kind):
    # with early stopping, each epoch's record holds scikit-learn's loss
    # function of the model of that epoch on the validation split (true
    # targets, no L2 term): here, the best-scoring epoch's against the final
    # model (early stopping restores that epoch's weights)
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network._base import LOSS_FUNCTIONS

    Xs, ys = X, y

    def split_state(est):
        # the fit's RandomState when it splits: after the initial weights
        rs = np.random.RandomState(0)
        for c in est.coefs_:
            rs.uniform(size=c.shape)
            rs.uniform(size=c.shape[1])
        return rs

    kw = dict(max_iter=8, early_stopping=True, n_iter_no_change=100, random_state=0)
    if kind in ("multiclass", "binary"):
        yk = ys if kind == "multiclass" else ys % 2
        est = MLPClassifier(label_smoothing=0.1, **kw).fit(Xs, yk)
        # split as the fit does (as scikit-learn: stratified for one output)
        _, X_val, _, y_val = train_test_split(
            Xs, yk, random_state=split_state(est), test_size=0.1,
            stratify=yk if kind == "binary" else None)
        Y_val = est._label_binarizer.transform(y_val).astype(float)
        name = "log_loss" if kind == "multiclass" else "binary_log_loss"
        out = est.predict_proba(X_val)
        out = out if kind == "multiclass" else out[:, 1:]
    else:
        yk = ys.astype(float) + 1
        est = MLPRegressor(loss="squared_error" if kind == "regressor" else "poisson",
                           **kw).fit(Xs, yk)
        _, X_val, _, y_val = train_test_split(Xs, yk, random_state=split_state(est),
                                              test_size=0.1)
        Y_val = y_val.reshape(-1, 1)
        name = "squared_error" if kind == "regressor" else "poisson"
        out = est.predict(X_val).reshape(-1, 1)
    losses = [r["validation_loss"] for r in est.history_]
    assert len(losses) == est.n_iter_ and all(np.isfinite(losses))
    best = int(np.argmax(est.validation_scores_))  # the first best, as restored
    assert losses[best] == pytest.approx(LOSS_FUNCTIONS[name](Y_val, out), rel=1e-10)
    assert min(losses) < losses[0]
    # without early stopping there is none
    plain = type(est)(max_iter=2).fit(Xs, yk)
    assert [r["validation_loss"] for r in plain.history_] == [None, None]


def test_loss_curve_display_draws_the_validation_loss():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from fastmlp.plotting import LossCurveDisplay

    clf = MLPClassifier(max_iter=6, early_stopping=True, n_iter_no_change=50,
                        random_state=0).fit(X, y)
    clf.set_params(warm_start=True, max_iter=3).fit(X, y)  # the curves go on
    disp = LossCurveDisplay.from_estimator(clf)
    want = [r["validation_loss"] for r in clf.history_]
    np.testing.assert_array_equal(disp.validation_loss_line_.get_ydata(), want)
    np.testing.assert_array_equal(disp.validation_loss_line_.get_xdata(), np.arange(1, 10))
    assert disp.validation_loss_line_.axes is disp.ax_  # the loss axis
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    best = int(np.argmax(clf.validation_scores_)) + 1
    assert labels == ["training loss", "validation loss", "validation accuracy",
                      f"best epoch ({best})"]
    # a scikit-learn model has no history_: no validation-loss line
    from sklearn.neural_network import MLPClassifier as SkMLP

    sk = SkMLP(max_iter=3, early_stopping=True, random_state=0).fit(X, y)
    assert LossCurveDisplay.from_estimator(sk).validation_loss_line_ is None


def test_the_first_epoch_is_timed_without_binding_the_kernel(monkeypatch):
    # binding the epoch kernel (compiling it on a first fit) happens before
    # the first epoch's clock starts: a bind made slow here is not counted
    import time

    from fastmlp import _engine

    bind = _engine.entry_point

    def slow_bind(*args):
        time.sleep(0.5)
        return bind(*args)

    monkeypatch.setattr(_engine, "entry_point", slow_bind)
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(X, y)
    assert all(r["seconds"] < 0.5 for r in clf.history_)


def _inside(inner, outer):
    return (inner.x0 >= outer.x0 - 1 and inner.x1 <= outer.x1 + 1
            and inner.y0 >= outer.y0 - 1 and inner.y1 <= outer.y1 + 1)


@pytest.mark.parametrize("case", ["early_stopping", "plain", "regressor", "lbfgs"])
def test_loss_curve_display_draws_each_case(case, tmp_path):
    # what each kind of fit draws: the legend outside the axes (it covers
    # no curve, the twin axis' included), the best epoch marked, the score
    # named, L-BFGS per iteration
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from fastmlp.plotting import LossCurveDisplay

    if case == "early_stopping":
        est = MLPClassifier(max_iter=15, early_stopping=True, n_iter_no_change=50,
                            random_state=0).fit(X, y)
    elif case == "plain":
        est = MLPClassifier(max_iter=15, random_state=0).fit(X, y)
    elif case == "regressor":
        est = MLPRegressor(max_iter=15, early_stopping=True, n_iter_no_change=50,
                           random_state=0).fit(X, X[:, 0])
    else:
        est = MLPClassifier(solver="lbfgs", max_iter=15, random_state=0).fit(X, y)
    disp = LossCurveDisplay.from_estimator(est)
    disp.figure_.savefig(tmp_path / "curve.png")  # lays the figure out
    renderer = disp.figure_.canvas.get_renderer()
    legend_box = disp.legend_.get_window_extent(renderer)
    axes_box = disp.ax_.get_window_extent(renderer)
    assert legend_box.y1 <= axes_box.y0  # below the axes
    assert _inside(legend_box, disp.figure_.bbox)  # and on the figure
    labels = [t.get_text() for t in disp.legend_.get_texts()]
    if case == "lbfgs":
        assert disp.ax_.get_xlabel() == "iteration"
        np.testing.assert_array_equal(disp.line_.get_ydata(), [r["loss"] for r in est.history_])
        assert disp.best_line_ is None and disp.validation_line_ is None
        return
    assert disp.ax_.get_xlabel() == "epoch"
    if case == "plain":
        best = int(np.argmin(est.loss_curve_)) + 1
        assert disp.validation_line_ is None
    else:
        best = int(np.argmax(est.validation_scores_)) + 1
        name = "accuracy" if case == "early_stopping" else "R²"
        assert disp.ax_validation_.get_ylabel() == f"validation {name}"
        assert f"validation {name}" in labels
    assert disp.best_line_.get_xdata()[0] == best
    assert f"best epoch ({best})" in labels


def test_verbose_lines_and_warnings_stay_off_the_progress_bar_line():
    # In a terminal-like stream the bar redraws its line with "\r"; every
    # verbose line and the ConvergenceWarning must start a line of their own.
    pytest.importorskip("tqdm")
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "from sklearn.datasets import load_iris\n"
        "from fastmlp import MLPClassifier\n"
        "X, y = load_iris(return_X_y=True)\n"
        "MLPClassifier((5,), max_iter=3, verbose=True, progress_bar=True,\n"
        "              random_state=0).fit(X, y)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    text = out.stdout + out.stderr
    shown = [line.split("\r")[-1] for line in text.split("\n")]  # what a terminal keeps
    for marker in ("Iteration 1, loss", "Iteration 3, loss", "ConvergenceWarning"):
        (line,) = [ln for ln in shown if marker in ln]
        assert "epoch" not in line.replace("Iteration", "")
    # the warning comes after the bar's last state, on its own line
    stderr_lines = [line.split("\r")[-1] for line in out.stderr.split("\n")]
    idx = next(i for i, ln in enumerate(stderr_lines) if "ConvergenceWarning" in ln)
    assert any("3/3" in ln for ln in stderr_lines[:idx])
