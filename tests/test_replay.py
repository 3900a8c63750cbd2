"""`tradegraph replay`: a journaled decision re-run on its rebuilt snapshot and portfolio, and diffed."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from evals.decision_replay import decision_diff
from infra.settings import load_settings
from tests.conftest import read_rows, write_rows
from tradegraph.cli import main
from tradegraph.composition import build_replay


@pytest.fixture
def journal_copy(inspect_journal: Path, tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    shutil.copy(inspect_journal, path)
    return path


def _ids(journal: Path, where: str) -> list[str]:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute(f"SELECT id FROM decisions WHERE {where} ORDER BY candle_time, rowid")]
    finally:
        db.close()


def test_orders_denials_and_other_decisions_reproduce(
    inspect_journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _ids(inspect_journal, "outcome IN ('ordered', 'denied')")
    ids += _ids(inspect_journal, "outcome NOT IN ('ordered', 'denied')")[::40]
    assert len(ids) > 35
    for did in ids:
        code = main(["replay", did, "--journal", str(inspect_journal)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "result     reproduces: the replayed decision is identical to the journaled one" in out
        assert "matches the recorded data" in out


def test_changed_limits_do_not_reproduce_and_show_the_diff(
    journal_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    denied = _ids(journal_copy, "outcome = 'denied'")[0]
    db = sqlite3.connect(journal_copy)
    config = json.loads(db.execute("SELECT config FROM runs").fetchone()[0])
    config["limits"]["cooldown_minutes"] = 0  # the journaled settings now say no cooldown after a stop
    db.execute("UPDATE runs SET config = ?", (json.dumps(config),))
    db.commit()
    db.close()
    code = main(["replay", denied, "--journal", str(journal_copy)])
    captured = capsys.readouterr()
    assert code == 3
    assert captured.err.strip() == f"tradegraph: error: decision {denied} does not reproduce"
    assert 'outcome: journaled "denied", replayed "ordered"' in captured.out
    assert 'verdict.decision: journaled "DENY", replayed "APPROVE"' in captured.out
    assert "order: journaled null, replayed" in captured.out


def test_changed_data_is_named_with_both_hashes(
    inspect_journal: Path, data_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    did = _ids(inspect_journal, "outcome = 'ordered' AND symbol = 'ETH/USDT'")[3]
    path = data_copy / "binance_ETH-USDT_1h.csv"
    rows = read_rows(path)
    t = int(
        sqlite3.connect(inspect_journal).execute("SELECT candle_time FROM decisions WHERE id = ?", (did,)).fetchone()[0]
    )
    i = next(k for k, r in enumerate(rows) if int(r[0]) == t - 3 * 3_600_000)
    rows[i][4] = f"{float(rows[i][4]) * 1.0001:.2f}"  # one close, three candles before the decision, moved a little
    rows[i][2] = str(max(float(rows[i][2]), float(rows[i][4])))
    write_rows(path, rows)
    code = main(["replay", did, "--journal", str(inspect_journal), "--data", str(data_copy)])
    out = capsys.readouterr().out
    assert code == 3
    assert "data       the recorded data changed: the rebuilt window (300 candles" in out
    assert "differs from the journaled one (300 candles" in out
    assert "inputs_hash: journaled" in out


def test_bad_replays_are_one_line(journal_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "d-0000000000000000", "--journal", str(journal_copy)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tradegraph: error: no decision 'd-0000000000000000' in journal {journal_copy}"
    )
    did = _ids(journal_copy, "outcome = 'ordered'")[0]
    assert main(["replay", did, "--journal", str(journal_copy), "--data", str(tmp_path / "gone")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tradegraph: error: data directory {tmp_path / 'gone'} does not exist")
    assert "(point --data at the run's recorded candles)" in err and len(err.strip().splitlines()) == 1
    db = sqlite3.connect(journal_copy)
    db.execute("UPDATE decisions SET body = json_set(body, '$.reasoner.calls', json('[{\"node\": \"strategy_fusion\"}]'))"
               " WHERE id = ?", (did,))  # fmt: skip
    db.commit()
    db.close()
    assert main(["replay", did, "--journal", str(journal_copy)]) == 3  # a rules run re-decides without any call
    assert 'reasoner.calls: journaled [{"node": "strategy_fusion"}], replayed []' in capsys.readouterr().out
    assert main(["replay", did, "--journal", str(tmp_path / "missing.sqlite")]) == 2
    capsys.readouterr()
    db = sqlite3.connect(journal_copy)
    db.execute("UPDATE runs SET config = json_set(config, '$.feed', json('{\"source\": \"ccxt\"}'))")
    db.commit()
    db.close()
    assert main(["replay", did, "--journal", str(journal_copy)]) == 2
    assert "comes from a run on live exchange data" in capsys.readouterr().err
    db = sqlite3.connect(journal_copy)
    db.execute("UPDATE runs SET mode = 'sandbox'")
    db.commit()
    assert main(["replay", did, "--journal", str(journal_copy)]) == 2
    assert "comes from a run that traded on an exchange (sandbox)" in capsys.readouterr().err
    db.execute("UPDATE decisions SET inputs_hash = '-', outcome = 'adopted', reason = 'reconciliation: found' WHERE id = ?",
               (did,))  # fmt: skip
    db.commit()
    db.close()
    assert main(["replay", did, "--journal", str(journal_copy)]) == 2
    assert "has no snapshot to re-run (outcome adopted: reconciliation: found)" in capsys.readouterr().err


def test_replay_reads_a_postgres_journal(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(journal=pg_url, start=date(2024, 2, 8), end=date(2024, 2, 9), progress=False)
    job = build_replay(settings, run_id="run-replay-pg")
    job.session.run(job.snapshots(), job.config)
    rows = job.journal.list_decisions(run_id="run-replay-pg")  # type: ignore[attr-defined]
    job.journal.close()
    ordered = [r["id"] for r in rows if r["outcome"] == "ordered"]
    assert ordered
    assert main(["replay", ordered[-1], "--journal", pg_url]) == 0
    assert "reproduces" in capsys.readouterr().out


def test_the_diff_names_every_changed_leaf() -> None:
    stored = {"outcome": "hold", "risk": {"a": 1.0, "b": [1, 2]}, "node_timings_us": {"x": 1},
              "reasoner": {"latency_ms": 5, "calls": [{"called_at": 1, "model": "m"}]}}  # fmt: skip
    same = {"outcome": "hold", "risk": {"a": 1.0, "b": [1, 2]}, "node_timings_us": {"x": 9},
            "reasoner": {"latency_ms": 7, "calls": [{"called_at": 2, "model": "m"}]}}  # fmt: skip
    assert decision_diff(stored, same) == []
    other = {"outcome": "ordered", "risk": {"a": 1.5, "b": [1, 3]}, "extra": None}
    assert decision_diff(stored, other) == [
        'outcome: journaled "hold", replayed "ordered"',
        "risk.a: journaled 1.0, replayed 1.5",
        "risk.b[1]: journaled 2, replayed 3",
        'reasoner: journaled {"calls": [{"model": "m"}]}, replayed "<missing>"',
        'extra: journaled "<missing>", replayed null',
    ]
