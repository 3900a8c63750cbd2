"""Bayesian fusion of technical signals into a probability that price moves up.

Each signal i has a direction d_i in {+1, -1}, a strength s_i in [0, 1] (its own confidence) and a
reliability r_i in (0.5, 1): the assumed hit rate of that signal at full strength. Starting from the prior
P0, the log-odds of "up" are

    L = ln(P0 / (1 - P0)) + sum_i d_i * s_i * ln(r_i / (1 - r_i))

and P(up) = 1 / (1 + exp(-L)). A full-strength signal moves the odds by its likelihood ratio r/(1-r); a
weaker one by that ratio raised to s_i. Neutral signals (d_i = 0) carry no evidence. The reliabilities are
stated assumptions, configurable per signal kind and per signal name; they are not fitted to the data.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from tools.signals import Action, Direction, SignalKind, TechnicalSignal


class FusionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prior_up: float = Field(default=0.5, gt=0, lt=1)
    reliability_by_kind: dict[SignalKind, float] = Field(
        default_factory=lambda: {
            SignalKind.INDICATOR: 0.60,
            SignalKind.CANDLESTICK: 0.55,
            SignalKind.CHART_PATTERN: 0.62,
        }
    )
    reliability_by_name: dict[str, float] = Field(default_factory=dict)
    buy_threshold: float = Field(default=0.62, gt=0.5, lt=1, description="P(up) at or above: BUY")
    sell_threshold: float = Field(default=0.40, gt=0, lt=0.5, description="P(up) at or below: SELL")
    horizon_candles: int = Field(default=24, ge=1)


class FusionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    probability_up: float
    log_odds: float
    contributions: dict[str, float]
    """Each signal's term d_i * s_i * ln(r_i / (1 - r_i)) in the log-odds."""


def reliability(signal: TechnicalSignal, cfg: FusionConfig) -> float:
    return cfg.reliability_by_name.get(signal.name, cfg.reliability_by_kind.get(signal.kind, 0.55))


def fuse(signals: list[TechnicalSignal], cfg: FusionConfig) -> FusionResult:
    log_odds = math.log(cfg.prior_up / (1 - cfg.prior_up))
    contributions: dict[str, float] = {}
    for s in signals:
        if s.direction is Direction.NEUTRAL or s.strength == 0:
            continue
        r = reliability(s, cfg)
        term = s.direction.sign * s.strength * math.log(r / (1 - r))
        contributions[s.name] = contributions.get(s.name, 0.0) + term
        log_odds += term
    return FusionResult(
        probability_up=1.0 / (1.0 + math.exp(-log_odds)), log_odds=log_odds, contributions=contributions
    )


def action_for(probability_up: float, cfg: FusionConfig) -> Action:
    if probability_up >= cfg.buy_threshold:
        return Action.BUY
    if probability_up <= cfg.sell_threshold:
        return Action.SELL
    return Action.HOLD
