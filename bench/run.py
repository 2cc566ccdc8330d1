"""fastmlp benchmark suite: ``python -m bench`` (or ``python bench/run.py``).

Runs fastmlp, scikit-learn's MLPClassifier and, when torch is importable, a
plain PyTorch CPU training loop side by side in one process, on the same
data with the same network, batch size and epochs, and prints one table per
section, then the issue's targets with PASS/FAIL. The ``recipe`` section
times fastmlp's plain fit against its "modern recipe" (:data:`RECIPE`) and
that recipe as a PyTorch loop. ``python -m bench -h``
lists the options; ``bench/README.md`` describes the workloads and how every
figure is computed.
"""

import argparse
import shutil
import sys
import tempfile
import warnings
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import numpy as np

from bench import _child
from bench._libs import (
    RECIPE,
    fastmlp_library,
    fastmlp_recipe_library,
    median_call_time,
    median_time,
    sklearn_library,
    torch_library,
)
from bench._machine import GEMM_N, core_round_trip_ns, gemm_gflops, machine_info
from bench._table import Table, fmt, joined
from bench._workloads import (
    layer_units,
    make_workloads,
    predict_flops_per_row,
    train_flops_per_sample,
    w2_data,
)


def fmt_trip(ns):
    """A core-to-core round trip for the host-state table."""
    return "n/a (no C compiler, or the probe failed)" if ns is None else f"{ns:.0f}"


SECTIONS = ("W1", "W2", "W3", "W4", "recipe", "scaling", "threads", "memory", "compile")
DTYPES = ("float64", "float32")

# The recipe section's rows, and fastmlp's least speed-up over PyTorch's
# recipe loop on each workload (issue 26).
RECIPE_WORKLOADS = {"W1": 5, "W2": 2}
RECIPE_MAX_COST = 1.2  # fastmlp's recipe time / its plain fit's, at most

# The targets: (label, metric key, comparison, goal, unit, optional).
# An optional target is listed only when its figure was measured.
TARGETS = [
    ("W1: fastmlp vs scikit-learn", ("W1 float64", "vs sklearn"), ">=", 10, "x", False),
    ("W1: fastmlp vs torch", ("W1 float64", "vs torch"), ">=", 10, "x", False),
    ("W2 float64: vs scikit-learn", ("W2 float64", "vs sklearn"), ">=", 3, "x", False),
    ("W2 float64: share of GEMM", ("W2 float64", "% GEMM"), ">=", 80, "%", False),
    ("W2 float32: share of GEMM", ("W2 float32", "% GEMM"), ">=", 80, "%", False),
    ("W2 float32: vs torch", ("W2 float32", "vs torch"), ">=", 2, "x", False),
    ("W3 float32: share of GEMM", ("W3 float32", "% GEMM"), ">=", 80, "%", False),
    ("W3 float32: vs torch", ("W3 float32", "vs torch"), ">=", 2, "x", False),
    *[
        (f"W4 {dtype} {label}: vs scikit-learn", (f"W4 {dtype} {kind}", "vs sklearn"),
         ">=", goal, "x", False)
        for dtype in DTYPES
        for kind, label, goal in (("1 row", "1 row", 20), ("batch", "batch (10k rows)", 3))
    ],
    *[
        target
        for name, goal in RECIPE_WORKLOADS.items()
        for dtype in DTYPES
        for target in (
            (f"recipe {name} {dtype}: fastmlp recipe / plain", (f"recipe {name} {dtype}",
             "recipe/plain"), "<=", RECIPE_MAX_COST, "x", False),
            (f"recipe {name} {dtype}: fastmlp vs torch recipe", (f"recipe {name} {dtype}",
             "vs torch"), ">=", goal, "x", False),
        )
    ],
    *[
        (f"threads {name} {dtype}: n_threads=2 vs 1", (f"threads {name} {dtype}", "speed-up"),
         ">=", 1.7, "x", optional)
        for name, dtype, optional in (("W2", "float64", False), ("W2", "float32", False),
                                      ("W3", "float32", False), ("W3", "float64", True))
    ],
    ("scaling: slowest / fastest s per sample", ("scaling", "max/min"), "<=", 1.15, "x", False),
    ("memory: W2 fit increase, fastmlp / scikit-learn", ("memory", "ratio"), "<=", 1.0, "x",
     False),
    *[
        (f"compile {dtype}, {state} cache", (f"compile {dtype}", state), "<=", goal, "s", False)
        for dtype in ("float32", "float64")
        for state, goal in (("cold", 10), ("warm", 0.5))
    ],
]


