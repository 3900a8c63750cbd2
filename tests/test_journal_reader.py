"""The read-only journal queries (tools.journal_reader.JournalReader) on both stores, from a real run."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from infra.postgres_journal import PostgresJournal
from infra.settings import load_settings
from infra.sqlite_journal import SqliteJournal
from tools.errors import JournalError
from tools.journal_reader import SUMMARY_FIELDS, DecisionQuery, JournalReader
from tradegraph.composition import build_replay, open_journal_reader

FEB9 = 1707436800000
HOUR = 3_600_000


@pytest.fixture
def reader(inspect_journal: Path) -> JournalReader:
    r = open_journal_reader(str(inspect_journal))
    yield r
    r.close()


def _run_id(r: JournalReader) -> str:
    latest = r.latest_run()
    assert latest is not None
    return str(latest["run_id"])


def test_queries_match_the_journal_tables(reader: JournalReader, inspect_journal: Path) -> None:
    db = sqlite3.connect(inspect_journal)
    rid = _run_id(reader)
    assert [r["run_id"] for r in reader.list_runs()] == [rid]
    run = reader.get_run(rid)
    assert (
        run is not None and run["config"]["symbols"] == ["BTC/USDT", "ETH/USDT"] and run["summary"]["snapshots"] == 384
    )
    assert reader.get_run("no-such-run") is None
    assert reader.run_symbols(rid) == ["BTC/USDT", "ETH/USDT"]
    assert reader.time_span(rid) == (1707350400000, 1707350400000 + 191 * HOUR)

    rows = reader.find_decisions(DecisionQuery(run_id=rid))
    assert len(rows) == reader.count_decisions(DecisionQuery(run_id=rid)) == 384
    assert set(rows[0]) == set(SUMMARY_FIELDS)
    assert [r["candle_time"] for r in rows] == sorted(r["candle_time"] for r in rows)
    denied = reader.find_decisions(DecisionQuery(run_id=rid, verdict="DENY"))
    expected = db.execute("SELECT id FROM decisions WHERE outcome = 'denied' ORDER BY candle_time, rowid").fetchall()
    assert [r["id"] for r in denied] == [e[0] for e in expected] and len(denied) == 7
    assert all(r["gate_reasons"] == ["COOLDOWN_AFTER_STOP"] and r["outcome"] == "denied" for r in denied)
    shrunk = reader.find_decisions(DecisionQuery(run_id=rid, verdict="SHRINK"))
    assert len(shrunk) == 1 and shrunk[0]["gate_reasons"] == ["SHRUNK_MAX_ORDER_NOTIONAL"]

    eth_buys_feb9 = DecisionQuery(run_id=rid, symbol="ETH/USDT", action="BUY", start=FEB9, end=FEB9 + 24 * HOUR)
    got = reader.find_decisions(eth_buys_feb9)
    want = db.execute(
        "SELECT id FROM decisions WHERE symbol = 'ETH/USDT' AND action = 'BUY' AND candle_time >= ? AND candle_time < ? "
        "ORDER BY candle_time",
        (FEB9, FEB9 + 24 * HOUR),
    ).fetchall()
    assert [r["id"] for r in got] == [w[0] for w in want] and got
    page = reader.find_decisions(eth_buys_feb9.model_copy(update={"limit": 2, "offset": 1, "newest_first": True}))
    assert [r["id"] for r in page] == [r["id"] for r in reversed(got)][1:3]
    assert reader.count_decisions(DecisionQuery(run_id=rid, outcomes=("ordered", "denied"))) == 22 + 7
    assert reader.count_decisions(DecisionQuery(run_id=rid, outcomes=())) == 0
    assert all(r["close"] is None for r in reader.find_decisions(DecisionQuery(run_id=rid, outcomes=("invalid",))))
    assert reader.find_decisions(DecisionQuery(run_id="nope")) == []


def test_portfolio_fills_closes_and_orders(reader: JournalReader, inspect_journal: Path) -> None:
    db = sqlite3.connect(inspect_journal)
    rid = _run_id(reader)
    points = reader.portfolio_points(rid)
    assert len(points) == 192
    window = reader.portfolio_points(rid, FEB9, FEB9 + 3 * HOUR)
    assert [p["timestamp"] for p in window] == [FEB9, FEB9 + HOUR, FEB9 + 2 * HOUR]
    at = reader.portfolio_at(rid, FEB9 + 30 * 60_000)  # between two candle times: the earlier point
    assert at is not None and at["timestamp"] == FEB9 and at == window[0]
    assert reader.portfolio_at(rid, 0) is None

    fills = reader.fills_between(rid)
    assert len(fills) == db.execute("SELECT count(*) FROM fills").fetchone()[0] == 38
    eth = reader.fills_between(rid, FEB9, FEB9 + 24 * HOUR, "ETH/USDT")
    assert eth and all(f["symbol"] == "ETH/USDT" and FEB9 <= f["timestamp"] < FEB9 + 24 * HOUR for f in eth)

    closes = reader.closes(rid, "BTC/USDT", FEB9, FEB9 + 2 * HOUR)
    body = db.execute(
        "SELECT candle_time, json_extract(body, '$.indicators.close'), id FROM decisions WHERE symbol = 'BTC/USDT' "
        "AND candle_time IN (?, ?) ORDER BY candle_time",
        (FEB9, FEB9 + HOUR),
    ).fetchall()
    assert closes == [tuple(b) for b in body]

    placed = reader.placed_orders(rid)
    assert len(placed) == 22 and all(o["client_order_id"] == o["decision_id"] + "-o" for o in placed)
    assert all(o["kind"] in ("entry", "exit") for o in placed)
    before = reader.placed_orders(rid, FEB9)
    assert before == [o for o in placed if o["candle_time"] < FEB9]


def test_the_reader_refuses_what_is_not_a_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        open_journal_reader(str(tmp_path / "missing.sqlite"))
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with pytest.raises(JournalError, match="empty file"):
        open_journal_reader(str(empty))
    SqliteJournal(tmp_path / "fresh.sqlite").close()  # schema only, no run
    r = open_journal_reader(str(tmp_path / "fresh.sqlite"))
    try:
        assert r.latest_run() is None and r.list_runs() == [] and r.time_span("x") is None
    finally:
        r.close()


def test_postgres_answers_every_query_like_sqlite(pg_url: str, tmp_path: Path) -> None:
    common = {"start": date(2024, 2, 8), "end": date(2024, 2, 10), "progress": False}
    for journal in (pg_url, str(tmp_path / "j.sqlite")):
        job = build_replay(load_settings(journal=journal, **common), run_id="run-parity")
        job.session.run(job.snapshots(), job.config)
        job.journal.close()
    pg, lite = PostgresJournal(pg_url, read_only=True), open_journal_reader(str(tmp_path / "j.sqlite"))
    try:
        rid = "run-parity"
        queries = [
            DecisionQuery(run_id=rid),
            DecisionQuery(run_id=rid, verdict="DENY"),
            DecisionQuery(run_id=rid, verdict="APPROVE", symbol="BTC/USDT"),
            DecisionQuery(run_id=rid, action="BUY", start=FEB9, end=FEB9 + 12 * HOUR, limit=5, offset=2),
            DecisionQuery(run_id=rid, outcomes=("hold", "skipped"), newest_first=True, limit=7),
            DecisionQuery(run_id=rid, outcomes=()),
        ]
        for q in queries:
            assert pg.find_decisions(q) == lite.find_decisions(q), q
            assert pg.count_decisions(q) == lite.count_decisions(q), q
        assert pg.count_decisions(queries[1]) > 0  # the range has denials, so the verdict filter is exercised
        assert [r["run_id"] for r in pg.list_runs()] == [r["run_id"] for r in lite.list_runs()] == [rid]
        pg_config, lite_config = pg.get_run(rid)["config"], lite.get_run(rid)["config"]  # type: ignore[index]
        assert pg_config.pop("journal") != lite_config.pop("journal") and pg_config == lite_config
        assert pg.get_run("nope") is None
        assert pg.portfolio_points(rid, FEB9, FEB9 + 5 * HOUR) == lite.portfolio_points(rid, FEB9, FEB9 + 5 * HOUR)
        assert pg.portfolio_at(rid, FEB9 + 90 * 60_000) == lite.portfolio_at(rid, FEB9 + 90 * 60_000)
        assert pg.portfolio_at(rid, 0) is None

        def no_ids(rows: list[dict[str, object]]) -> list[dict[str, object]]:
            return [{k: v for k, v in r.items() if k != "id"} for r in rows]  # autoincrement ids differ

        assert no_ids(pg.fills_between(rid)) == no_ids(lite.fills_between(rid))
        assert no_ids(pg.fills_between(rid, FEB9, None, "ETH/USDT")) == no_ids(
            lite.fills_between(rid, FEB9, None, "ETH/USDT")
        )
        assert pg.closes(rid, "ETH/USDT", FEB9, FEB9 + 6 * HOUR) == lite.closes(rid, "ETH/USDT", FEB9, FEB9 + 6 * HOUR)
        assert pg.placed_orders(rid) == lite.placed_orders(rid) and pg.placed_orders(rid)
        assert pg.placed_orders(rid, FEB9) == lite.placed_orders(rid, FEB9)
        assert pg.run_symbols(rid) == lite.run_symbols(rid)
        assert pg.time_span(rid) == lite.time_span(rid) and pg.time_span("nope") is None
    finally:
        pg.close()
        lite.close()


def test_a_postgres_reader_cannot_write(pg_url: str) -> None:
    import asyncpg

    PostgresJournal(pg_url).close()  # creates the schema
    reader = PostgresJournal(pg_url, read_only=True)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            reader._call(reader._conn.execute("DELETE FROM decisions"))
        assert reader.list_runs() == []
    finally:
        reader.close()
