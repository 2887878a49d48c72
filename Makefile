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
TORCH ?= torch==2.13.0

.PHONY: serve test install models lint clean protos

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[server,plots,dev,paddle]'
	# paddle2onnx 2.1.0 pins onnx<=1.17 for a code path facepipe does not use (pyproject: paddle extra)
	$(BIN)/python -m pip install -q --no-deps 'paddle2onnx==2.1.0'
	# PyTorch's CPU build (a file on disk on this machine class): the torch runtime's tests run on CPU
	$(BIN)/python -m pip install -q $(TORCH)
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

test: models lint
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
