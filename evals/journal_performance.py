"""A journaled run's performance against buy-and-hold over a time range, from the journal alone.

- Strategy: the run's portfolio snapshots (one equity point per candle time, marked at that candle's close)
  with timestamps in [start, end).
- Buy-and-hold: the strategy's equity at the first point of the range split equally over the run's symbols,
  each bought at its close at that first point (the close a decision at that time saw, from the decision's
  indicators) with the run's own fee and slippage (``paper.fee_bps``, ``paper.slippage_bps``), then held and
  marked at each symbol's latest journaled close at or before every later point; its first point is the cash
  it starts from, so the entry costs count in its return. A symbol without a close at the first point keeps
  its share in cash.
- Metrics are those of ``evals.metrics`` (total return, max drawdown, Sharpe annualized for the run's
  timeframe with rf = 0), computed the same way for both curves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evals.metrics import max_drawdown, period_returns, sharpe
from tools.errors import DataError
from tools.journal_reader import JournalReader
from tools.timeframes import periods_per_year, to_iso


def _curve_metrics(equity: np.ndarray, ppy: float) -> dict[str, float]:
    return {
        "start_equity": float(equity[0]),
        "end_equity": float(equity[-1]),
        "total_return": float(equity[-1] / equity[0] - 1.0),
        "max_drawdown": max_drawdown(equity)[0],
        "sharpe": sharpe(period_returns(equity), ppy),
    }


def performance_vs_buy_and_hold(
    reader: JournalReader, run_id: str, start: int | None = None, end: int | None = None
) -> dict[str, Any]:
    """The comparison as plain data; DataError when the range holds fewer than two portfolio points."""
    run = reader.get_run(run_id)
    if run is None:
        raise DataError(f"no run {run_id!r} in the journal")
    points = reader.portfolio_points(run_id, start, end)
    if len(points) < 2:
        span = reader.time_span(run_id)
        covers = f"the run covers {to_iso(span[0])} .. {to_iso(span[1])}" if span else "the run has no decisions yet"
        raise DataError(f"fewer than two portfolio points in that range ({len(points)}); {covers}")
    config = run["config"]
    paper = config.get("paper", {})
    fee, slip = float(paper.get("fee_bps", 0.0)) / 10_000, float(paper.get("slippage_bps", 0.0)) / 10_000
    timeframe = str(config.get("timeframe", "1h"))
    ppy = periods_per_year(timeframe)
    timestamps = np.array([p["timestamp"] for p in points], dtype=np.int64)
    equity = np.array([p["equity"] for p in points], dtype=np.float64)
    symbols = reader.run_symbols(run_id)
    per_symbol = float(equity[0]) / max(1, len(symbols))
    hold = np.zeros_like(equity)
    cited: list[str] = []
    entries: dict[str, dict[str, Any]] = {}
    for symbol in symbols:
        closes = reader.closes(run_id, symbol, None, int(timestamps[-1]) + 1)
        times = np.array([c[0] for c in closes], dtype=np.int64)
        values = np.array([c[1] for c in closes], dtype=np.float64)
        first = int(np.searchsorted(times, timestamps[0], side="right")) - 1 if closes else -1
        if first < 0 or int(times[first]) != int(timestamps[0]):
            hold += per_symbol
            entries[symbol] = {"bought": False, "note": "no journaled close at the first point: kept in cash"}
            continue
        price = float(values[first]) * (1 + slip)
        quantity = per_symbol / (price * (1 + fee))
        idx = np.searchsorted(times, timestamps, side="right") - 1
        hold += quantity * values[idx]
        last = int(idx[-1])
        cited += [closes[first][2], closes[last][2]]
        entries[symbol] = {
            "bought": True,
            "entry_close": float(values[first]),
            "entry_decision": closes[first][2],
            "quantity": quantity,
            "last_close": float(values[last]),
            "last_decision": closes[last][2],
        }
    hold[0] = equity[0]  # as in evals.baselines: the first point is the cash, costs show from the second on
    strategy = _curve_metrics(equity, ppy)
    baseline = _curve_metrics(hold, ppy)
    return {
        "run_id": run_id,
        "from": to_iso(int(timestamps[0])),
        "to": to_iso(int(timestamps[-1])),
        "periods": int(len(points) - 1),
        "timeframe": timeframe,
        "strategy": strategy,
        "buy_and_hold": baseline,
        "excess_return": strategy["total_return"] - baseline["total_return"],
        "buy_and_hold_entries": entries,
        "method": "buy-and-hold: equal split of the first point's equity, bought at each symbol's close there "
        f"with the run's fee ({paper.get('fee_bps', 0)} bps) and slippage ({paper.get('slippage_bps', 0)} bps)",
        "decision_ids": list(dict.fromkeys(cited)),
    }
