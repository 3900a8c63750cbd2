"""The command line as a user meets it: run, decisions, explain, and one clear line for every bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradegraph.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "j.sqlite"
    code = main(["run", "--start", "2024-03-01", "--end", "2024-03-03", "--journal", str(path), "--no-progress"])
    assert code == 0
    return path


def test_run_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "j.sqlite"
    code, out, err = run_cli(["run", "--symbols", "ETH/USDT", "--start", "2024-02-01", "--end", "2024-02-02",
                              "--journal", str(path), "--no-progress"], capsys)  # fmt: skip
    assert code == 0
    assert "PAPER TRADING" in err
    assert "snapshots      48 in" in out
    assert "data gaps      none" in out
    for label in ("decisions", "orders", "gate denials", "final equity", "pnl", "max drawdown"):
        assert label in out


def test_decisions_json_and_text(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["decisions", "--journal", str(journal), "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 144 and all("id" in r for r in rows)
    code, out, _ = run_cli(["decisions", "--journal", str(journal), "--last", "5", "--symbol", "BTC/USDT"], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 5 and all("BTC/USDT" in line for line in lines)
    assert "2024-03-03T23:00" in lines[-1]


def test_explain_shows_the_evidence_chain(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = sqlite3.connect(journal)
    ordered = db.execute("SELECT id FROM decisions WHERE outcome = 'ordered' LIMIT 1").fetchone()
    skipped = db.execute("SELECT id FROM decisions WHERE outcome = 'skipped' LIMIT 1").fetchone()
    assert ordered and skipped
    code, out, _ = run_cli(["explain", ordered[0], "--journal", str(journal)], capsys)
    assert code == 0
    for section in ("indicators:", "signals", "intent:", "risk assessment:", "gate verdict:", "orders:", "fills:"):
        assert section in out
    assert '"rsi"' in out and '"kelly_fraction"' in out and '"approved_quantity"' in out
    code, out, _ = run_cli(["explain", skipped[0], "--journal", str(journal), "--json"], capsys)
    record = json.loads(out)
    assert record["outcome"] == "skipped" and record["intent"] is None and record["indicators"]["atr"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--start", "2024-13-01"], "invalid --start '2024-13-01': expected YYYY-MM-DD"),
        (["run", "--symbols", "DOGE/USDT"], "no data for DOGE/USDT 1h"),
        (["run", "--symbols", "BTCUSDT"], "invalid setting symbols"),
        (["run", "--timeframe", "7x"], "invalid timeframe '7x'"),
        (["run", "--start", "2020-01-01", "--end", "2020-02-01"], "start 2020-01-01 is before the BTC/USDT 1h data"),
        (["run", "--start", "2024-12-30", "--end", "2025-01-05"], "end 2025-01-05 is after the BTC/USDT 1h data"),
        (["decisions", "--journal", "/tmp"], "journal /tmp is a directory"),
        (["run", "--start", "2024-02-01", "--end", "2024-01-01"], "end 2024-01-01 is before start 2024-02-01"),
        (["run", "--data", "/nonexistent/dir"], "data directory /nonexistent/dir does not exist"),
        (["run", "--config", "/nonexistent.toml"], "cannot read config file /nonexistent.toml"),
        (["run", "--reasoner", "magic"], "invalid choice: 'magic'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["explain", "d-nope", "--journal", "/nonexistent.sqlite"], "journal /nonexistent.sqlite does not exist"),
        (["decisions", "--last", "0", "--journal", "/x.sqlite"], "--last must be a positive number"),
    ],
)
def test_bad_input_gets_one_clear_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("tradegraph: error: ")
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "tradegraph.sqlite").exists()  # nothing half-written


def test_unknown_decision_and_corrupt_journal(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["explain", "d-0000", "--journal", str(journal)], capsys)
    assert code == 2 and "no decision 'd-0000'" in err
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    code, _, err = run_cli(["decisions", "--journal", str(bad)], capsys)
    assert code == 2 and "is not a usable tradegraph journal" in err and err.count("\n") == 1
    code, _, err = run_cli(["run", "--journal", str(bad), "--start", "2024-01-01", "--end", "2024-01-01"], capsys)
    assert code == 2 and "is not a usable tradegraph journal" in err
    assert bad.read_bytes() == b"this is not sqlite at all" * 100


def test_corrupt_data_file_is_rejected_before_anything_is_journaled(
    data_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = data_copy / "binance_ETH-USDT_1h.csv"
    lines = path.read_text().splitlines()
    lines[500] = lines[500].replace(",", ",-", 1)
    path.write_text("\n".join(lines) + "\n")
    journal = tmp_path / "j.sqlite"
    code, _, err = run_cli(["run", "--data", str(data_copy), "--journal", str(journal)], capsys)
    assert code == 2
    assert "binance_ETH-USDT_1h.csv line 501: non-positive price" in err
    assert not journal.exists()


def test_module_entry_point_and_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tradegraph", "run", "--end", "yesterday"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == "tradegraph: error: invalid --end 'yesterday': expected YYYY-MM-DD"


def test_a_killed_run_leaves_no_half_written_decision(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "tradegraph", "run", "--journal", str(journal), "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if journal.exists():
            try:
                with sqlite3.connect(journal) as db:
                    if db.execute("SELECT count(*) FROM decisions").fetchone()[0] >= 1000:
                        break
            except sqlite3.OperationalError:
                continue
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    db = sqlite3.connect(journal)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT status FROM runs").fetchone()[0] == "running"
    count = 0
    for decision_id, outcome, body in db.execute("SELECT id, outcome, body FROM decisions"):
        record = json.loads(body)
        count += 1
        if outcome == "ordered":
            assert record["order"]["client_order_id"] == f"{decision_id}-o"
            assert db.execute("SELECT 1 FROM orders WHERE client_order_id = ?", (f"{decision_id}-o",)).fetchone()
    assert count >= 1000
