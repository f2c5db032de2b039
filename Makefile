# `make demo` and `make test` each build .venv from nothing when it is missing; `make demo`
# installs only what the demo needs, `make test` the whole test environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: demo test lint typecheck pytest bench clean browser docs wheel-check

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml requirements/test.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements/test.txt -e '.[torch,jax,stats,diagnose]'
	touch $(STAMP)

$(DEMO_STAMP): pyproject.toml requirements/demo.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements/demo.txt -e '.[demo]'
	touch $(DEMO_STAMP)

$(DOCS_STAMP): requirements/docs.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements/docs.txt
	touch $(DOCS_STAMP)

# One thread per BLAS/OpenMP pool: the demo's models are tiny, and on a busy machine
# more threads only thrash (see regloss.experiment).
demo: $(DEMO_STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/regloss demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/regloss

# The HTML report is tested in real headless Chromium (Debian's package; needs root/apt).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Worker processes (pytest-xdist): one per core, at most 4 (each imports torch and JAX).
pytest: $(STAMP) browser
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q -n auto --maxprocesses 4

test: lint typecheck pytest

# The documentation site, warnings as errors; every code example in docs/ runs first.
docs: $(DOCS_STAMP)
	$(BIN)/python scripts/run_doc_examples.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The wheel in fresh environments, bare and with each extra alone (scripts/check_wheel.py).
wheel-check: $(STAMP)
	$(BIN)/python scripts/check_wheel.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_losses.py
	$(BIN)/python benchmarks/bench_numpy.py

clean:
	rm -rf $(VENV) site docs/generated
