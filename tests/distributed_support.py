"""Helpers of the bus and distributed-run tests: unique exchanges, replays, in-process and real workers, checks.

Workers run either as threads of the test process (each with its own RabbitMQ connection and database
connection: what a worker process has) or as real `tradegraph worker` processes where a test kills them.
Every wait polls a condition under a generous bound and fails with what the workers printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
import pytest

from graph.distributed_replay import replay_candles
from graph.worker import Worker, WorkerTally
from infra.job_scheduler import JobScheduler
from infra.pg_job_store import libpq_url
from infra.settings import Settings, load_settings
from tests.services import AMQP_URL, unavailable
from tradegraph.composition import (
    build_replay,
    build_worker,
    distributed_bus,
    open_feed,
    open_job_store,
    start_distributed_run,
    time_range,
)

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 240.0  # generous: the machine may be loaded by other work


async def _amqp(url: str, fn: Callable[[Any], Any]) -> Any:
    conn = await aio_pika.connect(url, timeout=10)
    try:
        return await fn(await conn.channel())
    finally:
        await conn.close()


def amqp_available(url: str = AMQP_URL) -> None:
    async def noop(_ch: Any) -> None:
        return None

    try:
        asyncio.run(_amqp(url, noop))
    except Exception as exc:  # any failure to reach it: skip locally, fail in CI
        unavailable(f"RabbitMQ at {url} ({type(exc).__name__}: {exc})")


def delete_amqp(url: str, exchange: str, queues: list[str]) -> None:
    async def go(ch: Any) -> None:
        for q in queues:
            await ch.queue_delete(q)
        await ch.exchange_delete(exchange)

    asyncio.run(_amqp(url, go))


def queue_depth(url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue."""

    async def go(ch: Any) -> tuple[int, int]:
        q = await ch.declare_queue(queue, passive=True)
        r = q.declaration_result
        return int(r.message_count or 0), int(r.consumer_count or 0)

    result: tuple[int, int] = asyncio.run(_amqp(url, go))
    return result


@dataclass
class Stack:
    """One test's services: a journal URL (its own schema or cluster) and a bus exchange of its own."""

    pg_url: str
    amqp_url: str = AMQP_URL
    exchange: str = field(default_factory=lambda: f"tg-test-{secrets.token_hex(4)}")
    extra_queues: list[str] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        bus = {"exchange": self.exchange, "retry_seconds": 120.0, "barrier_wait_s": 5.0, **overrides.pop("bus", {})}
        return load_settings(journal=self.pg_url, bus_url=self.amqp_url, bus=bus, progress=False, **overrides)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "TRADEGRAPH_JOURNAL": self.pg_url, "TRADEGRAPH_BUS_URL": self.amqp_url,
                "TRADEGRAPH_BUS__EXCHANGE": self.exchange, "TRADEGRAPH_BUS__BARRIER_WAIT_S": "5",
                "PYTHONPATH": str(ROOT), **extra}  # fmt: skip

    def cleanup(self) -> None:
        queues = [f"{self.exchange}.jobs", f"{self.exchange}.jobs.dead", *self.extra_queues]
        with contextlib.suppress(Exception):  # a private broker may already be gone with its data
            delete_amqp(self.amqp_url, self.exchange, queues)


def schedule_replay(settings: Settings, run_id: str, duplicate: bool = False) -> int:
    """Create the run and publish its replay jobs (twice with ``duplicate``); the number of distinct jobs."""
    feed = open_feed(settings)
    candles = replay_candles(feed, settings.symbols, settings.timeframe, *time_range(settings))
    store = open_job_store(settings, "test-scheduler")
    bus = distributed_bus(settings, "test-scheduler")
    try:
        start_distributed_run(settings, store, run_id, "paper-distributed")
        scheduler = JobScheduler(bus, store, run_id, settings.symbols, settings.timeframe)
        total = scheduler.publish_replay(candles)
        if duplicate:
            scheduler.publish_replay(candles)
        return total
    finally:
        bus.close()
        store.close()


def decided(pg_url: str, run_id: str) -> int:
    with pg_connect(pg_url) as c:
        row = c.execute("SELECT count(*) FROM decisions WHERE run_id = %s", (run_id,)).fetchone()
    return int(row[0]) if row else 0


def pg_connect(pg_url: str) -> psycopg.Connection[Any]:
    conninfo, settings = libpq_url(pg_url)
    options = " ".join(f"-c {k}={v}" for k, v in settings.items())
    return psycopg.connect(conninfo, autocommit=True, options=options, connect_timeout=10)


def wait_until(what: str, ok: Callable[[], bool], timeout: float = WAIT_S, detail: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ok():
                return
        except Exception as exc:  # a service being restarted by the test: keep polling
            last = f"{type(exc).__name__}: {exc}"
        else:
            last = ""
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}. {last} {detail()}"[:8000])
        time.sleep(0.1)


@contextmanager
def thread_workers(settings: Settings, n: int) -> Iterator[list[Worker]]:
    """``n`` workers consuming in threads of this process until the block ends."""
    stop = threading.Event()
    workers = [build_worker(settings) for _ in range(n)]
    errors: list[BaseException] = []

    def run(w: Worker) -> None:
        try:
            w.run(stop)
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        yield workers
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        for w in workers:
            w.close()
    if errors:
        raise errors[0]


def run_threads_until_decided(settings: Settings, run_id: str, total: int, n: int = 1) -> list[WorkerTally]:
    with thread_workers(settings, n) as workers:
        wait_until(f"{total} decisions of {run_id}", lambda: decided(settings.journal, run_id) >= total)
        wait_until("the queue to drain", lambda: queue_depth(settings.bus_url, settings.bus.jobs_queue)[0] == 0)
    return [w.tally for w in workers]


