"""The candle-close schedule of live sessions: at each close, one snapshot (or the reason there is none) per symbol.

At start the last closed candle is due at once; then the schedule sleeps until ``settle_delay`` after the
next close (exchanges finish a candle a moment after its close). After downtime (a slow fetch, a laptop
asleep) the closes missed meanwhile are caught up, oldest first, at most ``max_catch_up`` of them.

A symbol whose snapshot cannot be built does not stop the schedule: it yields a ``SnapshotUnavailable``
with the reason (``invalid`` for data that failed validation, ``error`` for a fetch that failed), which
the session journals as that key's decision.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tools.candle_clock import due_candles, next_close
from tools.clock import Clock
from tools.errors import DataError
from tools.feed import Feed
from tools.market import Snapshot, SnapshotUnavailable


class CandleSchedule:
    def __init__(
        self,
        feed: Feed,
        symbols: Sequence[str],
        timeframe: str,
        clock: Clock,
        settle_delay_ms: int = 2000,
        max_catch_up: int = 3,
        iterations: int | None = None,
    ) -> None:
        if iterations is not None and iterations < 1:
            raise ValueError("iterations must be at least 1")
        self.feed = feed
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.clock = clock
        self.settle_delay_ms = settle_delay_ms
        self.max_catch_up = max_catch_up
        self.iterations = iterations
        self.closes = 0
        self.watermark: int | None = None

    def __iter__(self) -> Iterator[Snapshot | SnapshotUnavailable]:
        while self.iterations is None or self.closes < self.iterations:
            settled = self.clock.now_ms() - self.settle_delay_ms
            due = due_candles(self.watermark, settled, self.timeframe, self.max_catch_up)
            if not due:
                self.clock.sleep_until(next_close(settled, self.timeframe) + self.settle_delay_ms)
                continue
            for t in due:
                if self.iterations is not None and self.closes >= self.iterations:
                    return
                for symbol in self.symbols:
                    yield self.snapshot(symbol, t)
                self.watermark = t
                self.closes += 1

    def snapshot(self, symbol: str, t: int) -> Snapshot | SnapshotUnavailable:
        try:
            return self.feed.snapshot(symbol, self.timeframe, t)
        except DataError as exc:
            return self._unavailable(symbol, t, "invalid", str(exc))
        except Exception as exc:  # network down, exchange errors, a bug in a parser: journal it and go on
            return self._unavailable(symbol, t, "error", f"{type(exc).__name__}: {exc}")

    def _unavailable(self, symbol: str, t: int, outcome: str, reason: str) -> SnapshotUnavailable:
        return SnapshotUnavailable(
            symbol=symbol,
            timeframe=self.timeframe,
            candle_time=t,
            as_of=self.clock.now_ms(),
            outcome=outcome,
            reason=reason,
        )
