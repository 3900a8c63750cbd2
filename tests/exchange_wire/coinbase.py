"""Coinbase Advanced Trade public REST endpoints (and the v2 currency endpoints ccxt reads) in Coinbase's format."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.exchange_wire.market_data import DATA, RecordedMarket, fmt
from tests.exchange_wire.responder import Reply, Request, Responder

PAYLOADS = DATA / "payloads"
GRANULARITY = {
    "ONE_MINUTE": "1m", "FIVE_MINUTE": "5m", "FIFTEEN_MINUTE": "15m", "THIRTY_MINUTE": "30m",
    "ONE_HOUR": "1h", "TWO_HOUR": "2h", "SIX_HOUR": "6h", "ONE_DAY": "1d",
}  # fmt: skip
MAX_CANDLES = 350


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def error(code: str, message: str, status: int) -> Reply:
    return Reply({"error": code, "error_details": message, "message": message}, status=status, reason="Error")


def rate_limit_reply() -> Reply:
    return Reply(
        {"error": "rate_limit_exceeded", "error_details": "", "message": "Too many requests"},
        status=429,
        reason="Too Many Requests",
    )


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def attach(responder: Responder, market: RecordedMarket, now: Callable[[], int]) -> None:
    products = load("coinbase_products.json")
    bases = {p["product_id"]: p["base_currency_id"] for p in products["products"]}

    def products_handler(request: Request) -> dict[str, Any]:
        if request.param("product_type") == "FUTURE":
            return {"products": [], "num_products": 0}
        return products

    def candles(request: Request) -> Reply | dict[str, Any]:
        product = request.path.split("/")[-2]
        if product not in bases:
            return error("NOT_FOUND", "ProductID not found", 404)
        timeframe = GRANULARITY.get(request.param("granularity") or "")
        if timeframe is None:
            return error("INVALID_ARGUMENT", "invalid granularity", 400)
        start, end = int(request.param("start") or 0), int(request.param("end") or 0)
        tf_s = {"m": 60, "h": 3600, "d": 86400}[timeframe[-1]] * int(timeframe[:-1])
        if (end - start) // tf_s > MAX_CANDLES:
            msg = f"number of candles requested should be less than {MAX_CANDLES}"
            return error("INVALID_ARGUMENT", msg, 400)
        rows = market.candles(bases[product], timeframe, start * 1000, end * 1000, now())
        return {
            "candles": [
                {"start": str(c.t // 1000), "low": fmt(c.lo), "high": fmt(c.h), "open": fmt(c.o),
                 "close": fmt(c.c), "volume": fmt(c.v)}
                for c in reversed(rows)
            ]
        }  # fmt: skip

    def ticker(request: Request) -> Reply | dict[str, Any]:
        product = request.path.split("/")[-2]
        if product not in bases:
            return error("NOT_FOUND", "ProductID not found", 404)
        t_now = now()
        recent = market.candles(bases[product], "1h", t_now - 3_600_000, t_now + 1, t_now)
        book = market.book(bases[product], t_now)
        bids, asks = book.top(1) if book else ([], [])
        last = recent[-1].c if recent else 0.0
        bid = fmt(bids[0][0]) if bids else fmt(last)
        ask = fmt(asks[0][0]) if asks else fmt(last)
        trade = {"trade_id": "1", "product_id": product, "price": fmt(last), "size": "0.001", "time": iso(t_now),
                 "side": "BUY", "bid": "", "ask": "", "exchange": "CBE"}  # fmt: skip
        return {"trades": [trade], "best_bid": bid, "best_ask": ask}

    def product_book(request: Request) -> Reply | dict[str, Any]:
        product = request.param("product_id") or ""
        if product not in bases:
            return error("NOT_FOUND", "ProductID not found", 404)
        limit = int(request.param("limit", "50") or 50)
        book = market.book(bases[product], now())
        bids, asks = book.top(limit) if book else ([], [])
        return {
            "pricebook": {
                "product_id": product,
                "bids": [{"price": fmt(p), "size": fmt(q)} for p, q in bids],
                "asks": [{"price": fmt(p), "size": fmt(q)} for p, q in asks],
                "time": iso(book.timestamp if book else now()),
            }
        }

    responder.rate_limit_reply = rate_limit_reply
    responder.route("GET", r"/v2/currencies", lambda _r: load("coinbase_v2_currencies.json"))
    responder.route("GET", r"/v2/currencies/crypto", lambda _r: load("coinbase_v2_currencies_crypto.json"))
    responder.route("GET", r"/v2/exchange-rates", lambda _r: load("coinbase_v2_exchange_rates.json"))
    responder.route("GET", r"/api/v3/brokerage/market/products", products_handler)
    responder.route("GET", r"/api/v3/brokerage/market/products/[^/]+/candles", candles)
    responder.route("GET", r"/api/v3/brokerage/market/products/[^/]+/ticker", ticker)
    responder.route("GET", r"/api/v3/brokerage/market/product_book", product_book)
    responder.route("GET", r"/v2/time", lambda _r: {"data": {"iso": iso(now()), "epoch": now() // 1000}})
    responder.route("GET", r"/api/v3/brokerage/time", lambda _r: {"iso": iso(now()), "epochSeconds": str(now() // 1000),
                                                                   "epochMillis": str(now())})  # fmt: skip
