"""The whole graph on real recorded candles: one journaled decision per snapshot, whatever its path."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from infra.settings import load_settings
from tests.conftest import read_rows, write_rows
from tradegraph.composition import build_replay


@pytest.fixture(scope="module")
def january(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    journal = tmp_path_factory.mktemp("jan") / "journal.sqlite"
    settings = load_settings(journal=journal, start=date(2024, 1, 1), end=date(2024, 1, 31), progress=False)
    job = build_replay(settings)
    summary = job.session.run(job.snapshots(), job.config)
    job.journal.close()
    return journal, summary


def test_january_2024_journals_one_decision_per_snapshot(january: tuple[Path, object]) -> None:
    journal, summary = january
    db = sqlite3.connect(journal)
    assert db.execute("SELECT count(*) FROM decisions").fetchone()[0] == 1488 == summary.snapshots  # type: ignore[attr-defined]
    per_key = db.execute("SELECT count(*) FROM decisions GROUP BY symbol, timeframe, candle_time").fetchall()
    assert {n for (n,) in per_key} == {1}
    assert db.execute("SELECT count(DISTINCT symbol) FROM decisions").fetchone()[0] == 2
    assert db.execute("SELECT min(candle_time), max(candle_time) FROM decisions").fetchone() == (
        1704067200000,
        1706742000000,
    )
    assert db.execute("SELECT status FROM runs").fetchone()[0] == "completed"


def test_orders_exist_only_behind_an_approving_gate(january: tuple[Path, object]) -> None:
    journal, summary = january
    db = sqlite3.connect(journal)
    rows = db.execute("SELECT id, outcome, body FROM decisions").fetchall()
    outcomes = {r[1] for r in rows}
    assert {"skipped", "hold", "ordered"} <= outcomes
    ordered = 0
    for decision_id, outcome, body in rows:
        b = json.loads(body)
        if b["order"] is not None:
            ordered += 1
            assert outcome == "ordered"
            assert b["verdict"]["decision"] in ("APPROVE", "SHRINK")
            assert b["order"]["quantity"] <= b["verdict"]["proposed_quantity"] + 1e-12
            assert b["order"]["quantity"] == pytest.approx(b["verdict"]["approved_quantity"])
            decided = "SELECT count(*) FROM orders WHERE decision_id = ? AND kind IN ('entry', 'exit')"
            assert db.execute(decided, (decision_id,)).fetchone()[0] == 1
        if outcome == "skipped":
            assert b["intent"] is None and b["indicators"]
            assert set(b["node_timings_us"]) == {"validate_snapshot", "technical_analysis"}
        if outcome == "ordered":
            assert {"strategy_fusion", "risk_assessment", "risk_gate", "execute"} <= set(b["node_timings_us"])
        if outcome in ("hold", "no_order", "denied", "ordered"):
            assert b["intent"]["rationale"] and b["reasoner"]["reasoner"] == "rules"
    assert ordered == summary.orders > 0  # type: ignore[attr-defined]
    fills = db.execute("SELECT count(*) FROM fills").fetchone()[0]
    assert fills == summary.fills  # type: ignore[attr-defined]
    assert db.execute("SELECT count(*) FROM portfolio_snapshots").fetchone()[0] == 744


def test_execution_is_reachable_only_through_the_gate(tmp_path: Path) -> None:
    settings = load_settings(journal=tmp_path / "j.sqlite", start=date(2024, 1, 1), end=date(2024, 1, 1))
    job = build_replay(settings)
    drawn = job.session.graph.get_graph()
    into_execute = {e.source for e in drawn.edges if e.target == "execute"}
    assert into_execute == {"risk_gate"}
    into_end = {e.source for e in drawn.edges if e.target == "__end__"}
    assert into_end == {"journal"}
    job.journal.close()


def test_gap_and_zero_volume_snapshots_go_straight_to_the_journal(data_copy: Path, tmp_path: Path) -> None:
    path = data_copy / "binance_BTC-USDT_1h.csv"
    rows = read_rows(path)
    jan = next(i for i, r in enumerate(rows) if r[0] == "1704067200000")  # 2024-01-01T00:00
    gap_after = rows[jan + 10][0]
    del rows[jan + 11 : jan + 14]  # three candles missing after 10:00
    zero = rows[jan + 20]
    zero[1] = zero[2] = zero[3] = zero[4]
    zero[5] = "0"
    write_rows(path, rows)
    journal = tmp_path / "j.sqlite"
    settings = load_settings(data_dir=data_copy, symbols="BTC/USDT", journal=journal, start=date(2024, 1, 1),
                             end=date(2024, 1, 2))  # fmt: skip
    job = build_replay(settings)
    summary = job.session.run(job.snapshots(), job.config)
    job.journal.close()
    assert summary.snapshots == 48 - 3
    db = sqlite3.connect(journal)
    invalid = db.execute("SELECT candle_time, reason, action, body FROM decisions WHERE outcome = 'invalid'").fetchall()
    reasons = {r[1].split(":")[0]: r for r in invalid}
    assert set(reasons) == {"gap_before_candle", "zero_volume_candle"}
    assert reasons["gap_before_candle"][0] == int(gap_after) + 4 * 3_600_000
    assert "3 candles missing" in reasons["gap_before_candle"][1]
    assert reasons["zero_volume_candle"][0] == int(zero[0])
    (gap,) = job.feed.gaps_in(["BTC/USDT"], "1h", None, None)["BTC/USDT"]
    assert (gap.after, gap.missing) == (int(gap_after), 3)
    for _t, _reason, action, body in invalid:
        b = json.loads(body)
        assert action is None and b["intent"] is None and b["order"] is None and b["indicators"] == {}


def test_insufficient_history_is_journaled_not_traded(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    settings = load_settings(symbols="ETH/USDT", journal=journal, start=date(2023, 10, 1), end=date(2023, 10, 3))
    job = build_replay(settings)
    summary = job.session.run(job.snapshots(), job.config)
    job.journal.close()
    assert summary.outcomes == {"invalid": 72}
    assert summary.orders == 0


def test_a_failing_node_still_journals_its_decision_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.rules_reasoner import RulesReasoner

    original = RulesReasoner.decide
    failed: list[int] = []

    def flaky(self: RulesReasoner, inp):  # type: ignore[no-untyped-def]
        if not failed:
            failed.append(inp.candle_time)
            raise TimeoutError("reasoner timed out\nafter 30 s")
        return original(self, inp)

    monkeypatch.setattr(RulesReasoner, "decide", flaky)
    journal = tmp_path / "j.sqlite"
    settings = load_settings(journal=journal, start=date(2024, 1, 1), end=date(2024, 1, 2))
    job = build_replay(settings)
    summary = job.session.run(job.snapshots(), job.config)
    job.journal.close()
    assert summary.snapshots == 96 and summary.outcomes["error"] == 1
    db = sqlite3.connect(journal)
    assert db.execute("SELECT count(*) FROM decisions").fetchone()[0] == 96
    row = db.execute("SELECT candle_time, reason, action FROM decisions WHERE outcome = 'error'").fetchone()
    assert row == (failed[0], "TimeoutError: reasoner timed out after 30 s", None)
    assert db.execute("SELECT status FROM runs").fetchone()[0] == "completed"
