"""The wire-level exchange fakes themselves: ccxt's real classes load the recorded markets, parse the served
candles and books back to the recorded values, map injected faults to ccxt's exception types, and ccxt.pro
syncs its order book from the local Binance stream server exactly as the recording rebuilds it."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest

from tests.exchange_wire import EXCHANGES, HOUR, SYMBOLS, T_BOOK, FakeExchange, Fault, ManualClock, Reply, shared_market
from tests.exchange_wire.responder import UnroutedRequest

T_CLOSE = 1723161600000  # 2024-08-09T00:00, the first 1h close after the recorded book
SAMPLE = Path(__file__).parents[1] / "tradegraph" / "sample_data"


def recorded_rows(base: str, start: int, end: int) -> list[list[float]]:
    path = (
        SAMPLE / f"binance_{base}-USDT_1h.csv"
        if base != "SOL"
        else Path(__file__).parent / "exchange_wire" / "data" / "binance_SOL-USDT_1h.csv"
    )
    with path.open() as handle:
        rows = [[float(x) for x in r] for r in list(csv.reader(handle))[1:]]
    return [r for r in rows if start <= r[0] < end]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T_CLOSE + 20 * 60_000)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with(fake: FakeExchange, body: Any) -> Any:
    ex = fake.create()
    try:
        await ex.load_markets()
        return await body(ex)
    finally:
        await ex.close()


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_markets_load_from_the_recorded_payloads(exchange_id: str, clock: ManualClock) -> None:
    fake = FakeExchange(exchange_id, clock)

    async def body(ex: Any) -> Any:
        return ex.markets

    markets = run(_with(fake, body))
    for symbol in SYMBOLS[exchange_id].values():
        assert markets[symbol]["spot"] and markets[symbol]["active"]
    assert "DOGE/USDT" not in markets


@pytest.mark.parametrize("exchange_id", EXCHANGES)
@pytest.mark.parametrize("base", ["BTC", "ETH", "SOL"])
def test_ohlcv_parses_back_to_the_recorded_candles(exchange_id: str, base: str, clock: ManualClock) -> None:
    fake = FakeExchange(exchange_id, clock)
    symbol = SYMBOLS[exchange_id][base]
    since = T_CLOSE - 48 * HOUR

    async def body(ex: Any) -> Any:
        return await ex.fetch_ohlcv(symbol, "1h", since=since, limit=100)

    candles = run(_with(fake, body))
    closed = [c for c in candles if c[0] + HOUR <= clock.now_ms()]
    assert [list(map(float, c)) for c in closed] == recorded_rows(base, since, T_CLOSE)
    # the candle still open at "now" is served too, with partial values, as exchanges do
    assert candles[-1][0] == T_CLOSE
    final = recorded_rows(base, T_CLOSE, T_CLOSE + HOUR)[0]
    assert candles[-1][5] < final[5]


def test_kraken_serves_only_the_latest_720_candles(clock: ManualClock) -> None:
    fake = FakeExchange("kraken", clock)

    async def body(ex: Any) -> Any:
        return await ex.fetch_ohlcv("BTC/USD", "1h", since=T_CLOSE - 2000 * HOUR)

    candles = run(_with(fake, body))
    assert len(candles) == 720
    assert candles[0][0] == T_CLOSE - 719 * HOUR


def test_coinbase_rejects_more_than_350_candles(clock: ManualClock) -> None:
    fake = FakeExchange("coinbase", clock)

    async def body(ex: Any) -> Any:
        return await ex.fetch_ohlcv("BTC/USDT", "1h", since=T_CLOSE - 500 * HOUR, params={"until": T_CLOSE})

    with pytest.raises(ccxt.BadRequest):
        run(_with(fake, body))


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_order_book_and_ticker_come_from_the_recorded_depth(exchange_id: str) -> None:
    clock = ManualClock(T_BOOK)
    fake = FakeExchange(exchange_id, clock)
    symbol = SYMBOLS[exchange_id]["BTC"]

    async def body(ex: Any) -> Any:
        return await ex.fetch_order_book(symbol, 20), await ex.fetch_ticker(symbol)

    book, ticker = run(_with(fake, body))
    snapshot = shared_market().depth("BTC").snapshot
    assert [b[:2] for b in book["bids"][:20]] == [[float(p), float(q)] for p, q in snapshot["bids"][:20]]
    assert [a[:2] for a in book["asks"][:20]] == [[float(p), float(q)] for p, q in snapshot["asks"][:20]]
    assert ticker["bid"] == float(snapshot["bids"][0][0]) and ticker["ask"] == float(snapshot["asks"][0][0])


@pytest.mark.parametrize(
    ("exchange_id", "fault", "error"),
    [
        ("binance", Fault.RATE_LIMIT, ccxt.DDoSProtection),  # code -1003 is mapped by ccxt's binance
        ("coinbase", Fault.RATE_LIMIT, ccxt.RateLimitExceeded),
        ("kraken", Fault.RATE_LIMIT, ccxt.DDoSProtection),  # "EAPI:Rate limit exceeded" in a 200 body
        ("binance", Fault.SERVER_ERROR, ccxt.ExchangeNotAvailable),
        ("kraken", Fault.TIMEOUT, ccxt.RequestTimeout),
        ("coinbase", Fault.NETWORK_DOWN, ccxt.ExchangeNotAvailable),
    ],
)
def test_faults_raise_the_exception_ccxt_raises_for_them(
    exchange_id: str, fault: Fault, error: type, clock: ManualClock
) -> None:
    fake = FakeExchange(exchange_id, clock)
    symbol = SYMBOLS[exchange_id]["BTC"]

    async def body(ex: Any) -> Any:
        fake.responder.inject(fault, times=2)
        for _ in range(2):
            with pytest.raises(error):
                await ex.fetch_ohlcv(symbol, "1h", since=T_CLOSE - 10 * HOUR)
        return await ex.fetch_ohlcv(symbol, "1h", since=T_CLOSE - 10 * HOUR)

    assert len(run(_with(fake, body))) == 11  # the burst is over: the third request is served
    assert issubclass(error, ccxt.NetworkError)  # every one of them is a temporary error to retry


@pytest.mark.parametrize("fault", [Fault.MALFORMED, Fault.TRUNCATED])
def test_ccxt_turns_malformed_bodies_into_empty_results(fault: Fault, clock: ManualClock) -> None:
    """Why callers must check: ccxt raises nothing for a non-JSON or cut body."""
    fake = FakeExchange("binance", clock)

    async def body(ex: Any) -> Any:
        fake.responder.inject(fault, path=r"/api/v3/klines")
        return await ex.fetch_ohlcv("BTC/USDT", "1h", since=T_CLOSE - 10 * HOUR), ex.last_http_response

    candles, raw = run(_with(fake, body))
    assert candles == []
    assert raw.startswith("<html>") if fault is Fault.MALFORMED else raw.startswith("[[")


def test_sync_ccxt_uses_the_same_responder(clock: ManualClock) -> None:
    fake = FakeExchange("binance", clock)
    ex = fake.create_sync()
    assert ex.fetch_ticker("BTC/USDT")["last"] > 0
    fake.responder.inject(Fault.NETWORK_DOWN)
    with pytest.raises(ccxt.NetworkError):
        ex.fetch_ticker("BTC/USDT")
    fake.responder.inject(Fault.RATE_LIMIT)
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_ticker("BTC/USDT")


def test_routes_are_extensible_and_unrouted_requests_fail_loudly(clock: ManualClock) -> None:
    fake = FakeExchange("binance", clock)
    ex = fake.create_sync({"apiKey": "k", "secret": "s"})
    seen = []

    def order(request: Any) -> Reply:
        seen.append(
            (request.param("symbol"), request.param("newClientOrderId"), request.param("signature") is not None)
        )
        return Reply({"code": -2010, "msg": "Account has insufficient balance for requested action."}, status=400)

    fake.responder.route("POST", r"/api/v3/order", order)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order("BTC/USDT", "market", "buy", 0.001, params={"newClientOrderId": "tg-1"})
    assert seen == [("BTCUSDT", "tg-1", True)]
    with pytest.raises(UnroutedRequest):
        ex.fetch_open_orders("BTC/USDT")


@pytest.fixture
def stream() -> Iterator[tuple[ManualClock, FakeExchange]]:
    clock = ManualClock(T_BOOK)
    fake = FakeExchange("binance", clock, websocket=True)
    yield clock, fake
    fake.close()


def test_ccxt_pro_syncs_the_recorded_depth_stream(stream: tuple[ManualClock, FakeExchange]) -> None:
    _clock, fake = stream
    recording = shared_market().depth("BTC")
    final_id = recording.updates[-1]["u"]

    async def body(ex: Any) -> Any:
        book = await ex.watch_order_book("BTC/USDT")
        while book["nonce"] < final_id:
            book = await asyncio.wait_for(ex.watch_order_book("BTC/USDT"), 30)
        return book

    book = run(_with(fake, body))
    reference = shared_market().book("BTC", 2**62)
    assert reference is not None
    bids, asks = reference.top(50)
    assert [tuple(b[:2]) for b in book["bids"][:50]] == bids
    assert [tuple(a[:2]) for a in book["asks"][:50]] == asks


def test_kline_stream_and_a_dropped_connection(stream: tuple[ManualClock, FakeExchange]) -> None:
    """ccxt.pro wakes a watcher on the next message only; with newUpdates off it returns its whole cache."""
    clock, fake = stream
    assert fake.ws is not None
    ws = fake.ws
    clock.set(T_CLOSE + 10 * 60_000)

    async def watch_until(ex: Any, open_time: int) -> list[list[float]]:
        candles = await asyncio.wait_for(ex.watch_ohlcv("BTC/USDT", "1h"), 30)
        while candles[-1][0] < open_time:
            ws.publish_klines()  # the exchange sends the open candle's update every second or two
            candles = await asyncio.wait_for(ex.watch_ohlcv("BTC/USDT", "1h"), 30)
        return [list(c) for c in candles]

    async def body(ex: Any) -> Any:
        first = await watch_until(ex, T_CLOSE)
        clock.set(T_CLOSE + HOUR + 60_000)  # the clock listener publishes the final 00:00 candle and 01:00's update
        later = await watch_until(ex, T_CLOSE + HOUR)
        ws.drop_now()
        with pytest.raises(ccxt.NetworkError):
            for _ in range(5):
                await asyncio.wait_for(ex.watch_ohlcv("BTC/USDT", "1h"), 30)
        again = await watch_until(ex, T_CLOSE + HOUR)
        return first, later, again

    ex_config = {"newUpdates": False}
    ex = fake.create(ex_config)

    async def main() -> Any:
        try:
            await ex.load_markets()
            return await body(ex)
        finally:
            await ex.close()

    first, later, again = run(main())
    final = recorded_rows("BTC", T_CLOSE, T_CLOSE + HOUR)[0]
    assert first[-1][0] == T_CLOSE and first[-1][5] < final[5]  # the open candle, partial
    assert [float(x) for x in later[-2]] == final and later[-1][0] == T_CLOSE + HOUR  # its final values, then the next
    assert again[-1][0] == T_CLOSE + HOUR
    assert ws.connections == 2 and ws.drops == 1
