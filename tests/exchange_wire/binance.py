"""Binance spot public REST endpoints in Binance's own response format (developers.binance.com, spot API)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.exchange_wire.market_data import DATA, Candle, RecordedMarket, fmt, timeframe_ms
from tests.exchange_wire.responder import Reply, Request, Responder

PAYLOADS = DATA / "payloads"
INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)


def error(code: int, msg: str, status: int = 400) -> Reply:
    return Reply({"code": code, "msg": msg}, status=status, reason="Bad Request")


def rate_limit_reply() -> Reply:
    body = {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
    }
    return Reply(
        body, status=429, reason="Too Many Requests", headers={"Content-Type": "application/json", "Retry-After": "1"}
    )


def exchange_info() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / "binance_exchangeInfo.json").read_text())
    return data


def kline_row(c: Candle, tf: int) -> list[Any]:
    typical = (c.h + c.lo + c.c) / 3
    return [c.t, fmt(c.o), fmt(c.h), fmt(c.lo), fmt(c.c), fmt(c.v), c.t + tf - 1, fmt(c.v * typical), 0,
            fmt(c.v / 2), fmt(c.v * typical / 2), "0"]  # fmt: skip


def attach(responder: Responder, market: RecordedMarket, now: Callable[[], int]) -> None:
    info = exchange_info()
    bases = {s["symbol"]: s["baseAsset"] for s in info["symbols"]}

    def base_of(request: Request) -> str | Reply:
        symbol = request.param("symbol")
        if symbol is None:
            return error(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if symbol not in bases:
            return error(-1121, "Invalid symbol.")
        return bases[symbol]

    def exchange_info_handler(_request: Request) -> dict[str, Any]:
        return {**info, "serverTime": now()}

    def derivatives_info(_request: Request) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": now(),
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [],
            "symbols": [],
        }

    def klines(request: Request) -> Reply | list[Any]:
        base = base_of(request)
        if isinstance(base, Reply):
            return base
        interval = request.param("interval")
        if interval not in INTERVALS or interval is None:
            return error(-1120, "Invalid interval.")
        limit = int(request.param("limit", "500") or 500)
        if not 1 <= limit <= 1000:
            return error(-1130, "Invalid data sent for a parameter.")
        if interval[-1] not in "mhdw":
            return []  # 1s and 1M candles are not recorded here
        tf = timeframe_ms(interval)
        start, end = request.param("startTime"), request.param("endTime")
        t_now = now()
        if start is not None:
            lo = int(start)
            hi = int(end) + 1 if end is not None else t_now + tf
            rows = market.candles(base, interval, lo, hi, t_now)[:limit]
        else:
            hi = int(end) + 1 if end is not None else t_now + tf
            rows = market.candles(base, interval, hi - (limit + 1) * tf, hi, t_now)[-limit:]
        return [kline_row(c, tf) for c in rows]

    def ticker(request: Request) -> Reply | dict[str, Any]:
        base = base_of(request)
        if isinstance(base, Reply):
            return base
        t_now = now()
        day = market.candles(base, "1h", t_now - 24 * 3_600_000, t_now + 1, t_now)
        if not day:
            return error(-1121, "Invalid symbol.")
        book = market.book(base, t_now)
        bids, asks = book.top(1) if book else ([], [])
        first, last = day[0], day[-1]
        volume = sum(c.v for c in day)
        quote = sum(c.v * (c.h + c.lo + c.c) / 3 for c in day)
        bid = bids[0] if bids else (last.c, 0.0)
        ask = asks[0] if asks else (last.c, 0.0)
        return {
            "symbol": request.param("symbol"),
            "priceChange": fmt(last.c - first.o),
            "priceChangePercent": f"{100 * (last.c / first.o - 1):.3f}",
            "weightedAvgPrice": fmt(quote / volume if volume else last.c),
            "prevClosePrice": fmt(first.o),
            "lastPrice": fmt(last.c),
            "lastQty": fmt(0.001),
            "bidPrice": fmt(bid[0]),
            "bidQty": fmt(bid[1]),
            "askPrice": fmt(ask[0]),
            "askQty": fmt(ask[1]),
            "openPrice": fmt(first.o),
            "highPrice": fmt(max(c.h for c in day)),
            "lowPrice": fmt(min(c.lo for c in day)),
            "volume": fmt(volume),
            "quoteVolume": fmt(quote),
            "openTime": t_now - 24 * 3_600_000,
            "closeTime": t_now,
            "firstId": -1,
            "lastId": -1,
            "count": 0,
        }

    def depth(request: Request) -> Reply | dict[str, Any]:
        base = base_of(request)
        if isinstance(base, Reply):
            return base
        limit = int(request.param("limit", "100") or 100)
        if limit not in DEPTH_LIMITS and not 1 <= limit <= 5000:
            return error(-1100, "Illegal characters found in parameter 'limit'.")
        book = market.book(base, now())
        if book is None:  # no recorded book for this asset: an empty book, as Binance sends for a halted market
            return {"lastUpdateId": 0, "bids": [], "asks": []}
        bids, asks = book.top(limit)
        return {
            "lastUpdateId": book.last_update_id,
            "bids": [[fmt(p), fmt(q)] for p, q in bids],
            "asks": [[fmt(p), fmt(q)] for p, q in asks],
        }

    def coins(_request: Request) -> list[dict[str, Any]]:
        """The signed coin list ccxt reads as currencies when the instance has API keys (documented format)."""
        names = {"BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "USDT": "TetherUS"}
        return [
            {
                "coin": coin, "depositAllEnable": True, "withdrawAllEnable": True, "name": name, "free": "0",
                "locked": "0", "freeze": "0", "withdrawing": "0", "ipoing": "0", "ipoable": "0", "storage": "0",
                "isLegalMoney": False, "trading": True,
                "networkList": [{
                    "network": network, "coin": coin, "withdrawIntegerMultiple": "0.00000001", "isDefault": True,
                    "depositEnable": True, "withdrawEnable": True, "depositDesc": "", "withdrawDesc": "",
                    "specialTips": "", "name": name, "resetAddressStatus": False, "addressRegex": "", "memoRegex": "",
                    "withdrawFee": "0.0001", "withdrawMin": "0.001", "withdrawMax": "9999999999.99999999",
                    "minConfirm": 1, "unLockConfirm": 2, "sameAddress": False, "estimatedArrivalTime": 25,
                    "busy": False, "contractAddressUrl": "", "contractAddress": "",
                }],
            }
            for coin, name, network in (
                (c, n, {"BTC": "BTC", "ETH": "ETH", "SOL": "SOL", "USDT": "ETH"}[c]) for c, n in names.items()
            )
        ]  # fmt: skip

    def margin_pairs(_request: Request) -> list[dict[str, Any]]:
        return [
            {"id": 351637150141315861 + i, "symbol": s["symbol"], "base": s["baseAsset"], "quote": s["quoteAsset"],
             "isMarginTrade": True, "isBuyAllowed": True, "isSellAllowed": True}
            for i, s in enumerate(info["symbols"])
        ]  # fmt: skip

    responder.rate_limit_reply = rate_limit_reply
    responder.route("GET", r"/sapi/v1/margin/allPairs", margin_pairs)
    responder.route("GET", r"/sapi/v1/margin/isolated/allPairs", margin_pairs)
    responder.route("GET", r"/sapi/v1/capital/config/getall", coins)
    responder.route("GET", r"/api/v3/exchangeInfo", exchange_info_handler)
    responder.route("GET", r"/fapi/v1/exchangeInfo", derivatives_info)
    responder.route("GET", r"/dapi/v1/exchangeInfo", derivatives_info)
    responder.route("GET", r"/api/v3/ping", lambda _r: {})
    responder.route("GET", r"/api/v3/time", lambda _r: {"serverTime": now()})
    responder.route("GET", r"/api/v3/klines", klines)
    responder.route("GET", r"/api/v3/ticker/24hr", ticker)
    responder.route("GET", r"/api/v3/depth", depth)
