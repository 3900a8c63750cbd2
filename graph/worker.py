"""The worker loop: take decision jobs from the bus, process them, ack only what is committed and published.

- A job that cannot be read (unknown message version, malformed) is rejected to the dead-letter queue.
- A job of an unknown run is rejected the same way (a scheduler creates the run before publishing).
- Database, bus or exchange trouble (``StoreUnavailable``, ``BusError``, ``ExchangeTemporaryError``) retries
  the job from its start with backoff for up to ``retry_seconds``, then hands it back to the queue; every step of a job is idempotent, so a retry
  after an ambiguous failure (a COMMIT whose answer was lost) is safe.
- A job whose previous candle is not decided within the barrier wait goes back to the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from graph.distributed import DistributedSession, JobResult, Processed
from infra.bus import Bus, BusError, Delivery
from infra.bus_messages import MessageError, decode_job
from infra.crash_points import crash_point
from infra.job_store import StoreUnavailable, UnknownRun
from tools.errors import ExchangeTemporaryError
from tools.timeframes import to_iso

log = logging.getLogger("tradegraph.worker")


class WorkerMetrics(Protocol):
    def job_consumed(self, redelivered: bool) -> None: ...
    def job_done(self, result: str, seconds: float, waited_s: float) -> None: ...
    def job_rejected(self, reason: str) -> None: ...
    def job_retried(self, reason: str) -> None: ...


@dataclass
class WorkerTally:
    consumed: int = 0
    decided: int = 0
    duplicates: int = 0
    requeued: int = 0
    rejected: int = 0
    redelivered: int = 0
    acks_lost: int = 0
    results: list[Processed] = field(default_factory=list)


class Worker:
    def __init__(
        self,
        bus: Bus,
        session: DistributedSession,
        queue: str,
        *,
        prefetch: int = 1,
        retry_seconds: float = 120.0,
        metrics: WorkerMetrics | None = None,
        name: str = "worker",
    ) -> None:
        self.bus = bus
        self.session = session
        self.queue = queue
        self.prefetch = prefetch
        self.retry_seconds = retry_seconds
        self.metrics = metrics
        self.name = name
        self.tally = WorkerTally()

    def run(self, stop: threading.Event, max_jobs: int | None = None, idle_exit_s: float | None = None) -> WorkerTally:
        """Consume until ``stop`` is set (or ``max_jobs`` are handled, or nothing arrived for ``idle_exit_s``)."""
        self.bus.consume(self.queue, self.prefetch)
        idle_since = time.monotonic()
        while not stop.is_set():
            delivery = self.bus.get(timeout=0.5)
            if delivery is None:
                self._idle()
                if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    break
                continue
            self.handle(delivery, stop)
            idle_since = time.monotonic()
            if max_jobs is not None and self.tally.consumed >= max_jobs:
                break
        return self.tally

    def handle(self, delivery: Delivery, stop: threading.Event | None = None) -> None:
        t = self.tally
        t.consumed += 1
        t.redelivered += delivery.redelivered
        if self.metrics:
            self.metrics.job_consumed(delivery.redelivered)
        try:
            job = decode_job(delivery.body)
        except MessageError as exc:
            self._reject(delivery, f"unreadable job: {exc}", "unreadable")
            return
        started = time.monotonic()
        deadline = started + self.retry_seconds
        delay = 0.1
        while True:
            try:
                done = self.session.process(job)
                break
            except UnknownRun as exc:
                self._reject(delivery, str(exc), "unknown_run")
                return
            except (StoreUnavailable, BusError, ExchangeTemporaryError) as exc:
                if self.metrics:
                    self.metrics.job_retried(type(exc).__name__)
                if time.monotonic() + delay > deadline or (stop is not None and stop.is_set()):
                    log.error("giving the job back to the queue after %s: %s", type(exc).__name__, exc,
                              extra={"fields": {"decision_id": job.decision_id, "worker": self.name}})  # fmt: skip
                    self._requeue(delivery)
                    return
                log.warning("job interrupted (%s); retrying in %.1f s", exc, delay,
                            extra={"fields": {"decision_id": job.decision_id, "worker": self.name}})  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        t.results.append(done)
        if self.metrics:
            self.metrics.job_done(done.result.value, time.monotonic() - started, done.waited_s)
        fields = {"decision_id": done.decision_id, "run_id": job.run_id, "symbol": job.symbol,
                  "candle": to_iso(job.candle_time), "worker": self.name}  # fmt: skip
        if done.result is JobResult.NOT_READY:
            log.info("previous candle not decided yet: job back to the queue", extra={"fields": fields})
            self._requeue(delivery)
            return
        if done.result is JobResult.DUPLICATE:
            t.duplicates += 1
            log.info("job already decided: acked without deciding again", extra={"fields": fields})
        else:
            t.decided += 1
            log.info("job decided: %s", done.outcome, extra={"fields": {**fields, "outcome": done.outcome}})
        if done.order is not None:
            crash_point("worker:order-published")
        if not self.bus.ack(delivery):
            t.acks_lost += 1
            log.info("ack lost with the connection; the redelivered job will be acked as a duplicate",
                     extra={"fields": fields})  # fmt: skip

    def _idle(self) -> None:
        try:
            self.session.store.flush()
        except StoreUnavailable as exc:
            log.warning("cannot write the published markers yet: %s", exc)

    def close(self) -> None:
        try:
            self.bus.close()
        finally:
            try:
                self.session.contexts.close()
            finally:
                self.session.store.close()

    def _requeue(self, delivery: Delivery) -> None:
        self.tally.requeued += 1
        self.bus.nack(delivery, requeue=True)

    def _reject(self, delivery: Delivery, reason: str, kind: str) -> None:
        self.tally.rejected += 1
        if self.metrics:
            self.metrics.job_rejected(kind)
        log.error("job rejected to the dead-letter queue: %s", reason,
                  extra={"fields": {"message_id": delivery.message_id, "worker": self.name}})  # fmt: skip
        self.bus.nack(delivery, requeue=False)
