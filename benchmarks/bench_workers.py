"""Distributed decisions/s: one worker vs two workers over RabbitMQ, on the bundled data, in one run.

For each worker count: start the workers (`tradegraph worker` processes), wait until they consume, warm them
up with a short run (imports, data files, graph), then publish the jobs of the measured range and time until
every decision is journaled. Both rates and their ratio are printed, and both runs' decision keys are checked.

Needs PostgreSQL and RabbitMQ: TRADEGRAPH_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test; a fresh
schema is created and dropped) and TRADEGRAPH_TEST_AMQP (default amqp://guest:guest@127.0.0.1:5672/; a unique
exchange and queues, deleted afterwards).

Usage: python benchmarks/bench_workers.py [--days 28] [--symbols BTC/USDT,ETH/USDT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graph.distributed_replay import replay_candles  # noqa: E402
from infra.job_scheduler import JobScheduler  # noqa: E402
from infra.pg_job_store import libpq_url  # noqa: E402
from infra.settings import Settings, load_settings  # noqa: E402
from tradegraph.composition import (  # noqa: E402
    distributed_bus,
    open_feed,
    open_job_store,
    start_distributed_run,
    time_range,
)

PG = os.environ.get("TRADEGRAPH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
AMQP = os.environ.get("TRADEGRAPH_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
ANALYZED = ("decisions, orders, fills, portfolio_snapshots, paper_accounts, bus_published, runs, signals, "
            "risk_assessments, positions, trades, candles")  # fmt: skip


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _consumers(queue: str) -> int:
    conn = await aio_pika.connect(AMQP, timeout=10)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(queue, passive=True)
        return int(q.declaration_result.consumer_count or 0)
    finally:
        await conn.close()


async def _delete(names: list[str], exchange: str) -> None:
    conn = await aio_pika.connect(AMQP, timeout=10)
    try:
        ch = await conn.channel()
        for name in names:
            await ch.queue_delete(name)
        await ch.exchange_delete(exchange)
    finally:
        await conn.close()


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / hz, sum(fields) / hz


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (float(stat[11]) + float(stat[12])) / os.sysconf("SC_CLK_TCK")


def _services_cpu() -> dict[int, float]:
    """CPU seconds so far of the PostgreSQL and RabbitMQ server processes (they serve other work too)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            if raw[raw.index("(") + 1 : raw.rindex(")")] in ("postgres", "beam.smp"):
                stat = raw.rsplit(")", 1)[1].split()
                out[int(entry.name)] = (float(stat[11]) + float(stat[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _wait(what: str, ok: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_workers: timed out waiting for {what}")
        time.sleep(0.01)


def _replay(settings: Settings, run_id: str, store: object, bus: object) -> tuple[int, float]:
    """Publish a run's jobs and wait until all are decided; (jobs, seconds from first publish to last decision)."""
    feed = open_feed(settings)
    start, end = time_range(settings)
    candles = replay_candles(feed, settings.symbols, settings.timeframe, start, end)
    start_distributed_run(settings, store, run_id, "bench")
    scheduler = JobScheduler(bus, store, run_id, settings.symbols, settings.timeframe)  # type: ignore[arg-type]
    total = sum(len(s) for _t, s in candles)
    done = threading.Event()

    def publish() -> None:
        scheduler.publish_replay(candles)
        done.set()

    started = time.perf_counter()
    threading.Thread(target=publish, daemon=True).start()  # publishing overlaps the workers, as a scheduler does
    _wait(f"{total} decisions of {run_id}", lambda: store.count_decisions(run_id) >= total, 600)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    done.wait(30)
    return total, elapsed


class Measured:
    def __init__(
        self, decisions: int, seconds: float, workers_cpu: float, services_cpu: float, machine_cpu: float, load: float
    ) -> None:
        self.decisions, self.seconds = decisions, seconds
        self.workers_cores = workers_cpu / seconds  # cores the worker processes used
        self.services_cores = services_cpu / seconds  # PostgreSQL and RabbitMQ (theirs serve others too)
        self.machine_cores = machine_cpu / seconds  # cores busy on the whole machine (everyone's work)
        self.load = load


def measure(workers: int, days: int, symbols: list[str], env: dict[str, str], tag: str) -> Measured:
    base = load_settings(symbols=symbols, journal=env["TRADEGRAPH_JOURNAL"], bus_url=AMQP,
                         bus={"exchange": env["TRADEGRAPH_BUS__EXCHANGE"]})  # fmt: skip
    store = open_job_store(base, "bench")
    bus = distributed_bus(base, "bench")
    procs = [
        subprocess.Popen([sys.executable, "-m", "tradegraph", "worker"], env=env, cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]  # fmt: skip
    try:
        queue = base.bus.jobs_queue
        _wait(f"{workers} consumers", lambda: asyncio.run(_consumers(queue)) >= workers, 120)
        warm = base.model_copy(update={"start": date(2024, 2, 1), "end": date(2024, 2, 7)})
        _replay(warm, f"warmup-{tag}", store, bus)
        # planner statistics, as a database that has been running has them (a fresh schema's first minute,
        # before autovacuum's first analyze, plans the schema's triggers for empty tables)
        asyncio.run(
            _pg(f"SET search_path = {env['TRADEGRAPH_JOURNAL'].rsplit('search_path=', 1)[1]}; ANALYZE {ANALYZED}")
        )
        first = date(2024, 3, 1)
        run = base.model_copy(update={"start": first, "end": first + timedelta(days=days - 1)})
        cpu0, svc0, (busy0, _t0) = sum(_process_cpu(p.pid) for p in procs), _services_cpu(), _machine_busy()
        decisions, seconds = _replay(run, f"bench-{tag}", store, bus)
        cpu1, svc1, (busy1, _t1) = sum(_process_cpu(p.pid) for p in procs), _services_cpu(), _machine_busy()
        services = sum(v - svc0.get(pid, 0.0) for pid, v in svc1.items())
        return Measured(decisions, seconds, cpu1 - cpu0, services, busy1 - busy0, os.getloadavg()[0])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                _out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                _out, err = p.communicate()
            if p.returncode not in (0, -signal.SIGTERM):
                print(f"worker exited with {p.returncode}: {err[-2000:]}", file=sys.stderr)
            elif os.environ.get("BENCH_VERBOSE"):
                print(err.strip().splitlines()[-1], file=sys.stderr)
        bus.close()
        store.close()


def _compare(journal: str, a: str, b: str) -> tuple[int, int, int, bool]:
    """(decisions identical in every field, with the same outcome, action and order, all, same keys)."""
    conninfo, settings = libpq_url(journal)
    options = " ".join(f"-c {k}={v}" for k, v in settings.items())

    def rows(conn: psycopg.Connection[Any], run: str) -> dict[tuple[str, int], tuple[str, str]]:
        out = {}
        for rid, symbol, t, outcome, action, reason, body in conn.execute(
            "SELECT id, symbol, candle_time, outcome, action, reason, body FROM decisions WHERE run_id = %s", (run,)
        ):
            body.pop("node_timings_us", None)
            order = body.get("order") or {}
            gist = json.dumps([outcome, action, order.get("side"), order.get("quantity")])
            out[(symbol, t)] = (json.dumps([outcome, reason, body], sort_keys=True).replace(rid, ""), gist)
        return out

    with psycopg.connect(conninfo, options=options) as conn:
        ra, rb = rows(conn, a), rows(conn, b)
    same = sum(1 for k in ra if ra[k][0] == rb.get(k, ("",))[0])
    gist = sum(1 for k in ra if k in rb and ra[k][1] == rb[k][1])
    return same, gist, len(ra), set(ra) == set(rb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=28, help="days of 1h candles per measured run (default 28)")
    parser.add_argument("--symbols", default="BTC/USDT,ETH/USDT")
    args = parser.parse_args()
    symbols = args.symbols.split(",")
    token = secrets.token_hex(4)
    schema, exchange = f"tg_bench_{token}", f"tg-bench-{token}"
    asyncio.run(_pg(f"CREATE SCHEMA {schema}"))
    env = {**os.environ, "TRADEGRAPH_JOURNAL": f"{PG}?search_path={schema}", "TRADEGRAPH_BUS_URL": AMQP,
           "TRADEGRAPH_BUS__EXCHANGE": exchange, "PYTHONPATH": str(ROOT)}  # fmt: skip
    try:
        results = {n: measure(n, args.days, symbols, env, f"{n}w") for n in (1, 2)}
        same, gist, decisions, same_keys = _compare(env["TRADEGRAPH_JOURNAL"], "bench-1w", "bench-2w")
    finally:
        asyncio.run(_delete([f"{exchange}.jobs", f"{exchange}.jobs.dead"], exchange))
        asyncio.run(_pg(f"DROP SCHEMA {schema} CASCADE"))
    m1, m2 = results[1], results[2]
    r1, r2 = m1.decisions / m1.seconds, m2.decisions / m2.seconds
    print(
        f"distributed replay of {', '.join(symbols)} 1h, {args.days} days ({m1.decisions} decisions), "
        f"RabbitMQ + PostgreSQL, {os.cpu_count()} cores:"
    )
    for n, r, m in ((1, r1, m1), (2, r2, m2)):
        print(
            f"  {n} worker{'s' if n > 1 else ' '}: {r:7.1f} decisions/s ({m.seconds:.2f} s); cores used: workers "
            f"{m.workers_cores:.2f}, PostgreSQL + RabbitMQ {m.services_cores:.2f}, whole machine "
            f"{m.machine_cores:.2f} (load average {m.load:.1f})"
        )
    print(f"  ratio    : {r2 / r1:.2f}x (target 1.7x on 2 cores)")
    print(
        f"  two workers vs one: same decision keys {same_keys}; same outcome, action and order {gist} of {decisions};"
        f" identical in every field {same} (the journaled portfolio marks the other symbol at its previous or its"
        " same-candle close, as the interleaving went)"
    )


if __name__ == "__main__":
    main()
