"""Candle-close arithmetic for scheduled runs: which candles have closed, and when the next one closes.

Candle times are open times in UTC ms, aligned to the timeframe from the Unix epoch (as exchanges align
them for every timeframe up to 1d). A candle opening at t closes at t + timeframe.
"""

from __future__ import annotations

from tools.timeframes import timeframe_ms


def last_closed(now_ms: int, timeframe: str) -> int:
    """Open time of the most recent candle that has closed at ``now_ms``."""
    tf = timeframe_ms(timeframe)
    return (now_ms // tf) * tf - tf


def next_close(now_ms: int, timeframe: str) -> int:
    """The first candle close strictly after ``now_ms``."""
    tf = timeframe_ms(timeframe)
    return (now_ms // tf + 1) * tf


def due_candles(watermark: int | None, now_ms: int, timeframe: str, max_catch_up: int) -> list[int]:
    """Open times of closed candles after ``watermark`` (the last one handled), oldest first.

    After downtime this is the catch-up list, capped at the ``max_catch_up`` most recent candles; with no
    watermark only the last closed candle is due.
    """
    tf = timeframe_ms(timeframe)
    last = last_closed(now_ms, timeframe)
    if watermark is None:
        return [last]
    first = max(watermark + tf, last - (max_catch_up - 1) * tf)
    return list(range(first, last + 1, tf)) if first <= last else []
