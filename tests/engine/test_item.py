import asyncio
import threading
import time

import pytest

from facepipe.engine.item import Item, resolve_all


def test_resolve_all_sets_values_and_errors_on_each_items_own_loop() -> None:
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        here = [Item(i, loop.create_future(), loop, time.monotonic() + 5) for i in range(3)]
        there = Item("x", other.create_future(), other, time.monotonic() + 5)
        here[2].future.cancel()  # a request that gave up: resolving it must not raise
        resolve_all([(here[0], "a"), (here[1], ValueError("bad")), (here[2], "late"), (there, "b")])
        assert await here[0].future == "a"
        with pytest.raises(ValueError, match="bad"):
            await here[1].future
        assert await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_wait(there), other)) == "b"

    try:
        asyncio.run(main())
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)


async def _wait(item: Item) -> object:
    return await item.future
