"""Open Inference Protocol (KServe v2) tensors: JSON and the binary tensor extension, both ways."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facepipe.api import jsondoc
from facepipe.errors import InvalidInput
from facepipe.models.bundle import DTYPES, TO_DATATYPE, TensorSpec, datatype_of
from facepipe.models.servable import InferModel

HEADER = "Inference-Header-Content-Length"
MAX_RANK = 16
MAX_ELEMENTS = 1 << 31


@dataclass(slots=True)
class InferRequest:
    id: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, bool] = field(default_factory=dict)  # requested name -> binary
    binary_default: bool = False


def decode_bytes(raw: bytes, count: int, name: str) -> np.ndarray:
    """A BYTES tensor's elements from their 4-byte-length-prefixed wire form."""
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise InvalidInput(f"input {name}: truncated BYTES element length")
        (n,) = struct.unpack("<I", raw[i : i + 4])
        out.append(raw[i + 4 : i + 4 + n])
        i += 4 + n
    if len(out) != count or i != len(raw):
        raise InvalidInput(f"input {name}: {len(out)} BYTES elements, shape says {count}")
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


def element_count(name: str, shape: list[Any]) -> int:
    """Elements of ``shape``: plain non-negative integers (not booleans), at most ``MAX_RANK`` of them
    and ``MAX_ELEMENTS`` in all (Python integers: a product never wraps around)."""
    if len(shape) > MAX_RANK or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(f"input {name}: shape must be a list of up to {MAX_RANK} non-negative integers")
    count: int = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise InvalidInput(f"input {name}: shape {shape} has {count} elements; the limit is {MAX_ELEMENTS}")
    return count


def bytes_data(name: str, data: Any) -> np.ndarray:
    """A BYTES tensor's elements from JSON: strings only (nested as the shape says)."""
    flat = np.asarray(data, dtype=object).ravel() if isinstance(data, list) else None
    if flat is None or not all(isinstance(d, str) for d in flat):
        raise InvalidInput(f"input {name}: BYTES data must be a list of strings")
    arr = np.empty(len(flat), dtype=object)
    arr[:] = [d.encode("utf-8", "surrogatepass") for d in flat]
    return arr


def tensor(spec: dict[str, Any], binary: bytes | None) -> np.ndarray:
    """One input from its JSON spec (``name``, ``datatype``, ``shape``, ``data``) or binary form."""
    name, dt = spec.get("name"), spec.get("datatype")
    shape = spec.get("shape")
    if not isinstance(name, str) or not isinstance(dt, str) or not isinstance(shape, list):
        raise InvalidInput("each input needs 'name', 'datatype' and 'shape'")
    count = element_count(name, shape)
    if dt == "BYTES":
        if binary is not None:
            return decode_bytes(binary, count, name).reshape(shape)
        arr = bytes_data(name, spec.get("data", []))
    elif dt in DTYPES:
        try:
            if binary is not None:
                arr = np.frombuffer(binary, dtype=DTYPES[dt])
            else:
                arr = np.asarray(spec.get("data", []), dtype=DTYPES[dt]).ravel()
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInput(f"input {name}: data do not fit datatype {dt} ({exc})") from None
    else:
        raise InvalidInput(f"input {name}: unknown datatype {dt!r}")
    if arr.size != count:
        raise InvalidInput(f"input {name}: {arr.size} elements, shape {shape} needs {count}")
    return arr.reshape(shape)


