"""The /v1 edge reads bodies under one limit (declared or streamed, JSON, raw or multipart) and answers
bad input as 4xx, never 500 (issue 22 items 1 and 7)."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.edges.conftest import ADMIN, LIMIT, App


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length), counting how much the server pulled."""
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"x" * n


def multipart_chunks(total: int) -> Iterator[bytes]:
    yield b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\n\r\n'
    yield from chunks(total)
    yield b"\r\n--b--\r\n"


def test_a_chunked_multipart_body_over_the_limit_is_refused(api: App) -> None:
    headers = {"content-type": "multipart/form-data; boundary=b"}
    r = api.client.post("/echo", content=multipart_chunks(100 * 1024 * 1024), headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    r = api.client.post("/v1/detect", content=multipart_chunks(10 * LIMIT), headers=headers)
    assert r.status_code == 413


def test_a_multipart_body_under_the_limit_is_read(api: App) -> None:
    files = [("a", ("a.jpg", b"1234", "image/jpeg")), ("b", ("b.jpg", b"56", "image/jpeg"))]
    r = api.client.post("/echo", files=files, data={"k": "3"})
    assert r.status_code == 200 and r.json()["images"] == [4, 2] and r.json()["params"] == {"k": "3"}


def test_chunked_raw_and_json_bodies_over_the_limit_are_refused(api: App) -> None:
    for kind in ("image/jpeg", "application/json"):
        r = api.client.post("/echo", content=chunks(2 * LIMIT), headers={"content-type": kind})
        assert r.status_code == 413, (kind, r.text)


def test_too_many_multipart_files_or_fields_is_400(api: App) -> None:
    files = [(f"f{i}", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(65)]
    r = api.client.post("/echo", files=files)
    assert r.status_code == 400 and "multipart" in r.json()["error"]["message"], r.text
    r = api.client.post("/echo", data={f"k{i}": "v" for i in range(65)}, files=[("f", ("a", b"x"))])
    assert r.status_code == 400, r.text


def test_json_nested_past_the_limit_is_400_on_every_json_route(api: App) -> None:
    deep = b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}"
    headers = {"content-type": "application/json", "x-api-key": ADMIN}
    for path in ("/echo", "/v1/verify", "/v1/subjects", "/v1/identify/embeddings"):
        r = api.client.post(path, content=deep, headers=headers)
        assert r.status_code in (200, 400), (path, r.status_code, r.text)
        assert "nested 1001 deep" in r.text, (path, r.text)
    # the seed route (tests/edges/test_seed.py), KServe infer and the control routes (test_kserve.py) parse
    # with the same function


def test_large_json_is_parsed_and_answered(api: App) -> None:
    emb = [[0.5] * 512 for _ in range(40)]  # ~ 200 KB: parsed in a worker thread
    r = api.client.post("/echo", json={"embeddings": emb, "x": 1})
    assert r.status_code == 200 and r.json()["embeddings"] == emb and r.json()["params"]["x"] == 1


def test_unknown_names_share_one_metric_label(api: App) -> None:
    """Item 2: labels from a closed set; a made-up service or model name counts as ``other``."""
    for i in range(20):
        api.client.post(f"/made-up-{i}/prediction", json={"key": [], "value": []})
        api.client.post(f"/v2/models/made-up-{i}/infer", json={"inputs": []})
    text = api.state.metrics.render().decode()
    assert "made-up" not in text
    assert 'endpoint="seed:other"' in text and 'endpoint="v2:other"' in text


parts = st.lists(
    st.tuples(
        st.text(st.characters(codec="ascii", exclude_characters='"\r\n'), max_size=8),
        st.none() | st.text(st.characters(codec="ascii", exclude_characters='"\r\n'), max_size=8),
        st.binary(max_size=40),
    ),
    max_size=5,
)


def multipart(items: list[tuple[str, str | None, bytes]], boundary: bytes, junk: bytes) -> bytes:
    out = [junk]
    for name, filename, data in items:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out.append(
            b"--" + boundary + b"\r\nContent-Disposition: " + disp.encode() + b"\r\n\r\n" + data + b"\r\n"
        )
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=parts,
    boundary=st.sampled_from([b"b", b"xyz-123", b""]),
    junk=st.binary(max_size=20),
    cut=st.integers(0, 400),
)
def test_any_multipart_body_is_read_or_refused_as_input(
    api: App, items: list[tuple[str, str | None, bytes]], boundary: bytes, junk: bytes, cut: int
) -> None:
    """Property test of the multipart parser behind /v1: never a 5xx, whatever the parts."""
    body = multipart(items, boundary, junk)
    body = body[: len(body) - cut % (len(body) + 1)]
    headers = {"content-type": "multipart/form-data; boundary=" + boundary.decode()}
    r = api.client.post("/echo", content=body, headers=headers)
    assert r.status_code in (200, 400), (r.status_code, r.text)
