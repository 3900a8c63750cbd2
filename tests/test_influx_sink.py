"""The InfluxDB sink against a real server speaking the InfluxDB v2 write API (a private victoria-metrics).

Writes go through influxdb-client during real replays; values are read back with /api/v1/export, where
measurement ``ohlcv`` field ``close`` is the series ``ohlcv_close``.
"""

from __future__ import annotations

import bisect
import gzip
import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from infra.influx_settings import InfluxSettings
from infra.influx_sink import InfluxSink, order_book_points
from infra.logging_setup import configure_logging
from infra.metrics import SessionMetrics
from infra.settings import load_settings, redacted_config
from tests.conftest import read_rows
from tests.victoria import VictoriaMetrics, free_port
from tools.errors import ConfigError
from tradegraph.cli import main
from tradegraph.composition import build_replay, bundled_data_dir, open_influx_sink

FIXTURES = Path(__file__).parent / "fixtures"
DEPTH_STREAM = FIXTURES / "binance_BTC-USDT_l2stream_20240808_head3000.jsonl.gz"
SECRET_PASSWORD = "vm-pass-7f3a"
SECRET_TOKEN = "influx-token-c91e"


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path / "vm").start()
    try:
        yield server
    finally:
        server.stop()


def _candles(symbol: str, start_ms: int, end_ms: int) -> dict[int, list[float]]:
    path = bundled_data_dir() / f"binance_{symbol.replace('/', '-')}_1h.csv"
    rows = {int(r[0]): [float(x) for x in r[1:]] for r in read_rows(path)}
    return {t: v for t, v in rows.items() if start_ms <= t < end_ms}


