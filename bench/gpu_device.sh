#!/bin/bash
# On the GPU machine, in a copy of this tree that holds whl/ (cp312 manylinux wheels fetched here with
# `pip download`: pydantic, pydantic_core, annotated-types, typing-inspection, starlette, uvicorn,
# httptools, orjson, python-multipart, typing_extensions, psycopg, psycopg-binary, protobuf, grpcio),
# data/lfw-dev (a subset, for the tests) and .gpu/ (`python bench/gpu_h100.py prepare`), with the
# models at ../../models: installs the wheels the image lacks (protobuf and grpcio only where the
# image's are older than the stubs need), then runs the photo bench; output also in $OUT/log.txt.
cd "$(dirname "$0")/.." || exit 1  # the tree this script came with
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv
wheels=$(python3 - <<'PY'
import glob, importlib.metadata as m, sys
def ver(n):
    try: return tuple(int(x) for x in m.version(n).split(".")[:2])
    except Exception: return (0, 0)
keep = {"protobuf": ver("protobuf") < (7, 35), "grpcio": ver("grpcio") < (1, 85)}
print({n: m.version(n) for n in ("protobuf", "grpcio", "torchvision", "torch", "typing_extensions", "anyio") if ver(n) != (0, 0)}, file=sys.stderr)
print(" ".join(w for w in sorted(glob.glob("whl/*.whl")) if keep.get(w.split("/")[1].split("-")[0], True)))
PY
)
echo "installing: $wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels || exit 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD FACEPIPE_TEST_DATA=$PWD/data FACEPIPE_MODELS=$(cd ../../models && pwd) PYTHONUNBUFFERED=1
python3 bench/gpu_photos.py run --models $FACEPIPE_MODELS --out $OUT "$@" 2>&1 | tee $OUT/log.txt
