"""Check that a change to fastmlp's engine kept the model bits.

Fits a fixed matrix of configurations through fastmlp's public API only
(``fastmlp.MLPClassifier`` and ``fastmlp.MLPRegressor``), so the same
script runs against any commit of the package, and records one SHA-256
per configuration over:

* the bytes (with dtype and shape) of every array of ``coefs_`` and then
  ``intercepts_``, in order;
* ``predict`` and, for classifiers, ``predict_proba`` on a fixed test set
  (of the training input's dtype and kind);
* ``loss_curve_``, ``validation_scores_``, ``loss_``, ``best_loss_``,
  ``best_validation_score_``, ``n_iter_`` and ``t_`` where present
  (floats exactly, by their hexadecimal form).

A configuration that raises records ``"error: <type>: <message>"``
instead of a hash, so an estimator that newly fails shows as a difference.

Configurations
--------------
``main/<head>/<solver>/<activation>/<dtype>/<input>``
    The full product of every solver (``sgd-nesterov``, ``sgd-momentum``,
    ``adam``, ``lbfgs``), every hidden activation (``identity``,
    ``logistic``, ``tanh``, ``relu``), every output head (``binary`` and
    ``multilabel``: logistic; ``multiclass``: softmax; ``squared_error``;
    ``poisson``: exp, on positive targets), float32 and float64 (fastmlp
    keeps float32 input as float32) and dense or CSR input, on small data
    (a (7,) hidden layer, a few epochs) at ``n_threads=1``.
``thr/<head>/<solver>/<activation>/<dtype>/<input>/t1`` and ``.../t2``
    The same product on larger data and two hidden layers, at
    ``n_threads=1`` and ``n_threads=2``.
``x/<feature>/.../t1`` and ``.../t2``
    ``early_stopping=True`` (stopping and not), ``sample_weight`` (some
    weights zero), ``warm_start=True`` with two fits, ``partial_fit``
    sequences (a classifier given ``classes=``, a regressor), the
    ``'invscaling'`` and ``'adaptive'`` learning rates with sgd, sgd without
    momentum, batch sizes that do not divide the number of rows (and one
    larger than it), two outputs of regression, at ``n_threads=1`` and 2.

fastmlp runs a fit (and a prediction) on one thread when one batch is
little work (rows x weights below ``PARALLEL_MIN_WORK`` in
``fastmlp/_threads.py``), so the ``thr`` and ``x`` configurations use
larger data and two hidden layers of different width, (96, 48), sized so
that every batch is above that threshold and ``n_threads=2`` really runs
two threads (it also needs two cores: Numba's pool and ``OMP_NUM_THREADS``
cap it). A ``t1`` and ``t2`` pair that disagree is a bug: fastmlp's kernels
split their work independently of the thread count. ``--out`` reports such
pairs and exits with status 2 (after writing the file).

The bits also depend on the machine, the BLAS library (``FASTMLP_BLAS``)
and the versions of NumPy and Numba: compare files made on one machine in
one environment.

Usage
-----
From the repository root, with the environment's Python::

    python -m bench.bits --out FILE          # hash the fastmlp this process imports
    python -m bench.bits --compare REF [REF2]
    python -m bench.bits --diff A.json B.json

``--compare`` checks each git REF out into a temporary worktree (``git
worktree add --detach``, removed afterwards), runs this script there in a
subprocess with ``PYTHONPATH`` set to that checkout (the first run of a
checkout compiles its Numba kernels, which takes a minute or more), and
prints the configurations whose hashes differ and a summary; REF2 defaults
to this script's own checkout as it is, uncommitted changes included. A REF
that names an existing file is read as a saved ``--out`` file instead.
``--compare`` and ``--diff`` exit with status 1 when any configuration
differs (or a side has t1/t2 pairs that disagree). ``--only TEXT`` keeps
the configurations whose names contain TEXT; ``--save-dir DIR`` keeps the
files that ``--compare`` made.

Only the standard library, NumPy, SciPy and scikit-learn are used (and
fastmlp, the package under test).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HEADS = ("binary", "multiclass", "multilabel", "squared_error", "poisson")
CLASSIFIER_HEADS = ("binary", "multiclass", "multilabel")
ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
SOLVERS = {
    "sgd-nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True,
                         learning_rate_init=0.01),
    "sgd-momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False,
                         learning_rate_init=0.01),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "lbfgs": dict(solver="lbfgs"),
}
DTYPES = {"f32": np.float32, "f64": np.float64}
KINDS = ("dense", "csr")

# (train rows, test rows, features, hidden layers, epochs)
SIZES = {
    "small": (160, 60, 8, (7,), 4),
    "medium": (700, 300, 48, (96, 48), 3),
}
# fastmlp/_threads.py's PARALLEL_MIN_WORK: a fit whose batch (all rows for
# L-BFGS) times the number of weights is below it runs on one thread.
PARALLEL_MIN_WORK = 1 << 20

Config = namedtuple("Config", "name head solver activation dtype kind size threads proc params")


# ----------------------------------------------------------------------
# Data


def _raw_data(size, head):
    """Float64 train and test arrays and targets, the same in every run."""
    n, n_test, d, _, _ = SIZES[size]
    seed = 1000 * (1 + list(SIZES).index(size)) + HEADS.index(head)
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n + n_test, d))
    X[rng.uniform(size=X.shape) < 0.6] = 0.0  # sparse enough for CSR to matter
    W = rng.standard_normal((d, 3)) / np.sqrt(0.4 * d)
    Z = X @ W + 0.3 * rng.standard_normal((n + n_test, 3))
    if head == "binary":
        y = (Z[:, 0] > 0).astype(np.int64)
    elif head == "multiclass":
        y = np.argmax(Z, axis=1).astype(np.int64)
    elif head == "multilabel":
        y = (Z > 0).astype(np.int64)
    elif head == "squared_error":
        y = Z[:, 0]
    else:  # poisson: positive targets
        y = np.exp(0.5 * Z[:, 0])
    sw = rng.uniform(0.2, 2.0, size=n)
    sw[rng.uniform(size=n) < 0.1] = 0.0
    return X[:n], y[:n], X[n:], sw


_CACHE = {}


def _data(size, head, dtype, kind):
    key = (size, head, dtype, kind)
    if key not in _CACHE:
        X, y, Xt, sw = _raw_data(size, head)
        dt = DTYPES[dtype]
        X, Xt = X.astype(dt), Xt.astype(dt)
        if head not in CLASSIFIER_HEADS:
            y = y.astype(dt)
        if kind == "csr":
            X, Xt = sp.csr_matrix(X), sp.csr_matrix(Xt)
        _CACHE[key] = (X, y, Xt, sw)
    return _CACHE[key]


def _two_outputs(y, X):
    """A second regression target for the two-output configurations."""
    Xd = X.toarray() if sp.issparse(X) else X
    return np.column_stack([y, np.tanh(Xd[:, 0] - Xd[:, 1])]).astype(y.dtype)


# ----------------------------------------------------------------------
# Configurations


def _n_weights(size, head):
    _, _, d, hidden, _ = SIZES[size]
    n_out = {"binary": 1, "multiclass": 3, "multilabel": 3}.get(head, 1)
    units = (d,) + hidden + (n_out,)
    return sum(a * b for a, b in zip(units[:-1], units[1:]))


def _batch_rows(cfg):
    """Rows of one batch as fastmlp counts them for the thread decision."""
    n = SIZES[cfg.size][0]
    if cfg.proc == "partial":
        n = n - 2 * (n // 3)  # the smallest chunk
    elif cfg.params.get("early_stopping"):
        n = n - int(round(n * cfg.params.get("validation_fraction", 0.1)))
    if cfg.solver == "lbfgs":
        return n
    bs = cfg.params.get("batch_size", "auto")
    return min(200, n) if bs == "auto" else min(bs, n)


def configurations():
    out = []

    def add(name, head, solver, act, dtype, kind, size, threads, proc="fit", **params):
        out.append(Config(name, head, solver, act, dtype, kind, size, threads, proc, params))

    # the full product, small data, one thread
    for head in HEADS:
        for solver in SOLVERS:
            for act in ACTIVATIONS:
                for dtype in DTYPES:
                    for kind in KINDS:
                        add(f"main/{head}/{solver}/{act}/{dtype}/{kind}",
                            head, solver, act, dtype, kind, "small", 1)

    def both(name, *args, **kw):
        for t in (1, 2):
            add(f"{name}/t{t}", *args[:5], "medium", t, **kw)

    # the same product on the larger network, at one and two threads
    for head in HEADS:
        for solver in SOLVERS:
            for act in ACTIVATIONS:
                for dtype in DTYPES:
                    for kind in KINDS:
                        both(f"thr/{head}/{solver}/{act}/{dtype}/{kind}",
                             head, solver, act, dtype, kind)

    def x(feature, head, solver, act, dtype, kind, proc="fit", **params):
        both(f"x/{feature}/{head}/{solver}/{act}/{dtype}/{kind}",
             head, solver, act, dtype, kind, proc=proc, **params)

    es = dict(early_stopping=True, validation_fraction=0.2, max_iter=6)
    x("early_stopping", "multiclass", "adam", "relu", "f64", "dense", **es)
    x("early_stopping", "binary", "sgd-nesterov", "tanh", "f32", "csr", **es)
    x("early_stopping", "squared_error", "sgd-momentum", "relu", "f64", "dense", **es)
    # tol so large that every epoch counts as no improvement: stops, restores the best
    es_stop = dict(es, tol=10.0, n_iter_no_change=2)
    x("early_stopping_stop", "multiclass", "sgd-nesterov", "logistic", "f64", "csr", **es_stop)
    x("early_stopping_stop", "squared_error", "adam", "tanh", "f32", "dense", **es_stop)
    # the same tol without early stopping: the training loss's stop
    x("loss_stop", "binary", "adam", "relu", "f64", "dense", tol=10.0, n_iter_no_change=1,
      max_iter=6)

    x("sample_weight", "multiclass", "sgd-nesterov", "relu", "f64", "dense", proc="sw")
    x("sample_weight", "multiclass", "adam", "tanh", "f32", "csr", proc="sw")
    x("sample_weight", "binary", "lbfgs", "logistic", "f64", "dense", proc="sw")
    x("sample_weight", "multilabel", "adam", "relu", "f64", "dense", proc="sw")
    x("sample_weight", "squared_error", "lbfgs", "tanh", "f32", "dense", proc="sw")
    x("sample_weight", "squared_error", "sgd-momentum", "identity", "f64", "csr", proc="sw")
    x("sample_weight", "poisson", "adam", "relu", "f64", "dense", proc="sw")

    x("warm_start", "multiclass", "adam", "relu", "f32", "dense", proc="warm", warm_start=True)
    x("warm_start", "multiclass", "lbfgs", "tanh", "f64", "dense", proc="warm", warm_start=True)
    x("warm_start", "squared_error", "sgd-nesterov", "relu", "f64", "csr", proc="warm",
      warm_start=True)
    x("warm_start", "poisson", "lbfgs", "logistic", "f32", "csr", proc="warm", warm_start=True)

    x("partial_fit", "multiclass", "sgd-nesterov", "relu", "f64", "dense", proc="partial")
    x("partial_fit", "multiclass", "adam", "tanh", "f32", "csr", proc="partial")
    x("partial_fit", "binary", "sgd-momentum", "logistic", "f64", "dense", proc="partial")
    x("partial_fit", "squared_error", "sgd-nesterov", "tanh", "f32", "dense", proc="partial")
    x("partial_fit", "squared_error", "adam", "relu", "f64", "csr", proc="partial")

    x("invscaling", "multiclass", "sgd-nesterov", "relu", "f64", "dense",
      learning_rate="invscaling", learning_rate_init=0.1)
    x("invscaling", "squared_error", "sgd-momentum", "tanh", "f32", "dense",
      learning_rate="invscaling", learning_rate_init=0.1)
    # tol large: every epoch fails to improve, so the learning rate drops
    ad = dict(learning_rate="adaptive", tol=10.0, n_iter_no_change=1, max_iter=6)
    x("adaptive", "multiclass", "sgd-nesterov", "relu", "f32", "csr", **ad)
    x("adaptive", "squared_error", "sgd-momentum", "logistic", "f64", "dense", **ad)

    x("no_momentum", "multiclass", "sgd-nesterov", "relu", "f64", "dense", momentum=0.0)
    x("no_momentum", "squared_error", "sgd-momentum", "tanh", "f32", "csr", momentum=0.0)

    x("batch150", "multiclass", "adam", "relu", "f64", "dense", batch_size=150)
    x("batch150", "squared_error", "sgd-nesterov", "tanh", "f32", "csr", batch_size=150)
    x("batch150", "multilabel", "sgd-momentum", "logistic", "f32", "dense", batch_size=150)
    x("batch_over_n", "binary", "adam", "tanh", "f64", "dense", batch_size=1000)

    x("two_outputs", "squared_error", "adam", "relu", "f64", "dense", proc="two")
    x("two_outputs", "squared_error", "lbfgs", "tanh", "f32", "csr", proc="two")

    for cfg in out:
        if cfg.threads > 1:
            work = _batch_rows(cfg) * _n_weights(cfg.size, cfg.head)
            assert work >= PARALLEL_MIN_WORK, (cfg.name, work)
    assert len({c.name for c in out}) == len(out)
    return out


# ----------------------------------------------------------------------
# Fitting and hashing


def _scalar(v):
    if v is None:
        return "None"
    if isinstance(v, (float, np.floating)):
        return float(v).hex()
    return repr(int(v)) if isinstance(v, (int, np.integer)) else repr(v)


def digest(est, X_test, classifier):
    h = hashlib.sha256()

    def add(tag, arr):
        a = np.ascontiguousarray(arr)
        h.update(f"{tag}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())

    for i, c in enumerate(est.coefs_):
        add(f"coefs_[{i}]", c)
    for i, b in enumerate(est.intercepts_):
        add(f"intercepts_[{i}]", b)
    add("predict", est.predict(X_test))
    if classifier:
        add("predict_proba", est.predict_proba(X_test))
    for name in ("loss_curve_", "validation_scores_"):
        v = getattr(est, name, None)
        if v is not None:
            add(name, np.asarray(v, dtype=np.float64))
    for name in ("loss_", "best_loss_", "best_validation_score_", "n_iter_", "t_"):
        if hasattr(est, name):
            h.update(f"{name}={_scalar(getattr(est, name))}|".encode())
    return h.hexdigest()


def run_config(cfg, has_n_threads):
    import fastmlp

    X, y, Xt, sw = _data(cfg.size, cfg.head, cfg.dtype, cfg.kind)
    classifier = cfg.head in CLASSIFIER_HEADS
    _, _, _, hidden, epochs = SIZES[cfg.size]
    params = dict(hidden_layer_sizes=hidden, activation=cfg.activation, random_state=0,
                  max_iter=epochs, **SOLVERS[cfg.solver])
    params.update(cfg.params)
    if cfg.head == "poisson":
        params["loss"] = "poisson"
    if has_n_threads:
        params["n_threads"] = cfg.threads
    est = (fastmlp.MLPClassifier if classifier else fastmlp.MLPRegressor)(**params)
    if cfg.proc == "fit":
        est.fit(X, y)
    elif cfg.proc == "sw":
        est.fit(X, y, sample_weight=sw)
    elif cfg.proc == "warm":
        est.fit(X, y)
        est.fit(X, y)
    elif cfg.proc == "two":
        est.fit(X, _two_outputs(y, X))
    elif cfg.proc == "partial":
        n = X.shape[0]
        cuts = [0, n // 3, 2 * (n // 3), n]
        for k in range(3):
            part = slice(cuts[k], cuts[k + 1])
            if classifier and k == 0:
                est.partial_fit(X[part], y[part], classes=np.unique(y))
            else:
                est.partial_fit(X[part], y[part])
    else:
        raise ValueError(cfg.proc)
    return digest(est, Xt, classifier)


def _error(exc):
    msg = str(exc).strip().splitlines()
    return f"error: {type(exc).__name__}: {msg[0][:200] if msg else ''}"


def thread_mismatches(hashes):
    """Names (without the /t1 suffix) whose t1 and t2 hashes differ."""
    return sorted(name[:-3] for name, v in hashes.items()
                  if name.endswith("/t1") and name[:-3] + "/t2" in hashes
                  and hashes[name[:-3] + "/t2"] != v)


def _thread_capacity():
    """Threads fastmlp may use here: the cores, capped by Numba's and OpenMP's settings."""
    limit = os.cpu_count() or 1
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        try:
            limit = min(limit, int(os.environ[var]))
        except (KeyError, ValueError):
            pass
    return limit


def hash_all(only=None, expect_root=None):
    from sklearn.exceptions import ConvergenceWarning

    import fastmlp

    where = Path(fastmlp.__file__).resolve()
    print(f"fastmlp: {where}", file=sys.stderr)
    if expect_root is not None and Path(expect_root).resolve() not in where.parents:
        sys.exit(f"fastmlp was imported from {where}, not from {expect_root}")
    has_n_threads = "n_threads" in fastmlp.MLPClassifier().get_params()
    if not has_n_threads:
        print("note: this fastmlp has no n_threads; t1 and t2 run alike", file=sys.stderr)
    elif _thread_capacity() < 2:
        print("note: fewer than 2 threads available here; t2 runs on one thread",
              file=sys.stderr)
    try:
        accepted = fastmlp.MLPClassifier._parameter_constraints["activation"][0].options
        extra = set(accepted) - set(ACTIVATIONS)
        if extra:
            print(f"note: activations not covered: {sorted(extra)}", file=sys.stderr)
    except (AttributeError, KeyError, IndexError, TypeError):
        pass
    try:
        from fastmlp import _threads
        lib_min = getattr(_threads, "PARALLEL_MIN_WORK", PARALLEL_MIN_WORK)
        if lib_min > PARALLEL_MIN_WORK:
            print(f"note: fastmlp's PARALLEL_MIN_WORK is {lib_min}; some t2 configurations "
                  "may run on one thread", file=sys.stderr)
    except ImportError:
        pass

    configs = [c for c in configurations() if only is None or only in c.name]
    hashes = {}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*batch_size.*")
        for cfg in configs:
            try:
                hashes[cfg.name] = run_config(cfg, has_n_threads)
            except Exception as exc:  # recorded: a newly failing fit is a difference
                hashes[cfg.name] = _error(exc)
    errors = sum(v.startswith("error:") for v in hashes.values())
    print(f"{len(hashes)} configurations in {time.perf_counter() - t0:.1f} s"
          f"{f', {errors} raised' if errors else ''}", file=sys.stderr)
    return hashes


# ----------------------------------------------------------------------
# Files, git refs, comparison


def _write(hashes, path):
    with open(path, "w") as f:
        json.dump(hashes, f, indent=1, sort_keys=True)
        f.write("\n")


def _load(path):
    with open(path) as f:
        return json.load(f)


def _git(repo, *args, capture=True):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None).stdout.strip()


def _hash_tree(root, out_path, only):
    """Run this script in a subprocess that imports fastmlp from ``root``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(out_path),
           "--expect-root", str(root)]
    if only is not None:
        cmd += ["--only", only]
    rc = subprocess.run(cmd, cwd=str(root), env=env).returncode
    if rc not in (0, 2) or not Path(out_path).exists():
        sys.exit(f"hashing {root} failed (exit status {rc})")
    return _load(out_path)


