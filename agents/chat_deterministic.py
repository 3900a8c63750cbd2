"""The chat's deterministic mode: common questions answered from the journal tools, no model involved.

Every number in an answer is a journal value (or a return/sum computed from journal values) and every answer
cites the decision ids it rests on, in brackets. A question it does not understand gets a plain "I can't answer
that from the journal" and the list of forms it does understand (``HELP``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from agents.chat_questions import Question, parse_question
from agents.journal_tools import InspectorTools, ToolOutput
from tools.timeframes import to_iso

HELP = """I answer from the journal only. Questions I understand (UTC times; a date without a year takes the run's year):
- why did it buy ETH at 14:00 on March 3?   (the decision on that candle: signals, intent, risk, gate, order, fills, what happened later)
- explain d-0123456789abcdef                 (any decision id)
- show BTC buys on 2024-03-01 / list denied orders in March / last 10 ETH decisions / how many sells between 2024-03-01 and 2024-03-10?
- what were the positions at 2024-03-03 14:00? / PnL on March 5 / positions now
- which orders were denied and why? / denials for ETH in February
- how did it perform against buy and hold? / performance vs buy-and-hold from 2024-03-01 to 2024-03-15
- run summary"""


RAW_SHOWN = 300
"""Characters of an LLM call's raw response an explanation quotes (the decision page shows it whole)."""


class AgentUse(BaseModel):
    """What the agent mode used for one answer, named as the LLM reasoners journal their calls."""

    model: str
    prompt_id: str
    prompt_hash: str
    """sha256 of the prompt template file."""
    calls: int = 0
    """Model requests made (a failed one included)."""
    input_tokens: int = 0
    output_tokens: int = 0

    def summary(self) -> str:
        return (f"{self.model}, prompt {self.prompt_id} ({self.prompt_hash[:12]}), {self.calls} model call(s), "
                f"{self.input_tokens}/{self.output_tokens} tokens")  # fmt: skip


class ChatAnswer(BaseModel):
    text: str
    cited: list[str] = Field(default_factory=list)
    mode: str = "deterministic"
    """deterministic | agent | withheld (the model's answer failed the check; the deterministic one is shown)"""
    understood: bool = True
    tools: list[str] = Field(default_factory=list)
    withheld_reason: str | None = None
    llm: AgentUse | None = None
    """Agent mode (agent or withheld): the model, prompt and tokens used for this answer."""


def num(value: Any) -> str:
    if value is None:
        return "-"
    v = float(value)
    if abs(v) >= 100:
        return f"{v:,.2f}"
    return f"{v:.6g}"


def pct(value: Any, signed: bool = True) -> str:
    return f"{100 * float(value):{'+' if signed else ''}.2f}%"


def cite(ids: list[str]) -> str:
    return " ".join(f"[{i}]" for i in ids)


class DeterministicChat:
    def __init__(self, tools: InspectorTools) -> None:
        self.tools = tools

    # --- understanding ------------------------------------------------------------------------------
    def understand(self, text: str) -> Question:
        run = self.tools.run()
        symbols = self.tools.symbols() if run else []
        span = self.tools.reader.time_span(run["run_id"]) if run else None
        years = []
        if span:
            years = list(range(datetime.fromtimestamp(span[0] / 1000, UTC).year,
                               datetime.fromtimestamp(span[1] / 1000, UTC).year + 1))  # fmt: skip
        return parse_question(text, symbols, years, span)

    def gather(self, q: Question) -> list[ToolOutput]:
        """The tool calls that answer ``q`` (empty when it is not understood)."""
        t = self.tools
        symbol = q.symbol or q.unknown_symbol
        if q.kind == "explain" and q.decision_id:
            return [t.explain_decision(q.decision_id)]
        if q.kind == "why":
            if q.at is not None and symbol:
                found = t.decision_at(symbol, q.at, q.action)
                if found.error or not found.decision_ids:
                    return [found]
                outputs = [found, t.explain_decision(found.decision_ids[0])]
                if found.data.get("note"):  # it did something else then: show the nearest times it did what was asked
                    half_day = 12 * 3_600_000
                    before = t.find_decisions(symbol, q.at - half_day, q.at, q.action, limit=3, newest_first=True)
                    after = t.find_decisions(symbol, q.at + 1, q.at + half_day, q.action, limit=3)
                    rows = [*reversed(before.data.get("decisions", [])), *after.data.get("decisions", [])]
                    nearby = {**after.data, "decisions": rows}
                    outputs.append(ToolOutput(tool="find_decisions", data=nearby, decision_ids=[r["id"] for r in rows]))
                return outputs
            listed = t.find_decisions(symbol, q.start if q.at is None else q.at,
                                      q.end if q.at is None else q.at + 1, q.action, q.verdict, q.outcome)  # fmt: skip
            if len(listed.decision_ids) == 1:
                return [listed, t.explain_decision(listed.decision_ids[0])]
            return [listed]
        if q.kind == "denials":
            return [t.denied_orders(symbol, q.start, q.end, q.limit or 20)]
        if q.kind == "positions":
            return [t.positions_at(q.at if q.at is not None else q.end - 1 if q.end is not None else None)]
        if q.kind == "performance":
            return [t.performance(q.start, q.end)]
        if q.kind in ("find", "count"):
            start, end = (q.at, q.at + 1) if q.at is not None else (q.start, q.end)
            return [t.find_decisions(symbol, start, end, q.action, q.verdict, q.outcome, q.limit or 20, q.newest_first)]
        if q.kind == "run":
            return [t.run_info()]
        return []

    # --- answering ----------------------------------------------------------------------------------
    def answer(self, text: str) -> ChatAnswer:
        return self.respond(text)[0]

    def respond(self, text: str) -> tuple[ChatAnswer, list[ToolOutput]]:
        """The answer and the tool outputs it was written from."""
        q = self.understand(text)
        if q.kind == "help":
            return ChatAnswer(text=HELP), []
        if self.tools.run() is None:
            return ChatAnswer(text="The journal holds no run yet: there is nothing to answer from."), []
        if q.problem:
            return ChatAnswer(text=f"I can't read that question: {q.problem}.", understood=False), []
        outputs = self.gather(q)
        if not outputs:
            text = (
                "I can't answer that from the journal (I only report what was journaled: decisions, their evidence, "
                "orders, fills, positions, gate denials and performance; I don't predict or guess).\n\n" + HELP
            )
            return ChatAnswer(text=text, understood=False), []
        text = render(q, outputs)
        if q.notes:
            text += "\n(" + "; ".join(q.notes) + ")"
        cited = list(dict.fromkeys(i for o in outputs for i in o.decision_ids if f"[{i}]" in text))
        return ChatAnswer(text=text, cited=cited, tools=[o.tool for o in outputs]), outputs


# --- rendering ----------------------------------------------------------------------------------------


def render(q: Question, outputs: list[ToolOutput]) -> str:
    last = outputs[-1]
    if last.error:
        return _render_error(last)
    renderers = {
        "explain_decision": render_explain,
        "find_decisions": lambda o: render_find(o, count_only=q.kind == "count"),
        "denied_orders": render_denials,
        "positions_at": render_positions,
        "performance": render_performance,
        "run_info": render_run,
    }
    nearby = None
    if len(outputs) == 3 and outputs[0].tool == "decision_at":
        nearby, last = outputs[2], outputs[1]
    text = renderers[last.tool](last)
    if nearby is not None:
        rows = nearby.data.get("decisions") or []
        action = nearby.data.get("filters", {}).get("action", "such")
        text += f"\n{action} decisions of the symbol in the half day before and after it: " + (
            "none." if not rows else "\n" + "\n".join(_line(d) for d in rows)
        )
    if last.tool == "explain_decision" and outputs[0].tool == "decision_at":
        note = outputs[0].data.get("note")
        matched = outputs[0].data.get("matched")
        if matched and matched != "candle open time":
            text = f"(matched by {matched})\n" + text
        if note:
            text = f"Note: {note}.\n" + text
    return text


def _render_error(o: ToolOutput) -> str:
    lines = [f"The journal has no answer: {o.error}."]
    if o.data.get("run_covers"):
        lines.append(f"The run covers {o.data['run_covers']}.")
    nearby = o.data.get("nearby") or []
    if nearby:
        lines.append("Nearest decisions:")
        lines += [_line(d) for d in nearby]
    return "\n".join(lines)


def _line(d: dict[str, Any]) -> str:
    gate = f", gate {d['gate']}" if d.get("gate") else ""
    close = f", close {num(d['close'])}" if d.get("close") is not None else ""
    return f"- {d['candle_time']} {d['symbol']} {d['action'] or '-'} → {d['outcome']}{gate}{close}: {d['reason']} [{d['id']}]"


def render_find(o: ToolOutput, count_only: bool = False) -> str:
    data = o.data
    filters = ", ".join(f"{k} {v}" for k, v in data["filters"].items()) or "no filter"
    head = f"{data['total']} decisions in run {data['run_id']} match ({filters})"
    if not data["decisions"]:
        return head + "; the journal has none."
    if count_only:
        return head + ", for example " + cite([d["id"] for d in data["decisions"][:3]]) + "."
    more = f"; showing {data['shown']}" if data["shown"] < data["total"] else ""
    return head + more + ":\n" + "\n".join(_line(d) for d in data["decisions"])


def render_denials(o: ToolOutput) -> str:
    data = o.data
    if not data["total"]:
        return f"The gate denied no order in run {data['run_id']}" + (
            " with those filters." if data.get("filters") else "."
        )
    reasons = ", ".join(f"{k} ×{v}" for k, v in data["by_reason"].items())
    more = f" (showing {data['shown']})" if data["shown"] < data["total"] else ""
    lines = [f"The gate denied {data['total']} orders in run {data['run_id']}: {reasons}{more}."]
    lines += [_line(d) for d in data["denials"]]
    return "\n".join(lines)


def render_positions(o: ToolOutput) -> str:
    d = o.data
    lines = [f"Portfolio at {d['snapshot_time']} (asked: {d['asked']}; run {d['run_id']}): equity {num(d['equity'])}, "
             f"cash {num(d['cash'])}, gross exposure {num(d['gross_exposure'])}, drawdown {pct(d['drawdown'], False)}."]  # fmt: skip
    if d.get("note"):
        lines.append(f"Note: {d['note']}.")
    if "pnl_since_start" in d:
        lines.append(f"PnL since the start: {num(d['pnl_since_start'])} on {num(d['initial_cash'])}; realized so far "
                     f"{num(d['realized_pnl_to_date'])} net of {num(d['fees_to_date'])} fees ({d['fills_to_date']} fills).")  # fmt: skip
    if not d["positions"]:
        lines.append("No open position.")
    for p in d["positions"]:
        parts = [f"{p['symbol']}: {num(p['quantity'])}"]
        if "average_entry_price" in p:
            parts.append(f"average entry {num(p['average_entry_price'])}")
        if "mark_close" in p:
            parts.append(f"marked at close {num(p['mark_close'])} [{p['mark_decision']}]")
        if "unrealized_pnl" in p:
            parts.append(f"unrealized {num(p['unrealized_pnl'])}")
        if p.get("opened_by"):
            parts.append("opened by " + cite(p["opened_by"]))
        lines.append("- " + ", ".join(parts))
    return "\n".join(lines)


def render_performance(o: ToolOutput) -> str:
    d = o.data
    s, b = d["strategy"], d["buy_and_hold"]
    lines = [
        f"Run {d['run_id']} from {d['from']} to {d['to']} ({d['periods']} periods of {d['timeframe']}):",
        f"- strategy: {pct(s['total_return'])} (equity {num(s['start_equity'])} → {num(s['end_equity'])}), "
        f"max drawdown {pct(s['max_drawdown'], False)}, Sharpe {s['sharpe']:.2f}",
        f"- buy and hold: {pct(b['total_return'])} (equity {num(b['start_equity'])} → {num(b['end_equity'])}), "
        f"max drawdown {pct(b['max_drawdown'], False)}, Sharpe {b['sharpe']:.2f}",
        f"- difference: {pct(d['excess_return'])} ({'ahead of' if d['excess_return'] > 0 else 'behind'} buy and hold)",
        f"Method: {d['method']}.",
    ]
    prices = [f"{sym} close {num(e['entry_close'])} [{e['entry_decision']}] → {num(e['last_close'])} [{e['last_decision']}]"
              for sym, e in d["buy_and_hold_entries"].items() if e.get("bought")]  # fmt: skip
    if prices:
        lines.append("Prices: " + "; ".join(prices) + ".")
    return "\n".join(lines)


def render_run(o: ToolOutput) -> str:
    d = o.data
    counts = ", ".join(f"{k} {v}" for k, v in d["decisions_by_outcome"].items()) or "none"
    return (f"Run {d['run_id']} ({d['mode']}, {d['status']}): {', '.join(d['symbols'])} {d['timeframe']}, candles "
            f"{d['first_candle']} .. {d['last_candle']}; decisions: {counts}.")  # fmt: skip


def render_explain(o: ToolOutput) -> str:
    d = o.data
    lines = [
        f"{d['symbol']} {d['timeframe']} candle {d['candle_time']} (decided {d['decided_at']}): action "
        f"{d['action'] or 'none'}, outcome {d['outcome']} [{d['id']}]",
        f"Why: {d['reason']}",
        f"Inputs: {d['inputs']['candles']} candles {d['inputs']['from']} .. {d['inputs']['to']}, hash {d['inputs']['hash']}",
    ]
    if d["signals"]:
        sig = ", ".join(f"{s['name']} {s['direction']} {num(s['strength'])}" for s in d["signals"])
        agg = d["aggregate"]
        lines.append(f"Signals: {sig}; aggregate {agg.get('action')} (confidence {num(agg.get('confidence'))})")
    elif d["indicators"]:
        lines.append("Signals: none fired")
    if d["indicators"]:
        keys = [k for k in ("close", "rsi", "macd_hist", "bb_percent_b", "atr_pct") if k in d["indicators"]]
        lines.append("Indicators: " + ", ".join(f"{k} {num(d['indicators'][k])}" for k in keys))
    intent = d.get("intent")
    if intent:
        lines.append(f"Intent: {intent['action']}, conviction {num(intent['conviction'])}, horizon {intent['horizon']} "
                     f"candles ({intent.get('reasoner')} reasoner). Rationale: {intent['rationale']}")  # fmt: skip
    lines += _reasoner_lines(d.get("reasoner"))
    risk = d.get("risk")
    if risk:
        lines.append(
            f"Risk: win probability {num(risk['win_probability'])}, payoff {num(risk['payoff_ratio'])}, Kelly "
            f"{num(risk['kelly_fraction'])} → {num(risk['applied_fraction'])} of equity, target notional "
            f"{num(risk['target_notional'])} (now {num(risk['current_notional'])})"
            + (f"; stop {num(risk['stop_loss'])}" if risk.get("stop_loss") is not None else "")
            + (f", take-profit {num(risk['take_profit'])}" if risk.get("take_profit") is not None else "")
            + f"; VaR {num(risk['var_historical'])}, CVaR {num(risk['cvar_historical'])}"
            f"; exposure {num(risk['exposure_before'])} → {num(risk['exposure_after'])}"
            + (f"; note: {risk['note']}" if risk.get("note") else "")
        )
    gate = d.get("gate")
    if gate:
        reasons = ", ".join(gate["reasons"]) or "no reason code"
        lines.append(f"Gate: {gate['decision']} ({reasons}); approved {num(gate['approved_quantity'])} of "
                     f"{num(gate['proposed_quantity'])}. {'; '.join(gate['details'])}")  # fmt: skip
    elif d.get("proposal") is None and intent:
        lines.append("Gate: not reached (no order was proposed)")
    for order in d["orders"]:
        lines.append(f"Order: {order['kind']} {order['side']} {num(order['quantity'])} at reference "
                     f"{num(order['reference_price'])}, {order['status']} ({num(order['filled_quantity'])} filled)")  # fmt: skip
    for f in d["fills"]:
        lines.append(f"Fill: {f['time']} {f['kind']} {f['side']} {num(f['quantity'])} @ {num(f['price'])}, fee "
                     f"{num(f['fee'])}, realized {num(f['realized_pnl'])}")  # fmt: skip
    lines += _later_lines(d["later"])
    pf = d.get("portfolio_at_decision") or {}
    if pf:
        lines.append("Portfolio at the decision: " + ", ".join(f"{k} {num(v)}" for k, v in pf.items()))
    return "\n".join(lines)


def _reasoner_lines(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return []
    lines = []
    if r.get("model") or r.get("calls"):
        head = f"Reasoner: {r.get('reasoner')} (outcome {r.get('outcome')}"
        if r.get("reason"):
            head += f": {r['reason']}"
        if r.get("fallback"):
            head += f"; fallback {r['fallback']}"
        lines.append(head + ")")
        for c in r.get("calls") or []:
            lines.append(
                f"LLM call: node {c.get('node')}, {c.get('provider')} {c.get('model')}, prompt {c.get('prompt_id')} "
                f"({c.get('prompt_hash')}), outcome {c.get('outcome')}, tokens {c.get('input_tokens')}/"
                f"{c.get('output_tokens')}, cost {c.get('cost_usd')} USD, {c.get('latency_ms')} ms"
                + (f", error: {c['error']}" if c.get("error") else "")
                + (f", injection flags: {c['injection_flags']}" if c.get("injection_flags") else "")
            )
            raw = c.get("raw_response")
            if raw:
                shown = raw if len(raw) <= RAW_SHOWN else raw[:RAW_SHOWN] + f"... ({len(raw)} characters)"
                lines.append(f"  raw response: {shown}")
    return lines


def _later_lines(later: dict[str, Any]) -> list[str]:
    lines = []
    trip = later.get("round_trip")
    if trip:
        if trip["closed"]:
            lines.append(
                f"Later: the position opened {trip['opened']} [{trip['opened_by']}] was closed {trip['closed']} by "
                f"{trip['closed_with']} [{trip['closed_by']}]; the round trip realized {num(trip['realized_pnl'])} net of "
                f"{num(trip['fees'])} fees ({trip['fills']} fills)"
            )
        else:
            lines.append(
                f"Later: the position opened {trip['opened']} [{trip['opened_by']}] is still open at the end of the "
                f"journal ({num(trip['still_open_quantity'])}); realized so far {num(trip['realized_pnl'])}"
            )
    elif later.get("order_status"):
        lines.append(f"Later: the order ended {later['order_status']} with no fill")
    move = later.get("price_move")
    if isinstance(move, dict):
        lines.append(
            f"Price after: close {num(move['close_at_decision'])} → {num(move['close_at_end'])} at {move['end_time']} "
            f"({pct(move['change'])} over {move['candles_observed']} of {move['horizon_candles']} horizon candles; "
            f"closes ranged {num(move['lowest_close'])} .. {num(move['highest_close'])}) [{move['end_decision']}]"
        )
    elif isinstance(move, str):
        lines.append(f"Price after: {move}")
    return lines


def describe_time(ms: int) -> str:
    return to_iso(ms) + " UTC"
