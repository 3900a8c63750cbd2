"""What came back for one prompt (or why nothing did), and the key it is recorded under."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class CallKey:
    """A cassette key: (node, model, prompt hash, input hash)."""

    node: str
    model: str
    prompt_hash: str
    input_hash: str

    def digest(self) -> str:
        text = json.dumps([self.node, self.model, self.prompt_hash, self.input_hash])
        return hashlib.sha256(text.encode()).hexdigest()

    def as_dict(self) -> dict[str, str]:
        return {"node": self.node, "model": self.model, "prompt_hash": self.prompt_hash, "input_hash": self.input_hash}


class Answer(BaseModel):
    """One prompt's result. ``kind`` error: nothing usable came back; budget_exhausted: no request was sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["answer", "error", "budget_exhausted"]
    raw_response: str | None = None
    arguments: dict[str, Any] | None = None
    """The JSON object the model returned (not yet validated)."""
    error: str | None = None
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    called_at: int = 0
    extra: dict[str, Any] | None = None
    """Reasoner-specific detail kept with the answer (e.g. each crew member's output)."""
