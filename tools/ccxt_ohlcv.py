"""Closed candles from an exchange's REST API, paginated by ``since``/``limit``, checked before use.

Pagination: ask from ``since`` with the exchange's page size (ccxt's ``features`` limit: Binance 1000,
Coinbase 300, Kraken 720); continue after the newest candle returned; after an empty page (Coinbase
answers time windows, so a stretch without trading is an empty page) move on by one page of time. Kraken
serves only its latest 720 candles whatever ``since`` says: older candles simply do not come back and the
caller sees them as missing.

Only closed candles are kept: a candle opening at t is closed once t + timeframe <= now (exchanges also
return the candle still open, with partial values). Rows must be six numbers; anything else is a
``DataError`` naming the exchange, symbol and timeframe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from tools.candle_clock import last_closed
from tools.ccxt_exchange import ExchangeSession
from tools.errors import DataError
from tools.timeframes import timeframe_ms, to_iso

Row = tuple[int, float, float, float, float, float]
DEFAULT_PAGE = 500


def page_limit(exchange: Any) -> int:
    features = getattr(exchange, "features", None) or {}
    limit = (features.get("spot") or {}).get("fetchOHLCV", {}).get("limit")
    return int(limit) if isinstance(limit, int | float) and limit > 0 else DEFAULT_PAGE


def check_rows(rows: Any, label: str) -> list[Row]:
    """The rows of a fetch_ohlcv answer as (t, o, h, l, c, v); DataError when they are not six numbers."""
    if not isinstance(rows, list):
        raise DataError(f"{label}: malformed OHLCV answer ({type(rows).__name__}, not a list)")
    out: list[Row] = []
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) < 6:
            raise DataError(f"{label}: malformed candle {row!r:.80}")
        values = row[:6]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise DataError(f"{label}: malformed candle {row!r:.80} (not six numbers)")
        if not math.isfinite(values[0]):
            raise DataError(f"{label}: malformed candle {row!r:.80} (timestamp)")
        out.append((int(values[0]), float(values[1]), float(values[2]), float(values[3]), float(values[4]),
                    float(values[5])))  # fmt: skip
    return out


async def fetch_closed(
    session: ExchangeSession,
    symbol: str,
    timeframe: str,
    start: int,
    end: int,
    now: int,
    on_page: Callable[[int, int], None] | None = None,
) -> dict[int, Row]:
    """Closed candles with open time in [start, end), by open time. ``on_page(covered_until, count)``."""
    ex = session.exchange
    tf = timeframe_ms(timeframe)
    end = min(end, last_closed(now, timeframe) + tf)
    limit = page_limit(ex)
    label = f"{session.exchange_id} {symbol} {timeframe}"
    out: dict[int, Row] = {}
    since = start
    max_pages = (end - start) // (tf * max(1, limit // 2)) + 10 if end > start else 0
    for _page in range(max_pages):
        if since >= end:
            break
        page_since = since
        raw = await session.call(
            f"fetch_ohlcv {symbol} {timeframe} since {to_iso(page_since)}",
            partial(ex.fetch_ohlcv, symbol, timeframe, since=page_since, limit=limit),
        )
        rows = check_rows(raw, label)
        kept = 0
        for row in rows:
            if start <= row[0] < end and row[0] + tf <= now:
                if row[0] % tf:
                    raise DataError(
                        f"{label} candle {to_iso(row[0])}: timestamp {row[0]} is not aligned to {timeframe}"
                    )
                out[row[0]] = row
                kept += 1
        newest = max((r[0] for r in rows), default=None)
        since = newest + tf if newest is not None and newest >= page_since else page_since + limit * tf
        if on_page is not None:
            on_page(min(since, end), kept)
    return out