def _resolve(ref, repo, tmp, only):
    """Hashes and a label for a saved file, a git ref, or (None) the checkout."""
    if ref is None:
        return _hash_tree(repo, Path(tmp) / "worktree.json", only), f"working tree {repo}"
    if Path(ref).is_file():
        return _load(ref), ref
    sha = _git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}")
    wt = Path(tmp) / f"wt-{sha[:12]}"
    _git(repo, "worktree", "add", "--detach", str(wt), sha)
    try:
        hashes = _hash_tree(wt, Path(tmp) / f"{sha[:12]}.json", only)
    finally:
        _git(repo, "worktree", "remove", "--force", str(wt))
    return hashes, f"{ref} ({sha[:12]})"


def compare(a, b, label_a, label_b):
    """Print the configurations that differ; return True when all match."""
    names = sorted(set(a) | set(b))
    differ = [n for n in names if a.get(n) != b.get(n)]
    print(f"A: {label_a}\nB: {label_b}")
    if differ:
        width = max(len(n) for n in differ)

        def short(v):
            return "-" if v is None else (v if v.startswith("error:") else v[:12])

        print(f"\n{'configuration':<{width}}  {'A':<12}  B")
        for n in differ:
            print(f"{n:<{width}}  {short(a.get(n)):<12}  {short(b.get(n))}")
    same = len(names) - len(differ)
    only_a, only_b = len(set(a) - set(b)), len(set(b) - set(a))
    extra = f" ({only_a} only in A, {only_b} only in B)" if only_a or only_b else ""
    print(f"\n{len(names)} configurations, {same} identical, {len(differ)} differ{extra}")
    ok = not differ
    for label, h in (("A", a), ("B", b)):
        bad = thread_mismatches(h)
        if bad:
            ok = False
            print(f"{label}: {len(bad)} configurations differ between 1 and 2 threads:")
            for n in bad:
                print(f"  {n}")
    return ok


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.bits",
                                description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", metavar="FILE", help="hash the importable fastmlp into FILE")
    mode.add_argument("--compare", nargs="+", metavar="REF",
                      help="REF [REF2]: git refs or saved files (REF2: this checkout)")
    mode.add_argument("--diff", nargs=2, metavar="JSON", help="compare two saved files")
    p.add_argument("--only", metavar="TEXT", help="configurations whose names contain TEXT")
    p.add_argument("--save-dir", metavar="DIR", help="with --compare: keep both files in DIR")
    p.add_argument("--expect-root", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.out:
        hashes = hash_all(args.only, args.expect_root)
        _write(hashes, args.out)
        bad = thread_mismatches(hashes)
        if bad:
            print(f"{len(bad)} configurations differ between 1 and 2 threads:", file=sys.stderr)
            for n in bad:
                print(f"  {n}", file=sys.stderr)
            return 2
        return 0
    if args.diff:
        a, b = (_load(f) for f in args.diff)
        return 0 if compare(a, b, *args.diff) else 1
    if len(args.compare) > 2:
        p.error("--compare takes one or two refs")
    repo = Path(_git(Path(__file__).resolve().parent, "rev-parse", "--show-toplevel"))
    refs = list(args.compare) + [None] * (2 - len(args.compare))
    tmp = tempfile.mkdtemp(prefix="fastmlp-bits-")
    try:
        sides = [_resolve(ref, repo, tmp, args.only) for ref in refs]
        if args.save_dir:
            os.makedirs(args.save_dir, exist_ok=True)
            for (h, _), tag in zip(sides, "AB"):
                _write(h, Path(args.save_dir) / f"bits_{tag}.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], check=False)
    (a, la), (b, lb) = sides
    return 0 if compare(a, b, la, lb) else 1


if __name__ == "__main__":
    sys.exit(main())
