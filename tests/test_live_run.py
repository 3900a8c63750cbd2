"""`tradegraph run --feed ccxt [--schedule]`: paper trading on live data, end to end through the CLI, against
ccxt's real exchange classes behind the wire-level fakes and a manual clock (several candle closes, no waiting)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tradegraph.composition as composition
from infra.scheduler import CandleSchedule
from tests.exchange_wire import HOUR, FakeExchange, Fault, ManualClock
from tools.errors import DataError, ExchangeTemporaryError
from tools.market import Snapshot, SnapshotUnavailable
from tradegraph.cli import main

T_CLOSE = 1723161600000  # 2024-08-09T00:00


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Install a fake exchange (chosen per test) and a manual clock into the composition root."""
    made: list[FakeExchange] = []

    def install(exchange_id: str, start: int = T_CLOSE + 2500, websocket: bool = False) -> FakeExchange:
        clock = ManualClock(start)
        fake = FakeExchange(exchange_id, clock, websocket=websocket)
        made.append(fake)
        monkeypatch.setattr(composition, "live_clock", lambda: clock)
        monkeypatch.setattr(composition, "exchange_factory", lambda: fake.factory)
        return fake

    monkeypatch.setenv("TRADEGRAPH_FEED__CCXT__RETRY_BASE_DELAY_S", "0")
    monkeypatch.setenv("TRADEGRAPH_FEED__CCXT__RECONNECT_BASE_DELAY_S", "0.01")
    monkeypatch.setenv("TRADEGRAPH_FEED__CCXT__WS_GRACE_S", "10")
    yield install
    for fake in made:
        fake.close()


