# memzoo: `make demo` and `make test` each set up their own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memzoo-installed
PLUGINS := $(wildcard plugins/memzoo-*)
TEST_PLUGINS := tests/resources/memzoo-toyplugin
PIP := $(BIN)/python -m pip --disable-pip-version-check
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: all install lint test test-fast demo clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever a distribution's metadata or the development pins change.
$(STAMP): $(BIN)/python pyproject.toml requirements-dev.txt $(wildcard plugins/*/pyproject.toml) $(TEST_PLUGINS)/pyproject.toml
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q -e . $(foreach p,$(PLUGINS) $(TEST_PLUGINS),-e $(p))
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow" -x -q

demo: install
	$(BIN)/memzoo plugins
	$(BIN)/python -m memzoo.demo

clean:
	rm -rf $(VENV) memzoo-runs .pytest_cache .hypothesis .ruff_cache
