"""`tradegraph download-data`: the files the RecordedFeed reads, downloaded incrementally and resumably through
ccxt's real exchange classes behind the wire-level fakes (tests/exchange_wire)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tradegraph.composition as composition
from tests.exchange_wire import HOUR, FakeExchange, LaggingClock, ManualClock, shared_market
from tools.recorded_feed import RecordedFeed, load_series
from tradegraph.cli import main

T_CLOSE = 1723161600000  # 2024-08-09T00:00
JULY = 1719792000000  # 2024-07-01T00:00


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    made: list[FakeExchange] = []

    def install(exchange_id: str = "binance", start: int = T_CLOSE + 20 * 60_000, lag_ms: int = 0) -> FakeExchange:
        clock = ManualClock(start)
        f = FakeExchange(exchange_id, LaggingClock(clock, lag_ms) if lag_ms else clock)
        made.append(f)
        monkeypatch.setattr(composition, "live_clock", lambda: clock)
        monkeypatch.setattr(composition, "exchange_factory", lambda: f.factory)
        return f

    monkeypatch.setenv("TRADEGRAPH_FEED__CCXT__RETRY_BASE_DELAY_S", "0")
    yield install
    for f in made:
        f.close()


def recorded(base: str, start: int, end: int) -> np.ndarray:
    return np.array([[c.t, c.o, c.h, c.lo, c.c, c.v] for c in shared_market().recorded(base, "1h", start, end)])


def file_rows(path: Path) -> np.ndarray:
    with path.open() as handle:
        return np.array([[float(x) for x in row] for row in list(csv.reader(handle))[1:]])


def download(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["download-data", "--timeframe", "1h", "--no-progress", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_download_writes_the_files_the_recorded_feed_reads(
    fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake("binance")
    code, out, err = download(capsys, "--exchange", "binance", "--symbols", "BTC/USDT,SOL/USDT",
                              "--since", "2024-07-01", "--out", str(tmp_path))  # fmt: skip
    assert code == 0, err
    for base in ("BTC", "SOL"):
        path = tmp_path / f"binance_{base}-USDT_1h.csv"
        np.testing.assert_array_equal(file_rows(path), recorded(base, JULY, T_CLOSE))  # closed candles only
    assert "BTC/USDT 1h: 936 new, 936 in" in out and "no gaps" in out
    feed = RecordedFeed(tmp_path, "binance")  # what `run --data` does with them
    snap = feed.snapshot("SOL/USDT", "1h", T_CLOSE - HOUR)
    assert len(snap.window) == 300


def test_download_is_incremental(fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = fake("kraken")
    args = ["--exchange", "kraken", "--symbols", "ETH/USDT", "--since", "2024-08-01", "--out", str(tmp_path)]
    assert download(capsys, *args)[0] == 0
    f.clock.set(T_CLOSE + 5 * HOUR + 1000)
    code, out, _ = download(capsys, *args)
    assert code == 0 and "ETH/USDT 1h: 5 new," in out
    ohlc = [r for r in f.responder.requests if r.path == "/0/public/OHLC"]
    assert int(ohlc[-1].query["since"]) == T_CLOSE // 1000 - 3600  # resumed after the last stored candle
    path = tmp_path / "kraken_ETH-USDT_1h.csv"
    np.testing.assert_array_equal(file_rows(path), recorded("ETH", 1722470400000, T_CLOSE + 5 * HOUR))


def test_an_interrupted_download_keeps_complete_chunks_and_resumes(
    fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ccxt

    from tools import candle_download

    f = fake("coinbase")
    monkeypatch.setattr(candle_download, "CHUNK_CANDLES", 500)  # the file is rewritten every 500 candles
    route = r"/api/v3/brokerage/market/products/[^/]+/candles"
    default = f.responder.handler("GET", route)
    served: list[Any] = []

    def network_fails_after_two_pages(request: Any) -> Any:
        served.append(request)
        if len(served) > 2:  # the first chunk is two pages of Coinbase's 300 candles
            raise ccxt.ExchangeNotAvailable("coinbase GET candles")
        return default(request)

    f.responder.route("GET", route, network_fails_after_two_pages)
    args = ["--exchange", "coinbase", "--symbols", "BTC/USDT", "--since", "2024-07-01", "--out", str(tmp_path)]
    code, _, err = download(capsys, *args)
    assert code == 2 and "tradegraph: error: coinbase fetch_ohlcv BTC/USDT 1h" in err
    path = tmp_path / "coinbase_BTC-USDT_1h.csv"
    np.testing.assert_array_equal(file_rows(path), recorded("BTC", JULY, JULY + 500 * HOUR))  # the complete chunk
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written file left behind
    f.responder.route("GET", route, default)
    code, out, _ = download(capsys, *args)
    assert code == 0 and "BTC/USDT 1h: 436 new, 936 in" in out
    np.testing.assert_array_equal(file_rows(path), recorded("BTC", JULY, T_CLOSE))


def test_a_lagging_exchange_clock_keeps_its_open_candle_out(
    fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake("coinbase", start=T_CLOSE + 2500, lag_ms=5000)  # our clock is past 00:00, Coinbase's is not yet
    code, _out, _ = download(capsys, "--exchange", "coinbase", "--symbols", "SOL/USDT", "--since", "2024-08-08",
                            "--out", str(tmp_path))  # fmt: skip
    assert code == 0
    rows = file_rows(tmp_path / "coinbase_SOL-USDT_1h.csv")
    np.testing.assert_array_equal(rows, recorded("SOL", T_CLOSE - 24 * HOUR, T_CLOSE - HOUR))


def test_parquet_and_history_limits(fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake("kraken")
    code, out, _ = download(capsys, "--exchange", "kraken", "--symbols", "BTC/USD", "--since", "2024-01-01",
                            "--out", str(tmp_path), "--format", "parquet")  # fmt: skip
    assert code == 0
    series = load_series(tmp_path, "kraken", "BTC/USD", "1h")
    assert series.path.suffix == ".parquet" and len(series.candles) == 719  # Kraken serves its last 720 only
    assert "note: kraken serves BTC/USD 1h candles from 2024-07-10T01:00 only" in out


def test_invalid_data_is_not_written(fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = fake("binance")
    default = f.responder.handler("GET", r"/api/v3/klines")

    def broken(request: Any) -> Any:
        rows = default(request)
        rows[10][3] = "999999.0"  # low above high
        return rows

    f.responder.route("GET", r"/api/v3/klines", broken)
    code, _, err = download(capsys, "--exchange", "binance", "--symbols", "ETH/USDT", "--since", "2024-08-01",
                            "--out", str(tmp_path))  # fmt: skip
    assert code == 2 and "tradegraph: error: binance ETH/USDT 1h candle 2024-08-01T10:00: high" in err
    assert not (tmp_path / "binance_ETH-USDT_1h.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exchange", "nope"], "unknown exchange 'nope': not a ccxt exchange id"),
        (["--symbols", "XRP/USDT"], "XRP/USDT is not listed on binance"),
        (["--timeframe", "2d"], "binance has no 2d candles"),
        (["--since", "2024-13-01"], "invalid --since '2024-13-01'"),
        (["--since", "2030-01-01"], "--since 2030-01-01 is in the future"),
        (["--until", "2024-06-01"], "--until 2024-06-01 is before --since 2024-07-01"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(
    fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    fake("binance")
    out_dir = tmp_path / "out"
    base = {"--exchange": "binance", "--symbols": "BTC/USDT", "--since": "2024-07-01", "--out": str(out_dir)}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [x for kv in base.items() for x in kv]
    code, _, err = download(capsys, *flat)
    assert code == 2 and message in err and err.count("tradegraph: error:") == 1, err
    assert not out_dir.exists()


def test_a_corrupt_existing_file_stops_before_fetching(
    fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = fake("binance")
    path = tmp_path / "binance_BTC-USDT_1h.csv"
    path.write_text("timestamp,open,high,low,close,volume\n1719792000000,1,2,0.5,1.5,x\n")
    code, _, err = download(capsys, "--exchange", "binance", "--symbols", "BTC/USDT", "--since", "2024-07-01",
                            "--out", str(tmp_path))  # fmt: skip
    assert code == 2 and "binance_BTC-USDT_1h.csv line 2: volume is not a number" in err
    assert f.responder.count(r"/api/v3/klines") == 0
    assert path.read_text().endswith(",x\n")


def test_candles_go_into_the_postgres_journal_too(
    fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], pg_url: str
) -> None:
    import asyncio

    import asyncpg

    from infra.pg_migrations import MIGRATIONS

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    if "CREATE TABLE candles" not in " ".join(MIGRATIONS.values()):
        # this tree's journal schema predates the candles table: create it with the shape journal v2 gives it
        asyncio.run(execute(
            "CREATE TABLE candles (exchange TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL, "
            "open_time BIGINT NOT NULL, open DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL, "
            "low DOUBLE PRECISION NOT NULL, close DOUBLE PRECISION NOT NULL, volume DOUBLE PRECISION NOT NULL, "
            "PRIMARY KEY (exchange, symbol, timeframe, open_time))"))  # fmt: skip
    fake("binance")
    code, out, err = download(capsys, "--exchange", "binance", "--symbols", "BTC/USDT", "--since", "2024-08-01",
                              "--out", str(tmp_path), "--journal", pg_url)  # fmt: skip
    assert code == 0, err

    async def rows() -> list[Any]:
        conn = await asyncpg.connect(pg_url)
        try:
            return list(await conn.fetch(
                "SELECT open_time, open, high, low, close, volume FROM candles WHERE exchange = 'binance' "
                "AND symbol = 'BTC/USDT' AND timeframe = '1h' ORDER BY open_time"))  # fmt: skip
        finally:
            await conn.close()

    stored = np.array([list(r) for r in asyncio.run(rows())], dtype=float)
    np.testing.assert_array_equal(stored, recorded("BTC", 1722470400000, T_CLOSE))
    asyncio.run(execute("DELETE FROM candles WHERE open_time < 1722600000000"))  # the table lost some rows
    code, out, _ = download(capsys, "--exchange", "binance", "--symbols", "BTC/USDT", "--since", "2024-08-01",
                            "--out", str(tmp_path), "--journal", pg_url)  # fmt: skip
    assert code == 0 and "BTC/USDT 1h: 0 new" in out
    stored = np.array([list(r) for r in asyncio.run(rows())], dtype=float)
    np.testing.assert_array_equal(stored, recorded("BTC", 1722470400000, T_CLOSE))  # filled again from the file
