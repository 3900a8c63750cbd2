"""The wall clock, behind a small protocol so that schedules and feeds can run on a test's clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Now, in UTC milliseconds."""
        ...

    def sleep_until(self, ms: int) -> None:
        """Return once ``now_ms()`` has reached ``ms``."""
        ...


class SystemClock:
    """The real clock. Sleeps in short steps so that Ctrl-C interrupts a long wait at once."""

    step_s = 1.0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep_until(self, ms: int) -> None:
        while (left := ms - self.now_ms()) > 0:
            time.sleep(min(self.step_s, left / 1000))
