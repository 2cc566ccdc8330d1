"""``python -m fastmlp demo``: what it prints."""

import re

import pytest

from fastmlp.__main__ import demo


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_demo_says_the_threads_each_library_ran_with(capsys):
    results = demo(max_iter=2, repeats=1)
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("threads:")]
    assert re.search(r"fastmlp \d+ \(Numba, \w+ layer\)", line), line
    assert re.search(r"scikit-learn's BLAS: (\w+ \d+|none found)", line), line
    assert set(results) == {"scikit-learn", "fastmlp"}
    assert "speed-up" in out
