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

.PHONY: serve test install models lint clean protos swagger ci-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[server,plots,dev,paddle,ray]'
	# paddle2onnx 2.1.0 pins onnx<=1.17 for a code path facepipe does not use (pyproject: paddle extra)
	$(BIN)/python -m pip install -q --no-deps 'paddle2onnx==2.1.0'
	# PyTorch's CPU build (a file on disk on this machine class): the torch runtime's tests run on CPU
	$(BIN)/python -m pip install -q $(TORCH)
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/facepipe models pull default --models $(MODELS)
	$(BIN)/facepipe models pull blazeface --models $(MODELS)
	$(BIN)/facepipe models pull blazeface-full --models $(MODELS)

serve: models
	$(BIN)/facepipe serve --config $(CONFIG) --models $(MODELS)

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy

# system packages for the tests (Debian's chromium for the browser tests); idempotent
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

# Re-vendor Swagger UI (committed under src/facepipe/edges/static/swagger/, served at /docs): the pinned
# npm tarball, its sha256 checked, the files /docs serves copied out unchanged, VERSION rewritten.
SWAGGER_VERSION := 5.35.0
SWAGGER_SHA256 := 1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6
SWAGGER_DIR := src/facepipe/edges/static/swagger
SWAGGER_FILES := LICENSE NOTICE swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css
swagger:
	rm -rf .swagger && mkdir .swagger
	cd .swagger && npm pack -q swagger-ui-dist@$(SWAGGER_VERSION) >/dev/null
	echo "$(SWAGGER_SHA256)  .swagger/swagger-ui-dist-$(SWAGGER_VERSION).tgz" | sha256sum -c -
	tar xzf .swagger/swagger-ui-dist-$(SWAGGER_VERSION).tgz -C .swagger
	cd .swagger/package && cp $(SWAGGER_FILES) $(CURDIR)/$(SWAGGER_DIR)/
	{ echo "swagger-ui-dist $(SWAGGER_VERSION) (npm), files copied unchanged from the package tarball"; \
	  echo "tarball sha256 $(SWAGGER_SHA256)"; \
	  cd $(SWAGGER_DIR) && sha256sum $(SWAGGER_FILES); } > $(SWAGGER_DIR)/VERSION.new
	mv $(SWAGGER_DIR)/VERSION.new $(SWAGGER_DIR)/VERSION
	rm -rf .swagger
