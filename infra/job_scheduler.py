"""The job scheduler of distributed runs (`tradegraph schedule`): one decision job per symbol at each candle close.

Live: at every close of the timeframe (plus a short delay for the exchange to publish the candle) it
publishes the jobs of every candle that closed since its watermark, oldest first, and moves the watermark
(in the journal database) only after the broker confirmed a candle's jobs. After downtime it therefore
catches up the missed candles (at most ``max_catch_up``) and never schedules a candle twice; a crash between
the confirms and the watermark update publishes that candle's jobs again, which workers ack as duplicates
(the decision key is unique in the journal).

Replay: the jobs of every recorded candle in [start, end) (``graph.distributed_replay.replay_candles``), in the
order of a single-process replay, for benchmarks and tests.

Each job names the previous scheduled candle and its job count; workers start a candle only once the
previous one is fully decided (see ``graph.distributed``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from infra.bus import Bus
from infra.bus_messages import BusMessage, DecisionJob
from infra.job_store import JobStore
from tools.candle_clock import due_candles, next_close
from tools.timeframes import timeframe_ms, to_iso

log = logging.getLogger("tradegraph.scheduler")


class SchedulerMetrics(Protocol):
    def jobs_published(self, n: int) -> None: ...
    def watermark(self, candle_time: int) -> None: ...


class JobScheduler:
    def __init__(
        self,
        bus: Bus,
        store: JobStore,
        run_id: str,
        symbols: Sequence[str],
        timeframe: str,
        *,
        metrics: SchedulerMetrics | None = None,
        batch: int = 256,
    ) -> None:
        self.bus = bus
        self.store = store
        self.run_id = run_id
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.metrics = metrics
        self.batch = batch
        self.published = 0

    def _jobs(self, t: int, symbols: Sequence[str], after: int | None, expect: int) -> list[BusMessage]:
        return [
            DecisionJob(run_id=self.run_id, symbol=s, timeframe=self.timeframe, candle_time=t, after=after,
                        expect=expect).to_bus()
            for s in symbols
        ]  # fmt: skip

    def _send(self, messages: list[BusMessage]) -> None:
        self.bus.publish(messages)
        self.published += len(messages)
        if self.metrics:
            self.metrics.jobs_published(len(messages))

    def publish_replay(self, candles: Iterable[tuple[int, list[str]]]) -> int:
        """Publish the jobs of recorded candles, in order, confirmed in batches; the number of jobs."""
        buffer: list[BusMessage] = []
        after: int | None = None
        expect = 0
        count = 0
        for t, symbols in candles:
            buffer += self._jobs(t, symbols, after, expect)
            after, expect = t, len(symbols)
            count += len(symbols)
            if len(buffer) >= self.batch:
                self._send(buffer)
                buffer = []
        if buffer:
            self._send(buffer)
        return count

    def tick(self, now_ms: int, max_catch_up: int) -> list[int]:
        """Publish every candle due at ``now_ms`` after the watermark; the candle times scheduled."""
        watermark = self.store.watermark(self.run_id, self.timeframe)
        due = due_candles(watermark, now_ms, self.timeframe, max_catch_up)
        if watermark is not None and due and due[0] > watermark + timeframe_ms(self.timeframe):
            missed = (due[0] - watermark) // timeframe_ms(self.timeframe) - 1
            log.warning("%d candles closed while the scheduler was down are beyond the catch-up limit (%d): "
                        "not scheduled", missed, max_catch_up, extra={"fields": {"run_id": self.run_id}})  # fmt: skip
        after = watermark
        for t in due:
            self._send(self._jobs(t, self.symbols, after, len(self.symbols) if after is not None else 0))
            self.store.set_watermark(self.run_id, self.timeframe, t)
            if self.metrics:
                self.metrics.watermark(t)
            log.info("scheduled %s", to_iso(t), extra={"fields": {"run_id": self.run_id, "jobs": len(self.symbols)}})
            after = t
        return due

    def run_live(
        self,
        stop: threading.Event,
        *,
        max_catch_up: int,
        close_delay_s: float,
        once: bool = False,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> int:
        """Schedule at every candle close until ``stop`` is set (or once); the number of jobs published.

        A candle counts as closed ``close_delay_s`` after its close time, giving the exchange time to publish it."""
        delay_ms = int(close_delay_s * 1000)
        while not stop.is_set():
            now = clock() - delay_ms
            self.tick(now, max_catch_up)
            if once:
                break
            wake = next_close(now, self.timeframe) + delay_ms
            stop.wait(max(0.0, (wake - clock()) / 1000))
        return self.published
