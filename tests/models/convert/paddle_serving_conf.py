"""The serving conf files ``paddle_serving_client.convert`` writes (``GeneralModelConfig``), text and
binary (``*.stream.prototxt``), for one image feed and one embedding fetch. No Paddle needed."""

from __future__ import annotations


def serving_conf(feed: tuple[str, str], fetch: tuple[str, str], fetch_dim: int) -> str:
    """The text ``GeneralModelConfig`` Paddle Serving writes (same for server and client)."""
    return (
        f'feed_var {{\n  name: "{feed[0]}"\n  alias_name: "{feed[1]}"\n  is_lod_tensor: false\n'
        "  feed_type: 1\n  shape: 3\n  shape: 112\n  shape: 112\n}\n"
        f'fetch_var {{\n  name: "{fetch[0]}"\n  alias_name: "{fetch[1]}"\n  is_lod_tensor: false\n'
        f"  fetch_type: 1\n  shape: {fetch_dim}\n}}\n"
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _var(name: str, alias: str, kind: int, shape: list[int]) -> bytes:
    """A FeedVar / FetchVar (same fields): name=1, alias_name=2, is_lod_tensor=3, type=4, shape=5."""
    body = b"".join(
        b"%c" % tag + _varint(len(v)) + v for tag, v in ((0x0A, name.encode()), (0x12, alias.encode()))
    )
    body += b"\x18\x00\x20" + _varint(kind) + b"".join(b"\x28" + _varint(d) for d in shape)
    return body


def serving_conf_stream(feed: tuple[str, str], fetch: tuple[str, str], fetch_dim: int) -> bytes:
    """The binary ``GeneralModelConfig`` (``*.stream.prototxt``): feed_var=1, fetch_var=2."""
    f, g = _var(*feed, 1, [3, 112, 112]), _var(*fetch, 1, [fetch_dim])
    return b"\x0a" + _varint(len(f)) + f + b"\x12" + _varint(len(g)) + g
