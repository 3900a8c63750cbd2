"""CcxtFeed: live snapshots from an exchange through ccxt (REST back-fill, ccxt.pro websockets).

Per symbol the feed keeps a local store of closed, validated candles:

- websockets (``watch_ohlcv``, when the exchange has it): a streamed candle is taken as closed only once the
  stream has moved on to a later candle and the clock is past its close; the candle still open never
  enters the store. After a dropped connection the stream's cache is cleared (a candle whose final update
  was missed is never taken) and the watcher reconnects with exponential backoff.
- REST (``fetch_ohlcv``, paginated): before every decision the window's missing candles are back-filled.
  A candle the exchange does not have (it returned later ones) is a real gap: reported in the snapshot
  (``missing_before``), never filled.
- Validation: every window goes through the recorded feed's ``validate_candles`` (the same checks).

``snapshot(symbol, timeframe, t)`` waits up to ``ws_grace_s`` for the stream to confirm candle t closed,
back-fills by REST what is still missing, validates, and adds the order book (the websocket's book when
updated since the candle's close, else ``fetch_order_book``; a failing book never fails the snapshot). ``ticker(symbol)`` is the
websocket's ticker when fresh, else ``fetch_ticker``.

The graph is synchronous; ccxt runs on the session's private event loop (see ``tools.ccxt_exchange``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ccxt

from tools.ccxt_exchange import ExchangeFactory, ExchangeSession, RetryPolicy, Sleep, create_exchange, one_line
from tools.ccxt_feed_config import CcxtFeedConfig
from tools.ccxt_ohlcv import Row, check_rows, fetch_closed
from tools.clock import Clock
from tools.errors import ConfigError, DataError, TradegraphError
from tools.market import OrderBook, Snapshot
from tools.recorded_feed import validate_candles
from tools.timeframes import timeframe_ms, to_iso

log = logging.getLogger("tradegraph.feed")


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    timestamp: int
    bid: float | None
    ask: float | None
    last: float | None


@dataclass
class StreamState:
    """One websocket watcher's health, for the feed's decisions and for reports."""

    connected: bool = False
    messages: int = 0
    errors: int = 0
    last_error: str = ""
    stopped: str = ""
    """Why the watcher gave up for good (a permanent error), or empty."""
    received_at: float = 0.0
    """time.monotonic() of the last message."""
    received_clock_ms: int = 0
    """The feed clock's time of the last message."""


@dataclass
class _SymbolState:
    candles: dict[int, Row] = field(default_factory=dict)
    gaps: set[int] = field(default_factory=set)
    """Open times the exchange confirmed it has no candle for (it returned later ones)."""
    book: OrderBook | None = None
    ticker: Ticker | None = None
    streams: dict[str, StreamState] = field(default_factory=dict)
    closed_event: asyncio.Event | None = None
    stream_newest: int | None = None
    """Open time of the newest candle the current stream connection has delivered."""


