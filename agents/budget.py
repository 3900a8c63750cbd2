"""LLM budgets: tokens and cost per call, per run and per UTC day. A refused call is an explicit outcome
(``budget_exhausted``), never a silent skip. The day's usage includes earlier runs in the same journal,
read once per day through ``day_usage(day_start_ms)``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tools.llm_config import BudgetConfig

DAY_MS = 86_400_000


@dataclass
class Usage:
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


def cost_usd(input_tokens: int, output_tokens: int, input_per_mtok: float, output_per_mtok: float) -> float:
    return (input_tokens * input_per_mtok + output_tokens * output_per_mtok) / 1e6


def estimate_tokens(text: str) -> int:
    """A rough prompt size before the call (about 4 characters a token), used only for per-call limits."""
    return len(text) // 4 + 1


class BudgetTracker:
    def __init__(
        self,
        cfg: BudgetConfig,
        input_per_mtok: float = 0.0,
        output_per_mtok: float = 0.0,
        day_usage: Callable[[int], Usage] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.input_per_mtok = input_per_mtok
        self.output_per_mtok = output_per_mtok
        self._day_usage = day_usage
        self._clock = clock
        self.run = Usage()
        self._day: int | None = None
        self._day_before = Usage()
        self._day_run = Usage()

    def _roll_day(self) -> None:
        day = int(self._clock() * 1000) // DAY_MS
        if day != self._day:
            self._day = day
            self._day_before = self._day_usage(day * DAY_MS) if self._day_usage else Usage()
            self._day_run = Usage()

    @property
    def day(self) -> Usage:
        self._roll_day()
        b, r = self._day_before, self._day_run
        return Usage(b.calls + r.calls, b.tokens + r.tokens, b.cost_usd + r.cost_usd)

    def refusal(self, estimated_input_tokens: int, max_output_tokens: int) -> str | None:
        """Why the next call may not go out, or None."""
        c = self.cfg
        tokens = estimated_input_tokens + max_output_tokens
        cost = cost_usd(estimated_input_tokens, max_output_tokens, self.input_per_mtok, self.output_per_mtok)
        if c.max_tokens_per_call is not None and tokens > c.max_tokens_per_call:
            return f"per-call budget: about {tokens} tokens (prompt + max output) > {c.max_tokens_per_call}"
        if c.max_cost_per_call_usd is not None and cost > c.max_cost_per_call_usd:
            return f"per-call budget: up to ${cost:.6f} > ${c.max_cost_per_call_usd:.6f}"
        # a call may go out only if it cannot take the total past a limit (prompt estimated, output at its maximum)
        run, day = self.run, self.day
        if c.max_tokens_per_run is not None and run.tokens + tokens > c.max_tokens_per_run:
            return f"run budget: {run.tokens} tokens used, next call up to {tokens}, limit {c.max_tokens_per_run}"
        if c.max_cost_per_run_usd is not None and run.cost_usd + cost > c.max_cost_per_run_usd:
            return f"run budget: ${run.cost_usd:.6f} spent, next call up to ${cost:.6f}, limit ${c.max_cost_per_run_usd:.6f}"
        if c.max_tokens_per_day is not None and day.tokens + tokens > c.max_tokens_per_day:
            return (f"daily budget: {day.tokens} tokens used today (UTC, all runs in this journal), next call up to "
                    f"{tokens}, limit {c.max_tokens_per_day}")  # fmt: skip
        if c.max_cost_per_day_usd is not None and day.cost_usd + cost > c.max_cost_per_day_usd:
            return (f"daily budget: ${day.cost_usd:.6f} spent today (UTC, all runs in this journal), next call up to "
                    f"${cost:.6f}, limit ${c.max_cost_per_day_usd:.6f}")  # fmt: skip
        return None

    def spend(self, input_tokens: int, output_tokens: int, cost: float) -> None:
        self._roll_day()
        for u in (self.run, self._day_run):
            u.calls += 1
            u.tokens += input_tokens + output_tokens
            u.cost_usd += cost

    def totals(self) -> dict[str, float]:
        day = self.day
        return {"run_llm_tokens": float(self.run.tokens), "run_llm_cost_usd": self.run.cost_usd,
                "day_llm_tokens": float(day.tokens), "day_llm_cost_usd": day.cost_usd}  # fmt: skip
