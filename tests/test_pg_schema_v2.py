"""The PostgreSQL journal's v2 schema against the real server: the seed's tables filled in the decision's
transaction and consistent with the run, TimescaleDB hypertables (database `test` has the extension) and plain
tables (a database created without it), the v1 -> v2 migration with its backfill, concurrent upgrades.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from evals.engine import trades_from_fills
from evals.metrics import (
    annualized_return,
    annualized_volatility,
    calmar,
    expectancy,
    max_drawdown,
    period_returns,
    profit_factor,
    sharpe,
    sortino,
    win_rate,
)
from infra.journal import DecisionRecord, PortfolioPoint, RunInfo, decision_id
from infra.pg_migrations import MIGRATIONS, SCHEMA_VERSION
from infra.postgres_journal import PostgresJournal
from infra.settings import load_settings
from tests.services import PG_BASE, pg_admin, unavailable
from tools.errors import JournalError
from tools.timeframes import periods_per_year
from tradegraph.cli import main
from tradegraph.composition import build_replay

ROOT = Path(__file__).resolve().parents[1]
RUN = "run-v2"
V1_TABLES = ("runs", "decisions", "orders", "fills", "portfolio_snapshots")
DERIVED_KEYS = {
    "signals": "decision_id, idx",
    "risk_assessments": "decision_id",
    "positions": "run_id, symbol",
    "trades": "run_id, symbol, seq",
    "performance_metrics": "run_id, name",
}


async def _fetch(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url, timeout=10, command_timeout=60)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close(timeout=5)


def fetch(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    return asyncio.run(_fetch(url, sql, *args))


def scalar(url: str, sql: str, *args: Any) -> Any:
    return next(iter(fetch(url, sql, *args)[0].values()))


@pytest.fixture
def second_schema() -> Iterator[str]:
    schema = f"tg_test_{secrets.token_hex(4)}"
    try:
        pg_admin(f"CREATE SCHEMA {schema}")
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {PG_BASE} ({exc})")
    yield f"{PG_BASE}?search_path={schema}"
    pg_admin(f"DROP SCHEMA {schema} CASCADE")


def replay(url: str, start: date = date(2024, 1, 1), end: date = date(2024, 1, 15)) -> Any:
    settings = load_settings(journal=url, start=start, end=end, progress=False)
    job = build_replay(settings, run_id=RUN)
    try:
        summary = job.session.run(job.snapshots(), job.config)
    finally:
        job.journal.close()
    return job, summary


def test_seed_tables_are_filled_and_consistent_with_the_run(pg_url: str) -> None:
    job, summary = replay(pg_url)
    store = PostgresJournal(pg_url, read_only=True)
    try:
        decisions = store.run_decisions(RUN)
        fills = store.run_fills(RUN)
        points = store.portfolio_points(RUN)
    finally:
        store.close()
    assert summary.orders > 5 and len(fills) > 5
    # signals and risk assessments: one row per signal / per assessed decision, with the decision's values
    assert scalar(pg_url, "SELECT count(*) FROM signals") == sum(len(d["signals"]) for d in decisions)
    assessed = [d for d in decisions if d["risk"]]
    rows = {r["decision_id"]: r for r in fetch(pg_url, "SELECT * FROM risk_assessments")}
    assert len(rows) == len(assessed) > 0
    for d in assessed:
        row = rows[d["id"]]
        assert row["kelly_fraction"] == d["risk"]["kelly_fraction"] and row["atr"] == d["risk"]["atr"]
        if d["verdict"]:
            assert row["gate_decision"] == d["verdict"]["decision"]
            assert row["gate_reasons"] == d["verdict"]["reasons"]
    # candles: the candle of every decision, once per (exchange, symbol, timeframe, open time), as recorded
    candles = fetch(pg_url, "SELECT * FROM candles ORDER BY symbol, open_time")
    assert len(candles) == len({(d["symbol"], d["candle_time"]) for d in decisions}) == summary.snapshots
    series = job.feed.series("BTC/USDT", "1h").candles
    index = {int(t): i for i, t in enumerate(series.timestamp)}
    for c in candles:
        if c["symbol"] == "BTC/USDT":
            i = index[c["open_time"]]
            assert (c["exchange"], c["close"], c["volume"]) == ("binance", series.close[i], series.volume[i])
    # positions: exactly the paper broker's state after the last fill
    held = {r["symbol"]: r for r in fetch(pg_url, "SELECT * FROM positions WHERE quantity <> 0")}
    assert {s: r["quantity"] for s, r in held.items()} == summary.open_positions
    for symbol, row in held.items():
        assert row["average_price"] == job.broker.positions[symbol].average_price
    realized = math.fsum(f["realized_pnl"] for f in fills)
    assert scalar(pg_url, "SELECT sum(realized_pnl) FROM positions") == pytest.approx(realized, rel=1e-9)
    assert scalar(pg_url, "SELECT sum(fees) FROM positions") == pytest.approx(summary.fees_paid, rel=1e-9)
    # trades: round trips, the closed ones exactly those the eval harness derives from the same fills
    trades = fetch(pg_url, "SELECT * FROM trades ORDER BY entry_time, symbol")
    assert math.fsum(t["pnl"] for t in trades) == pytest.approx(realized, rel=1e-9)
    assert sum(t["fills"] for t in trades) == len(fills)
    last = {s: (0, 1.0) for s in ("BTC/USDT", "ETH/USDT")}
    expected = [t for t in trades_from_fills(fills, last) if t.exit_reason != "end_of_data"]
    closed = [t for t in trades if t["status"] == "closed"]
    assert len(closed) == len(expected) > 3
    for row, ref in zip(closed, expected, strict=True):
        assert (row["symbol"], row["entry_time"], row["exit_time"], row["exit_reason"]) == (
            ref.symbol, ref.entry_time, ref.exit_time, ref.exit_reason)  # fmt: skip
        assert row["entry_price"] == pytest.approx(ref.entry_price, rel=1e-12)
        assert row["exit_price"] == pytest.approx(ref.exit_price, rel=1e-12)
        assert row["pnl"] == pytest.approx(ref.pnl, rel=1e-9, abs=1e-9)
    assert sorted(t["symbol"] for t in trades if t["status"] == "open") == sorted(held)
    # performance metrics at finish, with evals/metrics.py's definitions
    metrics = {r["name"]: r for r in fetch(pg_url, "SELECT * FROM performance_metrics")}
    assert {r["time"] for r in metrics.values()} == {points[-1]["timestamp"]}
    equity = np.array([p["equity"] for p in points])
    returns = period_returns(equity)
    ppy = periods_per_year("1h")
    expect = {
        "total_return": equity[-1] / equity[0] - 1,
        "annualized_return": annualized_return(equity, ppy),
        "annualized_volatility": annualized_volatility(returns, ppy),
        "sharpe": sharpe(returns, ppy),
        "sortino": sortino(returns, ppy),
        "max_drawdown": max_drawdown(equity)[0],
        "calmar": calmar(equity, ppy),
        "win_rate": win_rate(expected),
        "profit_factor": profit_factor(expected),
        "expectancy": expectancy(expected),
        "final_equity": summary.final_equity,
        "fees_paid": summary.fees_paid,
        "number_of_trades": len(expected),
        "decisions": summary.snapshots,
        "orders": summary.orders,
        "fills": len(fills),
        "periods": len(points) - 1,
    }
    for name, value in expect.items():
        assert metrics[name]["value"] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    # agent configuration of the run, no LLM calls for the rules reasoner
    (agent,) = fetch(pg_url, "SELECT * FROM agent_configs")
    assert (agent["run_id"], agent["reasoner"]) == (RUN, "rules") and '"buy_threshold"' in agent["config"]
    assert scalar(pg_url, "SELECT count(*) FROM llm_calls") == 0
    # TimescaleDB is loaded in database `test`: candles, equity and metrics are hypertables
    names = fetch(pg_url, "SELECT hypertable_name FROM timescaledb_information.hypertables "
                          "WHERE hypertable_schema = current_schema() ORDER BY 1")  # fmt: skip
    assert [r["hypertable_name"] for r in names] == ["candles", "performance_metrics", "portfolio_snapshots"]


def _llm_call(i: int, **extra: Any) -> dict[str, Any]:
    return {"node": "strategy_fusion", "provider": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m",
            "prompt_id": "trade_intent.v1", "prompt_hash": "ph", "input_hash": f"ih{i}", "params": {"temperature": 0},
            "raw_response": '{"action": "BUY"}', "parsed": {"action": "BUY"}, "outcome": "ok", "error": None,
            "input_tokens": 100 + i, "output_tokens": 20, "cost_usd": 0.001, "latency_ms": 12.5,
            "called_at": 1_704_067_200_000 + i, "source": "live", "gating": "signal", "injection_flags": [], **extra}  # fmt: skip


def _record(run_id: str, t: int, reasoner: dict[str, Any] | None) -> DecisionRecord:
    return DecisionRecord(id=decision_id(run_id, "BTC/USDT", "1h", t), run_id=run_id, symbol="BTC/USDT",
                          timeframe="1h", candle_time=t, as_of=t + 3_600_000, outcome="hold", reason="r",
                          action="HOLD", inputs_hash="h", window_start=0, window_end=t, window_length=300,
                          reasoner=reasoner)  # fmt: skip


def test_llm_calls_are_one_row_per_call_of_the_reasoner_trace(pg_url: str) -> None:
    store = PostgresJournal(pg_url)
    try:
        store.start_run(RunInfo(run_id="r-llm", started_at=0, mode="paper",
                                config={"reasoner": "llm", "timeframe": "1h", "llm": {"model": "m", "api_key": "***"}}))  # fmt: skip
        calls = [_llm_call(0), _llm_call(1, outcome="llm_error", error="HTTP 500", parsed=None, injection_flags=["x"])]
        store.record_decision(_record("r-llm", 0, {"reasoner": "llm", "calls": calls}))
        store.record_decision(_record("r-llm", 3_600_000, {"reasoner": "llm"}))  # no calls list: nothing written
        store.record_decision(_record("r-llm", 7_200_000, None))
        for t, equity in ((0, 100.0), (3_600_000, 101.0)):
            store.record_portfolio(PortfolioPoint(run_id="r-llm", timestamp=t, cash=equity, equity=equity,
                                                  gross_exposure=0.0, drawdown=0.0, positions={}))  # fmt: skip
        store.finish_run("r-llm", "completed", {})
    finally:
        store.close()
    rows = fetch(pg_url, "SELECT * FROM llm_calls ORDER BY idx")
    assert [(r["idx"], r["outcome"], r["error"], r["input_tokens"]) for r in rows] == [
        (0, "ok", None, 100), (1, "llm_error", "HTTP 500", 101)]  # fmt: skip
    first = rows[0]
    assert first["params"] == '{"temperature": 0}' and first["parsed"] == '{"action": "BUY"}'
    assert (first["called_at"], first["source"], first["gating"], first["latency_ms"]) == (
        1_704_067_200_000, "live", "signal", 12.5)  # fmt: skip
    assert rows[1]["injection_flags"] == '["x"]' and rows[1]["parsed"] is None
    (agent,) = fetch(pg_url, "SELECT * FROM agent_configs")
    assert (agent["reasoner"], agent["model"]) == ("llm", "m")
    assert '"prompt_id": "trade_intent.v1"' in agent["prompts"]
    metrics = {r["name"]: r["value"] for r in fetch(pg_url, "SELECT name, value FROM performance_metrics")}
    assert (metrics["llm_calls"], metrics["llm_tokens"], metrics["llm_cost_usd"]) == (2, 241, 0.002)
    assert metrics["total_return"] == pytest.approx(0.01)


def _make_v1_copy(source: str, target: str) -> None:
    """``target`` becomes a v1 journal holding ``source``'s v1 tables (decision bodies without the candle)."""
    src_schema, dst_schema = source.split("search_path=")[1], target.split("search_path=")[1]

    async def build() -> None:
        conn = await asyncpg.connect(target, timeout=10, command_timeout=60)
        try:
            async with conn.transaction():
                await conn.execute(MIGRATIONS[1])
                await conn.execute("CREATE TABLE tradegraph_schema_version (version INTEGER NOT NULL)")
                await conn.execute("INSERT INTO tradegraph_schema_version VALUES (1)")
                for table in V1_TABLES:
                    columns = ", ".join(
                        r["column_name"] for r in await conn.fetch(
                            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
                            "AND table_name = $2 ORDER BY ordinal_position", dst_schema, table)
                    )  # fmt: skip
                    select = columns.replace("body", "body - 'candle'") if table == "decisions" else columns
                    await conn.execute(f"INSERT INTO {dst_schema}.{table} ({columns}) "
                                       f"SELECT {select} FROM {src_schema}.{table}")  # fmt: skip
        finally:
            await conn.close(timeout=5)

    asyncio.run(build())


