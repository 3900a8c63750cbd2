"""The LLM reasoner (``llm``, ``local``, ``crew``, and their ``replay``): one path from snapshot to TradeIntent.

1. The rules reasoner fuses the signals; gating (agents.gating) decides whether the LLM is asked at all.
2. The prompt template gets DATA (tool outputs as JSON) and the untrusted news (JSON between markers).
3. The answer comes from the endpoint, a cassette being recorded, or a cassette replayed (agents.llm_sources),
   within the budgets.
4. The answer is validated: schema (LLMTradeIntent), the decision's symbol, and the evidence check (every
   cited number must be in DATA). Any failure is an explicit outcome: ``llm_error`` (nothing usable came
   back), ``llm_rejected`` (an answer came back and failed validation) or ``budget_exhausted``.
5. Fallback policy after a failure: ``hold`` (default): a HOLD intent, journaled with the failure as the
   decision's outcome and no order; ``rules``: the rules intent goes on to the gate, the trace names the
   failure. Either way the trace keeps every call with its raw response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agents.budget import cost_usd, estimate_tokens
from agents.evidence import build_base, check_answer
from agents.gating import should_ask
from agents.injection import scan_news
from agents.llm_answer import Answer, CallKey
from agents.llm_payload import build_data, encode_data, encode_news, text_hash
from agents.llm_schema import LLMTradeIntent, validation_summary
from agents.llm_sources import AnswerProvider
from agents.reasoner import LLMCall, ReasonerInput, ReasonerTrace, TraceOutcome
from agents.rules_reasoner import RulesReasoner
from prompts import PromptTemplate
from tools.llm_config import Fallback, GatingConfig
from tools.signals import Action
from tools.trade_types import TradeIntent


@dataclass(frozen=True)
class CallMeta:
    """What every call of this reasoner journals about where it went."""

    node: str
    provider: str
    base_url: str
    model: str
    params: dict[str, Any]


def _symbol_key(symbol: str) -> str:
    return "".join(ch for ch in symbol.upper() if ch.isalnum())


class LLMReasoner:
    def __init__(
        self,
        name: str,
        rules: RulesReasoner,
        prompt: PromptTemplate,
        provider: AnswerProvider,
        meta: CallMeta,
        gating: GatingConfig,
        fallback: Fallback,
        max_output_tokens: int,
        requests_per_answer: int = 1,
    ) -> None:
        self.name = name
        self.requests_per_answer = requests_per_answer
        """A crew sends the DATA once per member: budgets estimate the whole answer."""
        self.rules = rules
        self.prompt = prompt
        self.provider = provider
        self.meta = meta
        self.gating = gating
        self.fallback = fallback
        self.max_output_tokens = max_output_tokens
        prompt.section("system")
        prompt.section("user")

    def decide(self, inp: ReasonerInput) -> tuple[TradeIntent, ReasonerTrace]:
        rules_intent, rules_trace = self.rules.decide(inp)
        p_up = rules_intent.probability_up if rules_intent.probability_up is not None else 0.5
        ask, why = should_ask(inp, p_up, self.gating, self.rules.cfg)
        if not ask:
            trace = ReasonerTrace(reasoner=self.name, outcome="skipped", reason=f"LLM not asked, rules decided: {why}",
                                  details=rules_trace.details)  # fmt: skip
            return rules_intent, trace
        data = build_data(inp, p_up, rules_intent.action)
        system = self.prompt.section("system")
        user = self.prompt.render("user", {"DATA": encode_data(data), "NEWS": encode_news(inp.news),
                                           "SYMBOL": inp.symbol})  # fmt: skip
        flags = scan_news(inp.news)
        key = CallKey(self.meta.node, self.meta.model, self.prompt.hash, text_hash(user))
        n = self.requests_per_answer
        answer, source = self.provider.get(key, [("system", system), ("user", user)],
                                           n * estimate_tokens(system + user), n * self.max_output_tokens)  # fmt: skip
        outcome, reason, intent = self._judge(answer, inp, data)
        calls = self._calls(answer, key, source, outcome, reason, why, flags)
        details = {**rules_trace.details, **self.provider.budget.totals()}
        flagged = f" [{len(flags)} injection-like passage(s) in untrusted input flagged]" if flags else ""
        common: dict[str, Any] = {
            "reasoner": self.name, "calls": calls, "prompt_id": self.prompt.id, "prompt_hash": self.prompt.hash,
            "model": self.meta.model, "input_tokens": sum(c.input_tokens for c in calls),
            "output_tokens": sum(c.output_tokens for c in calls), "cost_usd": answer.cost_usd,
            "latency_ms": round(answer.latency_ms, 1), "details": details,
        }  # fmt: skip
        if outcome == "ok" and intent is not None:
            return intent, ReasonerTrace(outcome="ok", reason=f"LLM asked ({why}): {intent.action.value}{flagged}",
                                         **common)  # fmt: skip
        failure = f"{outcome}: {reason}{flagged}"
        if self.fallback == "rules":
            return rules_intent, ReasonerTrace(outcome=outcome, reason=failure, fallback="rules", **common)
        hold = TradeIntent(action=Action.HOLD, conviction=0.0, horizon=1, rationale=f"no LLM decision: {failure}"[:4000],
                           reasoner=self.name)  # fmt: skip
        return hold, ReasonerTrace(outcome=outcome, reason=failure, fallback="hold", **common)

    def _calls(
        self, answer: Answer, key: CallKey, source: str, outcome: str, reason: str, why: str, flags: list[str]
    ) -> list[LLMCall]:
        """One call per request: a crew's members each get theirs; the last one carries the judged outcome."""
        m = self.meta
        base: dict[str, Any] = {
            "provider": m.provider, "base_url": m.base_url, "model": m.model, "prompt_id": self.prompt.id,
            "prompt_hash": self.prompt.hash, "input_hash": key.input_hash, "params": m.params,
            "called_at": answer.called_at, "source": source, "gating": why, "injection_flags": flags,
        }  # fmt: skip
        judged: dict[str, Any] = {"parsed": answer.arguments, "outcome": outcome,
                                  "error": None if outcome == "ok" else reason}  # fmt: skip
        members = (answer.extra or {}).get("members") or []
        if not members:
            return [LLMCall(node=m.node, raw_response=answer.raw_response, input_tokens=answer.input_tokens,
                            output_tokens=answer.output_tokens, cost_usd=answer.cost_usd,
                            latency_ms=round(answer.latency_ms, 1), **base, **judged)]  # fmt: skip
        budget = self.provider.budget
        calls = []
        for i, member in enumerate(members):
            last = i == len(members) - 1
            tokens_in, tokens_out = int(member["input_tokens"]), int(member["output_tokens"])
            calls.append(LLMCall(
                node=str(member["node"]), raw_response=str(member["output"]), input_tokens=tokens_in,
                output_tokens=tokens_out, latency_ms=float(member["latency_ms"]),
                cost_usd=cost_usd(tokens_in, tokens_out, budget.input_per_mtok, budget.output_per_mtok),
                **base, **(judged if last else {"outcome": "ok"}),
            ))  # fmt: skip
        return calls

    def _judge(
        self, answer: Answer, inp: ReasonerInput, data: dict[str, Any]
    ) -> tuple[TraceOutcome, str, TradeIntent | None]:
        if answer.kind == "budget_exhausted":
            return "budget_exhausted", answer.error or "budget exhausted", None
        if answer.kind == "error" or answer.arguments is None:
            return "llm_error", answer.error or "no answer", None
        try:
            parsed = LLMTradeIntent.model_validate(answer.arguments)
        except ValidationError as exc:
            return "llm_rejected", f"invalid answer: {validation_summary(exc)}", None
        if _symbol_key(parsed.symbol) != _symbol_key(inp.symbol):
            return (
                "llm_rejected",
                f"answer is for symbol {parsed.symbol[:40]!r}, the decision is for {inp.symbol}",
                None,
            )
        problems = check_answer(parsed, build_base(data))
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            return "llm_rejected", f"evidence check: {'; '.join(problems[:3])}{more}", None
        return "ok", "", parsed.to_trade_intent(self.name)
