# Two commands: `make serve` and `make test`. Both are idempotent: they create .venv if missing,
# install the package, pull and convert the default models if missing, then serve / test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODELS ?= models
CONFIG ?= config.yml
STAMP := $(VENV)/.installed
MODEL_STAMP := $(MODELS)/mobilefacenet/1/bundle.json
SRC := src tests bench examples

.PHONY: serve test install models lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/facepipe models pull default --models $(MODELS)

serve: models
	$(BIN)/facepipe serve --config $(CONFIG) --models $(MODELS)

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy

test: models lint
	FACEPIPE_MODELS=$(MODELS) $(BIN)/pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
