"""A local websocket server speaking Binance's spot stream format (raw ``/ws`` endpoint), for ccxt.pro.

Clients subscribe with ``{"method": "SUBSCRIBE", "params": [...], "id": N}`` and get ``{"result": null,
"id": N}``. Streams served:

- ``<symbol>@kline_<interval>``: ``kline`` events. ``publish_klines()`` sends, for every subscribed kline
  stream, the final event (``"x": true``) of each candle that closed since the last call and an update
  (``"x": false``) of the candle still open at the clock's ``now`` (its partial values, see market_data).
- ``<symbol>@depth`` / ``<symbol>@depth@100ms``: the recorded ``depthUpdate`` messages of the symbol, in
  recorded order from the start of the recording, sent as soon as the subscription is acknowledged (ccxt
  fetches the REST snapshot and bridges it with these by update id).
- ``<symbol>@ticker`` / ``<symbol>@miniTicker``: one ``24hrTicker`` / ``24hrMiniTicker`` event on
  subscription and on every ``publish_klines()``.

Faults: ``drop_after(n)`` aborts every connection (no close frame, as a network cut) once ``n`` more
messages have gone out; ``drop_now()`` at once; ``refuse(True)`` rejects new connections (HTTP 503).
The server runs on its own thread and event loop; every control method is safe to call from the test thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from tests.exchange_wire.binance import exchange_info
from tests.exchange_wire.market_data import Candle, RecordedMarket, fmt, timeframe_ms

MAX_WAIT_S = 30.0


class BinanceStreamServer:
    def __init__(self, market: RecordedMarket, now: Callable[[], int], depth_interval_s: float = 0.0) -> None:
        self.market = market
        self.now = now
        self.depth_interval_s = depth_interval_s
        self._bases = {s["symbol"].lower(): s["baseAsset"] for s in exchange_info()["symbols"]}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="binance-ws-server", daemon=True)
        self._server: Server | None = None
        self._subs: dict[ServerConnection, set[str]] = {}
        self._kline_sent: dict[tuple[ServerConnection, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._drop_after: int | None = None
        self._refuse = False
        self._changed = threading.Condition()
        self.sent = 0
        self.connections = 0
        self.drops = 0
        self.port = 0

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> BinanceStreamServer:
        self._thread.start()
        self._server = self._run(self._serve())
        return self

    async def _serve(self) -> Server:
        server = await serve(self._handle, "127.0.0.1", 0, process_request=self._process_request, ping_interval=None)
        self.port = server.sockets[0].getsockname()[1] if server.sockets else 0
        return server

    def stop(self) -> None:
        if self._server is not None:
            server = self._server

            async def close() -> None:
                server.close()
                await server.wait_closed()
                for task in list(self._tasks):
                    task.cancel()

            self._run(close())
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=MAX_WAIT_S)
        self._loop.close()

    def __enter__(self) -> BinanceStreamServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        # ccxt.pro binance appends "/<stream number>" and recognizes spot streams by "/stream" in the URL
        return f"ws://127.0.0.1:{self.port}/stream.binance.com/ws"

    def install(self, exchange: Any) -> Any:
        """Point a ccxt.pro binance instance's spot websocket URL at this server. Returns the exchange."""
        exchange.urls["api"]["ws"]["spot"] = self.url
        exchange.urls["api"]["ws"]["margin"] = self.url
        return exchange

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(MAX_WAIT_S)

    # --- control ------------------------------------------------------------------------------------
    @property
    def subscriptions(self) -> set[str]:
        with self._changed:
            return set().union(*self._subs.values()) if self._subs else set()

    def wait_for(self, predicate: Callable[[BinanceStreamServer], bool], timeout: float = MAX_WAIT_S) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every server event) or ``timeout`` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def wait_subscribed(self, stream: str, timeout: float = MAX_WAIT_S) -> bool:
        return self.wait_for(lambda s: stream in s.subscriptions, timeout)

    def drop_after(self, messages: int) -> None:
        self._drop_after = self.sent + messages

    def drop_now(self) -> None:
        self._run(self._drop_all())

    def refuse(self, refuse: bool = True) -> None:
        self._refuse = refuse

    def publish_klines(self) -> None:
        self._run(self._publish_klines())

    def send_raw(self, payload: Any) -> None:
        """Send a payload as is to every connection (e.g. a malformed message)."""

        async def go() -> None:
            for conn in list(self._subs):
                await self._send(conn, payload)

        self._run(go())

    # --- connection handling ------------------------------------------------------------------------
    def _process_request(self, _conn: ServerConnection, _request: HttpRequest) -> HttpResponse | None:
        if self._refuse:
            return HttpResponse(503, "Service Unavailable", Headers(), b"refused by test\n")
        return None

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    async def _handle(self, conn: ServerConnection) -> None:
        with self._changed:
            self._subs[conn] = set()
            self.connections += 1
            self._changed.notify_all()
        try:
            async for raw in conn:
                message = json.loads(raw)
                method, params, request_id = message.get("method"), message.get("params", []), message.get("id")
                await self._send(conn, {"result": None, "id": request_id})
                if method == "SUBSCRIBE":
                    for stream in params:
                        with self._changed:
                            self._subs[conn].add(stream)
                            self._changed.notify_all()
                        self._start_stream(conn, stream)
                elif method == "UNSUBSCRIBE":
                    with self._changed:
                        self._subs[conn].difference_update(params)
        except Exception:  # a dropped or closed connection ends the handler
            pass
        finally:
            with self._changed:
                self._subs.pop(conn, None)
                self._changed.notify_all()

    def _start_stream(self, conn: ServerConnection, stream: str) -> None:
        symbol, _, channel = stream.partition("@")
        if channel.startswith("depth"):
            self._spawn(self._replay_depth(conn, symbol))
        elif channel in ("ticker", "miniTicker"):
            self._spawn(self._send(conn, self._ticker(symbol, mini=channel == "miniTicker")))
        elif channel.startswith("kline_"):
            self._spawn(self._publish_kline_stream(conn, stream))

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, conn: ServerConnection, payload: Any) -> None:
        if self._drop_after is not None and self.sent >= self._drop_after:
            self._drop_after = None
            await self._drop_all()
            return
        if conn not in self._subs:
            return
        with contextlib.suppress(Exception):
            await conn.send(payload if isinstance(payload, str) else json.dumps(payload))
            self.sent += 1
            self._notify()

    async def _drop_all(self) -> None:
        for conn in list(self._subs):
            conn.transport.abort()
            self.drops += 1
            with self._changed:
                self._subs.pop(conn, None)
        self._notify()

    # --- streams ------------------------------------------------------------------------------------
    async def _replay_depth(self, conn: ServerConnection, symbol: str) -> None:
        base = self._bases.get(symbol)
        if base is None or not self.market.has_book(base):
            return
        for update in self.market.depth(base).updates:
            if conn not in self._subs:
                return
            await self._send(conn, update)
            await asyncio.sleep(self.depth_interval_s)

    async def _publish_klines(self) -> None:
        for conn, streams in list(self._subs.items()):
            for stream in list(streams):
                if "@kline_" in stream:
                    await self._publish_kline_stream(conn, stream)
                elif stream.endswith(("@ticker", "@miniTicker")):
                    symbol, _, channel = stream.partition("@")
                    await self._send(conn, self._ticker(symbol, mini=channel == "miniTicker"))

    async def _publish_kline_stream(self, conn: ServerConnection, stream: str) -> None:
        symbol, _, channel = stream.partition("@")
        interval = channel.removeprefix("kline_")
        base = self._bases.get(symbol)
        if base is None:
            return
        tf = timeframe_ms(interval)
        now = self.now()
        current = now // tf * tf
        key = (conn, stream)
        first = self._kline_sent.get(key, current)
        for candle in self.market.candles(base, interval, first, current + tf, now):
            await self._send(conn, self._kline(symbol, interval, tf, candle, now))
        self._kline_sent[key] = current

    @staticmethod
    def _kline(symbol: str, interval: str, tf: int, c: Candle, now: int) -> dict[str, Any]:
        return {
            "e": "kline",
            "E": now,
            "s": symbol.upper(),
            "k": {
                "t": c.t, "T": c.t + tf - 1, "s": symbol.upper(), "i": interval, "f": 0, "L": 0,
                "o": fmt(c.o), "c": fmt(c.c), "h": fmt(c.h), "l": fmt(c.lo), "v": fmt(c.v), "n": 0,
                "x": c.closed, "q": fmt(c.v * c.c), "V": fmt(c.v / 2), "Q": fmt(c.v * c.c / 2), "B": "0",
            },
        }  # fmt: skip

    def _ticker(self, symbol: str, mini: bool = False) -> dict[str, Any]:
        base = self._bases[symbol]
        now = self.now()
        day = self.market.candles(base, "1h", now - 24 * 3_600_000, now + 1, now)
        book = self.market.book(base, now)
        bids, asks = book.top(1) if book else ([], [])
        first, last = (day[0], day[-1]) if day else (Candle(now, 0, 0, 0, 0, 0), Candle(now, 0, 0, 0, 0, 0))
        bid = bids[0] if bids else (last.c, 0.0)
        ask = asks[0] if asks else (last.c, 0.0)
        if mini:
            return {
                "e": "24hrMiniTicker", "E": now, "s": symbol.upper(), "c": fmt(last.c), "o": fmt(first.o),
                "h": fmt(max((c.h for c in day), default=0)), "l": fmt(min((c.lo for c in day), default=0)),
                "v": fmt(sum(c.v for c in day)), "q": fmt(sum(c.v * c.c for c in day)),
            }  # fmt: skip
        return {
            "e": "24hrTicker", "E": now, "s": symbol.upper(),
            "p": fmt(last.c - first.o), "P": f"{100 * (last.c / first.o - 1) if first.o else 0:.3f}",
            "w": fmt(last.c), "x": fmt(first.o), "c": fmt(last.c), "Q": "0.00100000",
            "b": fmt(bid[0]), "B": fmt(bid[1]), "a": fmt(ask[0]), "A": fmt(ask[1]),
            "o": fmt(first.o), "h": fmt(max((c.h for c in day), default=0)), "l": fmt(min((c.lo for c in day), default=0)),
            "v": fmt(sum(c.v for c in day)), "q": fmt(sum(c.v * c.c for c in day)),
            "O": now - 24 * 3_600_000, "C": now, "F": 0, "L": 0, "n": 0,
        }  # fmt: skip
