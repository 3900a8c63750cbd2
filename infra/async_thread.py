"""A private asyncio event loop on a daemon thread, for driving async clients (asyncpg, aio-pika) from sync code.

The graph is synchronous and may compute for a long time between I/O calls (an LLM reasoner takes seconds).
An ``asyncio.run`` per call would leave no loop running in between, so nothing would answer AMQP heartbeats,
collect publisher confirms or receive deliveries. A loop that runs for the life of the adapter does all of
that in the background while the main thread works; the main thread hands it coroutines and waits for them
with a bound, so a lost connection can never block the caller forever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class AsyncThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for it; TimeoutError (after cancelling it) past ``timeout`` seconds."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:.0f} s") from None

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
