"""One exchange account through a synchronous ccxt instance: the order requests a broker needs, with
retries on ccxt's temporary errors, lookups by client order id, and the per-exchange differences.

Per exchange (ccxt 4.5):
- the client order id goes in Binance's ``newClientOrderId``, Coinbase's ``client_order_id`` (ccxt drops a
  unified ``clientOrderId`` there and makes up its own), Kraken's ``cl_ord_id`` (ccxt's ``clientOrderId``);
- an order is looked up by client id with Binance's ``origClientOrderId`` query, Kraken's ``cl_ord_id``
  filter on open and closed orders, and on Coinbase (no such query) by listing the symbol's orders;
- fees: Coinbase and Kraken report an order's cumulative fee with the order; Binance does not (only in its
  trades), so its fees are read from ``myTrades`` for the order; a fee charged in the base currency is
  valued at the fill price;
- balances: Coinbase's v3 accounts (available + hold), the others' default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import ccxt

from tools.errors import ExchangePermanentError, ExchangeTemporaryError
from tools.exchange_errors import Backoff, Failure, Redactor, classify, describe, is_temporary, retry_after

T = TypeVar("T")
log = logging.getLogger("tradegraph.broker")
Sleep = Callable[[float], None]
DAY_MS = 86_400_000


class OrderUnknown(Exception):
    """The exchange answered that it does not know the order (ccxt's OrderNotFound)."""


class LookupFailed(Exception):
    """A lookup by client order id could not get an answer (the exchange is unreachable or refuses)."""


def guard_json(exchange: Any) -> Any:
    """Make a REST answer that is not JSON (an HTML error page, a body cut short) raise ``ccxt.BadResponse``.
    ccxt itself would parse it as an empty result: an order without an id, a balance of nothing."""
    inner = exchange.fetch

    def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        result = inner(url, method, headers, body)
        if isinstance(result, dict | list):
            return result
        snippet = " ".join(str(result)[:60].split())
        raise ccxt.BadResponse(f"{exchange.id} {method} {url.split('?')[0]}: the answer is not JSON ({snippet!r})")

    exchange.fetch = fetch
    return exchange


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


class Venue:
    def __init__(
        self,
        exchange: Any,
        backoff: Backoff,
        sleep: Sleep,
        redact: Redactor,
    ) -> None:
        self.exchange = guard_json(exchange)
        self.id: str = exchange.id
        self.backoff = backoff
        self.sleep = sleep
        self.redact = redact
        self.requests = 0
        self.retries = 0
        self.waits: list[float] = []

    # --- plumbing -----------------------------------------------------------------------------------
    def wait(self, attempt: int, failure: Failure, what: str, exc: BaseException) -> None:
        delay = self.backoff.delay(attempt, failure, retry_after(getattr(self.exchange, "last_response_headers", None)))
        self.retries += 1
        self.waits.append(delay)
        log.warning("%s %s: %s; retry %d in %.2f s", self.id, what, describe(exc, self.redact), attempt, delay)
        self.sleep(delay)

    def call(self, what: str, fn: Callable[[], T], attempts: int | None = None) -> T:
        """``fn()`` retried on temporary errors. OrderUnknown when the exchange does not know the order,
        ExchangePermanentError for a refusal, ExchangeTemporaryError when the retries run out."""
        limit = attempts or self.backoff.attempts
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                return fn()
            except ccxt.BaseError as exc:
                failure = classify(exc)
                if failure is Failure.NOT_FOUND:
                    raise OrderUnknown(describe(exc, self.redact)) from None
                if not is_temporary(failure):
                    raise ExchangePermanentError(f"{self.id} {what}: {describe(exc, self.redact)}") from None
                if attempt >= limit:
                    raise ExchangeTemporaryError(
                        f"{self.id} {what} failed {attempt} times; last: {describe(exc, self.redact)}"
                    ) from None
                self.wait(attempt, failure, what, exc)

    # --- markets and account --------------------------------------------------------------------------
    def load_markets(self) -> dict[str, Any]:
        markets: dict[str, Any] = self.call("load_markets", lambda: self.exchange.load_markets())
        if not markets:
            raise ExchangeTemporaryError(f"{self.id} load_markets: the exchange listed no markets")
        return markets

    def balances(self) -> dict[str, tuple[float, float]]:
        """Currency -> (free, used)."""
        params = {"v3": True} if self.id == "coinbase" else {}
        raw = self.call("fetch_balance", lambda: self.exchange.fetch_balance(params))
        free, used = raw.get("free") or {}, raw.get("used") or {}
        out: dict[str, tuple[float, float]] = {}
        for currency in set(free) | set(used):
            f, u = _num(free.get(currency)), _num(used.get(currency))
            if f is not None or u is not None:
                out[currency] = (f or 0.0, u or 0.0)
        return out

    def last_price(self, symbol: str) -> float | None:
        ticker = self.call(f"fetch_ticker {symbol}", lambda: self.exchange.fetch_ticker(symbol))
        for key in ("last", "close", "bid"):
            price = _num(ticker.get(key))
            if price:
                return price
        return None

    # --- orders ---------------------------------------------------------------------------------------
    def create_params(self, client_id: str) -> dict[str, Any]:
        if self.id == "binance":
            return {"newClientOrderId": client_id}
        if self.id == "coinbase":
            return {"client_order_id": client_id}
        return {"clientOrderId": client_id}

    def create(
        self, symbol: str, order_type: str, side: str, amount: float, price: float | None, client_id: str
    ) -> dict[str, Any]:
        """One create request, no retry (the broker decides what a failure means). ccxt's exceptions propagate;
        an answer without an order id is a ``ccxt.BadResponse``."""
        self.requests += 1
        # Coinbase sizes a market buy in the quote currency: ccxt multiplies the amount by the price given
        send_price = price if order_type == "limit" or (self.id == "coinbase" and side == "buy") else None
        raw: dict[str, Any] = self.exchange.create_order(
            symbol, order_type, side, amount, send_price, self.create_params(client_id)
        )
        if not raw or not raw.get("id"):
            raise ccxt.BadResponse(f"{self.id} create_order: the answer has no order id")
        return raw

    def fetch(self, order_id: str, symbol: str) -> dict[str, Any]:
        raw: dict[str, Any] = self.call("fetch_order", lambda: self.exchange.fetch_order(order_id, symbol))
        return raw

    def cancel(self, order_id: str, symbol: str) -> None:
        self.call("cancel_order", lambda: self.exchange.cancel_order(order_id, symbol))

    def lookup(self, symbol: str, client_id: str, since: int, attempts: int | None = None) -> dict[str, Any] | None:
        """The exchange's order with our ``client_id``, or None when the exchange definitely has none.
        LookupFailed when it cannot tell."""
        try:
            if self.id == "binance":
                try:
                    raw: dict[str, Any] = self.call(
                        "fetch_order by client id",
                        lambda: self.exchange.fetch_order(None, symbol, {"origClientOrderId": client_id}),
                        attempts,
                    )
                    return raw
                except OrderUnknown:
                    return None
            for order in self._listed(symbol, since, client_id, attempts):
                if order.get("clientOrderId") == client_id:
                    return order
            return None
        except (ExchangeTemporaryError, ExchangePermanentError) as exc:
            raise LookupFailed(str(exc)) from None

    def _listed(self, symbol: str, since: int, client_id: str | None, attempts: int | None) -> list[dict[str, Any]]:
        ex = self.exchange
        params = {"clientOrderId": client_id} if (self.id == "kraken" and client_id) else {}
        found: list[dict[str, Any]] = list(
            self.call("fetch_open_orders", lambda: ex.fetch_open_orders(symbol, None, None, dict(params)), attempts)
        )
        if ex.has.get("fetchOrders") is True and self.id != "kraken":
            found += self.call("fetch_orders", lambda: ex.fetch_orders(symbol, since, None, {}), attempts)
        elif ex.has.get("fetchClosedOrders"):
            found += self.call(
                "fetch_closed_orders", lambda: ex.fetch_closed_orders(symbol, since, None, dict(params)), attempts
            )
        return found

    def recent_orders(self, symbol: str, since: int, until: int) -> list[dict[str, Any]]:
        """The symbol's open orders and the orders from ``since`` to ``until`` (any status), newest state per id."""
        if self.id == "binance":  # allOrders answers at most 24 hours from startTime: ask day by day
            listed: list[dict[str, Any]] = []
            for start in range(since, until + 1, DAY_MS):
                listed += self._orders_between(symbol, start, min(start + DAY_MS - 1, until))
            listed += self.call("fetch_open_orders", lambda: self.exchange.fetch_open_orders(symbol))
        else:
            listed = self._listed(symbol, since, None, None)
        by_id: dict[str, dict[str, Any]] = {}
        for order in listed:
            if order.get("id"):
                by_id[str(order["id"])] = order
        return list(by_id.values())

    def _orders_between(self, symbol: str, start: int, end: int) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = self.call(
            "fetch_orders", lambda: self.exchange.fetch_orders(symbol, start, None, {"endTime": end})
        )
        return orders

    def cumulative_fee(self, raw: dict[str, Any], symbol: str, since: int) -> float | None:
        """The order's cumulative fee in the quote currency, or None when unknown."""
        market = self.exchange.market(symbol)
        fees = raw.get("fees") or ([raw["fee"]] if raw.get("fee") else [])
        known = [f for f in fees if isinstance(f, dict) and f.get("cost") is not None]
        if known:
            price = _num(raw.get("average")) or _num(raw.get("price")) or 0.0
            return sum(self._in_quote(f, market, price) for f in known)
        filled = _num(raw.get("filled")) or 0.0
        if filled <= 0:
            return 0.0
        if self.id != "binance" or not self.exchange.has.get("fetchMyTrades"):
            return None
        order_id = str(raw.get("id"))
        trades = self.call(
            "fetch_my_trades",
            lambda: self.exchange.fetch_my_trades(symbol, since, None, {"orderId": order_id}),
        )
        total = 0.0
        for trade in trades:
            if str(trade.get("order")) != order_id or not trade.get("fee"):
                continue
            total += self._in_quote(trade["fee"], market, _num(trade.get("price")) or 0.0)
        return total

    @staticmethod
    def _in_quote(fee: dict[str, Any], market: dict[str, Any], price: float) -> float:
        cost = _num(fee.get("cost")) or 0.0
        currency = fee.get("currency")
        if currency is None or currency == market["quote"]:
            return cost
        if currency == market["base"]:
            return cost * price
        log.warning("fee of %s %s is not valued (neither %s nor %s)", cost, currency, market["base"], market["quote"])
        return 0.0
