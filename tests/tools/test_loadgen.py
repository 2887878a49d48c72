"""The load generator reads responses by Content-Length and by chunks, and never pauses to collect."""

from __future__ import annotations

import asyncio
import gc

from facepipe.tools import loadgen
from facepipe.tools.loadgen import _read_response


def test_reads_sized_and_chunked_responses_back_to_back() -> None:
    async def run() -> list[tuple[int, bytes]]:
        r = asyncio.StreamReader()
        r.feed_data(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nno"
        )
        return [await _read_response(r), await _read_response(r)]

    assert asyncio.run(run()) == [(200, b"hello world"), (503, b"no")]


def _one_shot_server(served: list[int]) -> str:
    """A loopback server that answers one request per connection (as one whose keep-alive timed
    out) for 4 s, counting requests in ``served``; returns its URL."""
    import socket
    import threading

    ready = threading.Event()
    port: list[int] = []

    def serve() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            served.append(1)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0, family=socket.AF_INET)
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await asyncio.sleep(4)
            server.close()

        asyncio.run(main())

    threading.Thread(target=serve, daemon=True).start()
    assert ready.wait(5)
    return f"http://127.0.0.1:{port[0]}/x"


def test_open_loop_resends_on_a_keep_alive_connection_the_server_closed() -> None:
    from facepipe.tools.loadgen import encode_post, open_loop

    url = _one_shot_server([])
    level = open_loop(url, [encode_post(url, b"{}")], rate=20, seconds=1.5)
    assert level.errors == {} and level.requests >= 10


def test_open_loop_sends_but_does_not_count_the_warmup() -> None:
    from facepipe.tools.loadgen import encode_post, open_loop

    served: list[int] = []
    url = _one_shot_server(served)
    level = open_loop(url, [encode_post(url, b"{}")], rate=40, seconds=1.0, warmup_s=1.0)
    assert 20 <= level.requests <= 65 and len(served) >= level.requests + 15
    assert 20 <= level.qps <= 65  # the rate over the counted second, not over both


def _collector_state(_job: int) -> tuple[list[float], dict[str, int]]:
    return [], {"gc enabled": int(gc.isenabled())}


def test_client_processes_run_without_the_cyclic_collector() -> None:
    for jobs in ([0], [0, 1]):  # in this process, and in forked client processes
        results = loadgen._run_jobs(_collector_state, jobs)
        assert [errors["gc enabled"] for _, errors in results] == [0] * len(jobs)
    assert gc.isenabled()  # given back to the caller
