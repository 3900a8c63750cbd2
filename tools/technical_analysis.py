"""Technical-analysis tool: TA-Lib indicators, candlestick patterns and chart patterns as typed signals.

Every signal carries a direction, a strength in [0, 1] and the numbers behind it. Indicator signals are
scaled by ATR so they do not depend on the price level. The aggregate is a strength-weighted vote:

    net        = sum(sign_i * s_i) / sum(s_i)          over directional signals (0 when there are none)
    confidence = |net| * (1 - exp(-sum(s_i)))           more agreeing evidence, more confidence
    aggregate  = BUY if net > 0, SELL if net < 0, when confidence >= hold_band; otherwise HOLD

The aggregate is used for routing ("is there anything to decide?"); the reasoner makes the decision.
Indicators are computed on the snapshot's bounded window, so the cost per snapshot does not grow with history.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import talib
from pydantic import BaseModel, ConfigDict

from tools.chart_patterns import detect_chart_patterns
from tools.market import CandleWindow
from tools.signals import Action, Direction, SignalKind, TechnicalReport, TechnicalSignal


class TAConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rsi_period: int = 14
    rsi_oversold: float = 30.0
    rsi_overbought: float = 70.0
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    bb_period: int = 20
    bb_stddev: float = 2.0
    ema_fast: int = 12
    ema_slow: int = 26
    sma_fast: int = 50
    sma_slow: int = 200
    atr_period: int = 14
    candlestick_lookback: int = 40
    pivot_order: int = 5
    pattern_tolerance: float = 0.03
    hold_band: float = 0.25

    @property
    def min_history(self) -> int:
        """Candles needed before every indicator is defined."""
        return max(self.sma_slow, self.macd_slow + self.macd_signal, self.bb_period, self.rsi_period + 1) + 1


CandlestickFn = Callable[..., Any]

# name, TA-Lib function, strength of a hit; doji is indecision, reported as neutral.
CANDLESTICKS: tuple[tuple[str, CandlestickFn, float], ...] = (
    ("engulfing", talib.CDLENGULFING, 0.5),
    ("hammer", talib.CDLHAMMER, 0.4),
    ("inverted_hammer", talib.CDLINVERTEDHAMMER, 0.3),
    ("hanging_man", talib.CDLHANGINGMAN, 0.3),
    ("shooting_star", talib.CDLSHOOTINGSTAR, 0.4),
    ("piercing", talib.CDLPIERCING, 0.4),
    ("dark_cloud_cover", talib.CDLDARKCLOUDCOVER, 0.4),
    ("morning_star", talib.CDLMORNINGSTAR, 0.6),
    ("evening_star", talib.CDLEVENINGSTAR, 0.6),
    ("three_white_soldiers", talib.CDL3WHITESOLDIERS, 0.6),
    ("three_black_crows", talib.CDL3BLACKCROWS, 0.6),
    ("harami", talib.CDLHARAMI, 0.3),
    ("doji", talib.CDLDOJI, 0.2),
)


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def _direction(sign: float) -> Direction:
    return Direction.BULLISH if sign > 0 else Direction.BEARISH if sign < 0 else Direction.NEUTRAL


def _signal(name: str, kind: SignalKind, sign: float, strength: float, **values: float) -> TechnicalSignal:
    return TechnicalSignal.model_construct(
        name=name,
        kind=kind,
        direction=_direction(sign),
        strength=_r(min(1.0, max(0.0, strength))),
        values={k: _r(v) for k, v in values.items()},
    )


def compute_indicators(w: CandleWindow, cfg: TAConfig) -> dict[str, float]:
    c, h, lo = w.close, w.high, w.low
    macd, macd_sig, macd_hist = talib.MACD(c, cfg.macd_fast, cfg.macd_slow, cfg.macd_signal)
    upper, middle, lower = talib.BBANDS(c, cfg.bb_period, cfg.bb_stddev, cfg.bb_stddev)
    ema_fast = talib.EMA(c, cfg.ema_fast)
    ema_slow = talib.EMA(c, cfg.ema_slow)
    atr = talib.ATR(h, lo, c, cfg.atr_period)
    close = float(c[-1])
    band = float(upper[-1] - lower[-1])
    return {
        "close": close,
        "volume": float(w.volume[-1]),
        "rsi": float(talib.RSI(c, cfg.rsi_period)[-1]),
        "macd": float(macd[-1]),
        "macd_signal": float(macd_sig[-1]),
        "macd_hist": float(macd_hist[-1]),
        "macd_hist_prev": float(macd_hist[-2]),
        "bb_upper": float(upper[-1]),
        "bb_middle": float(middle[-1]),
        "bb_lower": float(lower[-1]),
        "bb_percent_b": float((close - lower[-1]) / band) if band > 0 else 0.5,
        "ema_fast": float(ema_fast[-1]),
        "ema_slow": float(ema_slow[-1]),
        "ema_fast_prev": float(ema_fast[-2]),
        "ema_slow_prev": float(ema_slow[-2]),
        "sma_fast": float(talib.SMA(c, cfg.sma_fast)[-1]),
        "sma_slow": float(talib.SMA(c, cfg.sma_slow)[-1]),
        "atr": float(atr[-1]),
        "atr_pct": float(atr[-1] / close),
    }


def indicator_signals(ind: dict[str, float], cfg: TAConfig) -> list[TechnicalSignal]:
    out: list[TechnicalSignal] = []
    k = SignalKind.INDICATOR
    atr = ind["atr"]
    if not all(math.isfinite(v) for v in ind.values()) or atr <= 0:
        return out
    rsi = ind["rsi"]
    if rsi < cfg.rsi_oversold:
        out.append(_signal("rsi_oversold", k, 1, 0.3 + (cfg.rsi_oversold - rsi) / cfg.rsi_oversold, rsi=rsi))
    elif rsi > cfg.rsi_overbought:
        span = 100 - cfg.rsi_overbought
        out.append(_signal("rsi_overbought", k, -1, 0.3 + (rsi - cfg.rsi_overbought) / span, rsi=rsi))
    hist, prev = ind["macd_hist"], ind["macd_hist_prev"]
    if (hist > 0) != (prev > 0):
        out.append(_signal("macd_cross", k, hist, 0.6, macd=ind["macd"], macd_signal=ind["macd_signal"], hist=hist))
    else:
        out.append(_signal("macd_momentum", k, hist, 0.5 * abs(hist) / (0.25 * atr), hist=hist, atr=atr))
    pb = ind["bb_percent_b"]
    if pb < 0:
        out.append(_signal("bb_below_lower", k, 1, 0.5 - pb, percent_b=pb, bb_lower=ind["bb_lower"]))
    elif pb > 1:
        out.append(_signal("bb_above_upper", k, -1, pb - 0.5, percent_b=pb, bb_upper=ind["bb_upper"]))
    gap, gap_prev = ind["ema_fast"] - ind["ema_slow"], ind["ema_fast_prev"] - ind["ema_slow_prev"]
    if (gap > 0) != (gap_prev > 0):
        out.append(_signal("ema_cross", k, gap, 0.7, ema_fast=ind["ema_fast"], ema_slow=ind["ema_slow"]))
    else:
        out.append(
            _signal("ema_trend", k, gap, 0.5 * abs(gap) / atr, ema_fast=ind["ema_fast"], ema_slow=ind["ema_slow"])
        )
    regime = ind["close"] - ind["sma_slow"]
    out.append(
        _signal("sma_regime", k, regime, 0.3 * abs(regime) / (3 * atr), close=ind["close"], sma_slow=ind["sma_slow"])
    )
    return [s for s in out if s.strength > 0]


def candlestick_signals(w: CandleWindow, cfg: TAConfig) -> list[TechnicalSignal]:
    tail = w.tail(cfg.candlestick_lookback)
    o, h, lo, c = tail.open, tail.high, tail.low, tail.close
    out: list[TechnicalSignal] = []
    for name, fn, strength in CANDLESTICKS:
        hit = float(fn(o, h, lo, c)[-1])
        if hit:
            sign = 0.0 if name == "doji" else hit
            out.append(_signal(name, SignalKind.CANDLESTICK, sign, strength, talib_value=hit))
    return out


def aggregate(signals: list[TechnicalSignal], hold_band: float) -> tuple[Action, float, float]:
    directional = [s for s in signals if s.direction is not Direction.NEUTRAL]
    total = sum(s.strength for s in directional)
    if total <= 0:
        return Action.HOLD, 0.0, 0.0
    net = sum(s.direction.sign * s.strength for s in directional) / total
    confidence = abs(net) * (1.0 - math.exp(-total))
    if confidence < hold_band:
        return Action.HOLD, _r(confidence), _r(net)
    return (Action.BUY if net > 0 else Action.SELL), _r(confidence), _r(net)


def analyze(window: CandleWindow, cfg: TAConfig) -> TechnicalReport:
    ind = compute_indicators(window, cfg)
    signals = indicator_signals(ind, cfg)
    signals += candlestick_signals(window, cfg)
    signals += detect_chart_patterns(
        window.high, window.low, window.close, order=cfg.pivot_order, tolerance=cfg.pattern_tolerance
    )
    action, confidence, net = aggregate(signals, cfg.hold_band)
    indicators = {k: _r(v) for k, v in ind.items() if not k.endswith("_prev") and np.isfinite(v)}
    return TechnicalReport.model_construct(
        indicators=indicators, signals=signals, aggregate=action, confidence=confidence, net_score=net
    )
