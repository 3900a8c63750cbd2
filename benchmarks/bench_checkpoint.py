"""Cost of durable runs: the same replay plain and with LangGraph checkpointing (`tradegraph run --checkpoint`),
side by side in one run, for SQLite (journal and checkpoints in files) and for PostgreSQL (journal and
checkpoints on the server).

A durable run pays for the checkpoint writes (one per decision up to the reasoning, one per node after it;
see graph/durable.py), for a journal commit at every decision and for deleting finished threads. The ratio
is what a user pays for being able to resume a killed run without re-deciding.

Usage: python benchmarks/bench_checkpoint.py [--days N] [--repeat K] [--pg postgresql://...]
(default server: TRADEGRAPH_TEST_PG or postgresql://postgres@127.0.0.1:5432/test; schemas are created and dropped)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.settings import load_settings  # noqa: E402
from tradegraph.composition import build_replay, open_feed  # noqa: E402


async def _admin(base: str, sql: str) -> None:
    conn = await asyncpg.connect(base, timeout=10, command_timeout=120)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def timed_run(journal: str, checkpoint: str | None, days: int) -> tuple[float, int]:
    """Seconds for one replay of ``days`` days from 2024-01-01 (journal and checkpoint stores already empty)."""
    settings = load_settings(journal=journal, start=date(2024, 1, 1), end=date(2024, 1, 1) + timedelta(days=days - 1),
                             progress=False)  # fmt: skip
    job = build_replay(settings, feed=FEED, checkpoint=checkpoint)
    try:
        start = time.perf_counter()
        summary = job.session.run(job.snapshots(), job.config)
        elapsed = time.perf_counter() - start
    finally:
        job.close()
    return elapsed, summary.snapshots


FEED = open_feed(load_settings(progress=False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=31, help="days of 2024 replayed (BTC/USDT + ETH/USDT 1h)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--pg", default=os.environ.get("TRADEGRAPH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    times: dict[str, list[float]] = {k: [] for k in ("sqlite plain", "sqlite durable", "pg plain", "pg durable")}
    snapshots = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):  # interleaved so every variant sees the same machine load
            for name in times:
                store, mode = name.split()
                if store == "sqlite":
                    journal = str(Path(tmp) / f"{name.replace(' ', '-')}-{i}.sqlite")
                    checkpoint = str(Path(tmp) / f"checkpoints-{i}.sqlite") if mode == "durable" else None
                    elapsed, snapshots = timed_run(journal, checkpoint, args.days)
                else:
                    schema = f"tg_bench_{secrets.token_hex(4)}"
                    asyncio.run(_admin(args.pg, f"CREATE SCHEMA {schema}"))
                    url = f"{args.pg}?search_path={schema}"
                    try:
                        elapsed, snapshots = timed_run(url, url if mode == "durable" else None, args.days)
                    finally:
                        asyncio.run(_admin(args.pg, f"DROP SCHEMA {schema} CASCADE"))
                times[name].append(elapsed)
    print(f"replay of {snapshots} snapshots (BTC/USDT + ETH/USDT 1h, {args.days} days of 2024), rules reasoner, "
          f"median of {args.repeat}")  # fmt: skip
    for store, label in (
        ("sqlite", "SQLite journal + SQLite checkpoints"),
        ("pg", "PostgreSQL journal + Postgres checkpoints"),
    ):
        plain, durable = statistics.median(times[f"{store} plain"]), statistics.median(times[f"{store} durable"])
        print(f"  {label}")
        print(f"    plain   : {snapshots / plain:7.0f} snapshots/s ({1e3 * plain / snapshots:6.2f} ms/snapshot)")
        print(f"    durable : {snapshots / durable:7.0f} snapshots/s ({1e3 * durable / snapshots:6.2f} ms/snapshot)")
        print(
            f"    ratio durable/plain {durable / plain:5.2f}x, overhead {1e3 * (durable - plain) / snapshots:.2f} ms/snapshot"
        )


if __name__ == "__main__":
    main()