class Bench:
    """State of one benchmark run: options, libraries, ceilings, results.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed command line (see :func:`parse_args`).
    """

    def __init__(self, args):
        from threadpoolctl import threadpool_limits

        self.args = args
        self.quick = args.quick
        self.threads = args.threads
        # scikit-learn's and the GEMM ceiling's BLAS use the same thread count
        # as fastmlp and torch; set once for the process, not per call.
        self._blas_limits = threadpool_limits(args.threads, user_api="blas")
        self.workloads = make_workloads(args.quick, args.w3_float64)
        self.fastmlp = fastmlp_library(args.threads)
        self.libs = [self.fastmlp, sklearn_library()]
        self.torch = None if args.no_torch else torch_library(args.threads)
        if self.torch is not None:
            self.libs.append(self.torch)
        self.fastmlp_recipe = fastmlp_recipe_library(args.threads)
        self.torch_recipe = None if self.torch is None else torch_library(args.threads, True)
        self.names = [lib.name for lib in self.libs]
        self.gemm = {}
        self.metrics = {}
        self.models = {}

    # ------------------------------------------------------------------
    # Output and bookkeeping

    def emit(self, table):
        """Print a finished table."""
        print(table.render(markdown=self.args.markdown), flush=True)

    def repeats(self, workload):
        """Timed repeats of a fit of ``workload`` (W3 has its own count)."""
        return self.args.w3_repeats if workload == "W3" else self.args.repeats

    def gflops(self, flops, seconds):
        """Achieved GFLOP/s of ``flops`` done in ``seconds``."""
        return flops / seconds / 1e9

    def gemm_pct(self, flops, seconds, dtype):
        """Achieved GFLOP/s as a percentage of the GEMM ceiling of ``dtype``."""
        return 100.0 * self.gflops(flops, seconds) / self.gemm[dtype]

    def comparison_columns(self, unit, check):
        """Headers of a side-by-side row (see :meth:`comparison_cells`)."""
        return [
            *[f"{name} ({unit})" for name in self.names],
            *[f"{name}/fastmlp" for name in self.names[1:]],
            check,
            "GFLOP/s",
            "% GEMM",
        ]

    def libraries_note(self, table):
        """Say which library each value of an ``a / b / c`` cell belongs to."""
        table.note(f"cells with several values: {' / '.join(self.names)}; "
                   "name/fastmlp = that library's time / fastmlp's (> 1: fastmlp faster)")

    def comparison_cells(self, key, seconds, flops, dtype, check, scale=1.0):
        """Cells of a side-by-side row, and its figures recorded under ``key``.

        Parameters
        ----------
        key : str
            Row name in :attr:`metrics`, e.g. ``"W2 float32"``.
        seconds : dict
            Library name -> seconds.
        flops : float
            FLOPs of one timed call.
        dtype : str
            Selects the GEMM ceiling.
        check : str
            The correctness cell (test accuracies, agreement).
        scale : float, default=1.0
            Times are printed multiplied by it (1e6 for microseconds).
        """
        fast = seconds["fastmlp"]
        ratios = [seconds[name] / fast for name in self.names[1:]]
        for name, ratio in zip(self.names[1:], ratios):
            self.metrics[(key, f"vs {name}")] = ratio
        self.metrics[(key, "% GEMM")] = self.gemm_pct(flops, fast, dtype)
        return [
            *[fmt(seconds[name] * scale) for name in self.names],
            *[f"{r:.2f}x" for r in ratios],
            check,
            joined(self.gflops(flops, seconds[name]) for name in self.names),
            joined((self.gemm_pct(flops, seconds[name], dtype) for name in self.names), 2),
        ]

    def model(self, workload, dtype, lib):
        """The model ``lib`` fitted on ``workload`` in ``dtype`` (fitted, untimed, if needed)."""
        key = (workload.name, dtype, lib.name)
        if key not in self.models:
            split = workload.split(dtype)
            self.models[key] = lib.fit(split.X_train, split.y_train, workload.net)
        return self.models[key]

    # ------------------------------------------------------------------
    # Sections

    def header(self):
        """Warm fastmlp's thread pool up, measure the GEMM ceilings, print both."""
        for dtype in DTYPES:
            X = np.random.default_rng(0).standard_normal((1024, 64)).astype(dtype)
            y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)  # 3 classes: softmax
            self.fastmlp.warm_up(X, y, self.workloads["W2"].net)
        info = Table("Machine", ["item", "value"], left=2)
        for item, value in machine_info():
            info.add(item, value)
        if self.torch is not None:
            info.add("torch", f"{self.torch.version} ({self.torch.threads} threads)")
        else:
            info.add("torch", "left out (--no-torch)" if self.args.no_torch
                     else "not installed: its columns are skipped")
        info.add("threads used", f"{self.threads} (fastmlp n_threads, torch, BLAS)")
        if self.quick:
            info.note("SMOKE RUN (--quick): reduced sizes and 1 repeat; the figures and "
                      "PASS/FAIL below are not meaningful.")
        self.emit(info)

        ceiling = Table(f"GEMM ceiling: numpy {GEMM_N}x{GEMM_N} @ {GEMM_N}x{GEMM_N}, best of 3",
                        ["dtype", "GFLOP/s"])
        for dtype in DTYPES:
            self.gemm[dtype] = gemm_gflops(dtype)
            ceiling.add(dtype, fmt(self.gemm[dtype]))
        self.emit(ceiling)

    def training(self, name):
        """One training workload (W1, W2 or W3): every library, every dtype."""
        workload = self.workloads[name]
        net, repeats = workload.net, self.repeats(name)
        table = Table(f"{name} training: {workload.description}",
                      ["dtype", *self.comparison_columns("s", "test accuracy")])
        per_sample = train_flops_per_sample(workload.units)
        for dtype in workload.dtypes:
            split = workload.split(dtype)
            flops = per_sample * len(split.X_train) * net.epochs
            seconds, accuracy = {}, {}
            for lib in self.libs:
                lib.warm_up(split.X_train, split.y_train, net)
                seconds[lib.name], model = median_time(
                    partial(lib.fit, split.X_train, split.y_train, net), repeats)
                if model.n_iter_ != net.epochs:
                    table.note(f"{dtype}: {lib.name} ran {model.n_iter_} of {net.epochs} epochs")
                accuracy[lib.name] = lib.accuracy(model, split.X_test, split.y_test)
                self.models[(name, dtype, lib.name)] = model
            check = joined((accuracy[n] for n in self.names), 3)
            table.add(dtype, *self.comparison_cells(f"{name} {dtype}", seconds, flops,
                                                    dtype, check))
        split = workload.base
        table.note(f"{len(split.X_train):,} training / {len(split.X_test):,} test rows; "
                   f"layers {workload.units}; {per_sample / 1e6:.3g} MFLOP per sample per "
                   f"epoch; median of {repeats} fit(s)")
        self.libraries_note(table)
        self.emit(table)

    def predict(self):
        """W4: predict_proba of 1 row and of 10,000 rows with each library's W2 model."""
        workload = self.workloads["W2"]
        per_row = predict_flops_per_row(workload.units)
        single_calls, batch_calls = (200, 10) if self.quick else (2000, 50)
        table = Table(
            "W4 predict_proba with the W2 models (time per call, median)",
            ["dtype", "rows", *self.comparison_columns("µs", "max |Δp| fastmlp vs sklearn")],
            left=2,
        )
        for dtype in workload.dtypes:
            split = workload.split(dtype)
            models = {lib.name: self.model(workload, dtype, lib) for lib in self.libs}
            batch_rows = min(10_000, len(split.X_test))
            # 16 rows (not a target): a small batch, below the serial
            # prediction threshold on this network
            for kind, rows, calls in (("1 row", 1, single_calls),
                                      ("16 rows", 16, single_calls),
                                      ("batch", batch_rows, batch_calls)):
                X = np.ascontiguousarray(split.X_test[:rows])
                seconds = {
                    lib.name: median_call_time(partial(lib.predict_proba, models[lib.name], X),
                                               calls)
                    for lib in self.libs
                }
                fast, sk = (lib.predict_proba(models[lib.name], X) for lib in self.libs[:2])
                delta = float(np.abs(fast - sk).max())
                table.add(dtype, f"{rows:,}", *self.comparison_cells(
                    f"W4 {dtype} {kind}", seconds, per_row * rows, dtype, f"{delta:.1e}",
                    scale=1e6))
        table.note(f"median of {single_calls} calls (1 and 16 rows) / {batch_calls} calls (batch) "
                   f"after 5 untimed; {per_row / 1e6:.3g} MFLOP per row")
        table.note("fastmlp and scikit-learn trained the same network from the same seed, "
                   "so their probabilities agree to rounding in float64 (in float32 the "
                   "two trainings drift apart over the epochs)"
                   + ("; torch: model(x) under torch.no_grad() + softmax" if self.torch else ""))
        self.libraries_note(table)
        self.emit(table)

    def recipe(self):
        """W1 and W2, both dtypes: fastmlp plain vs its modern recipe vs PyTorch's recipe."""
        libs = [("fastmlp plain", self.fastmlp), ("fastmlp recipe", self.fastmlp_recipe)]
        if self.torch_recipe is not None:
            libs.append(("torch recipe", self.torch_recipe))
        labels = [label for label, _ in libs]
        columns = ["workload", "dtype"]
        for label, _ in libs:
            columns += [f"{label} (s)", "test acc."]
        columns.append("recipe/plain")
        if self.torch_recipe is not None:
            columns.append("torch/fastmlp recipe")
        table = Table(f"Recipe: {' vs '.join(labels)}, W1 and W2 training",
                      [*columns, "GFLOP/s", "% GEMM"], left=2)
        shapes = []
        for name in RECIPE_WORKLOADS:
            workload = self.workloads[name]
            net = workload.net
            per_sample = train_flops_per_sample(workload.units)
            for dtype in DTYPES:
                split = workload.split(dtype)
                flops = per_sample * len(split.X_train) * net.epochs
                seconds, accuracy = {}, {}
                for label, lib in libs:
                    lib.warm_up(split.X_train, split.y_train, net)
                    seconds[label], model = median_time(
                        partial(lib.fit, split.X_train, split.y_train, net), self.args.repeats)
                    if model.n_iter_ != net.epochs:
                        table.note(f"{name} {dtype}: {label} ran {model.n_iter_} of "
                                   f"{net.epochs} epochs")
                    accuracy[label] = lib.accuracy(model, split.X_test, split.y_test)
                key = f"recipe {name} {dtype}"
                cells = []
                for label in labels:
                    cells += [fmt(seconds[label]), f"{accuracy[label]:.3f}"]
                cost = seconds["fastmlp recipe"] / seconds["fastmlp plain"]
                self.metrics[(key, "recipe/plain")] = cost
                cells.append(f"{cost:.2f}x")
                if self.torch_recipe is not None:
                    speedup = seconds["torch recipe"] / seconds["fastmlp recipe"]
                    self.metrics[(key, "vs torch")] = speedup
                    cells.append(f"{speedup:.2f}x")
                cells += [joined(self.gflops(flops, seconds[label]) for label in labels),
                          joined((self.gemm_pct(flops, seconds[label], dtype)
                                  for label in labels), 2)]
                table.add(name, dtype, *cells)
            base = workload.base
            shapes.append(f"{name} {len(base.X_train):,} training / {len(base.X_test):,} test "
                          f"rows, layers {workload.units}, batch {net.batch_size}, "
                          f"{net.epochs} epochs, {per_sample / 1e6:.3g} MFLOP per sample per "
                          "epoch")
        recipe = ", ".join(f"{k}={v!r}" for k, v in RECIPE.items())
        table.note(f"plain: the W1/W2 sections' fastmlp fit (relu, adam); recipe: the same "
                   f"with {recipe}")
        if self.torch_recipe is not None:
            table.note(f"torch recipe: Linear + SiLU + Dropout({RECIPE['dropout']}) per hidden "
                       f"layer, AdamW(lr=1e-3, weight_decay={RECIPE['weight_decay']}; biases "
                       f"0), per-step LambdaLR (linear warm-up over {RECIPE['lr_warmup']} "
                       "epoch(s), then cosine to 0), "
                       f"clip_grad_norm_({RECIPE['clip_grad_norm']}), CrossEntropyLoss("
                       f"label_smoothing={RECIPE['label_smoothing']}); eval() to predict")
        table.note("; ".join(shapes) + f"; median of {self.args.repeats} fit(s)")
        table.note(f"cells with several values: {' / '.join(labels)}; GFLOP/s and % GEMM "
                   "count the plain fit's FLOPs for every column (dropout, SiLU, clipping, "
                   "smoothing, weight decay and the schedule are not counted)")
        table.note("recipe/plain = fastmlp recipe / fastmlp plain time (target <= "
                   f"{RECIPE_MAX_COST:.1f}x)"
                   + ("; torch/fastmlp recipe = torch recipe / fastmlp recipe time (> 1: "
                      "fastmlp faster; targets >= "
                      + ", ".join(f"{g}x on {n}" for n, g in RECIPE_WORKLOADS.items()) + ")"
                      if self.torch_recipe is not None else ""))
        self.emit(table)

    def scaling(self):
        """fastmlp on W2's network for 10k ... 160k rows: time per sample per epoch."""
        base = 1_000 if self.quick else 10_000
        sizes = [base * 2**i for i in range(5)]
        net = self.workloads["W2"].net.with_epochs(1 if self.quick else 2)
        X, y = w2_data(sizes[-1])
        units = layer_units(X.shape[1], net.hidden, 5)
        per_sample = train_flops_per_sample(units)
        lib = self.fastmlp
        lib.warm_up(X, y, net)
        table = Table(f"Scaling: fastmlp, W2's network, float64, {net.epochs} epoch(s)",
                      ["rows", "fit (s)", "µs per sample per epoch", "GFLOP/s", "% GEMM"])
        per = []
        for n in sizes:
            seconds, _ = median_time(partial(lib.fit, X[:n], y[:n], net), self.args.repeats)
            per.append(seconds / (n * net.epochs))
            flops = per_sample * n * net.epochs
            table.add(f"{n:,}", fmt(seconds), fmt(per[-1] * 1e6),
                      fmt(self.gflops(flops, seconds)), fmt(self.gemm_pct(flops, seconds,
                                                                         "float64")))
        ratio = max(per) / min(per)
        self.metrics[("scaling", "max/min")] = ratio
        table.note(f"slowest / fastest time per sample per epoch: {ratio:.3f}; "
                   f"median of {self.args.repeats} fit(s)")
        self.emit(table)

    def thread_scaling(self):
        """fastmlp on W2 and W3 with n_threads=1 and n_threads=2."""
        counts = (1, 2)
        libs = {k: fastmlp_library(k) for k in counts}
        table = Table("Threads: fastmlp n_threads=1 vs n_threads=2",
                      ["workload", "dtype", "n_threads=1 (s)", "n_threads=2 (s)", "speed-up",
                       "GFLOP/s at 2 threads"], left=2)
        for name in ("W2", "W3"):
            workload = self.workloads[name]
            net = workload.net
            for dtype in workload.dtypes:
                split = workload.split(dtype)
                seconds = {}
                for k, lib in libs.items():
                    lib.warm_up(split.X_train, split.y_train, net)
                    seconds[k], _ = median_time(
                        partial(lib.fit, split.X_train, split.y_train, net), self.repeats(name))
                speedup = seconds[1] / seconds[2]
                self.metrics[(f"threads {name} {dtype}", "speed-up")] = speedup
                flops = train_flops_per_sample(workload.units) * len(split.X_train) * net.epochs
                table.add(name, dtype, fmt(seconds[1]), fmt(seconds[2]), f"{speedup:.2f}x",
                          fmt(self.gflops(flops, seconds[2])))
        import numba

        if numba.config.NUMBA_NUM_THREADS < 2:
            table.note(f"Numba's pool has {numba.config.NUMBA_NUM_THREADS} thread: "
                       "n_threads=2 cannot use a second one")
        self.emit(table)

    def memory(self):
        """Peak resident memory of a W2 float64 fit, each library in a fresh process."""
        workload = self.workloads["W2"]
        split, net = workload.split("float64"), workload.net
        table = Table("Memory: W2 float64 fit, one fresh process per row (resident MiB)",
                      ["library", "after imports", "after warm-up", "with data", "peak",
                       "fit increase", "fit (s)"])
        runs = {  # row label -> (library, warm up first)
            "fastmlp": ("fastmlp", True),
            "sklearn": ("sklearn", True),
            "fastmlp, no warm-up": ("fastmlp", False),
        }
        tmp = Path(tempfile.mkdtemp(prefix="fastmlp-bench-"))
        try:
            data = tmp / "w2.npz"
            warm = slice(0, 4 * net.batch_size)
            np.savez(data, X=split.X_train, y=split.y_train,
                     X_warm=split.X_train[warm], y_warm=split.y_train[warm])
            results = {
                label: _child.spawn(["memory", "--library", name, "--data", str(data),
                                     *(["--warm-up"] if warm_up else []),
                                     *self._net_args(net)])
                for label, (name, warm_up) in runs.items()
            }
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for label, r in results.items():
            if "error" in r:
                table.add(label, r["error"], *[""] * 5)
                continue
            r["increase"] = r["peak_mib"] - r["data_mib"]
            table.add(label, *[fmt(r[k]) for k in ("imports_mib", "warmed_mib", "data_mib",
                                                   "peak_mib", "increase", "fit_s")])
        if "error" not in results["fastmlp"] and "error" not in results["sklearn"]:
            self.metrics[("memory", "ratio")] = (
                max(results["fastmlp"]["increase"], 0.0)
                / max(results["sklearn"]["increase"], 1e-9))
        table.note(f"training data {split.X_train.nbytes / 2**20:.1f} MiB; peak = VmHWM "
                   "(ru_maxrss off Linux: on Linux ru_maxrss counts the parent's memory "
                   "before exec); fit increase = peak - resident with data loaded")
        table.note("warm-up: one epoch on 4 batches before the data is loaded, so first-call "
                   "costs (fastmlp loading its compiled kernels) are not in the fit increase; "
                   "the no-warm-up row shows them")
        self.emit(table)

    def compile(self):
        """fastmlp's first-fit overhead in fresh processes, empty and warm Numba cache."""
        net = self.workloads["W1"].net.with_epochs(10)
        table = Table("Compile: fastmlp in a fresh process, NUMBA_CACHE_DIR=<new dir> "
                      "(cold), then the same dir again (warm)",
                      ["dtype", "cache", "import fastmlp (s)", "first fit (s)",
                       "steady fit (s)", "first fit - steady (s)",
                       "first predict - steady (s)", "first 1-row predict - steady (s)",
                       "cache index files"], left=2)
        for dtype in ("float32", "float64"):
            cache = tempfile.mkdtemp(prefix="fastmlp-numba-cache-")
            try:
                for state in ("cold", "warm"):
                    r = _child.spawn(["compile", "--dtype", dtype, *self._net_args(net)],
                                     env={"NUMBA_CACHE_DIR": cache})
                    if "error" in r:
                        table.add(dtype, state, r["error"], "", "", "", "", "", "")
                        continue
                    self.metrics[(f"compile {dtype}", state)] = r["fit_compile_s"]
                    table.add(dtype, state, fmt(r["import_s"]), fmt(r["first_fit_s"]),
                              fmt(r["steady_fit_s"]), fmt(r["fit_compile_s"]),
                              fmt(r["predict_compile_s"]), fmt(r["predict_1_compile_s"]),
                              r["cache_index_files"])
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        table.note(f"fit: W1 (digits, (100,), adam, batch 200) for {net.epochs} epochs; "
                   "steady = median of the next 3 fits (5 predicts) in the same process; "
                   "first predict: the test set (360 rows, the parallel network kernel the fit "
                   "compiled), then one row (the serial kernel)")
        self.emit(table)

    def _net_args(self, net):
        return ["--hidden", ",".join(map(str, net.hidden)), "--batch-size", str(net.batch_size),
                "--epochs", str(net.epochs), "--threads", str(self.threads)]

    def summary(self):
        """The issue's targets with PASS / FAIL."""
        table = Table("Targets", ["target", "goal", "measured", "result"])
        for label, key, op, goal, unit, optional in TARGETS:
            value = self.metrics.get(key)
            if value is None and optional:
                continue
            goal_text = f"{op} {fmt(goal)}{unit}"
            if value is None:
                table.add(label, goal_text, "—", self._why_not_run(key))
                continue
            passed = value >= goal if op == ">=" else value <= goal
            table.add(label, goal_text, f"{fmt(value)}{unit}", "PASS" if passed else "FAIL")
        if self.quick:
            table.note("SMOKE RUN (--quick): sizes reduced, PASS/FAIL not meaningful")
        self.emit(table)

    def _why_not_run(self, key):
        if "torch" in key[1] and self.torch is None:
            return "not run: --no-torch" if self.args.no_torch else "not run: no torch"
        return "not run"

    def run(self, sections):
        """Header, the selected sections in order, then the targets."""
        self.header()
        actions = {
            "W1": partial(self.training, "W1"),
            "W2": partial(self.training, "W2"),
            "W3": partial(self.training, "W3"),
            "W4": self.predict,
            "recipe": self.recipe,
            "scaling": self.scaling,
            "threads": self.thread_scaling,
            "memory": self.memory,
            "compile": self.compile,
        }
        # The host may move the virtual CPUs apart while the bench runs
        # (bench/_machine.py, core_round_trip_ns): say when it did.
        trips = Table("Core-to-core round trip before each section (host state)",
                      ["before", "ns"])
        for section in sections:
            trips.add(section, fmt_trip(core_round_trip_ns()))
            actions[section]()
        trips.add("end", fmt_trip(core_round_trip_ns()))
        trips.note("On this project's machine the round trip is 50-90 ns most of the time "
                   "and 350-750 ns when the host has moved the vCPUs apart, where two-thread "
                   "fits ran up to 1.8x slower (bench/README.md, Host state).")
        self.emit(trips)
        self.summary()


