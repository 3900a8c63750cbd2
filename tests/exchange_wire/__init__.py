"""Wire-level fakes of the exchanges ccxt talks to: tests run ccxt's real exchange classes offline.

What is real and what is fake
- Real: ccxt's exchange classes (``ccxt.binance``, ``ccxt.pro.binance``, ``coinbase``, ``kraken``), their
  request building, parsers, error mapping and ccxt.pro's websocket client and order-book sync.
- Fake, at the wire: ``Responder`` replaces the instance's ``fetch`` and answers in the exchange's own
  JSON format (markets from recorded payloads, candles and books from recorded data, see PROVENANCE.md);
  ``BinanceStreamServer`` is a real websocket server on 127.0.0.1 speaking Binance's stream format.

Quick use::

    clock = ManualClock(T_BOOK)                       # time moves only when the test moves it
    fake = FakeExchange("binance", clock, websocket=True)
    ex = fake.install(ccxt.pro.binance())             # or fake.create() / fake.create_sync()
    await ex.load_markets(); await ex.fetch_ohlcv("BTC/USDT", "1h", since=...)
    fake.responder.inject(Fault.RATE_LIMIT, times=3)  # the next 3 requests get the exchange's 429 answer
    fake.ws.drop_after(5)                             # the websocket is cut after 5 more messages
    ...
    fake.close()

``fake.factory`` has the signature of an exchange factory (``factory(exchange_id, config) -> exchange``) so
code under test that builds its own ccxt instance can be handed the fake.

Faults (``Fault``): RATE_LIMIT (the exchange's own rate-limit reply: Binance 429 + code -1003, Coinbase 429
``rate_limit_exceeded``, Kraken ``EAPI:Rate limit exceeded``), SERVER_ERROR (503 HTML), TIMEOUT (ccxt's
``RequestTimeout`` raised where the transport raises it), NETWORK_DOWN (``ExchangeNotAvailable`` async /
``NetworkError`` sync), MALFORMED (200 + HTML), TRUNCATED (200 + half of the real body). Note that ccxt
itself turns a malformed or truncated body into an empty result without raising (``fetch_ohlcv`` returns
``[]``): callers must check responses.

Adding endpoints (e.g. private order endpoints)
- ``fake.responder.route(method, path_regex, handler, host=None)``: ``handler(request) -> Reply | dict |
  list | str``; newest routes win, so a test can override a default route. ``Request`` has ``method``,
  ``host``, ``path``, ``query``, ``headers``, ``body`` and ``param(name)`` (query string, then form or JSON
  body). Return ``Reply(body, status=..., headers=...)`` for an error status: ccxt's ``handle_errors`` then
  maps the exchange's error body to its exception, exactly as against the real exchange.
- Signed requests work as they are: give the instance any ``apiKey``/``secret``; the handler sees the signed
  URL/headers (check them or ignore them).
- Per-exchange public routes live in ``binance.py``, ``coinbase.py``, ``kraken.py`` (``attach(responder,
  market, now)``); a new exchange is a new module with ``attach`` plus an entry in ``ATTACH`` and markets
  payloads under ``data/payloads``.
- ``responder.handler(method, path_regex)`` returns the handler now serving a route, to wrap it (serve the
  default answer with one candle broken, one missing, ...).
- ``responder.requests`` records every request; ``responder.count(path_regex)`` counts them.

By default ``install`` turns ccxt's client-side throttle off (``enableRateLimit = False``) so that tests
never wait in real time (Kraken's throttle alone is one second a request); pass ``throttle=True`` to keep it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ccxt
import ccxt.pro

from tests.exchange_wire import binance, coinbase, kraken
from tests.exchange_wire.clock import LaggingClock, ManualClock
from tests.exchange_wire.market_data import Book, Candle, RecordedMarket
from tests.exchange_wire.responder import Fault, Reply, Request, Responder, UnroutedRequest
from tests.exchange_wire.ws_server import BinanceStreamServer

__all__ = [
    "ATTACH",
    "EXCHANGES",
    "HOUR",
    "SYMBOLS",
    "T_BOOK",
    "BinanceStreamServer",
    "Book",
    "Candle",
    "FakeExchange",
    "Fault",
    "LaggingClock",
    "ManualClock",
    "RecordedMarket",
    "Reply",
    "Request",
    "Responder",
    "UnroutedRequest",
]

ATTACH: dict[str, Callable[[Responder, RecordedMarket, Callable[[], int]], None]] = {
    "binance": binance.attach,
    "coinbase": coinbase.attach,
    "kraken": kraken.attach,
}
EXCHANGES = tuple(ATTACH)
SYMBOLS: dict[str, dict[str, str]] = {
    "binance": {"BTC": "BTC/USDT", "ETH": "ETH/USDT", "SOL": "SOL/USDT"},
    "coinbase": {"BTC": "BTC/USDT", "ETH": "ETH/USDT", "SOL": "SOL/USDT"},
    "kraken": {"BTC": "BTC/USD", "ETH": "ETH/USDT", "SOL": "SOL/USD"},
}
"""The unified symbol each fake lists per base asset (all served from that asset's recorded candles)."""
HOUR = 3_600_000
T_BOOK = 1723161254206
"""2024-08-08T23:54:14.206Z: when the recorded BTC/USDT REST depth snapshot was taken."""

_MARKET: RecordedMarket | None = None


def shared_market() -> RecordedMarket:
    """The default recorded market, loaded once per process (it is read-only)."""
    global _MARKET
    if _MARKET is None:
        _MARKET = RecordedMarket.default()
    return _MARKET


class FakeExchange:
    """One exchange's fake: a Responder with its public routes and, for Binance, a local stream server."""

    def __init__(
        self,
        exchange_id: str,
        clock: ManualClock | LaggingClock,
        market: RecordedMarket | None = None,
        websocket: bool = False,
    ) -> None:
        if exchange_id not in ATTACH:
            raise ValueError(f"no fake for {exchange_id!r} (have {', '.join(EXCHANGES)})")
        self.exchange_id = exchange_id
        self.clock = clock
        self.market = market or shared_market()
        self.responder = Responder(exchange_id)
        ATTACH[exchange_id](self.responder, self.market, clock.now_ms)
        self.ws: BinanceStreamServer | None = None
        if websocket:
            if exchange_id != "binance":
                raise ValueError("the local stream server speaks Binance's format only")
            self.ws = BinanceStreamServer(self.market, clock.now_ms).start()
            clock.on_advance(lambda _ms: self.ws.publish_klines() if self.ws else None)
        self.instances: list[Any] = []

    def install(self, exchange: Any, throttle: bool = False) -> Any:
        self.responder.install(exchange)
        exchange.enableRateLimit = throttle
        if self.ws is not None and "ws" in exchange.urls.get("api", {}):
            self.ws.install(exchange)
        self.instances.append(exchange)
        return exchange

    def create(self, config: dict[str, Any] | None = None) -> Any:
        """A ccxt.pro instance (async REST + websockets) wired to this fake."""
        return self.install(getattr(ccxt.pro, self.exchange_id)(dict(config or {})))

    def create_sync(self, config: dict[str, Any] | None = None) -> Any:
        """A synchronous ccxt instance wired to this fake."""
        return self.install(getattr(ccxt, self.exchange_id)(dict(config or {})))

    def factory(self, exchange_id: str, config: dict[str, Any] | None = None) -> Any:
        if exchange_id != self.exchange_id:
            raise ValueError(f"this fake serves {self.exchange_id}, not {exchange_id}")
        return self.create(config)

    def close(self) -> None:
        if self.ws is not None:
            self.ws.stop()
            self.ws = None
