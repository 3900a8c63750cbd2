"""ccxt exchanges by id, run on a private event loop so that synchronous code (the graph) can use them.

- ``create_exchange(id, config)`` builds the ccxt.pro class of the id (REST and websockets in one async
  instance; plain ``ccxt.async_support`` when the id has no pro class), with ccxt's rate limiter on.
- ``ExchangeSession`` owns one such instance on its own thread and event loop. Every REST call goes
  through ``call``: ccxt's temporary errors (``NetworkError`` and its kin: timeouts, 429/418 rate limits,
  DDoS protection, exchange not available, and ``BadResponse``) are retried with exponential backoff, then
  raised as ``ExchangeTemporaryError``; permanent errors (bad symbol, bad request, authentication, ...) are
  raised at once as ``ExchangePermanentError``.
- ccxt turns a body that is not JSON (an HTML error page, a body cut in half) into an empty result without
  raising; ``guard_json`` makes such a response a ``ccxt.BadResponse`` so that it is retried, never parsed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import ccxt
import ccxt.async_support
import ccxt.pro

from tools.errors import ConfigError, ExchangePermanentError, ExchangeTemporaryError, TradegraphError

log = logging.getLogger("tradegraph.exchange")
T = TypeVar("T")
ExchangeFactory = Callable[[str, dict[str, Any]], Any]
"""``factory(exchange_id, config) -> ccxt async/pro exchange instance``."""


def check_exchange_id(exchange_id: str) -> None:
    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = (
            f"; did you mean {', '.join(close)}?" if close else " (see ccxt.exchanges, e.g. binance, coinbase, kraken)"
        )
        raise ConfigError(f"unknown exchange {exchange_id!r}: not a ccxt exchange id{hint}")


def create_exchange(exchange_id: str, config: dict[str, Any]) -> Any:
    """The ccxt.pro (or async) instance of ``exchange_id`` with ccxt's rate limiter on."""
    check_exchange_id(exchange_id)
    module: Any = ccxt.pro if exchange_id in ccxt.pro.exchanges else ccxt.async_support
    return getattr(module, exchange_id)({"enableRateLimit": True, **config})


def guard_json(exchange: Any) -> Any:
    """Make a non-JSON REST response raise ``ccxt.BadResponse`` instead of parsing as an empty result."""
    inner = exchange.fetch

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        result = await inner(url, method, headers, body)
        if isinstance(result, dict | list):
            return result
        snippet = str(result)[:80].replace("\n", " ")
        raise ccxt.BadResponse(f"{exchange.id} {method} {url.split('?')[0]}: the response is not JSON ({snippet!r})")

    exchange.fetch = fetch
    return exchange


def is_temporary(exc: BaseException) -> bool:
    return isinstance(exc, ccxt.NetworkError | ccxt.BadResponse)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    jitter: float = 0.1
    """Each delay is stretched by up to this fraction at random, so that many clients do not retry in step."""

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1-based): base * 2^(attempt-1), capped, with jitter."""
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return delay * (1 + random.uniform(0, self.jitter)) if self.jitter else float(delay)


Sleep = Callable[[float], Awaitable[None]]


def one_line(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ").strip()
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


class ExchangeSession:
    """One ccxt async instance on a private event-loop thread; synchronous callers use ``run``."""

    def __init__(
        self,
        exchange_id: str,
        factory: ExchangeFactory = create_exchange,
        config: dict[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        call_timeout_s: float = 300.0,
    ) -> None:
        check_exchange_id(exchange_id)
        self.exchange_id = exchange_id
        self.retry = retry or RetryPolicy()
        self._sleep: Sleep = sleep or asyncio.sleep
        self.call_timeout_s = call_timeout_s
        self.requests = 0
        self.retries = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"ccxt-{exchange_id}", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self.exchange: Any = self.run(self._create(factory, dict(config or {})))
        except BaseException:
            self._stop_loop()
            raise

    async def _create(self, factory: ExchangeFactory, config: dict[str, Any]) -> Any:
        return guard_json(factory(self.exchange_id, config))

    # --- running ------------------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the session's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout if timeout is not None else self.call_timeout_s)
        except TimeoutError:
            future.cancel()
            raise ExchangeTemporaryError(f"{self.exchange_id}: no answer within {self.call_timeout_s:.0f} s") from None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()`` with retries on ccxt's temporary errors; ``what`` names the call in errors."""
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                return await fn()
            except asyncio.CancelledError:
                raise
            except ccxt.BaseError as exc:
                if not is_temporary(exc):
                    raise ExchangePermanentError(f"{self.exchange_id} {what}: {one_line(exc)}") from None
                if attempt >= self.retry.attempts:
                    raise ExchangeTemporaryError(
                        f"{self.exchange_id} {what} failed {attempt} times; last: {one_line(exc)}"
                    ) from None
                delay = self.retry.delay(attempt)
                self.retries += 1
                log.warning("%s %s: %s; retry %d in %.2f s", self.exchange_id, what, one_line(exc), attempt, delay)
                await self._sleep(delay)

    # --- markets ------------------------------------------------------------------------------------
    def load_markets(self) -> dict[str, Any]:
        markets: dict[str, Any] = self.run(self.call("load_markets", lambda: self.exchange.load_markets()))
        return markets

    def check_symbols(self, symbols: list[str]) -> None:
        markets = self.exchange.markets or {}
        for symbol in symbols:
            if symbol not in markets:
                close = difflib.get_close_matches(symbol, list(markets), n=3)
                hint = f" (similar: {', '.join(close)})" if close else ""
                raise ConfigError(f"{symbol} is not listed on {self.exchange_id}{hint}")
            if markets[symbol].get("active") is False:
                raise ConfigError(f"{symbol} is listed on {self.exchange_id} but not trading (inactive)")

    def check_timeframe(self, timeframe: str) -> None:
        offered = self.exchange.timeframes or {}
        if timeframe not in offered:
            raise ConfigError(f"{self.exchange_id} has no {timeframe} candles (offers {', '.join(offered)})")

    def measure_lag(self, now_ms: Callable[[], int]) -> int:
        """How far the exchange's clock is behind ``now_ms`` (ms; 0 when it is ahead or has no time endpoint)."""
        if not self.has("fetchTime"):
            return 0
        try:
            before = now_ms()
            server = self.run(self.call("fetch_time", lambda: self.exchange.fetch_time()))
            skew = int(server) - (before + now_ms()) // 2
        except (TradegraphError, TypeError, ValueError) as exc:
            log.warning("%s: server time unavailable (%s); assuming the clocks agree", self.exchange_id, exc)
            return 0
        if abs(skew) > 1000:
            log.warning("%s's clock is %+.1f s from this machine's", self.exchange_id, skew / 1000)
        return max(0, -skew)

    def has(self, capability: str) -> bool:
        return bool(self.exchange.has.get(capability))

    # --- closing ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the exchange's HTTP and websocket sessions, then stop the loop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.run(self._close_exchange(), timeout=30)
        except Exception as exc:  # closing must not hide the error that led here
            log.warning("closing %s: %s", self.exchange_id, one_line(exc))
        finally:
            self._stop_loop()

    async def _close_exchange(self) -> None:
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.exchange.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if not self._loop.is_running():
            self._loop.close()
