"""A manual clock for tests: time moves only when the test (or a scheduler's sleep) moves it."""

from __future__ import annotations

import threading
from collections.abc import Callable


class ManualClock:
    """``now_ms()`` and ``sleep_until(ms)`` like a wall clock, but sleeping jumps to the target at once.

    Listeners registered with ``on_advance`` run (on the advancing thread) after every move, e.g. to let the
    local websocket server publish the candles that closed meanwhile.
    """

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._lock = threading.Lock()
        self._listeners: list[Callable[[int], None]] = []
        self.sleeps: list[int] = []

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def set(self, ms: int) -> None:
        with self._lock:
            if ms < self._now:
                raise ValueError(f"a clock never goes back ({ms} < {self._now})")
            self._now = ms
            listeners = list(self._listeners)
        for listener in listeners:
            listener(ms)

    def advance(self, ms: int) -> None:
        self.set(self.now_ms() + ms)

    def sleep_until(self, ms: int) -> None:
        self.sleeps.append(ms)
        if ms > self.now_ms():
            self.set(ms)

    def on_advance(self, listener: Callable[[int], None]) -> None:
        with self._lock:
            self._listeners.append(listener)


class LaggingClock:
    """An exchange's view of a ManualClock when its clock runs ``lag_ms`` behind (pass it to FakeExchange)."""

    def __init__(self, clock: ManualClock, lag_ms: int) -> None:
        self.clock, self.lag_ms = clock, lag_ms

    def now_ms(self) -> int:
        return self.clock.now_ms() - self.lag_ms

    def on_advance(self, listener: Callable[[int], None]) -> None:
        self.clock.on_advance(listener)
