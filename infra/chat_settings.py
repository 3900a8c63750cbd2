"""Settings of `tradegraph chat` and the web chat panel: which model (if any) answers in prose."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ChatSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    llm: str | None = Field(
        default=None,
        description="None: deterministic answers; 'local': the bundled SmolLM2 model; else an OpenAI-compatible base URL",
    )
    model: str | None = Field(default=None, description="model name at the endpoint (default: the server's own)")
    api_key: SecretStr | None = Field(default=None, description="API key for the endpoint (never printed)")
    max_steps: int = Field(default=6, ge=1, le=20, description="model turns per question (tool rounds + answer)")
    timeout_s: float = Field(
        default=300.0, gt=0, description="per model request (a small local model on a busy CPU is slow)"
    )
    answer_limit: int = Field(default=400, ge=16, le=8192, description="longest model reply per turn, in tokens")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
