"""Where an answer comes from: the live endpoint (within budget), a cassette being recorded, or a cassette
being replayed (never a live call: a missing entry stops the run with a CassetteError)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from agents.budget import BudgetTracker, cost_usd
from agents.cassette import Cassette
from agents.llm_answer import Answer, CallKey

Messages = list[tuple[str, str]]
LiveCall = Callable[[Messages], Answer]
Mode = Literal["live", "record", "replay"]


class AnswerProvider:
    def __init__(
        self,
        live: LiveCall | None,
        budget: BudgetTracker,
        cassette: Cassette | None = None,
        mode: Mode = "live",
    ) -> None:
        if mode != "live" and cassette is None:
            raise ValueError(f"mode {mode} needs a cassette")
        if mode != "replay" and live is None:
            raise ValueError(f"mode {mode} needs a live endpoint")
        self.live = live
        self.budget = budget
        self.cassette = cassette
        self.mode = mode

    def get(self, key: CallKey, messages: Messages, estimated_tokens: int, max_output: int) -> tuple[Answer, str]:
        """(answer, source) with source live | recorded | replayed."""
        if self.cassette is not None:
            recorded = self.cassette.get(key)
            if recorded is not None:
                return recorded, "replayed"
            if self.mode == "replay":
                raise self.cassette.missing(key)
        refusal = self.budget.refusal(estimated_tokens, max_output)
        if refusal is not None:
            answer = Answer(kind="budget_exhausted", error=refusal, called_at=int(time.time() * 1000))
        else:
            assert self.live is not None
            answer = self.live(messages)
            cost = cost_usd(answer.input_tokens, answer.output_tokens, self.budget.input_per_mtok,
                            self.budget.output_per_mtok)  # fmt: skip
            answer = answer.model_copy(update={"cost_usd": cost})
            self.budget.spend(answer.input_tokens, answer.output_tokens, cost)
        if self.mode == "record":
            assert self.cassette is not None
            self.cassette.put(key, answer)
            return answer, "recorded"
        return answer, "live"
