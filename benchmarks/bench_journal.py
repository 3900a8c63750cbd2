"""Journal write throughput: the SQLite store vs the PostgreSQL store, the same records, the same batch policy.

The records are those of a real replay (decisions with their bodies, orders and their status updates, fills,
portfolio points), captured once and written into a fresh journal of each kind, interleaved so both see the
same machine load. Two commit policies, applied identically to both stores by the benchmark itself:
- ``batched``: a commit every 500 records and at every decision that carries an order (what a plain run does;
  the PostgreSQL store commits at such decisions on its own);
- ``per decision``: a commit at every decision (what a durable `--checkpoint` run does).

PostgreSQL writes more than SQLite: the v2 schema's triggers also fill signals, risk assessments, candles,
positions and trades in the same transactions, and finishing the run computes its performance metrics.

Usage: python benchmarks/bench_journal.py [--months N] [--repeat K] [--pg postgresql://...]
(default server: TRADEGRAPH_TEST_PG or postgresql://postgres@127.0.0.1:5432/test; a schema is created and dropped)
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
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graph.builder import GraphDeps, build_graph  # noqa: E402
from graph.runner import ReplaySession  # noqa: E402
from infra.journal import DecisionRecord, JournalStore, PortfolioPoint, RunInfo  # noqa: E402
from infra.postgres_journal import PostgresJournal  # noqa: E402
from infra.settings import load_settings, redacted_config  # noqa: E402
from infra.sqlite_journal import SqliteJournal  # noqa: E402
from tools.paper_broker import PaperBroker  # noqa: E402
from tools.trade_types import Fill, Order  # noqa: E402
from tradegraph.composition import make_reasoner, open_feed, time_range  # noqa: E402

Call = tuple[str, tuple[Any, ...]]
BATCH = 500


class Recorder:
    """A journal that passes every write to ``inner`` and keeps a copy of the call."""

    def __init__(self, inner: JournalStore) -> None:
        self.inner = inner
        self.calls: list[Call] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _keep(self, name: str, *args: Any) -> None:
        # orders are mutated by the broker after they are journaled: keep them as they were written
        self.calls.append((name, tuple(a.model_copy() if isinstance(a, Order) else a for a in args)))
        getattr(self.inner, name)(*args)

    def start_run(self, run: RunInfo) -> None:
        self._keep("start_run", run)

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        self._keep("finish_run", run_id, status, summary)

    def record_decision(self, record: DecisionRecord, order: Order | None = None) -> None:
        self._keep("record_decision", record, order)

    def record_order(self, order: Order) -> None:
        self._keep("record_order", order)

    def record_fills(self, fills: list[Fill]) -> None:
        self._keep("record_fills", list(fills))

    def record_portfolio(self, point: PortfolioPoint) -> None:
        self._keep("record_portfolio", point)


def capture(months: int, workdir: Path) -> list[Call]:
    """Every journal write of a replay of ``months`` months of 2024, in the order the session made them."""
    end = date(2024 + months // 12, months % 12 + 1, 1)
    settings = load_settings(start=date(2024, 1, 1), end=date.fromordinal(end.toordinal() - 1), progress=False)
    feed = open_feed(settings)
    recorder = Recorder(SqliteJournal(workdir / "capture.sqlite"))
    broker = PaperBroker(settings.paper)
    limits = settings.limits.model_copy(update={"allowed_symbols": frozenset(settings.symbols)})
    deps = GraphDeps(settings.ta, make_reasoner(settings), settings.risk, limits, broker, recorder, "bench-run")  # type: ignore[arg-type]
    session = ReplaySession(build_graph(deps), broker, recorder, "bench-run")  # type: ignore[arg-type]
    start, stop = time_range(settings)
    session.run(feed.snapshots(settings.symbols, settings.timeframe, start, stop), redacted_config(settings))
    recorder.inner.close()
    return recorder.calls


def records_in(calls: list[Call]) -> int:
    return sum(len(args[0]) if name == "record_fills" else 1 for name, args in calls if name.startswith("record_"))


def write(store: JournalStore, calls: list[Call], per_decision: bool) -> float:
    """Seconds to write ``calls`` into ``store``, committing by the given policy."""
    pending = 0
    start = time.perf_counter()
    for name, args in calls:
        getattr(store, name)(*args)
        if name.startswith("record_"):
            pending += len(args[0]) if name == "record_fills" else 1
        decision_commit = name == "record_decision" and (per_decision or args[1] is not None)
        if decision_commit or pending >= BATCH:
            store.flush()
            pending = 0
    store.flush()
    return time.perf_counter() - start


def pg_schema(base: str) -> tuple[str, Callable[[], None]]:
    schema = f"tg_bench_{secrets.token_hex(4)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(base, timeout=10, command_timeout=120)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    return f"{base}?search_path={schema}", lambda: asyncio.run(run(f"DROP SCHEMA {schema} CASCADE"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--months", type=int, default=3, help="months of 2024 replayed to make the records")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--pg", default=os.environ.get("TRADEGRAPH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        calls = capture(args.months, work)
        n = records_in(calls)
        decisions = sum(1 for name, _ in calls if name == "record_decision")
        print(f"{n} records ({decisions} decisions with bodies, their orders, fills and portfolio points) from "
              f"{args.months} months of BTC/USDT + ETH/USDT 1h; batch {BATCH} records")  # fmt: skip
        for policy, per_decision in (("batched", False), ("per decision", True)):
            lite_s, pg_s = [], []
            for i in range(args.repeat):  # interleaved so both see the same machine load
                lite = SqliteJournal(work / f"{policy}-{i}.sqlite", batch_size=10**9)
                try:
                    lite_s.append(write(lite, calls, per_decision))
                finally:
                    lite.close()
                url, drop = pg_schema(args.pg)
                try:
                    pg = PostgresJournal(url, batch_size=10**9)
                    try:
                        pg_s.append(write(pg, calls, per_decision))
                    finally:
                        pg.close()
                finally:
                    drop()
            lt, pt = statistics.median(lite_s), statistics.median(pg_s)
            print(f"  {policy:<12}  SQLite {n / lt:9.0f} records/s   PostgreSQL {n / pt:9.0f} records/s   "
                  f"ratio SQLite/PostgreSQL {pt / lt:5.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
