"""The load generator reads responses by Content-Length and by chunks."""

from __future__ import annotations

import asyncio

from facepipe.loadgen import _read_response


def test_reads_sized_and_chunked_responses_back_to_back() -> None:
    async def run() -> list[tuple[int, bytes]]:
        r = asyncio.StreamReader()
        r.feed_data(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nno"
        )
        return [await _read_response(r), await _read_response(r)]

    assert asyncio.run(run()) == [(200, b"hello world"), (503, b"no")]