class WorkerProcess:
    """A real `tradegraph worker` process, its stderr kept for failure messages."""

    def __init__(self, stack: Stack, name: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.name = name
        self._final = ""
        self.log = open(  # noqa: SIM115 - closed in stop()
            Path(os.environ.get("TMPDIR", "/tmp")) / f"{stack.exchange}-{name}.log", "w+"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tradegraph", "--log-format", "json", "--log-level", "info", "worker", *args],
            env=env or stack.env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log,
        )  # fmt: skip

    def output(self) -> str:
        if self.log.closed:
            return self._final
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if not self.log.closed:
            self._final = self.output()
            self.log.close()
            Path(self.log.name).unlink(missing_ok=True)
        return int(self.proc.returncode)


# --- comparing runs -----------------------------------------------------------------------------------------
def decision_rows(pg_url: str, run_id: str) -> list[dict[str, Any]]:
    with pg_connect(pg_url) as c:
        cur = c.execute(
            "SELECT id, symbol, timeframe, candle_time, as_of, outcome, reason, action, inputs_hash, window_start, "
            "window_end, window_length, body::text AS body, seq FROM decisions WHERE run_id = %s ORDER BY seq",
            (run_id,),
        )
        names = [d.name for d in cur.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["body"] = json.loads(r["body"])
    return rows


def normalized(rows: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """Decisions keyed by (symbol, candle), with run-specific ids and timings taken out, as comparable text."""
    out = {}
    for r in rows:
        body = {k: v for k, v in r["body"].items() if k != "node_timings_us"}
        text = json.dumps({**{k: v for k, v in r.items() if k not in ("body", "seq", "id")}, "body": body},
                          sort_keys=True)  # fmt: skip
        out[(r["symbol"], r["candle_time"])] = text.replace(r["id"], "<decision>")
    return out


MARKET_FIELDS = ("indicators", "signals", "aggregate")


def market_evidence(rows: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """What a decision saw of the market only (independent of the portfolio and of other symbols)."""
    out = {}
    for r in rows:
        window = [r["inputs_hash"], r["window_start"], r["window_end"], r["window_length"]]
        out[(r["symbol"], r["candle_time"])] = json.dumps(window + [r["body"].get(k) for k in MARKET_FIELDS])
    return out


def orders_of(pg_url: str, run_id: str) -> list[dict[str, Any]]:
    with pg_connect(pg_url) as c:
        cur = c.execute(
            "SELECT o.* FROM orders o JOIN decisions d ON d.id = o.decision_id WHERE d.run_id = %s "
            "ORDER BY o.submitted_at, o.client_order_id", (run_id,))  # fmt: skip
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def fills_of(pg_url: str, run_id: str) -> list[dict[str, Any]]:
    with pg_connect(pg_url) as c:
        cur = c.execute(
            "SELECT f.client_order_id, f.symbol, f.side, f.quantity, f.price, f.fee, f.timestamp, f.kind "
            "FROM fills f JOIN decisions d ON d.id = f.decision_id WHERE d.run_id = %s "
            "ORDER BY f.timestamp, f.client_order_id, f.kind", (run_id,))  # fmt: skip
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def reference_run(settings: Settings, run_id: str) -> None:
    """The single-process replay of the same settings, journaled under ``run_id`` in the same database."""
    job = build_replay(settings, run_id=run_id)
    try:
        job.session.run(job.snapshots(), job.config)
    finally:
        job.journal.close()


def check_against_reference(pg_url: str, run_id: str, ref_id: str, total: int) -> dict[str, Any]:
    """The promises that hold for any number of workers and symbols; returns what was compared."""
    rows, ref = decision_rows(pg_url, run_id), decision_rows(pg_url, ref_id)
    keys = [(r["symbol"], r["candle_time"]) for r in rows]
    assert len(keys) == total == len(set(keys)), "every key decided exactly once"
    assert set(keys) == {(r["symbol"], r["candle_time"]) for r in ref}, "the same keys as the replay"
    assert market_evidence(rows) == market_evidence(ref), "the same market evidence per decision"
    orders = orders_of(pg_url, run_id)
    ids = [o["client_order_id"] for o in orders]
    assert len(ids) == len(set(ids)), "orders unique by client order id"
    entries = [o for o in orders if o["kind"] in ("entry", "exit")]
    ordered = {r["id"] for r in rows if r["outcome"] == "ordered"}
    assert {o["decision_id"] for o in entries} == ordered and len(entries) == len(ordered), "one order per order"
    return {"rows": rows, "ref": ref, "orders": orders}


def check_limits(rows: list[dict[str, Any]], settings: Settings) -> None:
    """No approved order broke a portfolio limit against the portfolio the gate saw under the account lock."""
    limits = settings.limits
    for r in rows:
        b = r["body"]
        if not b.get("order") or not b["verdict"]["increases_risk"]:
            continue
        pf, order = b["portfolio"], b["order"]
        notional = order["quantity"] * order["reference_price"]
        assert notional <= limits.max_order_notional * (1 + 1e-9)
        assert pf["gross_exposure"] + notional <= limits.max_gross_exposure * pf["equity"] * (1 + 1e-9)
        assert (abs(pf["position"]) + order["quantity"]) * order["reference_price"] <= (
            limits.max_position_fraction * pf["equity"] * (1 + 1e-9)
        )


def day(s: str) -> date:
    return date.fromisoformat(s)
