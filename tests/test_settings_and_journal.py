from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from infra.journal import DecisionRecord, decision_id
from infra.settings import load_settings, redacted_config
from infra.sqlite_journal import SqliteJournal
from tools.errors import ConfigError, JournalError


def test_precedence_cli_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "tg.toml"
    cfg.write_text('symbols = ["SOL/USDT"]\ntimeframe = "4h"\nwindow = 400\n[limits]\nmax_drawdown = 0.3\n')
    s = load_settings(cfg)
    assert (s.symbols, s.timeframe, s.window, s.limits.max_drawdown) == (["SOL/USDT"], "4h", 400, 0.3)
    monkeypatch.setenv("TRADEGRAPH_SYMBOLS", "btc/usdt, ETH/USDT")
    monkeypatch.setenv("TRADEGRAPH_LIMITS__MAX_DRAWDOWN", "0.1")
    s = load_settings(cfg)
    assert s.symbols == ["BTC/USDT", "ETH/USDT"] and s.limits.max_drawdown == 0.1 and s.timeframe == "4h"
    s = load_settings(cfg, symbols="ETH/USDT", timeframe="1h")
    assert s.symbols == ["ETH/USDT"] and s.timeframe == "1h" and s.window == 400


def test_bad_settings_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"invalid setting limits.max_drawdown"):
        load_settings(limits={"max_drawdown": 2})
    with pytest.raises(ConfigError, match=r"invalid setting nonsense"):
        load_settings(nonsense=1)
    bad = tmp_path / "bad.toml"
    bad.write_text("symbols = [")
    with pytest.raises(ConfigError, match="is not valid"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="window 100 is shorter than the 201 candles the indicators need"):
        load_settings(window=100)
    monkeypatch.setenv("TRADEGRAPH_WINDOW", "ten")
    with pytest.raises(ConfigError, match="invalid setting window"):
        load_settings()


def test_journaled_config_has_no_secrets() -> None:
    cfg = redacted_config(load_settings(start=date(2024, 1, 1)))
    assert cfg["start"] == "2024-01-01"
    assert not any(k for k in cfg if "key" in k or "password" in k)


def _record(run: str, t: int) -> DecisionRecord:
    return DecisionRecord(id=decision_id(run, "BTC/USDT", "1h", t), run_id=run, symbol="BTC/USDT", timeframe="1h",
                          candle_time=t, as_of=t + 3_600_000, outcome="skipped", reason="test", action=None,
                          inputs_hash="h", window_start=0, window_end=t, window_length=1)  # fmt: skip


def test_decision_ids_are_stable_and_keys_unique(tmp_path: Path) -> None:
    assert decision_id("r", "BTC/USDT", "1h", 1) == decision_id("r", "BTC/USDT", "1h", 1)
    assert decision_id("r", "BTC/USDT", "1h", 1) != decision_id("r", "ETH/USDT", "1h", 1)
    store = SqliteJournal(tmp_path / "j.sqlite")
    store.record_decision(_record("r", 0))
    with pytest.raises(JournalError, match="already journaled"):
        store.record_decision(_record("r", 0))
    store.record_decision(_record("r", 3_600_000))
    store.close()
    reader = SqliteJournal(tmp_path / "j.sqlite", read_only=True)
    assert [r["candle_time"] for r in reader.list_decisions()] == [0, 3_600_000]
    reader.close()


def test_uncommitted_batch_is_lost_whole_never_half(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    store = SqliteJournal(path, batch_size=3)
    for i in range(5):
        store.record_decision(_record("r", i * 3_600_000))
    # a reader sees only committed batches: 3 of 5
    assert sqlite3.connect(path).execute("SELECT count(*) FROM decisions").fetchone()[0] == 3
    store.flush()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM decisions").fetchone()[0] == 5
    store.close()


def test_schema_version_checks(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    SqliteJournal(path).close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchone()[0] == 1
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="schema v99; this tradegraph reads up to v1"):
        SqliteJournal(path)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(JournalError, match="not a tradegraph journal"):
        SqliteJournal(other)