def parse_sections(text):
    """``"W1,w4,Memory"`` -> the sections in run order; raises on unknown names."""
    if not text:
        return list(SECTIONS)
    known = {s.lower(): s for s in SECTIONS}
    wanted = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s.lower() in wanted]


def parse_args(argv=None):
    """The command line; see ``python -m bench -h``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="fastmlp vs scikit-learn vs PyTorch: training, prediction, the modern "
                    "recipe, scaling, threads, memory and compile time.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: W2 on 5k rows, W3 on 10k, scaling on 1k-16k, "
                             "1 repeat")
    parser.add_argument("--only", type=parse_sections, default=list(SECTIONS),
                        metavar="SECTIONS",
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed fits per row, median reported (default 3; 1 with --quick)")
    parser.add_argument("--w3-repeats", type=int, default=1, help="timed fits per W3 row")
    parser.add_argument("--w3-float64", action="store_true", help="also run W3 in float64")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads of fastmlp (n_threads), torch and BLAS (default 2)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--markdown", action="store_true", help="print GitHub markdown tables")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.quick:
        args.w3_repeats = min(args.w3_repeats, args.repeats)
    return args


def main(argv=None):
    """Entry point of ``python -m bench``."""
    from sklearn.exceptions import ConvergenceWarning

    args = parse_args(argv)
    # tol=0 runs every epoch on purpose; the warning it triggers is expected.
    warnings.simplefilter("ignore", ConvergenceWarning)
    Bench(args).run(args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