def decisions(journal: Path) -> list[tuple[str, int, str, str]]:
    db = sqlite3.connect(journal)
    try:
        return db.execute("SELECT symbol, candle_time, outcome, reason FROM decisions ORDER BY rowid").fetchall()
    finally:
        db.close()


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_scheduled_paper_run_on_live_data_decides_at_every_close(
    wired: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = wired("binance", websocket=True)
    journal = tmp_path / "live.sqlite"
    code, out, err = cli(["run", "--feed", "ccxt", "--exchange", "binance", "--symbols", "BTC/USDT,ETH/USDT",
                          "--schedule", "--iterations", "4", "--journal", str(journal)], capsys)  # fmt: skip
    assert code == 0, err
    assert "PAPER TRADING" in err and "no real orders" in err
    assert "mode           PAPER (live binance data; no real orders)" in out
    rows = decisions(journal)
    keys = [(s, t) for s, t, _, _ in rows]
    closes = [T_CLOSE - HOUR + k * HOUR for k in range(4)]  # the last closed candle at start, then 3 closes
    assert keys == [(s, t) for t in closes for s in ("BTC/USDT", "ETH/USDT")]
    assert all(outcome != "error" for _, _, outcome, _ in rows)
    assert fake.clock.sleeps == [t + 2 * HOUR + 2000 for t in closes[:-1]]  # woke 2 s after each close
    db = sqlite3.connect(journal)
    run = db.execute("SELECT mode, status, config FROM runs").fetchone()
    assert run[0] == "paper" and run[1] == "completed" and '"source": "ccxt"' in run[2]


def test_a_failing_symbol_is_journaled_and_the_schedule_keeps_going(
    wired: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = wired("kraken")
    fake.responder.inject(Fault.NETWORK_DOWN, times=5, path=r"/0/public/OHLC")  # all of BTC's first attempts
    journal = tmp_path / "live.sqlite"
    code, out, err = cli(["run", "--feed", "ccxt", "--exchange", "kraken", "--symbols", "BTC/USD,SOL/USD",
                          "--schedule", "--iterations", "2", "--journal", str(journal)], capsys)  # fmt: skip
    assert code == 0, err
    rows = decisions(journal)
    assert [(s, t, o) for s, t, o, _ in rows][:2] == [("BTC/USD", T_CLOSE - HOUR, "error"),
                                                     ("SOL/USD", T_CLOSE - HOUR, rows[1][2])]  # fmt: skip
    assert "kraken fetch_ohlcv BTC/USD 1h" in rows[0][3] and "failed 5 times" in rows[0][3]
    assert rows[1][2] != "error" and len(rows) == 4
    assert rows[2][:2] == ("BTC/USD", T_CLOSE) and rows[2][2] != "error"  # the next close back-fills BTC
    assert "error=1" in out
    assert "BTC/USD: last 61," in err  # the ticker line at start
    error_id = sqlite3.connect(journal).execute("SELECT id FROM decisions WHERE outcome = 'error'").fetchone()[0]
    code, out, _ = cli(["explain", error_id, "--journal", str(journal)], capsys)
    assert code == 0 and "outcome    error: ExchangeTemporaryError: kraken fetch_ohlcv BTC/USD 1h" in out


def test_once_without_schedule_decides_the_last_closed_candle(
    wired: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = wired("coinbase", start=T_CLOSE + 20 * 60_000)
    journal = tmp_path / "live.sqlite"
    code, _, err = cli(["run", "--feed", "ccxt", "--exchange", "coinbase", "--symbols", "ETH/USDT", "--journal",
                        str(journal)], capsys)  # fmt: skip
    assert code == 0, err
    assert [(s, t) for s, t, _, _ in decisions(journal)] == [("ETH/USDT", T_CLOSE - HOUR)]
    assert fake.clock.sleeps == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exchange", "binanse"], "unknown exchange 'binanse': not a ccxt exchange id; did you mean binance"),
        (["--symbols", "BTC/EUR"], "BTC/EUR is not listed on binance"),
        (["--timeframe", "7x"], "invalid timeframe '7x'"),
        (["--timeframe", "7m"], "binance has no 7m candles (offers 1s, 1m"),
        (["--timeframe", "2w"], "binance has no 2w candles"),
        (["--symbols", "BTCUSDT"], "'BTCUSDT' is not BASE/QUOTE"),
        (["--start", "2024-01-01"], "--start applies to recorded data, not to --feed ccxt"),
        (["--iterations", "3"], "--iterations needs --schedule"),
        (["--schedule", "--iterations", "0"], "--iterations must be at least 1"),
    ],
)
def test_bad_live_input_is_one_line_and_writes_nothing(
    wired: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    wired("binance")
    journal = tmp_path / "live.sqlite"
    code, _, err = cli(["run", "--feed", "ccxt", "--journal", str(journal), *args], capsys)
    assert code == 2
    line = [x for x in err.splitlines() if x.startswith("tradegraph: error:")]
    assert len(line) == 1 and message in line[0], err
    assert not journal.exists()


def test_live_flags_without_the_live_feed_are_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["run", "--schedule"], capsys)
    assert code == 2 and "--schedule applies to live data: add --feed ccxt" in err


def test_network_down_at_start_is_one_line(wired: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = wired("binance")
    fake.responder.inject(Fault.NETWORK_DOWN, times=None)
    journal = tmp_path / "live.sqlite"
    code, _, err = cli(["run", "--feed", "ccxt", "--journal", str(journal)], capsys)
    assert code == 2 and "tradegraph: error: binance load_markets failed 5 times" in err
    assert "Traceback" not in err and not journal.exists()


class ScriptedFeed:
    """A Feed that answers from a table (for the schedule's own logic, without an exchange)."""

    exchange = "scripted"

    def __init__(self, failures: dict[tuple[str, int], Exception]) -> None:
        self.failures = failures
        self.calls: list[tuple[str, int]] = []

    def snapshot(self, symbol: str, timeframe: str, candle_time: int) -> Snapshot:
        self.calls.append((symbol, candle_time))
        if (symbol, candle_time) in self.failures:
            raise self.failures[(symbol, candle_time)]
        return Snapshot.model_construct(symbol=symbol, timeframe=timeframe, candle_time=candle_time)


def test_schedule_catches_up_after_downtime_and_turns_failures_into_journaled_reasons() -> None:
    clock = ManualClock(T_CLOSE + 2500)
    feed = ScriptedFeed({("A/B", T_CLOSE): DataError("bad candle"), ("C/D", T_CLOSE): ExchangeTemporaryError("down")})
    schedule = CandleSchedule(feed, ["A/B", "C/D"], "1h", clock, settle_delay_ms=2000, max_catch_up=2, iterations=5)
    items = []
    for item in schedule:
        items.append(item)
        if len(items) == 2:
            clock.set(T_CLOSE + 4 * HOUR + 10_000)  # asleep for four closes: only the last two are caught up
    times = sorted({i.candle_time for i in items})
    assert times == [T_CLOSE - HOUR, T_CLOSE + 2 * HOUR, T_CLOSE + 3 * HOUR, T_CLOSE + 4 * HOUR, T_CLOSE + 5 * HOUR]
    assert all(isinstance(i, Snapshot) for i in items)
    clock2 = ManualClock(T_CLOSE + HOUR + 2500)
    failing = CandleSchedule(feed, ["A/B", "C/D"], "1h", clock2, iterations=1)
    out = list(failing)
    assert isinstance(out[0], SnapshotUnavailable) and out[0].outcome == "invalid" and out[0].reason == "bad candle"
    assert isinstance(out[1], SnapshotUnavailable) and out[1].outcome == "error"
    assert out[1].reason == "ExchangeTemporaryError: down"


def test_the_schedule_rides_out_a_websocket_that_drops_mid_stream(
    wired: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = wired("binance", websocket=True)
    ws = fake.ws
    dropped: list[int] = []

    def drop_at_the_second_close(ms: int) -> None:
        if ms >= T_CLOSE + HOUR and not dropped:
            dropped.append(ms)
            ws.drop_now()  # right after the close's klines went out

    fake.clock.on_advance(drop_at_the_second_close)
    journal = tmp_path / "live.sqlite"
    code, out, err = cli(["run", "--feed", "ccxt", "--symbols", "BTC/USDT", "--schedule", "--iterations", "4",
                          "--journal", str(journal)], capsys)  # fmt: skip
    assert code == 0, err
    rows = decisions(journal)
    assert [t for _, t, _, _ in rows] == [T_CLOSE - HOUR + k * HOUR for k in range(4)]
    assert all(outcome != "error" for _, _, outcome, _ in rows)
    assert dropped and ws.drops >= 1
    assert re.search(r"BTC/USDT ohlcv (up|down) \(\d+ msgs, [1-9]\d* drops\)", out), out
