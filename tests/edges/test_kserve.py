"""KServe v2 request parsing: bad shapes, sizes and data are 400s that say what is wrong (issue 22
items 7 and 8), and a property test: any bytes in, a request or InvalidInput out."""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facepipe.edges.grpc import request_inputs
from facepipe.edges.kserve import parse_request
from facepipe.errors import InvalidInput
from facepipe.protos import grpc_predict_v2_pb2 as pb

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def req(**spec: Any) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], **spec}]}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (req(shape=[4294967296, 4294967296], data=[]), "the limit is"),
        (req(shape=[True, 2], data=[1, 2]), "non-negative integers"),
        (req(shape=[1] * 17, data=[1]), "up to 16"),
        (req(data=[1, 2], parameters={"binary_data_size": "abc"}), "binary_data_size"),
        (req(data=[1, 2], parameters={"binary_data_size": [1]}), "binary_data_size"),
        (req(data=[1, 2], parameters=[1]), "parameters"),
        (req(datatype="BYTES", data=["a", 7]), "BYTES data must be a list of strings"),
        (req(datatype="BYTES", data="ab"), "BYTES data must be a list of strings"),
        (req(data=[[1], [2, 3]]), "data do not fit"),
        (req(data=[1e39, 1]), None),  # float32 overflow is inf, not an error: the model sees it
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "parameters": 3}',
            "parameters",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": 7}',
            "outputs",
        ),
        (b"[" * 100 + b"]" * 100, "nested 100 deep"),
    ],
)
def test_bad_json_requests_are_invalid_input(body: bytes, message: str | None) -> None:
    if message is None:
        parse_request(body, None)
        return
    with pytest.raises(InvalidInput, match=message):
        parse_request(body, None)


def binary_request(extra: bytes = b"") -> tuple[bytes, int]:
    head = req(datatype="FP32", shape=[2], parameters={"binary_data_size": 8})
    return head + np.array([1, 2], np.float32).tobytes() + extra, len(head)


def test_binary_tensors_must_fill_the_body_exactly() -> None:
    body, n = binary_request()
    assert parse_request(body, n).inputs["x"].tolist() == [1.0, 2.0]
    body, n = binary_request(b"trailing")
    with pytest.raises(InvalidInput, match="8 bytes after the last binary tensor"):
        parse_request(body, n)


def test_grpc_raw_contents_must_match_the_inputs() -> None:
    request = pb.ModelInferRequest(model_name="m")
    t = request.inputs.add(name="x", datatype="FP32")
    t.shape.extend([1])
    request.raw_input_contents.extend([np.float32(1).tobytes(), b"extra"])
    with pytest.raises(InvalidInput, match="2 raw_input_contents for 1 inputs"):
        request_inputs(request)


json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
datatypes = st.sampled_from(["FP32", "INT64", "UINT8", "BYTES", "BOOL", "FP16", "XX"])
shapes = st.lists(st.integers(-2, 2**40) | st.booleans() | st.text(max_size=2), max_size=5) | json_value
specs = st.fixed_dictionaries(
    {"name": st.text(max_size=4) | json_value, "datatype": datatypes, "shape": shapes},
    optional={
        "data": json_value,
        "parameters": st.dictionaries(st.just("binary_data_size"), json_value) | json_value,
    },
)
documents = st.fixed_dictionaries(
    {"inputs": st.lists(specs, max_size=3) | json_value},
    optional={"outputs": json_value, "parameters": json_value, "id": json_value},
)


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


@FUZZ
@given(doc=documents, tail=st.binary(max_size=64), header=st.none() | st.integers(-5, 200))
def test_any_request_parses_or_is_invalid_input(doc: Any, tail: bytes, header: int | None) -> None:
    body = _dump(doc)
    body, n = (body, None) if header is None else (body + tail, min(header, len(body) + len(tail)))
    with contextlib.suppress(InvalidInput):
        parse_request(body, n)


@FUZZ
@given(body=st.binary(max_size=300), header=st.none() | st.integers(0, 300))
def test_any_bytes_parse_or_are_invalid_input(body: bytes, header: int | None) -> None:
    with contextlib.suppress(InvalidInput):
        parse_request(body, header)


def test_bytes_elements_in_binary_form() -> None:
    blob = b"".join(struct.pack("<I", len(v)) + v for v in (b"ab", b""))
    head = req(datatype="BYTES", shape=[2], parameters={"binary_data_size": len(blob)})
    assert parse_request(head + blob, len(head)).inputs["x"].tolist() == [b"ab", b""]
