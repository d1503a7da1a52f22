# The two commands of the README: `make demo` and `make test`. Each creates .venv when missing
# and installs once (a stamp file remembers; it is redone only when pyproject.toml or the
# constraints change). torch is pinned to 2.13.0: pip takes the CPU build lying on this machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade "pip>=24" setuptools wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python examples/fraud/main.py

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest -n auto -q --cov --cov-report=term

test: lint typecheck unit

bench: install
	$(BIN)/python benchmarks/registry.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
