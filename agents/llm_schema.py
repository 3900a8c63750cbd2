"""What an LLM must answer: ``LLMTradeIntent``, the structured-output schema, turned into a TradeIntent.

Every field is required (OpenAI's strict json_schema mode needs that) and evidence is a list of objects
rather than a free-form map, for the same reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.signals import Action
from tools.trade_types import TradeIntent


class EvidenceItem(BaseModel):
    """One DATA field the decision relied on, with its exact value."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="name of a DATA field, e.g. rsi or price")
    value: float = Field(description="its value copied from DATA")


class LLMTradeIntent(BaseModel):
    """The trade intent for the one symbol in DATA."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(description="the symbol in DATA, e.g. BTC/USDT")
    action: Literal["BUY", "SELL", "HOLD"]
    conviction: float = Field(ge=0.0, le=1.0, description="0 to 1")
    size_fraction: float = Field(ge=0.0, le=1.0, description="share of the risk budget to use, 0 to 1")
    horizon: int = Field(ge=1, le=10_000, description="expected holding period in candles")
    rationale: str = Field(max_length=1500, description="at most three sentences citing numbers from DATA only")
    evidence: list[EvidenceItem] = Field(max_length=20, description="DATA fields relied on, with their values")

    def to_trade_intent(self, reasoner: str) -> TradeIntent:
        evidence: dict[str, float] = {}
        for item in self.evidence:
            evidence[item.field] = item.value
        return TradeIntent(
            action=Action(self.action),
            conviction=self.conviction,
            horizon=self.horizon,
            rationale=self.rationale,
            evidence=evidence,
            reasoner=reasoner,
            size_fraction=self.size_fraction,
        )


_GRAMMAR_HOSTILE = ("maxLength", "maxItems", "minItems")


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _GRAMMAR_HOSTILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def model_json_schema() -> dict[str, Any]:
    """LLMTradeIntent's JSON schema without length limits: llama.cpp compiles a schema into a grammar and a
    ``maxLength`` of 1500 unrolls into a rule it refuses ("exceeds sane defaults"). The limits are still
    enforced when the answer is validated."""
    schema: dict[str, Any] = _strip(LLMTradeIntent.model_json_schema())
    return schema


def tool_schema() -> dict[str, Any]:
    """The function the model is made to call (OpenAI function format)."""
    schema = model_json_schema()
    return {"name": LLMTradeIntent.__name__, "description": schema.pop("description", ""), "parameters": schema}


def strict_json_schema() -> dict[str, Any]:
    """The response_format for OpenAI's json_schema method (strict: every property required, no extras)."""
    from openai.lib._pydantic import to_strict_json_schema

    return {"name": LLMTradeIntent.__name__, "schema": to_strict_json_schema(LLMTradeIntent), "strict": True}


def validation_summary(exc: ValidationError, limit: int = 3) -> str:
    """One line: 'conviction: Input should be less than or equal to 1 (got 7); ...'."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "answer"
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {str(got)[:40]!r})"
        parts.append(f"{where}: {err['msg']}{shown}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
