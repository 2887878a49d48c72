"""JSON limits before parsing: the depth measured on raw bytes agrees with the parsed depth for any
document (brackets inside strings and escaped quotes ignored); too deep is InvalidInput."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facepipe.api.jsondoc import depth, loads, metadata_of, raw_depth
from facepipe.errors import InvalidInput

tricky_text = st.text(st.sampled_from('[]{}"\\ab,:'), max_size=8)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(value=values, indent=st.none() | st.integers(0, 2))
def test_raw_depth_is_the_parsed_depth(value: object, indent: int | None) -> None:
    text = json.dumps(value, indent=indent).encode()
    assert raw_depth(text) == depth(value)
    assert loads(text, max_depth=64) == value


def test_deep_documents_are_refused_before_parsing() -> None:
    assert raw_depth(b'{"a": "[[[[\\"[[", "b": [[1]]}') == 3
    with pytest.raises(InvalidInput, match="nested 33 deep; the limit is 32"):
        loads(b"[" * 33 + b"]" * 33)
    with pytest.raises(InvalidInput, match="not valid JSON"):
        loads(b'{"a": NaN}')
    loads(b"[" * 32 + b"]" * 32)


def test_metadata_limits() -> None:
    assert metadata_of({}) is None and metadata_of({"metadata": {"a": [1, {"b": 2}]}}) == {"a": [1, {"b": 2}]}
    with pytest.raises(InvalidInput, match="expected a JSON object"):
        metadata_of({"metadata": [1]})
    with pytest.raises(InvalidInput, match="cannot be stored as JSON"):
        metadata_of({"metadata": {"n": 2**70}})
