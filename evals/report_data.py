"""What the HTML report is drawn from: plain arrays and dicts, so the report needs nothing but this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TradeMark:
    symbol: str
    entry_time: int
    entry_price: float
    exit_time: int
    exit_price: float
    quantity: float
    pnl: float
    exit_reason: str


@dataclass(frozen=True)
class PriceSeries:
    symbol: str
    timestamps: IntArray
    close: FloatArray


@dataclass(frozen=True)
class ReportData:
    title: str
    timestamps: IntArray
    """UTC ms of each equity point (candle open times)."""
    equity: FloatArray
    baselines: dict[str, FloatArray]
    """Equity curves of the baselines on the same timestamps, e.g. buy_and_hold, random_median, rules."""
    drawdown: FloatArray
    """1 - equity / running peak, same length as equity."""
    prices: list[PriceSeries]
    trades: list[TradeMark]
    monthly_returns: dict[str, float]
    """'YYYY-MM' -> compounded return of that month (fraction)."""
    metrics: dict[str, Any]
    """Strategy metrics (snake_case name -> value) for the metrics table."""
    baseline_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    """Extra tables: name -> list of row dicts (e.g. per period, per regime, gate denials, confidence intervals)."""
    notes: list[str] = field(default_factory=list)