def _table(url: str, table: str) -> list[dict[str, Any]]:
    rows = fetch(url, f"SELECT * FROM {table} ORDER BY {DERIVED_KEYS[table]}")
    for row in rows:
        row.pop("computed_at", None)
    return rows


def test_a_v1_journal_is_migrated_and_backfilled_like_a_live_v2_journal(
    pg_url: str, second_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    replay(pg_url, end=date(2024, 1, 8))
    _make_v1_copy(pg_url, second_schema)
    with pytest.raises(JournalError, match="schema v1; run `tradegraph db upgrade` first"):
        PostgresJournal(second_schema, read_only=True)
    assert main(["db", "upgrade", "--journal", second_schema]) == 0
    assert f"is at schema v{SCHEMA_VERSION}, TimescaleDB loaded (hypertables: candles, performance_metrics, " \
           "portfolio_snapshots)" in capsys.readouterr().out  # fmt: skip
    for table in DERIVED_KEYS:
        live, backfilled = _table(pg_url, table), _table(second_schema, table)
        assert backfilled == live and live, table
    assert fetch(second_schema, "SELECT reasoner, config FROM agent_configs") == fetch(
        pg_url, "SELECT reasoner, config FROM agent_configs")  # fmt: skip
    assert scalar(second_schema, "SELECT count(*) FROM fills WHERE run_id IS NULL") == 0
    assert scalar(second_schema, "SELECT count(*) FROM candles") == 0  # v1 bodies never held the candle
    assert main(["decisions", "--journal", second_schema, "--last", "3"]) == 0
    assert capsys.readouterr().out.count("\n") == 3


def test_two_processes_upgrading_at_once_migrate_once(pg_url: str, second_schema: str) -> None:
    replay(pg_url, end=date(2024, 1, 3))
    _make_v1_copy(pg_url, second_schema)
    schema = second_schema.split("search_path=")[1]
    expected_signals = scalar(pg_url, "SELECT count(*) FROM signals")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    async def race() -> list[subprocess.CompletedProcess[str]]:
        holder = await asyncpg.connect(PG_BASE, timeout=10, command_timeout=60)
        procs: list[subprocess.Popen[str]] = []
        try:  # both upgrades queue behind the migration lock the test holds, then go at once
            await holder.execute("SELECT pg_advisory_lock(7405981, hashtext($1))", schema)
            procs = [subprocess.Popen([sys.executable, "-m", "tradegraph", "db", "upgrade", "--journal", second_schema],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]  # fmt: skip
            waiting = 0
            for _ in range(1200):
                waiting = await holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7405981 "
                    "AND objid = hashtext($1)::oid AND NOT granted", schema)  # fmt: skip
                if waiting == 2 or any(p.poll() is not None for p in procs):
                    break
                await asyncio.sleep(0.05)
            assert waiting == 2, "both upgrades should be waiting for the migration lock within 60 s"
        finally:
            await holder.execute("SELECT pg_advisory_unlock_all()")
            await holder.close(timeout=5)
        done = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
        return done

    for result in asyncio.run(race()):
        assert result.returncode == 0, result.stderr
        assert f"is at schema v{SCHEMA_VERSION}" in result.stdout
    assert scalar(second_schema, "SELECT version FROM tradegraph_schema_version") == SCHEMA_VERSION
    assert scalar(second_schema, "SELECT count(*) FROM signals") == expected_signals > 0


@pytest.fixture
def plain_database() -> Iterator[str]:
    """A database of its own created without TimescaleDB (never touch the extension in `test`)."""
    name = f"tg_plain_{secrets.token_hex(4)}"
    try:
        pg_admin(f"CREATE DATABASE {name} TEMPLATE template0")
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {PG_BASE} ({exc})")
    try:
        yield PG_BASE.rsplit("/", 1)[0] + f"/{name}"
    finally:
        pg_admin(f"DROP DATABASE {name} WITH (FORCE)")


def test_plain_postgres_gets_plain_tables(plain_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--journal", plain_database]) == 0
    out = capsys.readouterr().out
    assert f"is at schema v{SCHEMA_VERSION}, plain PostgreSQL (no TimescaleDB" in out
    _, summary = replay(plain_database, end=date(2024, 1, 3))
    assert scalar(plain_database, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'") == 0
    assert scalar(plain_database, "SELECT count(*) FROM candles") == summary.snapshots
    assert scalar(plain_database, "SELECT count(*) FROM performance_metrics") > 10
    kinds = fetch(plain_database, "SELECT relname::text, relkind::text FROM pg_class WHERE relname IN "
                                  "('candles', 'portfolio_snapshots', 'performance_metrics') ORDER BY 1")  # fmt: skip
    assert [(r["relname"], r["relkind"]) for r in kinds] == [
        ("candles", "r"), ("performance_metrics", "r"), ("portfolio_snapshots", "r")]  # fmt: skip


def test_every_wait_is_bounded_and_a_closed_journal_stays_closed(pg_url: str) -> None:
    store = PostgresJournal(pg_url, command_timeout=2)
    schema = pg_url.split("search_path=")[1]

    async def blocked_write() -> None:
        holder = await asyncpg.connect(PG_BASE, timeout=10, command_timeout=60)
        try:
            async with holder.transaction():
                await holder.execute(f"LOCK TABLE {schema}.runs IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(JournalError, match=r"failed|did not answer"):
                    await asyncio.to_thread(store.start_run, RunInfo(run_id="r", started_at=0, mode="paper",
                                                                     config={}))  # fmt: skip
        finally:
            await holder.close(timeout=5)

    try:
        asyncio.run(blocked_write())
    finally:
        store.close()
    store.close()  # a second close is a no-op, not a hang
    with pytest.raises(JournalError, match="is closed"):
        store.latest_run()


def test_an_unclosed_journal_does_not_keep_the_interpreter_from_exiting(pg_url: str) -> None:
    code = (
        "from infra.postgres_journal import PostgresJournal\n"
        f"store = PostgresJournal({pg_url!r})\n"
        "store.latest_run()\n"
        "print('leaving without close')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "leaving without close\n"
