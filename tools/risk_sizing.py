"""Risk assessment tool: fractional-Kelly sizing, ATR stops, VaR/CVaR of the resulting position, exposure.

Kelly: with win probability p and payoff ratio b = take_profit_atr / stop_atr, the full Kelly fraction is
f* = p - (1 - p) / b (floored at 0); the position targets min(max_fraction, kelly_multiplier * f*) of equity,
times the intent's ``size_fraction`` when a reasoner gives one (it can shrink the target, never enlarge it).
p is the reasoner's probability of the move in the intent's direction (0.5 + conviction / 2 when absent).

VaR/CVaR at confidence a on the position value V after the order, from one-candle simple returns r of the
window (sign-flipped for a short): historical VaR = -q_(1-a)(r) * V and CVaR = -mean(r | r <= q_(1-a)) * V;
parametric (normal) VaR = (z_a * sd - mean) * V and CVaR = (sd * pdf(z_a) / (1 - a) - mean) * V.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tools.market import FloatArray
from tools.signals import Action
from tools.trade_types import OrderProposal, PortfolioView, RiskAssessment, Side, TradeIntent


class RiskConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kelly_multiplier: float = Field(default=0.5, gt=0, le=1)
    max_position_fraction: float = Field(default=0.25, gt=0, le=1, description="cap on the Kelly target")
    stop_atr_multiple: float = Field(default=2.0, gt=0)
    take_profit_atr_multiple: float = Field(default=3.0, gt=0)
    var_confidence: float = Field(default=0.95, gt=0.5, lt=1)
    var_lookback: int = Field(default=250, ge=20)
    min_rebalance_fraction: float = Field(default=0.2, ge=0, le=1, description="skip top-ups smaller than this")


def kelly_fraction(p: float, payoff_ratio: float) -> float:
    return max(0.0, p - (1.0 - p) / payoff_ratio)


def value_at_risk(returns: FloatArray, value: float, confidence: float) -> tuple[float, float, float, float]:
    """(historical VaR, historical CVaR, parametric VaR, parametric CVaR) of a position worth ``value``."""
    if returns.size < 2 or value == 0:
        return 0.0, 0.0, 0.0, 0.0
    q = float(np.quantile(returns, 1.0 - confidence))
    tail = returns[returns <= q]
    mean, sd = float(returns.mean()), float(returns.std(ddof=1))
    z = NormalDist().inv_cdf(confidence)
    pdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return (
        max(0.0, -q * value),
        max(0.0, -float(tail.mean()) * value),
        max(0.0, (z * sd - mean) * value),
        max(0.0, (sd * pdf / (1 - confidence) - mean) * value),
    )


def assess_risk(
    intent: TradeIntent,
    symbol: str,
    closes: FloatArray,
    atr: float,
    portfolio: PortfolioView,
    cfg: RiskConfig,
    allow_short: bool,
) -> tuple[RiskAssessment, OrderProposal | None]:
    price = float(closes[-1])
    current_qty = portfolio.exposure_quantity(symbol)
    current_notional = current_qty * price
    equity = portfolio.equity
    payoff = cfg.take_profit_atr_multiple / cfg.stop_atr_multiple
    p = intent.probability_up if intent.probability_up is not None else 0.5 + intent.conviction / 2
    if intent.action is Action.SELL and intent.probability_up is not None:
        p = 1.0 - p
    f_star = kelly_fraction(p, payoff)
    applied = min(cfg.max_position_fraction, cfg.kelly_multiplier * f_star)
    if intent.size_fraction is not None:
        applied *= intent.size_fraction
    direction = 1 if intent.action is Action.BUY else -1

    side: Side | None = None
    quantity = 0.0
    note = ""
    if current_qty * direction < 0:
        side, quantity, note = (
            (Side.BUY if direction > 0 else Side.SELL),
            abs(current_qty),
            "close the opposite position",
        )
        target = 0.0
    elif direction < 0 and not allow_short:
        target = 0.0
        note = "nothing to sell (long-only)"
    else:
        target = direction * applied * equity
        delta = target - current_notional
        if applied <= 0:
            note = "the reasoner asked for size 0" if f_star > 0 else "Kelly fraction is zero: no edge after payoff"
        elif abs(delta) <= cfg.min_rebalance_fraction * abs(target) or delta * direction <= 0:
            note = "position already at or above target"
        else:
            side, quantity = (Side.BUY if delta > 0 else Side.SELL), abs(delta) / price
    resulting_qty = current_qty + (quantity * side.sign if side else 0.0)

    rets = np.diff(closes[-(cfg.var_lookback + 1) :]) / closes[-(cfg.var_lookback + 1) : -1]
    if resulting_qty < 0:
        rets = -rets
    var_h, cvar_h, var_p, cvar_p = value_at_risk(rets, abs(resulting_qty) * price, cfg.var_confidence)
    gross_before = portfolio.gross_exposure(symbol, price)
    gross_after = gross_before - abs(current_qty) * price + abs(resulting_qty) * price
    trade_dir = side.sign if side else direction
    stop = price - trade_dir * cfg.stop_atr_multiple * atr if side and resulting_qty != 0 else None
    take = price + trade_dir * cfg.take_profit_atr_multiple * atr if side and resulting_qty != 0 else None
    assessment = RiskAssessment(
        win_probability=p,
        payoff_ratio=payoff,
        kelly_fraction=f_star,
        applied_fraction=applied,
        target_notional=target,
        current_notional=current_notional,
        atr=atr,
        stop_loss=stop,
        take_profit=take,
        var_confidence=cfg.var_confidence,
        var_historical=var_h,
        cvar_historical=cvar_h,
        var_parametric=var_p,
        cvar_parametric=cvar_p,
        exposure_before=gross_before / equity if equity > 0 else math.inf,
        exposure_after=gross_after / equity if equity > 0 else math.inf,
        note=note,
    )
    if side is None or quantity <= 0:
        return assessment, None
    return assessment, OrderProposal(
        symbol=symbol, side=side, quantity=quantity, reference_price=price, stop_loss=stop, take_profit=take
    )