class CcxtFeed:
    """Live snapshots from ``exchange_id`` (a ccxt id). Implements the Feed protocol."""

    def __init__(
        self,
        exchange_id: str,
        symbols: list[str],
        timeframe: str,
        window: int,
        clock: Clock,
        config: CcxtFeedConfig | None = None,
        factory: ExchangeFactory = create_exchange,
        sleep: Sleep | None = None,
    ) -> None:
        self.exchange = exchange_id
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.window = window
        self.clock = clock
        self.cfg = config or CcxtFeedConfig()
        self._tf = timeframe_ms(timeframe)
        retry = RetryPolicy(self.cfg.retry_attempts, self.cfg.retry_base_delay_s, self.cfg.retry_max_delay_s)
        self.session = ExchangeSession(
            exchange_id, factory, {"timeout": self.cfg.request_timeout_ms, "newUpdates": False}, retry, sleep
        )
        self._sleep = sleep or asyncio.sleep
        self._state = {s: _SymbolState() for s in self.symbols}
        self._watchers: list[Any] = []
        self._closing = False
        try:
            if not self.session.has("fetchOHLCV"):
                raise ConfigError(f"{exchange_id} offers no candles (fetchOHLCV) through ccxt")
            self.session.load_markets()
            self.session.check_timeframe(timeframe)
            self.session.check_symbols(self.symbols)
        except BaseException:
            self.session.close()
            raise
        self.lag_ms = self.session.measure_lag(clock.now_ms)
        """How far the exchange's clock is behind ours: a candle is closed once both clocks are past its close
        (with a lagging exchange, its "closed" candle may still be the open one, served with partial values)."""
        self.streaming = self.cfg.websocket and self.session.has("watchOHLCV")
        if self.streaming:
            self._start_watchers()

    def _now(self) -> int:
        """Now as far as both clocks agree (the earlier of ours and the exchange's)."""
        return self.clock.now_ms() - self.lag_ms

    # --- the Feed protocol --------------------------------------------------------------------------
    def snapshot(self, symbol: str, timeframe: str, candle_time: int) -> Snapshot:
        """The snapshot whose last closed candle opens at ``candle_time``; DataError / exchange errors otherwise."""
        if symbol not in self._state:
            raise DataError(f"{symbol} is not one of this feed's symbols ({', '.join(self.symbols)})")
        if timeframe != self.timeframe:
            raise DataError(f"this feed serves {self.timeframe} candles, not {timeframe}")
        snap: Snapshot = self.session.run(self._snapshot(symbol, candle_time))
        return snap

    def ticker(self, symbol: str) -> Ticker:
        ticker: Ticker = self.session.run(self._ticker(symbol))
        return ticker

    def stream_states(self) -> dict[str, dict[str, StreamState]]:
        return {s: dict(st.streams) for s, st in self._state.items()}

    def close(self) -> None:
        self._closing = True
        self.session.close()

    def __enter__(self) -> CcxtFeed:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- snapshots ----------------------------------------------------------------------------------
    async def _snapshot(self, symbol: str, t: int) -> Snapshot:
        tf, now = self._tf, self._now()
        if t % tf:
            raise DataError(f"{to_iso(t)} is not a {self.timeframe} candle open time")
        if t + tf > now:
            raise DataError(f"the {symbol} {self.timeframe} candle of {to_iso(t)} has not closed yet")
        state = self._state[symbol]
        if self.streaming:
            await self._await_stream_close(symbol, t)
        first = t - (self.window - 1) * tf
        wanted = range(first, t + tf, tf)
        missing = [x for x in wanted if x not in state.candles and x not in state.gaps]
        if missing:
            await self._backfill(symbol, missing[0], t + tf, now)
        if t not in state.candles:
            raise DataError(f"{self.exchange} has no closed {symbol} {self.timeframe} candle at {to_iso(t)}")
        rows = [state.candles[x] for x in wanted if x in state.candles]
        label = f"{self.exchange} {symbol} {self.timeframe}"
        window = validate_candles(rows, label, self.timeframe, "candle")
        previous = int(window.timestamp[-2]) if len(window) > 1 else t - tf
        book = await self._book(symbol, t + tf) if self.cfg.order_book else None
        self._prune(state, first)
        return Snapshot.model_construct(
            symbol=symbol,
            timeframe=self.timeframe,
            candle_time=t,
            as_of=self.clock.now_ms(),
            window=window,
            missing_before=(t - previous) // tf - 1,
            book=book,
        )

    async def _backfill(self, symbol: str, start: int, end: int, now: int) -> None:
        state = self._state[symbol]
        fetched = await fetch_closed(self.session, symbol, self.timeframe, start, end, now)
        if fetched:
            rows = [fetched[x] for x in sorted(fetched)]
            validate_candles(rows, f"{self.exchange} {symbol} {self.timeframe}", self.timeframe, "candle")
        newest = max(fetched, default=None)
        for x in range(start, end, self._tf):
            if x in fetched:
                state.candles.setdefault(x, fetched[x])
            elif newest is not None and x < newest:
                state.gaps.add(x)  # the exchange has later candles but not this one: a real gap

    def _prune(self, state: _SymbolState, first: int) -> None:
        horizon = first - self.window * self._tf
        for x in [x for x in state.candles if x < horizon]:
            del state.candles[x]
        state.gaps = {x for x in state.gaps if x >= horizon}

    # --- order book and ticker ----------------------------------------------------------------------
    async def _book(self, symbol: str, close: int) -> OrderBook | None:
        """The streamed book if it was updated after the candle's close (and recently), else a REST book."""
        state = self._state[symbol]
        stream = state.streams.get("book")
        if (
            state.book is not None
            and stream is not None
            and stream.connected
            and self._fresh(stream)
            and stream.received_clock_ms >= close
        ):
            return state.book
        try:
            raw = await self.session.call(
                f"fetch_order_book {symbol}",
                lambda: self.session.exchange.fetch_order_book(symbol, self.cfg.book_depth),
            )
            return self._to_book(symbol, raw)
        except (TradegraphError, ccxt.BaseError) as exc:
            log.warning("%s %s: no order book for this snapshot (%s)", self.exchange, symbol, one_line(exc))
            return None

    def _to_book(self, symbol: str, raw: Any) -> OrderBook | None:
        depth = self.cfg.book_depth
        try:
            bids = tuple((float(b[0]), float(b[1])) for b in raw["bids"][:depth])
            asks = tuple((float(a[0]), float(a[1])) for a in raw["asks"][:depth])
        except (KeyError, TypeError, ValueError, IndexError):
            log.warning("%s %s: malformed order book ignored", self.exchange, symbol)
            return None
        if not bids and not asks:
            return None
        if bids and asks and bids[0][0] >= asks[0][0]:
            log.warning("%s %s: crossed order book ignored (bid %s >= ask %s)", self.exchange, symbol, bids[0][0],
                        asks[0][0])  # fmt: skip
            return None
        timestamp = raw.get("timestamp") or self.clock.now_ms()
        return OrderBook(symbol, int(timestamp), bids, asks)

    async def _ticker(self, symbol: str) -> Ticker:
        state = self._state[symbol]
        stream = state.streams.get("ticker")
        if state.ticker is not None and stream is not None and stream.connected and self._fresh(stream):
            return state.ticker
        raw = await self.session.call(f"fetch_ticker {symbol}", lambda: self.session.exchange.fetch_ticker(symbol))
        return self._to_ticker(symbol, raw)

    def _to_ticker(self, symbol: str, raw: Any) -> Ticker:
        def num(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if isinstance(value, int | float) else None

        return Ticker(symbol, int(raw.get("timestamp") or self.clock.now_ms()), num("bid"), num("ask"), num("last"))

    def _fresh(self, stream: StreamState) -> bool:
        return time.monotonic() - stream.received_at <= self.cfg.book_max_age_s

    # --- websockets ---------------------------------------------------------------------------------
    def _start_watchers(self) -> None:
        kinds = ["ohlcv"]
        if self.cfg.order_book and self.session.has("watchOrderBook"):
            kinds.append("book")
        if self.session.has("watchTicker"):
            kinds.append("ticker")
        for symbol in self.symbols:
            self.session.run(self._init_event(symbol))
            for kind in kinds:
                self._state[symbol].streams[kind] = StreamState()
                self._watchers.append(self.session.spawn(self._watch(symbol, kind)))

    async def _init_event(self, symbol: str) -> None:
        self._state[symbol].closed_event = asyncio.Event()

    async def _watch(self, symbol: str, kind: str) -> None:
        """Watch one stream forever: reconnect with exponential backoff on network errors."""
        ex = self.session.exchange
        state = self._state[symbol]
        stream = state.streams[kind]
        delay = self.cfg.reconnect_base_delay_s
        while not self._closing:
            try:
                if kind == "ohlcv":
                    self._on_candles(symbol, await self._within(symbol, kind, ex.watch_ohlcv(symbol, self.timeframe)))
                elif kind == "book":
                    state.book = self._to_book(symbol, await self._within(symbol, kind, ex.watch_order_book(symbol)))
                else:
                    state.ticker = self._to_ticker(symbol, await self._within(symbol, kind, ex.watch_ticker(symbol)))
                stream.connected, stream.received_at = True, time.monotonic()
                stream.received_clock_ms = self.clock.now_ms()
                stream.messages += 1
                delay = self.cfg.reconnect_base_delay_s
            except asyncio.CancelledError:
                raise
            except (ccxt.NotSupported, ccxt.BadSymbol, ccxt.AuthenticationError, ccxt.PermissionDenied) as exc:
                stream.connected, stream.stopped = False, one_line(exc)
                log.error("%s %s %s stream stopped: %s", self.exchange, symbol, kind, stream.stopped)
                return
            except Exception as exc:  # network drops, timeouts, malformed messages: reconnect after a pause
                stream.connected, stream.errors, stream.last_error = False, stream.errors + 1, one_line(exc)
                if kind == "ohlcv":
                    self._forget_stream_candles(symbol)
                    state.stream_newest = None
                elif kind == "book":
                    state.book = None
                log.warning("%s %s %s stream: %s; reconnecting in %.1f s", self.exchange, symbol, kind,
                            stream.last_error, delay)  # fmt: skip
                if state.closed_event is not None:
                    state.closed_event.set()  # a decision waiting on the stream stops waiting
                await self._sleep(delay)
                delay = min(self.cfg.reconnect_max_delay_s, max(delay * 2, 0.01))

    async def _within(self, symbol: str, kind: str, watch: Any) -> Any:
        """``await watch``, or drop the stream's connection when it stays silent for ``stream_stall_s``.

        A malformed frame can end ccxt.pro's receive loop without an error: the connection then looks open
        but delivers nothing. Failing the connection's client makes ccxt dial a new one on the next watch."""
        try:
            return await asyncio.wait_for(watch, self.cfg.stream_stall_s)
        except TimeoutError:
            self._fail_clients(symbol, kind, f"{kind} stream silent for {self.cfg.stream_stall_s:g} s")
            raise ccxt.NetworkError(f"{self.exchange} {symbol} {kind} stream stalled") from None

    def _fail_clients(self, symbol: str, kind: str, reason: str) -> None:
        marker = {"ohlcv": "ohlcv", "book": "orderbook", "ticker": "ticker"}[kind]
        clients = list((getattr(self.session.exchange, "clients", None) or {}).values())
        mine = [c for c in clients if any(symbol in k and marker in k.lower() for k in getattr(c, "subscriptions", {}))]
        for client in mine or clients:
            try:
                client.on_error(ccxt.NetworkError(reason))
            except Exception as exc:  # a client already closing: nothing left to fail
                log.debug("failing a stalled %s client: %s", self.exchange, one_line(exc))

    def _on_candles(self, symbol: str, candles: Any) -> None:
        """Take every streamed candle but the newest (still open) whose close the clock has passed."""
        state = self._state[symbol]
        rows = sorted(check_rows(list(candles), f"{self.exchange} {symbol} {self.timeframe} stream"))
        now = self._now()
        label = f"{self.exchange} {symbol} {self.timeframe} stream"
        if rows:
            state.stream_newest = rows[-1][0]
        for row in rows[:-1]:
            t = row[0]
            if t in state.candles or t + self._tf > now or t % self._tf:
                continue
            try:
                validate_candles([row], label, self.timeframe, "candle")
            except DataError as exc:
                log.warning("%s; left to the REST back-fill", exc)
                continue
            state.candles[t] = row
        if state.closed_event is not None:
            state.closed_event.set()

    def _forget_stream_candles(self, symbol: str) -> None:
        """After a drop the stream's cache may hold a candle whose final update never came: drop the cache."""
        cache = getattr(self.session.exchange, "ohlcvs", None)
        if isinstance(cache, dict) and isinstance(cache.get(symbol), dict):
            cache[symbol].pop(self.timeframe, None)

    async def _await_stream_close(self, symbol: str, t: int) -> None:
        """Wait (at most ``ws_grace_s``) until the stream delivered candle t closed; stop waiting at once when
        the stream is down or has moved past t without it (after a reconnect): REST fills it then."""
        state = self._state[symbol]
        stream = state.streams.get("ohlcv")
        deadline = time.monotonic() + self.cfg.ws_grace_s
        while t not in state.candles and stream is not None and stream.connected and not stream.stopped:
            newest = state.stream_newest
            if newest is not None and newest >= t + self._tf:
                return
            left = deadline - time.monotonic()
            if left <= 0 or state.closed_event is None:
                return
            state.closed_event.clear()
            try:
                await asyncio.wait_for(state.closed_event.wait(), left)
            except TimeoutError:
                return
