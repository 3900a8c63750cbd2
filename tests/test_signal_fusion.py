from __future__ import annotations

import math

import pytest

from agents.reasoner import ReasonerInput
from agents.rules_reasoner import RulesReasoner
from tools.signal_fusion import FusionConfig, action_for, fuse
from tools.signals import Action, Direction, SignalKind, TechnicalSignal


def sig(name: str, kind: SignalKind, direction: Direction, strength: float) -> TechnicalSignal:
    return TechnicalSignal(name=name, kind=kind, direction=direction, strength=strength, values={f"{name}_v": 1.5})


def test_log_odds_by_hand() -> None:
    cfg = FusionConfig()
    signals = [
        sig("rsi_oversold", SignalKind.INDICATOR, Direction.BULLISH, 0.8),
        sig("engulfing", SignalKind.CANDLESTICK, Direction.BEARISH, 0.5),
        sig("double_bottom", SignalKind.CHART_PATTERN, Direction.BULLISH, 1.0),
        sig("doji", SignalKind.CANDLESTICK, Direction.NEUTRAL, 0.2),
    ]
    expected = 0.8 * math.log(0.6 / 0.4) - 0.5 * math.log(0.55 / 0.45) + 1.0 * math.log(0.62 / 0.38)
    result = fuse(signals, cfg)
    assert result.log_odds == pytest.approx(expected)
    assert result.probability_up == pytest.approx(1 / (1 + math.exp(-expected)))
    assert set(result.contributions) == {"rsi_oversold", "engulfing", "double_bottom"}


def test_prior_and_per_name_reliability() -> None:
    cfg = FusionConfig(prior_up=0.4, reliability_by_name={"ema_cross": 0.9})
    result = fuse([sig("ema_cross", SignalKind.INDICATOR, Direction.BULLISH, 0.5)], cfg)
    assert result.log_odds == pytest.approx(math.log(0.4 / 0.6) + 0.5 * math.log(0.9 / 0.1))
    assert fuse([], cfg).probability_up == pytest.approx(0.4)


def test_thresholds() -> None:
    cfg = FusionConfig(buy_threshold=0.6, sell_threshold=0.4)
    assert action_for(0.6, cfg) is Action.BUY
    assert action_for(0.59, cfg) is Action.HOLD
    assert action_for(0.4, cfg) is Action.SELL


def _input(signals: list[TechnicalSignal], position: float) -> ReasonerInput:
    return ReasonerInput(symbol="BTC/USDT", timeframe="1h", candle_time=0, price=100.0, indicators={"rsi": 20.0},
                         signals=signals, aggregate=Action.BUY, aggregate_confidence=0.5, position_quantity=position,
                         position_average_price=None, equity=1000.0, allow_short=False)  # fmt: skip


def test_rules_reasoner_intent_carries_the_evidence() -> None:
    bull = [sig("rsi_oversold", SignalKind.INDICATOR, Direction.BULLISH, 1.0),
            sig("double_bottom", SignalKind.CHART_PATTERN, Direction.BULLISH, 1.0)]  # fmt: skip
    intent, trace = RulesReasoner(FusionConfig()).decide(_input(bull, 0.0))
    p = 1 / (1 + math.exp(-(math.log(1.5) + math.log(0.62 / 0.38))))
    assert intent.action is Action.BUY
    assert intent.probability_up == pytest.approx(p)
    assert intent.conviction == pytest.approx(abs(2 * p - 1), abs=1e-6)
    assert intent.evidence["rsi_oversold.rsi_oversold_v"] == 1.5
    assert intent.evidence["double_bottom.double_bottom_v"] == 1.5
    assert "rsi_oversold bullish" in intent.rationale
    assert trace.reasoner == "rules"


def test_rules_reasoner_never_sells_what_it_does_not_hold() -> None:
    bear = [sig("rsi_overbought", SignalKind.INDICATOR, Direction.BEARISH, 1.0),
            sig("double_top", SignalKind.CHART_PATTERN, Direction.BEARISH, 1.0)]  # fmt: skip
    reasoner = RulesReasoner(FusionConfig())
    assert reasoner.decide(_input(bear, 0.0))[0].action is Action.HOLD
    assert reasoner.decide(_input(bear, 2.0))[0].action is Action.SELL
