"""CcxtFeed against ccxt's real binance, coinbase and kraken classes, offline at the wire (tests/exchange_wire).

Times: the recorded Binance book was taken at 2024-08-08T23:54; T_CLOSE is the next 1h close (00:00).
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from tests.exchange_wire import EXCHANGES, HOUR, SYMBOLS, FakeExchange, Fault, LaggingClock, ManualClock, shared_market
from tools.ccxt_feed import CcxtFeed
from tools.ccxt_feed_config import CcxtFeedConfig
from tools.errors import ConfigError, DataError, ExchangeTemporaryError

T_CLOSE = 1723161600000


def recorded(base: str, start: int, end: int) -> np.ndarray:
    return np.array([[c.t, c.o, c.h, c.lo, c.c, c.v] for c in shared_market().recorded(base, "1h", start, end)])


def window_rows(snap: Any) -> np.ndarray:
    w = snap.window
    return np.column_stack([w.timestamp, w.open, w.high, w.low, w.close, w.volume])


def make_feed(
    fake: FakeExchange, symbols: list[str], window: int = 300, sleep: Any = None, clock: Any = None, **cfg: Any
) -> CcxtFeed:
    config = CcxtFeedConfig(**{"websocket": False, "retry_base_delay_s": 0.0, "reconnect_base_delay_s": 0.01,
                               "reconnect_max_delay_s": 0.05, **cfg})  # fmt: skip
    return CcxtFeed(
        fake.exchange_id, symbols, "1h", window, clock or fake.clock, config, factory=fake.factory, sleep=sleep
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        time.sleep(0.01)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T_CLOSE + 30 * 60_000)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
@pytest.mark.parametrize("base", ["BTC", "ETH", "SOL"])
def test_snapshots_hold_the_recorded_closed_candles_only(exchange_id: str, base: str, clock: ManualClock) -> None:
    fake = FakeExchange(exchange_id, clock)
    symbol = SYMBOLS[exchange_id][base]
    with make_feed(fake, [symbol]) as feed:
        snap = feed.snapshot(symbol, "1h", T_CLOSE - HOUR)
        with pytest.raises(DataError, match="has not closed yet"):
            feed.snapshot(symbol, "1h", T_CLOSE)  # the exchange serves it, partial; it never enters a snapshot
    np.testing.assert_array_equal(window_rows(snap), recorded(base, T_CLOSE - 300 * HOUR, T_CLOSE))
    assert snap.as_of == clock.now_ms() and snap.missing_before == 0
    if base == "SOL":
        assert snap.book is None  # no recorded SOL book: the fakes serve an empty one
    else:
        assert snap.book is not None and snap.book.bids and snap.book.best_bid < snap.book.best_ask  # type: ignore[operator]


@pytest.mark.parametrize(("exchange_id", "window", "pages"), [("binance", 2500, 3), ("coinbase", 700, 3)])
def test_rest_backfill_paginates_with_the_exchange_page_size(
    exchange_id: str, window: int, pages: int, clock: ManualClock
) -> None:
    fake = FakeExchange(exchange_id, clock)
    with make_feed(fake, ["BTC/USDT"], window=window) as feed:
        snap = feed.snapshot("BTC/USDT", "1h", T_CLOSE - HOUR)
    np.testing.assert_array_equal(window_rows(snap), recorded("BTC", T_CLOSE - window * HOUR, T_CLOSE))
    assert fake.responder.count(r".*/(klines|candles)") == pages


def test_kraken_history_is_limited_to_its_720_candle_window(clock: ManualClock) -> None:
    fake = FakeExchange("kraken", clock)
    with make_feed(fake, ["BTC/USD"], window=1000) as feed:
        snap = feed.snapshot("BTC/USD", "1h", T_CLOSE - HOUR)
    assert len(snap.window) == 719 and snap.missing_before == 0  # 720 served, the newest still open
    assert fake.responder.count(r"/0/public/OHLC") == 1


def test_later_decisions_fetch_only_the_missing_candles(clock: ManualClock) -> None:
    fake = FakeExchange("binance", clock)
    with make_feed(fake, ["BTC/USDT"]) as feed:
        feed.snapshot("BTC/USDT", "1h", T_CLOSE - HOUR)
        clock.set(T_CLOSE + 3 * HOUR + 1000)
        snap = feed.snapshot("BTC/USDT", "1h", T_CLOSE + 2 * HOUR)
    klines = [r for r in fake.responder.requests if r.path == "/api/v3/klines"]
    assert len(klines) == 2
    assert klines[1].query["startTime"] == str(T_CLOSE)
    np.testing.assert_array_equal(window_rows(snap), recorded("BTC", T_CLOSE - 297 * HOUR, T_CLOSE + 3 * HOUR))


def test_a_429_burst_is_retried_with_exponential_backoff(clock: ManualClock) -> None:
    fake = FakeExchange("binance", clock)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    with make_feed(fake, ["BTC/USDT"], sleep=sleep, retry_base_delay_s=0.5, order_book=False) as feed:
        fake.responder.inject(Fault.RATE_LIMIT, times=3, path=r"/api/v3/klines")
        snap = feed.snapshot("BTC/USDT", "1h", T_CLOSE - HOUR)
    assert len(snap.window) == 300
    assert fake.responder.count(r"/api/v3/klines") == 4
    assert len(delays) == 3 and 0.5 <= delays[0] <= 0.55
    assert all(1.8 <= b / a <= 2.2 for a, b in itertools.pairwise(delays))


def test_network_down_is_a_clear_temporary_error_and_the_feed_recovers(clock: ManualClock) -> None:
    fake = FakeExchange("coinbase", clock)
    with make_feed(fake, ["ETH/USDT"], retry_attempts=3, order_book=False) as feed:
        fake.responder.inject(Fault.NETWORK_DOWN, times=None)
        with pytest.raises(ExchangeTemporaryError, match=r"coinbase fetch_ohlcv ETH/USDT 1h .* failed 3 times"):
            feed.snapshot("ETH/USDT", "1h", T_CLOSE - HOUR)
        fake.responder.clear_faults()
        snap = feed.snapshot("ETH/USDT", "1h", T_CLOSE - HOUR)
    np.testing.assert_array_equal(window_rows(snap), recorded("ETH", T_CLOSE - 300 * HOUR, T_CLOSE))


@pytest.mark.parametrize("fault", [Fault.MALFORMED, Fault.TRUNCATED, Fault.SERVER_ERROR, Fault.TIMEOUT])
def test_bad_bodies_are_retried_never_parsed(fault: Fault, clock: ManualClock) -> None:
    fake = FakeExchange("kraken", clock)
    with make_feed(fake, ["SOL/USD"]) as feed:
        fake.responder.inject(fault, times=2, path=r"/0/public/OHLC")
        snap = feed.snapshot("SOL/USD", "1h", T_CLOSE - HOUR)
    np.testing.assert_array_equal(window_rows(snap), recorded("SOL", T_CLOSE - 300 * HOUR, T_CLOSE))
    assert fake.responder.count(r"/0/public/OHLC") == 3


def test_invalid_candles_fail_the_recorded_feed_validation_and_are_not_kept(clock: ManualClock) -> None:
    fake = FakeExchange("binance", clock)
    bad_time = T_CLOSE - 7 * HOUR

    def broken_klines(request: Any) -> Any:
        rows = default(request)
        for row in rows:
            if row[0] == bad_time:
                row[2] = "1.0"  # high below low
        return rows

    with make_feed(fake, ["BTC/USDT"]) as feed:
        default = fake.responder.handler("GET", r"/api/v3/klines")  # the default handler, to wrap
        fake.responder.route("GET", r"/api/v3/klines", broken_klines)
        with pytest.raises(DataError, match=r"binance BTC/USDT 1h candle 2024-08-08T17:00: high 1.0 < low"):
            feed.snapshot("BTC/USDT", "1h", T_CLOSE - HOUR)
        fake.responder.route("GET", r"/api/v3/klines", default)
        snap = feed.snapshot("BTC/USDT", "1h", T_CLOSE - HOUR)
    np.testing.assert_array_equal(window_rows(snap), recorded("BTC", T_CLOSE - 300 * HOUR, T_CLOSE))


def test_a_candle_the_exchange_does_not_have_is_a_reported_gap_never_filled(clock: ManualClock) -> None:
    fake = FakeExchange("binance", clock)
    missing = T_CLOSE - 2 * HOUR

    with make_feed(fake, ["BTC/USDT"]) as feed:
        default = fake.responder.handler("GET", r"/api/v3/klines")
        fake.responder.route("GET", r"/api/v3/klines", lambda r: [row for row in default(r) if row[0] != missing])
        snap = feed.snapshot("BTC/USDT", "1h", T_CLOSE - HOUR)
        assert snap.missing_before == 1 and missing not in snap.window.timestamp
        clock.set(T_CLOSE + HOUR + 1000)
        later = feed.snapshot("BTC/USDT", "1h", T_CLOSE)
    assert later.missing_before == 0 and missing not in later.window.timestamp
    assert [r.query["startTime"] for r in fake.responder.requests if r.path == "/api/v3/klines"][1] == str(T_CLOSE)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_a_lagging_exchange_clock_never_lets_its_open_candle_in(exchange_id: str) -> None:
    clock = ManualClock(T_CLOSE + 2500)
    fake = FakeExchange(exchange_id, LaggingClock(clock, 5000))
    symbol = SYMBOLS[exchange_id]["ETH"]
    with make_feed(fake, [symbol], order_book=False, clock=clock) as feed:
        assert 4000 <= feed.lag_ms <= 6000
        with pytest.raises(DataError, match="has not closed yet"):  # by our clock it has: by the exchange's not
            feed.snapshot(symbol, "1h", T_CLOSE - HOUR)
        clock.advance(10_000)
        snap = feed.snapshot(symbol, "1h", T_CLOSE - HOUR)
    np.testing.assert_array_equal(window_rows(snap), recorded("ETH", T_CLOSE - 300 * HOUR, T_CLOSE))


def test_unknown_exchange_unlisted_symbol_and_unoffered_timeframe_are_one_line_errors(clock: ManualClock) -> None:
    fake = FakeExchange("kraken", clock)
    config = CcxtFeedConfig(websocket=False)
    with pytest.raises(ConfigError, match=r"unknown exchange 'krakken': not a ccxt exchange id; did you mean kraken"):
        CcxtFeed("krakken", ["BTC/USD"], "1h", 300, clock, config, factory=fake.factory)
    with pytest.raises(ConfigError, match=r"DOGE/USD is not listed on kraken"):
        CcxtFeed("kraken", ["BTC/USD", "DOGE/USD"], "1h", 300, clock, config, factory=fake.factory)
    with pytest.raises(ConfigError, match=r"BTC/USDC is not listed on kraken \(similar: BTC/USD"):
        CcxtFeed("kraken", ["BTC/USDC"], "1h", 300, clock, config, factory=fake.factory)
    with pytest.raises(ConfigError, match=r"kraken has no 2h candles \(offers 1m, 5m"):
        CcxtFeed("kraken", ["BTC/USD"], "2h", 300, clock, config, factory=fake.factory)
    fake.responder.inject(Fault.NETWORK_DOWN, times=None)
    with pytest.raises(ExchangeTemporaryError, match="kraken load_markets failed"):
        CcxtFeed("kraken", ["BTC/USD"], "1h", 300, clock, config.model_copy(update={"retry_base_delay_s": 0}),
                 factory=fake.factory)  # fmt: skip


def test_closing_leaves_no_unclosed_sessions(clock: ManualClock, capfd: pytest.CaptureFixture[str]) -> None:
    fake = FakeExchange("binance", clock)
    feed = make_feed(fake, ["BTC/USDT", "ETH/USDT"])
    feed.snapshot("ETH/USDT", "1h", T_CLOSE - HOUR)
    feed.close()
    del feed
    gc.collect()
    err = capfd.readouterr().err
    assert "Unclosed" not in err and "requires to release all resources" not in err


# --- websockets (Binance's stream format on a local server) ----------------------------------------------


@pytest.fixture
def streamed() -> Iterator[tuple[ManualClock, FakeExchange, CcxtFeed]]:
    clock = ManualClock(T_CLOSE + 2000)
    fake = FakeExchange("binance", clock, websocket=True)
    feed = make_feed(fake, ["BTC/USDT"], websocket=True, ws_grace_s=20)
    yield clock, fake, feed
    feed.close()
    fake.close()


def stream_up(feed: CcxtFeed, kind: str = "ohlcv") -> bool:
    return feed.stream_states()["BTC/USDT"][kind].connected


def test_closed_candles_come_from_the_stream_once_it_runs(streamed: tuple[ManualClock, FakeExchange, CcxtFeed]) -> None:
    clock, fake, feed = streamed
    feed.snapshot("BTC/USDT", "1h", T_CLOSE - HOUR)  # the first window comes from REST
    wait_until(lambda: stream_up(feed))
    clock.set(T_CLOSE + HOUR + 2000)  # the server sends 00:00's final kline and 01:00's first update
    snap = feed.snapshot("BTC/USDT", "1h", T_CLOSE)
    assert fake.responder.count(r"/api/v3/klines") == 1  # 00:00 came from the stream, not from REST
    np.testing.assert_array_equal(window_rows(snap)[-1], recorded("BTC", T_CLOSE, T_CLOSE + HOUR)[0])
    assert T_CLOSE + HOUR not in snap.window.timestamp  # the open candle is streamed too, never used


def test_a_candle_whose_close_was_missed_during_a_drop_comes_from_rest(
    streamed: tuple[ManualClock, FakeExchange, CcxtFeed],
) -> None:
    clock, fake, feed = streamed
    assert fake.ws is not None
    ws = fake.ws
    feed.snapshot("BTC/USDT", "1h", T_CLOSE - HOUR)
    wait_until(lambda: stream_up(feed))
    clock.set(T_CLOSE + HOUR + 2000)
    feed.snapshot("BTC/USDT", "1h", T_CLOSE)  # the stream now holds 01:00 as a partial candle
    ws.refuse(True)
    ws.drop_now()  # cut mid-stream; reconnects are refused for a while
    wait_until(lambda: not stream_up(feed) and feed.stream_states()["BTC/USDT"]["ohlcv"].errors >= 2)
    clock.set(T_CLOSE + 2 * HOUR + 2000)  # 01:00 closes while the stream is down
    ws.refuse(False)
    wait_until(lambda: stream_up(feed))
    snap = feed.snapshot("BTC/USDT", "1h", T_CLOSE + HOUR)
    np.testing.assert_array_equal(window_rows(snap)[-1], recorded("BTC", T_CLOSE + HOUR, T_CLOSE + 2 * HOUR)[0])
    assert fake.responder.count(r"/api/v3/klines") == 2  # the missed close was back-filled by REST
    assert ws.drops >= 1 and feed.stream_states()["BTC/USDT"]["ohlcv"].errors >= 1


def test_the_streamed_book_is_used_when_it_moved_after_the_close(
    streamed: tuple[ManualClock, FakeExchange, CcxtFeed],
) -> None:
    _clock, fake, feed = streamed
    wait_until(lambda: stream_up(feed, "book"))
    snap = feed.snapshot("BTC/USDT", "1h", T_CLOSE - HOUR)
    assert snap.book is not None
    assert fake.responder.count(r"/api/v3/depth") == 1  # the stream's own REST snapshot (ccxt.pro's sync)
    ticker = feed.ticker("BTC/USDT")
    assert ticker.last is not None and ticker.last > 0


def test_a_malformed_stream_message_does_not_stop_the_feed() -> None:
    """A malformed frame ends ccxt.pro's receive loop silently; the stall watchdog reconnects."""
    clock = ManualClock(T_CLOSE + 2000)
    fake = FakeExchange("binance", clock, websocket=True)
    assert fake.ws is not None
    ws = fake.ws
    with make_feed(fake, ["BTC/USDT"], websocket=True, order_book=False, stream_stall_s=1.0, ws_grace_s=20) as feed:
        wait_until(lambda: stream_up(feed))
        before = ws.connections
        ws.send_raw('{"e": "kline", "E": 1, "s": "BTCUSDT", "k": {"t": "garbage"')
        wait_until(lambda: feed.stream_states()["BTC/USDT"]["ohlcv"].errors >= 1)
        wait_until(lambda: stream_up(feed) and ws.connections > before)
        clock.set(T_CLOSE + HOUR + 2000)
        snap = feed.snapshot("BTC/USDT", "1h", T_CLOSE)
    fake.close()
    np.testing.assert_array_equal(window_rows(snap)[-1], recorded("BTC", T_CLOSE, T_CLOSE + HOUR)[0])
    assert "stalled" in feed.stream_states()["BTC/USDT"]["ohlcv"].last_error
