"""Walk-forward and regime breakdowns of an equity curve.

- Calendar periods: each UTC month (or quarter) gets its compounded return, Sharpe and max drawdown, for the
  strategy and for buy-and-hold over the same candles.
- Regimes, by a stated rule on an equal-weight index of the evaluated symbols (mean of closes normalised to 1
  at the first timestamp): trend is "up" when the index is above its 200-period simple moving average, else
  "down"; volatility is "high" when the index's 24-period realized volatility (std of returns) is above its
  median over the evaluated range, else "low". The trend label uses data up to that period only; the
  volatility median spans the range. These are reporting labels, never inputs to a decision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from evals.engine import FloatArray, IntArray
from evals.metrics import max_drawdown, period_returns, sharpe

TREND_PERIODS = 200
VOL_PERIODS = 24


def month_key(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m")


def quarter_key(ms: int) -> str:
    d = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{d.year}-Q{(d.month - 1) // 3 + 1}"


def _compound(returns: FloatArray) -> float:
    return float(np.prod(1.0 + returns) - 1.0) if returns.size else 0.0


def monthly_returns(timestamps: IntArray, equity: FloatArray) -> dict[str, float]:
    r = period_returns(equity)
    out: dict[str, list[float]] = {}
    for ms, ret in zip(timestamps[1:], r, strict=True):
        out.setdefault(month_key(int(ms)), []).append(float(ret))
    return {k: _compound(np.asarray(v)) for k, v in out.items()}


def by_period(
    timestamps: IntArray, equity: FloatArray, baseline: FloatArray, ppy: float, quarterly: bool = False
) -> list[dict[str, Any]]:
    key = quarter_key if quarterly else month_key
    labels = np.array([key(int(t)) for t in timestamps[1:]])
    r, rb = period_returns(equity), period_returns(baseline)
    rows = []
    for label in dict.fromkeys(labels.tolist()):
        mask = labels == label
        idx = np.flatnonzero(mask)
        segment = equity[idx[0] : idx[-1] + 2]
        rows.append({
            "period": label,
            "periods": int(mask.sum()),
            "return": _compound(r[mask]),
            "sharpe": sharpe(r[mask], ppy),
            "max_drawdown": max_drawdown(segment)[0],
            "buy_and_hold_return": _compound(rb[mask]),
        })  # fmt: skip
    return rows


def regime_labels(index_close: FloatArray) -> tuple[list[str], list[str]]:
    n = index_close.size
    trend, vol = [], []
    rets = np.concatenate([[0.0], index_close[1:] / index_close[:-1] - 1.0])
    realized = np.full(n, np.nan)
    for i in range(VOL_PERIODS, n):
        realized[i] = rets[i - VOL_PERIODS + 1 : i + 1].std(ddof=1)
    median = float(np.nanmedian(realized)) if np.isfinite(realized).any() else 0.0
    csum = np.concatenate([[0.0], np.cumsum(index_close)])
    for i in range(n):
        lo = max(0, i + 1 - TREND_PERIODS)
        sma = (csum[i + 1] - csum[lo]) / (i + 1 - lo)
        trend.append("up" if index_close[i] >= sma else "down")
        vol.append("high" if np.isfinite(realized[i]) and realized[i] > median else "low")
    return trend, vol


def by_regime(equity: FloatArray, baseline: FloatArray, index_close: FloatArray, ppy: float) -> list[dict[str, Any]]:
    trend, vol = regime_labels(index_close)
    r, rb = period_returns(equity), period_returns(baseline)
    labels = np.array([f"trend {t} / vol {v}" for t, v in zip(trend[:-1], vol[:-1], strict=True)])
    rows = []
    for label in sorted(set(labels.tolist())):
        mask = labels == label  # the return of period i+1 is attributed to the regime known at period i
        rows.append({
            "regime": label,
            "periods": int(mask.sum()),
            "return": _compound(r[mask]),
            "sharpe": sharpe(r[mask], ppy),
            "buy_and_hold_return": _compound(rb[mask]),
        })  # fmt: skip
    return rows
