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

.PHONY: serve test install models lint clean protos ci-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/facepipe models pull default --models $(MODELS)
	$(BIN)/facepipe models pull blazeface --models $(MODELS)

serve: models
	$(BIN)/facepipe serve --config $(CONFIG) --models $(MODELS)

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy

# system packages for the tests (Debian's chromium for the web UI tests); idempotent
ci-deps:
	scripts/ci-deps.sh

test: models lint ci-deps
	FACEPIPE_MODELS=$(MODELS) $(BIN)/pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Regenerate the gRPC stubs (committed). Private descriptor pools: facepipe's copies of the seed and
# KServe protos must coexist in one process with other clients of the same protocols (tritonclient).
protos: install
	$(BIN)/python -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src \
		src/facepipe/protos/pipeline_service.proto src/facepipe/protos/grpc_predict_v2.proto \
		src/facepipe/protos/face_service.proto
	sed -i 's/_descriptor_pool.Default()/_descriptor_pool.DescriptorPool()/' src/facepipe/protos/*_pb2.py