def test_a_replay_writes_candles_and_indicators_that_read_back(
    vm: VictoriaMetrics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADEGRAPH_INFLUX_TOKEN", SECRET_TOKEN)
    monkeypatch.setenv("TRADEGRAPH_INFLUX_BUCKET", "market")
    journal = tmp_path / "j.sqlite"
    influx = f"http://trader:{SECRET_PASSWORD}@127.0.0.1:{vm.port}"
    code = main(["--log-format", "json", "--log-level", "debug", "run", "--start", "2024-01-01", "--end", "2024-01-03",
                 "--journal", str(journal), "--no-progress", "--influx", influx])  # fmt: skip
    out, err = capsys.readouterr()
    configure_logging("text", "warning")
    assert code == 0, err
    assert f"influx         288 points written, 0 failed (http://trader:***@127.0.0.1:{vm.port})" in out
    assert SECRET_PASSWORD not in out + err and SECRET_TOKEN not in out + err

    start, end = 1704067200000, 1704067200000 + 3 * 86_400_000
    for symbol in ("BTC/USDT", "ETH/USDT"):
        candles = _candles(symbol, start, end)
        assert len(candles) == 72
        for i, field in enumerate(("open", "high", "low", "close", "volume")):
            got = vm.series(f'ohlcv_{field}{{symbol="{symbol}",timeframe="1h",exchange="binance"}}')
            assert got == {t: v[i] for t, v in candles.items()}, (symbol, field)

    db = sqlite3.connect(journal)
    decided: dict[tuple[str, str], dict[int, float]] = {}
    for symbol, candle_time, body in db.execute("SELECT symbol, candle_time, body FROM decisions"):
        for name, value in json.loads(body)["indicators"].items():
            decided.setdefault((symbol, name), {})[candle_time] = value
    assert {name for _s, name in decided} >= {"rsi", "macd", "atr", "bb_upper", "ema_fast"}
    for (symbol, name), values in decided.items():
        assert vm.series(f'indicator_{name}{{symbol="{symbol}",timeframe="1h"}}') == values, (symbol, name)


def _rebuild_books(path: Path) -> Iterator[tuple[dict[str, Any], tuple[float, float, float, float]]]:
    """Rebuilds Binance's BTC/USDT book from a recorded depth snapshot and its diff stream with ccxt's own
    OrderBook and binance handler (Binance's documented sync rules); yields a copy of the book after every
    applied diff together with the exchange's own best bid/ask (bookTicker) at that update id."""
    import ccxt.pro

    ex = ccxt.pro.binance()
    book: Any = ex.order_book({}, 1000)
    pending: list[dict[str, Any]] = []
    tickers: list[tuple[int, tuple[float, float, float, float]]] = []
    synced = False
    with gzip.open(path, "rt") as f:
        for line in f:
            msg = json.loads(line.partition(" ")[2])
            if "lastUpdateId" in msg:  # the REST depth snapshot
                snapshot = ex.parse_order_book(msg, "BTC/USDT")
                snapshot["nonce"] = msg["lastUpdateId"]
                book.reset(snapshot)
                for diff in pending:  # drop diffs the snapshot covers; apply the one straddling it and later ones
                    if diff["u"] > book["nonce"] and diff["U"] - 1 <= book["nonce"]:
                        ex.handle_order_book_message(None, diff, book)
                synced = True
                continue
            data = msg["data"]
            if msg["stream"].endswith("@bookTicker"):
                bbo = (float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"]))
                tickers.append((data["u"], bbo))
            elif data.get("e") == "depthUpdate":
                if not synced:
                    pending.append(data)
                    continue
                assert data["U"] - 1 == book["nonce"], "gap in the recorded diff stream"
                ex.handle_order_book_message(None, data, book)
                i = bisect.bisect_right([u for u, _b in tickers], book["nonce"]) - 1
                copy = {"bids": [list(x) for x in book["bids"]], "asks": [list(x) for x in book["asks"]],
                        "timestamp": book["timestamp"], "nonce": book["nonce"]}  # fmt: skip
                yield copy, tickers[i][1]


def test_recorded_binance_order_books_are_written_and_read_back(vm: VictoriaMetrics) -> None:
    books = list(_rebuild_books(DEPTH_STREAM))
    assert len(books) > 250
    for book, (bid, bid_qty, ask, ask_qty) in books:  # the rebuild agrees with Binance's own best bid/ask
        assert (book["bids"][0][0], book["bids"][0][1], book["asks"][0][0], book["asks"][0][1]) == (
            bid, bid_qty, ask, ask_qty)  # fmt: skip

    settings = InfluxSettings(url=vm.url, depth_levels=5)
    metrics = SessionMetrics()
    with InfluxSink(settings, "binance", metrics) as sink:
        for book, _bbo in books:
            sink.write_order_book("BTC/USDT", book)
    assert sink.points_failed == 0 and sink.points_written == len(books) * 11

    by_time = {b["timestamp"]: b for b, _ in books}
    assert len(by_time) == len(books)
    tags = 'symbol="BTC/USDT",exchange="binance"'
    bids, asks = vm.series(f"orderbook_bid{{{tags}}}"), vm.series(f"orderbook_ask{{{tags}}}")
    assert bids == {t: b["bids"][0][0] for t, b in by_time.items()}
    assert asks == {t: b["asks"][0][0] for t, b in by_time.items()}
    spread = vm.series(f"orderbook_spread{{{tags}}}")
    depth = vm.series(f"orderbook_bid_depth{{{tags}}}")
    for t, b in by_time.items():
        assert spread[t] == pytest.approx(b["asks"][0][0] - b["bids"][0][0], rel=1e-9)
        assert depth[t] == pytest.approx(sum(q for _p, q in b["bids"][:5]), rel=1e-9)
    third_ask = vm.series(f'orderbook_price{{{tags},side="ask",level="3"}}')
    assert third_ask == {t: b["asks"][2][0] for t, b in by_time.items()}
    assert len(vm.export('orderbook_qty{side="bid"}')) == 5
    written = metrics.sink_points.labels("influx", "written")._value.get()
    assert written == len(books) * 11


def test_order_book_points_summarise_the_top_of_book() -> None:
    book = {"bids": [[99.0, 1.0], [100.0, 2.0], [98.0, 0.0]], "asks": [[102.0, 3.0], [101.0, 1.0]], "timestamp": 5}
    points = order_book_points("X/Y", book, "binance", levels=2)
    top = points[0].to_line_protocol()
    assert top.startswith("orderbook,exchange=binance,symbol=X/Y ")
    fields = dict(kv.split("=") for kv in top.split(" ")[1].split(","))
    assert float(fields["bid"]) == 100.0 and float(fields["ask"]) == 101.0  # sorted, the empty level dropped
    assert float(fields["spread"]) == 1.0 and float(fields["bid_depth"]) == 3.0 and float(fields["ask_depth"]) == 4.0
    assert float(fields["imbalance"]) == pytest.approx(-1 / 7)
    assert top.endswith(" 5") and len(points) == 5
    assert order_book_points("X/Y", {"bids": [], "asks": [], "timestamp": 5}, "binance", 2) == []
    assert order_book_points("X/Y", {"bids": [[1.0, 1.0]], "asks": []}, "binance", 2) == []  # no time: no point
    one_sided = order_book_points("X/Y", {"bids": [[1.0, 1.0]], "asks": []}, "binance", 2, fallback_time_ms=7)
    assert "spread" not in one_sided[0].to_line_protocol() and len(one_sided) == 2


def test_a_write_failure_is_logged_redacted_and_counted_and_the_run_goes_on(
    vm: VictoriaMetrics, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://trader:{SECRET_PASSWORD}@127.0.0.1:{vm.port}"
    settings = load_settings(
        journal=tmp_path / "j.sqlite", start=date(2024, 1, 1), end=date(2024, 1, 2),
        influx={"url": url, "token": SECRET_TOKEN, "max_retries": 0},
    )  # fmt: skip
    metrics = SessionMetrics()
    configure_logging("json", "info")
    sink = open_influx_sink(settings, metrics)
    assert sink is not None
    vm.stop()  # the server goes away after the start-up check: every write fails
    job = build_replay(settings, observers=[metrics, sink])
    summary = job.session.run(job.snapshots(), job.config)
    job.journal.close()
    sink.close()
    err = capsys.readouterr().err
    configure_logging("text", "warning")

    assert summary.snapshots == 96
    assert len(_decisions(tmp_path / "j.sqlite")) == 96  # the journal has every decision
    assert sink.points_written == 0 and sink.points_failed == sink.points_queued == 192
    assert metrics.sink_points.labels("influx", "failed")._value.get() == 192
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    failures = [r for r in records if r["message"].startswith("influx write of ")]
    assert failures and sum(r["points"] for r in failures) == 192
    assert all(r["level"] == "error" and r["url"] == f"http://trader:***@127.0.0.1:{vm.port}" for r in failures)
    assert "Connection refused" in failures[0]["message"]
    assert records[-1]["message"] == "influx sink closed: 0 points written, 192 failed"
    assert SECRET_PASSWORD not in err and SECRET_TOKEN not in err


def _decisions(journal: Path) -> list[tuple[str]]:
    return list(sqlite3.connect(journal).execute("SELECT id FROM decisions"))


def test_an_unreachable_influx_at_start_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    journal = tmp_path / "j.sqlite"
    code = main(["run", "--journal", str(journal), "--no-progress",
                 "--influx", f"http://trader:{SECRET_PASSWORD}@127.0.0.1:{port}"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"tradegraph: error: cannot reach InfluxDB at http://trader:***@127.0.0.1:{port}: ")
    assert "Connection refused" in err and SECRET_PASSWORD not in err
    assert not journal.exists()


def test_influx_settings_from_flat_and_nested_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(  # the same file also configures docker compose: its variables are not ours
        "TRADEGRAPH_INFLUX_ORG=from-dotenv\nTRADEGRAPH_INFLUX_BUCKET=from-dotenv\nPOSTGRES_PASSWORD=pw\n"
    )
    monkeypatch.setenv("TRADEGRAPH_INFLUX_URL", "http://influx:8086")
    monkeypatch.setenv("TRADEGRAPH_INFLUX_TOKEN", SECRET_TOKEN)
    monkeypatch.setenv("TRADEGRAPH_INFLUX_BUCKET", "from-env")
    settings = load_settings()
    assert settings.influx.url == "http://influx:8086" and settings.influx.enabled
    assert settings.influx.org == "from-dotenv" and settings.influx.bucket == "from-env"
    assert settings.influx.token is not None and settings.influx.token.get_secret_value() == SECRET_TOKEN
    assert load_settings(influx={"url": "http://cli:8086"}).influx.url == "http://cli:8086"  # CLI wins
    assert load_settings(influx={"url": "http://cli:8086"}).influx.bucket == "from-env"  # the rest is kept
    monkeypatch.setenv("TRADEGRAPH_INFLUX__DEPTH_LEVELS", "3")
    assert load_settings().influx.depth_levels == 3
    config = redacted_config(load_settings(influx={"url": f"http://u:{SECRET_PASSWORD}@h:8086/?token=abc"}))
    assert config["influx"]["token"] == "***" and config["influx"]["url"] == "http://u:***@h:8086/?token=***"
    assert SECRET_TOKEN not in json.dumps(config) and SECRET_PASSWORD not in json.dumps(config)
    monkeypatch.delenv("TRADEGRAPH_INFLUX_URL")
    monkeypatch.delenv("TRADEGRAPH_INFLUX_TOKEN")
    assert not load_settings().influx.enabled and redacted_config(load_settings())["influx"]["token"] is None
    (tmp_path / ".env").write_text("TRADEGRAPH_JURNAL=typo.sqlite\n")
    with pytest.raises(ConfigError, match="invalid setting tradegraph_jurnal"):  # our own typos still fail
        load_settings()


@pytest.mark.parametrize("url", ["ftp://h:1", "http://", "influx:8086", "http://h:99999"])
def test_a_bad_influx_url_is_one_clear_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"invalid setting influx\.url"):
        load_settings(influx={"url": url})
    code = main(["run", "--influx", url, "--no-progress", "--journal", "/nonexistent/j.sqlite"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "invalid setting influx.url" in err


def test_writes_after_close_are_counted_as_failed(vm: VictoriaMetrics, caplog: pytest.LogCaptureFixture) -> None:
    sink = InfluxSink(InfluxSettings(url=vm.url), "binance").start()
    sink.close()
    logging.getLogger("tradegraph").propagate = True
    try:
        with caplog.at_level(logging.ERROR, logger="tradegraph.influx"):
            sink.write_order_book("BTC/USDT", {"bids": [[1.0, 2.0]], "asks": [[3.0, 4.0]], "timestamp": 1})
    finally:
        logging.getLogger("tradegraph").propagate = False
    assert sink.points_failed == 3 and "the sink is not open" in caplog.text
