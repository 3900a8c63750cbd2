"""The PostgreSQL journal against the machine's real server (database `test`), each test in its own schema.

Locally the tests skip when no server answers; with TRADEGRAPH_REQUIRE_SERVICES=1 (set by .ci/run) a missing
server fails them.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from infra.journal import DecisionRecord, decision_id
from infra.pg_migrations import SCHEMA_VERSION
from infra.postgres_journal import PostgresJournal
from infra.settings import load_settings
from tests.services import pg_admin
from tools.errors import JournalError
from tradegraph.cli import main
from tradegraph.composition import build_replay


def test_a_run_journals_to_postgres_like_sqlite(pg_url: str, tmp_path: Path) -> None:
    settings = load_settings(journal=pg_url, start=date(2024, 1, 1), end=date(2024, 1, 3), progress=False)
    job = build_replay(settings, run_id="run-pg")
    pg_summary = job.session.run(job.snapshots(), job.config)
    job.journal.close()
    lite = load_settings(journal=str(tmp_path / "j.sqlite"), start=date(2024, 1, 1), end=date(2024, 1, 3))
    job = build_replay(lite, run_id="run-pg")
    lite_summary = job.session.run(job.snapshots(), job.config)
    job.journal.close()
    assert pg_summary.snapshots == lite_summary.snapshots == 144
    assert pg_summary.outcomes == lite_summary.outcomes and pg_summary.final_equity == lite_summary.final_equity
    store = PostgresJournal(pg_url, read_only=True)
    db = sqlite3.connect(tmp_path / "j.sqlite")
    try:
        assert [r["id"] for r in store.list_decisions()] == [
            r[0] for r in db.execute("SELECT id FROM decisions ORDER BY candle_time, rowid")
        ]
        assert len(store.run_fills("run-pg")) == db.execute("SELECT count(*) FROM fills").fetchone()[0]
        assert len(store.portfolio_points("run-pg")) == 72
        ordered = next(d for d in store.run_decisions("run-pg") if d["outcome"] == "ordered")
        full = store.get_decision(ordered["id"])
        assert full is not None and full["orders"] and full["verdict"]["decision"] in ("APPROVE", "SHRINK")
        assert store.latest_run()["status"] == "completed"  # type: ignore[index]
    finally:
        store.close()


def test_cli_reads_postgres_and_upgrades_idempotently(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--journal", pg_url]) == 0
    assert main(["db", "upgrade", "--journal", pg_url]) == 0
    out = capsys.readouterr().out
    assert out.count(f"is at schema v{SCHEMA_VERSION}, TimescaleDB loaded") == 2
    assert main(["run", "--symbols", "ETH/USDT", "--start", "2024-02-01", "--end", "2024-02-01", "--journal", pg_url,
                 "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["decisions", "--journal", pg_url, "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 24
    assert main(["explain", rows[-1]["id"], "--journal", pg_url]) == 0
    assert "indicators:" in capsys.readouterr().out


def test_duplicate_keys_and_newer_schema_are_refused(pg_url: str) -> None:

    store = PostgresJournal(pg_url)
    rec = DecisionRecord(id=decision_id("r", "BTC/USDT", "1h", 0), run_id="r", symbol="BTC/USDT", timeframe="1h",
                         candle_time=0, as_of=3_600_000, outcome="skipped", reason="t", action=None, inputs_hash="h",
                         window_start=0, window_end=0, window_length=1)  # fmt: skip
    store.record_decision(rec)
    store.flush()
    store.record_decision(rec)
    with pytest.raises(JournalError, match="duplicate"):
        store.flush()
    store.close()
    schema = pg_url.split("search_path=")[1]
    pg_admin(f"UPDATE {schema}.tradegraph_schema_version SET version = 42")
    with pytest.raises(JournalError, match=f"schema v42; this tradegraph reads up to v{SCHEMA_VERSION}"):
        PostgresJournal(pg_url)


def test_unreachable_server_is_one_line_with_the_password_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["decisions", "--journal", "postgresql://trader:hunter2@127.0.0.1:1/nowhere"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "cannot connect to the journal at postgresql://trader:***@127.0.0.1:1/nowhere" in err
    assert "hunter2" not in err
