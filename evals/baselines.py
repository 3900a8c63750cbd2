"""Baselines evaluated in the same run as the strategy, on the same equity timestamps.

- buy_and_hold: the cash split equally over the symbols, bought at the open of the candle after the first
  decision point (the earliest fill the strategy could get), with the same fee and slippage, held to the end.
- random entries: per seed, the strategy's own trades (same symbols, holding periods and sizes as a fraction
  of equity) placed at random, non-overlapping times; close-to-close returns while held, fee + slippage
  charged on entry and exit. It answers "is the timing better than chance at the same exposure?".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evals.engine import FloatArray, IntArray
from evals.metrics import Trade
from tools.recorded_feed import RecordedFeed


def aligned_closes(feed: RecordedFeed, symbol: str, timeframe: str, timestamps: IntArray) -> FloatArray:
    """The symbol's last close at or before each timestamp (a gap carries the previous close for marking)."""
    candles = feed.series(symbol, timeframe).candles
    idx = np.searchsorted(candles.timestamp, timestamps, side="right") - 1
    return candles.close[np.clip(idx, 0, None)]


def buy_and_hold(
    feed: RecordedFeed,
    symbols: Sequence[str],
    timeframe: str,
    timestamps: IntArray,
    initial_cash: float,
    fee_bps: float,
    slippage_bps: float,
) -> FloatArray:
    equity = np.full(timestamps.shape, initial_cash, dtype=np.float64)
    if timestamps.size < 2:
        return equity
    per_symbol = initial_cash / len(symbols)
    equity[1:] = 0.0
    for symbol in symbols:
        candles = feed.series(symbol, timeframe).candles
        entry_index = int(np.searchsorted(candles.timestamp, timestamps[0], side="right"))
        if entry_index >= len(candles.timestamp):
            equity[1:] += per_symbol
            continue
        price = float(candles.open[entry_index]) * (1 + slippage_bps / 10_000)
        qty = per_symbol / (price * (1 + fee_bps / 10_000))
        closes = aligned_closes(feed, symbol, timeframe, timestamps[1:])
        held = timestamps[1:] >= candles.timestamp[entry_index]
        equity[1:] += np.where(held, qty * closes, per_symbol)
    return equity


def random_entries(
    feed: RecordedFeed,
    timeframe: str,
    timestamps: IntArray,
    strategy_equity: FloatArray,
    trades: Sequence[Trade],
    seeds: int,
    fee_bps: float,
    slippage_bps: float,
    period_ms: int,
) -> list[FloatArray]:
    n = timestamps.size
    initial = float(strategy_equity[0]) if n else 0.0
    if n < 3 or not trades:
        return [np.full(n, initial) for _ in range(seeds)]
    returns: dict[str, FloatArray] = {}
    for symbol in {t.symbol for t in trades}:
        closes = aligned_closes(feed, symbol, timeframe, timestamps)
        returns[symbol] = np.concatenate([[0.0], closes[1:] / closes[:-1] - 1.0])
    cost = (fee_bps + slippage_bps) / 10_000
    plan = []
    for t in trades:
        held = max(1, min(n - 2, round((t.exit_time - t.entry_time) / period_ms)))
        at = min(n - 1, int(np.searchsorted(timestamps, t.entry_time, side="right")) - 1)
        weight = t.entry_notional / max(float(strategy_equity[max(at, 0)]), 1e-12) * np.sign(t.quantity)
        plan.append((t.symbol, held, float(weight)))
    curves = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        r = np.zeros(n)
        busy: dict[str, FloatArray] = {s: np.zeros(n, dtype=bool) for s in returns}
        for symbol, held, weight in plan:
            start = int(rng.integers(0, n - held - 1))
            for _ in range(50):  # prefer a window where this symbol is not already held
                if not busy[symbol][start : start + held + 1].any():
                    break
                start = int(rng.integers(0, n - held - 1))
            busy[symbol][start : start + held + 1] = True
            r[start + 1 : start + held + 1] += weight * returns[symbol][start + 1 : start + held + 1]
            r[start + 1] -= abs(weight) * cost
            r[start + held] -= abs(weight) * cost
        curves.append((initial * np.cumprod(1.0 + r)).astype(np.float64))
    return curves
