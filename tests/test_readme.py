"""Every ```python block of README.md runs.

The README is split at its ``## `` headings (the text before the first one
is the section "intro"). One test per section runs that section's blocks in
order in one fresh namespace, so a later block may use names an earlier
block of the same section defined. A new section, or a new block, is picked
up automatically. A block containing ``# readme: skip`` is not run (for
snippets that truly cannot run). Blocks run in a temporary directory (they
may write files) with warnings shown, not raised. An example that needs an
optional package which is not installed (dask, skops, skl2onnx, ...) is
skipped, not failed; ``make test`` installs them all.
"""

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP_MARK = "# readme: skip"
OPTIONAL = {"dask", "distributed", "dask_ml", "skops", "skl2onnx", "onnx", "onnxruntime",
            "cloudpickle", "pandas", "matplotlib", "tqdm"}

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def readme_sections(text):
    """[(heading, [(line number, code), ...]), ...] in README order."""
    sections, heading, start = [], "intro", 0
    headings = [(m.start(), m.group(1).strip()) for m in re.finditer(r"^## (.+)$", text, re.M)]
    bounds = [(0, "intro")] + headings + [(len(text), None)]
    for (begin, name), (end, _) in zip(bounds[:-1], bounds[1:]):
        body = text[begin:end]
        blocks = []
        for m in _FENCE.finditer(body):
            line = text.count("\n", 0, begin + m.start(1)) + 1
            blocks.append((line, m.group(1)))
        if blocks:
            sections.append((name, blocks))
    return sections


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "section"


SECTIONS = readme_sections(README.read_text(encoding="utf-8"))


def test_readme_has_python_examples():
    assert sum(len(blocks) for _, blocks in SECTIONS) >= 6


@pytest.mark.parametrize("name,blocks", SECTIONS, ids=[_slug(n) for n, _ in SECTIONS])
def test_readme_section_runs(name, blocks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # functions defined by an example get this module name; cloudpickle
    # (joblib, dask) then ships them by value to worker processes
    namespace = {"__name__": "__readme__"}
    ran = 0
    for line, code in blocks:
        if SKIP_MARK in code:
            continue
        compiled = compile(code, f"{README}:{line}", "exec")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                exec(compiled, namespace)
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.split(".")[0] in OPTIONAL:
                    pytest.skip(f"README section {name!r} needs {exc.name}")
                raise
        ran += 1
    if not ran:
        pytest.skip(f"every block of {name!r} is marked {SKIP_MARK!r}")
