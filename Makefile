# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv when it is missing and installs the package into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamp files so a second `make test` does not reinstall; a change of
# pyproject.toml reinstalls.
$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[tbb]"
	touch $@

$(VENV)/.installed-test: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m fastmlp demo

test: $(VENV)/.installed-test
	$(PY) -m pytest

# Benchmarks side by side with scikit-learn (and PyTorch when installed);
# see bench/README.md. Run on an idle machine.
bench: $(VENV)/.installed
	$(PY) -m bench --markdown

clean:
	rm -rf $(VENV) build *.egg-info
