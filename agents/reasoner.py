"""The Reasoner protocol: what strategy_fusion calls, whatever does the reasoning, and what the journal keeps."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tools.news import NewsItem
from tools.signals import Action, TechnicalSignal
from tools.trade_types import TradeIntent

TraceOutcome = Literal["ok", "skipped", "llm_error", "llm_rejected", "budget_exhausted"]
FAILED_OUTCOMES = ("llm_error", "llm_rejected", "budget_exhausted")


class RecentCandle(BaseModel):
    model_config = ConfigDict(frozen=True)

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class ReasonerInput(BaseModel):
    """Everything a reasoner may look at: tool outputs as structured data; free text only in ``news``."""

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
    recent_candles: list[RecentCandle] = Field(default_factory=list)
    risk_budget: dict[str, float] = Field(default_factory=dict)
    """What the gate and sizing allow (limits, cash): the reasoner sees them, it cannot change them."""
    news: list[NewsItem] = Field(default_factory=list)
    """Untrusted third-party text, published at or before the decision."""


class LLMCall(BaseModel):
    """One LLM call attempted (or refused by a budget), as journaled and shown by the inspectors."""

    model_config = ConfigDict(frozen=True)

    node: str
    provider: str
    base_url: str
    """Password and key redacted."""
    model: str
    prompt_id: str
    prompt_hash: str
    input_hash: str
    params: dict[str, Any] = Field(default_factory=dict)
    raw_response: str | None = None
    parsed: dict[str, Any] | None = None
    outcome: str = "ok"
    """ok | llm_error | llm_rejected | budget_exhausted"""
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    called_at: int = 0
    """UTC ms."""
    source: str = "live"
    """live | recorded (live, written to a cassette) | replayed (from a cassette, no network)"""
    gating: str = ""
    """Why the LLM was asked."""
    injection_flags: list[str] = Field(default_factory=list)

    @property
    def spent(self) -> bool:
        """A real request went out (not replayed, not refused by a budget)."""
        return self.source != "replayed" and self.outcome != "budget_exhausted"


class ReasonerTrace(BaseModel):
    """What the journal keeps of one reasoning step (journaled as the decision's ``reasoner``)."""

    model_config = ConfigDict(frozen=True)

    reasoner: str
    outcome: TraceOutcome = "ok"
    reason: str = ""
    fallback: Literal["hold", "rules"] | None = None
    """What decided instead after llm_error / llm_rejected / budget_exhausted."""
    calls: list[LLMCall] = Field(default_factory=list)
    prompt_id: str | None = None
    prompt_hash: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    details: dict[str, float] = Field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES


class Reasoner(Protocol):
    name: str

    def decide(self, inp: ReasonerInput) -> tuple[TradeIntent, ReasonerTrace]: ...
