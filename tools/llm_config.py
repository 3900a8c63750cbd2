"""The ``llm`` settings section: endpoint, model, structured-output method, fallback, gating, budgets, cassettes.

A plain pydantic model that both layers may import: infra.settings nests it, the composition root turns it
into the agents' own objects. The API key is a SecretStr: it prints as ``**********`` everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

OPENAI_BASE_URL = "https://api.openai.com/v1"

StructuredMethod = Literal["auto", "function_calling", "json_schema", "json_mode"]
Fallback = Literal["hold", "rules"]


class GatingConfig(BaseModel):
    """When the LLM is asked. Off: every valid snapshot goes to the reasoner and the LLM is always called."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    threshold_margin: float = Field(
        default=0.03, ge=0, le=0.5, description="ask when the rules' P(up) is this close to the BUY or SELL threshold"
    )
    conflict_min_strength: float = Field(
        default=0.5, ge=0, le=1, description="ask when bullish and bearish signals are both at least this strong"
    )


class BudgetConfig(BaseModel):
    """Per call, per run and per UTC day (the day counts every run in the same journal). None: no limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_output_tokens: int = Field(default=400, ge=16, le=32_000, description="per call, sent as max_tokens")
    max_tokens_per_call: int | None = Field(default=None, ge=1, description="estimated prompt + max output")
    max_cost_per_call_usd: float | None = Field(default=None, ge=0)
    max_tokens_per_run: int | None = Field(default=None, ge=0)
    max_cost_per_run_usd: float | None = Field(default=None, ge=0)
    max_tokens_per_day: int | None = Field(default=None, ge=0)
    max_cost_per_day_usd: float | None = Field(default=None, ge=0)


class LocalModelConfig(BaseModel):
    """The bundled SmolLM2-135M-Instruct behind llama.cpp's server (reasoner ``local``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = Field(default=None, description="connect to a running server instead of starting one")
    n_ctx: int = Field(default=8192, ge=512, le=8192, description="SmolLM2's context is 8k tokens")
    n_threads: int | None = Field(default=None, ge=1)
    startup_timeout_s: float = Field(default=180.0, gt=0)


class CrewConfig(BaseModel):
    """The optional CrewAI reasoner (bull analyst, bear analyst, portfolio manager)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: Literal["llm", "local"] = Field(
        default="llm", description="llm: the llm section's endpoint; local: the bundled model"
    )
    max_output_tokens: int = Field(default=200, ge=16, le=8000, description="per agent answer")


class LLMSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(default=OPENAI_BASE_URL, description="any OpenAI-compatible endpoint, ending in /v1")
    model: str = "gpt-4o-mini"
    api_key: SecretStr | None = Field(default=None, description="else OPENAI_API_KEY from the environment")
    structured_output: StructuredMethod = Field(
        default="auto", description="auto: json_schema on api.openai.com, function_calling elsewhere"
    )
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = 7
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    fallback: Fallback = Field(default="hold", description="after a failed, rejected or refused call")
    prompt: str = Field(default="trade_intent.v1", description="template id in prompts/")
    input_cost_per_mtok: float = Field(default=0.0, ge=0, description="USD per million prompt tokens")
    output_cost_per_mtok: float = Field(default=0.0, ge=0, description="USD per million completion tokens")
    news_lookback_hours: float = Field(default=24.0, ge=0)
    news_max_items: int = Field(default=5, ge=0, le=50)
    recent_candles: int = Field(default=5, ge=1, le=50, description="last candles shown in the prompt")
    gating: GatingConfig = Field(default_factory=GatingConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    local: LocalModelConfig = Field(default_factory=LocalModelConfig)
    crew: CrewConfig = Field(default_factory=CrewConfig)
    record_cassette: Path | None = Field(default=None, description="record every LLM answer into this folder")
    cassette: Path | None = Field(default=None, description="replay answers from this folder (reasoner replay)")

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_cassette_mode(self) -> LLMSettings:
        if self.record_cassette is not None and self.cassette is not None:
            raise ValueError("record_cassette and cassette exclude each other")
        return self

    def structured_method(self, base_url: str | None = None) -> Literal["function_calling", "json_schema", "json_mode"]:
        """json_schema for OpenAI itself; function_calling for other servers (llama.cpp rejects json_schema)."""
        if self.structured_output != "auto":
            return self.structured_output
        host = urlsplit(base_url or self.base_url).hostname or ""
        return "json_schema" if host == "api.openai.com" else "function_calling"
