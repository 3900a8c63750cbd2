"""Kraken spot public REST endpoints in Kraken's format (docs.kraken.com, Spot REST market data).

Kraken's OHLC endpoint serves only the 720 most recent candles of an interval, whatever ``since`` asks
for, and the last entry is the current, not yet committed candle; ``last`` is the open time (seconds) of
the last committed one. Errors come as HTTP 200 with a non-empty ``error`` list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.exchange_wire.market_data import DATA, RecordedMarket, fmt
from tests.exchange_wire.responder import Reply, Request, Responder

PAYLOADS = DATA / "payloads"
INTERVALS = {1: "1m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 240: "4h", 1440: "1d", 10080: "1w", 21600: "15d"}
OHLC_WINDOW = 720


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def error(*messages: str) -> dict[str, Any]:
    return {"error": list(messages)}


def rate_limit_reply() -> Reply:
    return Reply(error("EAPI:Rate limit exceeded"))


def attach(responder: Responder, market: RecordedMarket, now: Callable[[], int]) -> None:
    pairs = load("kraken_asset_pairs.json")
    assets = load("kraken_assets.json")
    altnames = {a: info["altname"] for a, info in assets["result"].items()}
    by_name: dict[str, str] = {}
    for pair_id, pair in pairs["result"].items():
        by_name[pair_id] = by_name[pair["altname"]] = pair_id
    base_of = {pair_id: "BTC" if altnames[pair["base"]] == "XBT" else altnames[pair["base"]]
               for pair_id, pair in pairs["result"].items()}  # fmt: skip

    def pair_of(request: Request) -> str | None:
        return by_name.get(request.param("pair") or "")

    def ohlc(request: Request) -> dict[str, Any]:
        pair_id = pair_of(request)
        if pair_id is None:
            return error("EQuery:Unknown asset pair")
        timeframe = INTERVALS.get(int(request.param("interval", "1") or 1))
        if timeframe is None:
            return error("EGeneral:Invalid arguments")
        tf_s = {"m": 60, "h": 3600, "d": 86400, "w": 604800}[timeframe[-1]] * int(timeframe[:-1])
        t_now = now()
        current = t_now // (tf_s * 1000) * tf_s * 1000
        window_start = current - (OHLC_WINDOW - 1) * tf_s * 1000
        rows = market.candles(base_of[pair_id], timeframe, window_start, current + 1, t_now)
        since = request.param("since")
        if since is not None:
            rows = [c for c in rows if c.t // 1000 > int(since)]
        committed = [c for c in rows if c.closed]
        return {
            "error": [],
            "result": {
                pair_id: [
                    [c.t // 1000, fmt(c.o, 5), fmt(c.h, 5), fmt(c.lo, 5), fmt(c.c, 5),
                     fmt((c.h + c.lo + c.c) / 3, 5), fmt(c.v), 0]
                    for c in rows
                ],
                "last": committed[-1].t // 1000 if committed else (window_start // 1000),
            },
        }  # fmt: skip

    def ticker(request: Request) -> dict[str, Any]:
        pair_id = pair_of(request)
        if pair_id is None:
            return error("EQuery:Unknown asset pair")
        t_now = now()
        base = base_of[pair_id]
        day = market.candles(base, "1h", t_now - 24 * 3_600_000, t_now + 1, t_now)
        if not day:
            return error("EQuery:Unknown asset pair")
        book = market.book(base, t_now)
        bids, asks = book.top(1) if book else ([], [])
        last = day[-1].c
        bid = bids[0] if bids else (last, 0.0)
        ask = asks[0] if asks else (last, 0.0)
        volume = sum(c.v for c in day)
        vwap = sum(c.v * (c.h + c.lo + c.c) / 3 for c in day) / volume if volume else last
        high, low = max(c.h for c in day), min(c.lo for c in day)
        return {
            "error": [],
            "result": {
                pair_id: {
                    "a": [fmt(ask[0], 5), "1", fmt(ask[1])],
                    "b": [fmt(bid[0], 5), "1", fmt(bid[1])],
                    "c": [fmt(last, 5), "0.00100000"],
                    "v": [fmt(day[-1].v), fmt(volume)],
                    "p": [fmt(vwap, 5), fmt(vwap, 5)],
                    "t": [0, 0],
                    "l": [fmt(day[-1].lo, 5), fmt(low, 5)],
                    "h": [fmt(day[-1].h, 5), fmt(high, 5)],
                    "o": fmt(day[0].o, 5),
                }
            },
        }

    def depth(request: Request) -> dict[str, Any]:
        pair_id = pair_of(request)
        if pair_id is None:
            return error("EQuery:Unknown asset pair")
        count = int(request.param("count", "100") or 100)
        if not 1 <= count <= 500:
            return error("EGeneral:Invalid arguments:count")
        book = market.book(base_of[pair_id], now())
        bids, asks = book.top(count) if book else ([], [])
        ts = (book.timestamp if book else now()) // 1000
        return {
            "error": [],
            "result": {
                pair_id: {
                    "asks": [[fmt(p, 5), fmt(q), ts] for p, q in asks],
                    "bids": [[fmt(p, 5), fmt(q), ts] for p, q in bids],
                }
            },
        }

    responder.rate_limit_reply = rate_limit_reply
    responder.route("GET", r"/0/public/Assets", lambda _r: assets)
    responder.route("GET", r"/0/public/AssetPairs", lambda _r: pairs)
    responder.route("GET", r"/0/public/Time", lambda _r: {"error": [], "result": {"unixtime": now() // 1000}})
    responder.route("GET", r"/0/public/OHLC", ohlc)
    responder.route("GET", r"/0/public/Ticker", ticker)
    responder.route("GET", r"/0/public/Depth", depth)
