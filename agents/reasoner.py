"""The Reasoner protocol: what strategy_fusion calls, whatever does the reasoning."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from tools.signals import Action, TechnicalSignal
from tools.trade_types import TradeIntent


class ReasonerInput(BaseModel):
    """Everything a reasoner may look at: tool outputs as structured data, never raw free text."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    timeframe: str
    candle_time: int
    price: float
    indicators: dict[str, float]
    signals: list[TechnicalSignal]
    aggregate: Action
    aggregate_confidence: float
    position_quantity: float
    position_average_price: float | None
    equity: float
    allow_short: bool


class ReasonerTrace(BaseModel):
    """What the journal keeps of one reasoning call (LLM reasoners fill the model/prompt/token fields)."""

    model_config = ConfigDict(frozen=True)

    reasoner: str
    outcome: str = "ok"
    prompt_id: str | None = None
    prompt_hash: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    details: dict[str, float] = Field(default_factory=dict)


class Reasoner(Protocol):
    name: str

    def decide(self, inp: ReasonerInput) -> tuple[TradeIntent, ReasonerTrace]: ...