def _object(value: Any, label: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{label} must be an object")
    return value


def binary_part(
    spec: dict[str, Any], body: bytes, header_length: int | None, offset: int
) -> tuple[bytes | None, int]:
    """An input's bytes in the binary tensor extension (None: its data are in the JSON)."""
    size = _object(spec.get("parameters"), f"input {spec.get('name')}: parameters").get("binary_data_size")
    if size is None:
        return None, offset
    if type(size) is not int or size < 0:
        raise InvalidInput(f"input {spec.get('name')}: binary_data_size must be a non-negative integer")
    if header_length is None or offset + size > len(body):
        raise InvalidInput(f"input {spec.get('name')}: binary_data_size {size} runs past the body")
    return body[offset : offset + size], offset + size


def parse_request(body: bytes, header_length: int | None) -> InferRequest:
    """A KServe v2 infer request (JSON, or JSON header + binary tensors when header_length is set)."""
    head = body if header_length is None else body[:header_length]
    if header_length is not None and not 0 <= header_length <= len(body):
        raise InvalidInput(f"{HEADER} {header_length} is outside the body of {len(body)} bytes")
    req = jsondoc.loads(head)
    if not isinstance(req, dict) or not isinstance(req.get("inputs"), list) or not req["inputs"]:
        raise InvalidInput("request needs a non-empty 'inputs' list")
    offset = header_length or 0
    inputs: dict[str, np.ndarray] = {}
    for spec in req["inputs"]:
        if not isinstance(spec, dict):
            raise InvalidInput("each input must be an object")
        binary, offset = binary_part(spec, body, header_length, offset)
        inputs[str(spec.get("name"))] = tensor(spec, binary)
    if header_length is not None and offset != len(body):
        raise InvalidInput(f"{len(body) - offset} bytes after the last binary tensor")
    binary_default = bool(_object(req.get("parameters"), "parameters").get("binary_data_output", False))
    outputs = {}
    requested = req.get("outputs") or []
    if not isinstance(requested, list):
        raise InvalidInput("'outputs' must be a list")
    for o in requested:
        if not isinstance(o, dict) or "name" not in o:
            raise InvalidInput("each requested output needs a 'name'")
        params = _object(o.get("parameters"), f"output {o['name']}: parameters")
        outputs[str(o["name"])] = bool(params.get("binary_data", binary_default))
    return InferRequest(str(req.get("id", "")), inputs, outputs, binary_default)


def tensor_bytes(arr: np.ndarray) -> tuple[str, bytes]:
    """Datatype and binary wire form of an output tensor."""
    if arr.dtype == object:
        items = (x if isinstance(x, bytes) else bytes(x) for x in arr.ravel())
        return "BYTES", b"".join(struct.pack("<I", len(v)) + v for v in items)
    return TO_DATATYPE[arr.dtype.name], np.ascontiguousarray(arr).tobytes()


def pick_outputs(model: str, requested: list[str], outputs: dict[str, np.ndarray]) -> list[str]:
    for name in requested:
        if name not in outputs:
            raise InvalidInput(f"model {model} has no output {name!r} (outputs: {sorted(outputs)})")
    return requested or list(outputs)


def build_response(
    model: str, version: str, req: InferRequest, outputs: dict[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """Body and (for binary outputs) the JSON header length."""
    specs, blobs = [], []
    for name in pick_outputs(model, list(req.outputs), outputs):
        arr = outputs[name]
        spec: dict[str, Any] = {"name": name, "shape": list(arr.shape)}
        if req.outputs.get(name, req.binary_default):
            spec["datatype"], blob = tensor_bytes(arr)
            spec["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            spec["datatype"] = "BYTES" if arr.dtype == object else TO_DATATYPE[arr.dtype.name]
            bytes_out = spec["datatype"] == "BYTES"
            spec["data"] = [b.decode("latin-1") for b in arr.ravel()] if bytes_out else arr.ravel().tolist()
        specs.append(spec)
    head: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": specs}
    if req.id:
        head["id"] = req.id
    header = json.dumps(head).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def metadata(model: InferModel, versions: list[str]) -> dict[str, Any]:
    def spec(t: TensorSpec) -> dict[str, Any]:
        return {"name": t.name, "datatype": datatype_of(t.dtype), "shape": t.shape}

    return {
        "name": model.name,
        "versions": versions,
        "platform": model.platform,
        "inputs": [spec(t) for t in model.inputs],
        "outputs": [spec(t) for t in model.outputs],
        "parameters": dict(model.parameters),
    }
