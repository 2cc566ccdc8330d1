"""docs/ARCHITECTURE.md against the code: every module, function, code
and bundle field it names exists where it says, and the rules it states
about the code hold (imports go down; at most 10 parameters a function;
no module over 900 lines)."""

import ast
import importlib
import pathlib
import re

import pytest

import fastmlp
from fastmlp import _bundles

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
PACKAGE = ROOT / "fastmlp"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
BUNDLES = (_bundles.Shape, _bundles.Params, _bundles.Batch, _bundles.Work)
# words the page puts in backticks that are not names of the code
PROSE = {"theta", "W", "b", "z", "a", "d", "n", "out", "y", "fit", "partial_fit",
         "warm_up", "gemm", "activation", "name_forward", "name_backward", "part"}


def _module(name):
    return importlib.import_module(f"fastmlp.{name}")


def _tokens():
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_./]*)`", DOC))


def _defined_anywhere(name):
    return any(hasattr(_module(m), name) for m in MODULES)


def test_every_module_of_the_package_is_on_the_map():
    named = {t[:-3] for t in _tokens() if t.endswith(".py") and "/" not in t}
    assert named == set(MODULES)


@pytest.mark.parametrize("token", sorted(_tokens()))
def test_every_name_exists(token):
    if token.endswith(".py"):
        assert (PACKAGE / token).exists() or (ROOT / token).exists()
        return
    fields = {f for b in BUNDLES for f in b._fields}
    if token in fields or token in PROSE or token.startswith(("tests/", "docs/")):
        return
    if token.upper() == token and "_" in token and token.startswith("FASTMLP_"):
        assert token.encode() in b"".join(p.read_bytes() for p in PACKAGE.glob("*.py"))
        return
    head, _, rest = token.partition(".")
    if rest and head in MODULES:
        obj = _module(head)
        for part in rest.split("."):
            obj = getattr(obj, part)
        return
    if rest:
        # Class.method
        owner = next(getattr(_module(m), head) for m in MODULES if hasattr(_module(m), head))
        assert hasattr(owner, rest)
        return
    if token in MODULES or token in fastmlp.MLPClassifier().get_params():
        return
    if hasattr(fastmlp.MLPClassifier, token):
        return
    if token.endswith("_") and f"{token} :" in fastmlp.MLPClassifier.__doc__:
        return  # a documented fitted attribute
    assert _defined_anywhere(token), token


def test_bundle_fields_are_all_described():
    for bundle in BUNDLES:
        assert f"`{bundle.__name__}`" in DOC
        for field in bundle._fields:
            assert f"`{field}`" in DOC, (bundle.__name__, field)


def _functions():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.name, node


# signatures that mirror an outside one: BLAS ?gemm, scikit-learn's
# constructors and its private L-BFGS objective
_MIRRORS = {"_gemm_blas", "_gemm_numpy", "_mm", "__init__", "_loss_grad_lbfgs"}


def test_no_function_takes_more_than_ten_parameters():
    long = []
    for name, node in _functions():
        a = node.args
        count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
        if a.args and a.args[0].arg in ("self", "cls"):
            count -= 1
        if count > 10 and not (node.name in _MIRRORS and (node.name != "__init__" or name
                                                          == "_estimators.py")):
            long.append(f"{name}:{node.lineno} {node.name} ({count})")
    assert not long


def test_no_module_over_900_lines():
    assert {p.name: n for p in PACKAGE.glob("*.py")
            if (n := len(p.read_text().splitlines())) > 900} == {}


# The layers of the map, top to bottom; a module imports only from its own
# layer or those below.
_LAYERS = [
    {"__main__", "_warmup", "_onnx"},
    {"_estimators"},
    {"_fit", "_interop", "_predict", "_docstrings", "plotting"},
    {"_validation", "_monitor", "_threads"},
    {"_engine"},
    {"_kernels"},
    {"_linalg"},
    {"_activations", "_dropout", "_optim"},
    {"_bundles", "_layout"},
    {"_codes", "_jit", "_blas"},
]


def _level(module):
    return next(i for i, layer in enumerate(_LAYERS) if module in layer)


def test_imports_go_down():
    assert set(MODULES) == set().union(*_LAYERS)
    up = []
    for path in PACKAGE.glob("*.py"):
        if path.stem == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module] if node.module else [a.name for a in node.names]
                for target in targets:
                    if _level(target) < _level(path.stem):
                        up.append(f"{path.stem} imports {target}")
    assert not up


def test_the_engine_layer_does_not_import_sklearn():
    engine = set().union(*_LAYERS[4:])
    for name in engine:
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("sklearn") for a in node.names), name
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("sklearn"), name
