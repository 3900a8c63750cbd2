"""Typed outputs of the technical-analysis tool."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Direction(StrEnum):
    BULLISH = "bullish"
    BEARISH = "bearish"
    NEUTRAL = "neutral"

    @property
    def sign(self) -> int:
        return 1 if self is Direction.BULLISH else -1 if self is Direction.BEARISH else 0


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class SignalKind(StrEnum):
    INDICATOR = "indicator"
    CANDLESTICK = "candlestick"
    CHART_PATTERN = "chart_pattern"


class TechnicalSignal(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    kind: SignalKind
    direction: Direction
    strength: float = Field(ge=0.0, le=1.0)
    values: dict[str, float] = Field(default_factory=dict)
    """The numbers behind the signal, rounded for the journal."""


class TechnicalReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    indicators: dict[str, float]
    signals: list[TechnicalSignal]
    aggregate: Action
    confidence: float = Field(ge=0.0, le=1.0)
    net_score: float
    """Strength-weighted net direction in [-1, 1]; ``aggregate`` is BUY/SELL beyond the hold band."""
