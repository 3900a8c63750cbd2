"""The chat inspector's agent mode: a small LangGraph tool-calling loop whose prose is checked before it is shown.

    START → prefetch → model ⇄ tools
                         └──→ verify → END

- ``prefetch``: when the deterministic reader understands the question, its tool calls are made first and
  handed to the model as an earlier tool exchange (small models often answer without calling tools).
- ``model``: the chat model with the journal tools bound (OpenAI tool-calling wire format).
- ``tools``: runs the requested tools (``agents.journal_tools``) and returns their JSON.
- ``verify``: ``agents.answer_check``; an answer stating a number no tool returned, citing an id no tool
  returned, or citing nothing, is withheld with the reason, and the deterministic answer is shown instead.
  A failing endpoint, or no answer within ``max_steps`` model turns, is handled the same way.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.answer_check import check_answer
from agents.chat_deterministic import AgentUse, ChatAnswer, DeterministicChat
from agents.chat_questions import Question
from agents.journal_tools import InspectorTools, ToolOutput, parse_time_arg
from prompts import PromptTemplate, load_prompt
from tools.timeframes import to_iso

PROMPT_ID = "chat_inspector.v1"
MAX_TOOL_CHARS = 3500
LOOKUP_TEXT = " "  # not echoable as an answer: an empty reply is withheld
VERBOSE_KEYS = (
    "inputs",
    "candle",
    "indicators",
    "portfolio_at_decision",
    "proposal",
    "values",
    "raw_response",
    "parsed",
)


# --- the tools as the model sees them ------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FindArgs(_Args):
    symbol: str | None = Field(default=None, description="e.g. ETH/USDT or ETH")
    start: str | None = Field(default=None, description="from this time, YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)")
    end: str | None = Field(default=None, description="before this time, YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)")
    action: Literal["BUY", "SELL", "HOLD"] | None = None
    verdict: Literal["APPROVE", "SHRINK", "DENY"] | None = Field(default=None, description="the risk gate's verdict")
    outcome: Literal["invalid", "skipped", "hold", "no_order", "denied", "ordered", "error"] | None = None
    limit: int = Field(default=10, ge=1, le=50)


class DecisionAtArgs(_Args):
    symbol: str = Field(description="e.g. ETH/USDT or ETH")
    time: str = Field(description="candle time, YYYY-MM-DD HH:MM (UTC)")
    action: Literal["BUY", "SELL", "HOLD"] | None = None


class ExplainArgs(_Args):
    decision_id: str = Field(description="a decision id such as d-0123456789abcdef")


class PositionsArgs(_Args):
    time: str | None = Field(default=None, description="YYYY-MM-DD HH:MM (UTC); omitted: the end of the journal")


class DenialsArgs(_Args):
    symbol: str | None = None
    start: str | None = Field(default=None, description="YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)")
    end: str | None = Field(default=None, description="YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)")


class RangeArgs(_Args):
    start: str | None = Field(default=None, description="YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)")
    end: str | None = Field(default=None, description="YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)")


class NoArgs(_Args):
    pass


TOOL_SPECS: dict[str, tuple[type[_Args], str]] = {
    "run_info": (NoArgs, "The run being inspected: id, symbols, timeframe, time span, decisions by outcome."),
    "find_decisions": (FindArgs, "Find decisions by symbol, time range, action, gate verdict or outcome."),
    "decision_at": (DecisionAtArgs, "The decision of a symbol at a candle time (e.g. 'why did it buy ETH at 14:00')."),
    "explain_decision": (
        ExplainArgs,
        "One decision's evidence: signals, intent and rationale, risk, gate verdict, "
        "order, fills and what happened later.",
    ),
    "positions_at": (PositionsArgs, "Positions, cash, equity and PnL at a time."),
    "denied_orders": (DenialsArgs, "Orders the risk gate denied, and why, with counts by reason."),
    "performance": (RangeArgs, "Return, drawdown and Sharpe of the run against buy-and-hold over a range."),
}


def openai_tools() -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": name, "description": desc, "parameters": args.model_json_schema()}}
        for name, (args, desc) in TOOL_SPECS.items()
    ]


def _time(value: str | None, field: str) -> int | None:
    return None if value is None else parse_time_arg(value, field)


def call_tool(tools: InspectorTools, name: str, raw_args: dict[str, Any]) -> ToolOutput:
    """Run one tool the model asked for; bad names or arguments come back as an error the model can read."""
    spec = TOOL_SPECS.get(name)
    if spec is None:
        return ToolOutput(tool=name, data={"error": f"there is no tool {name!r}; tools: {', '.join(TOOL_SPECS)}"})
    try:
        a: Any = spec[0].model_validate({k: v for k, v in (raw_args or {}).items() if v is not None})
        if name == "run_info":
            return tools.run_info()
        if name == "find_decisions":
            return tools.find_decisions(a.symbol, _time(a.start, "start"), _time(a.end, "end"), a.action, a.verdict,
                                        a.outcome, a.limit)  # fmt: skip
        if name == "decision_at":
            return tools.decision_at(a.symbol, parse_time_arg(a.time, "time"), a.action)
        if name == "explain_decision":
            return tools.explain_decision(a.decision_id)
        if name == "positions_at":
            return tools.positions_at(_time(a.time, "time"))
        if name == "denied_orders":
            return tools.denied_orders(a.symbol, _time(a.start, "start"), _time(a.end, "end"))
        return tools.performance(_time(a.start, "start"), _time(a.end, "end"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return ToolOutput(tool=name, data={"error": f"bad argument {where}: {first['msg']}"})
    except ValueError as exc:
        return ToolOutput(tool=name, data={"error": str(exc)})


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if k not in VERBOSE_KEYS}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def model_view(output: ToolOutput) -> str:
    """The tool result as the model reads it: JSON, shortened for small context windows when it is long."""
    body = {**output.data, "citable_decision_ids": output.decision_ids}
    text = json.dumps(body, separators=(",", ":"), default=str)
    if len(text) > MAX_TOOL_CHARS:
        text = json.dumps(_compact(body), separators=(",", ":"), default=str)
    return text if len(text) <= MAX_TOOL_CHARS else text[:MAX_TOOL_CHARS] + "...(truncated)"


def _prefetch_args(q: Question, output: ToolOutput) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if output.tool == "explain_decision":
        args["decision_id"] = output.data.get("id") or q.decision_id
    elif output.tool == "decision_at":
        args.update(symbol=q.symbol or q.unknown_symbol, time=to_iso(q.at) if q.at is not None else None)
    else:
        for key, value in (("symbol", q.symbol or q.unknown_symbol), ("start", q.start), ("end", q.end),
                           ("time", q.at), ("action", q.action), ("verdict", q.verdict)):  # fmt: skip
            if value is not None:
                args[key] = to_iso(value) if isinstance(value, int) else value
    return args


# --- the graph -----------------------------------------------------------------------------------------


class AgentState(TypedDict, total=False):
    question: str
    messages: Annotated[list[AnyMessage], add_messages]
    outputs: Annotated[list[ToolOutput], operator.add]
    steps: int
    calls: int
    failure: str
    answer: ChatAnswer


class InspectorAgent:
    """Answers in prose through ``model`` with the journal tools; falls back to the deterministic answer."""

    def __init__(
        self,
        tools: InspectorTools,
        model: BaseChatModel,
        max_steps: int = 6,
        prefetch: bool = True,
        prompt: PromptTemplate | None = None,
        model_name: str | None = None,
    ) -> None:
        self.tools = tools
        self.deterministic = DeterministicChat(tools)
        self.model = model.bind_tools(openai_tools())
        self.model_name = model_name or str(getattr(model, "model_name", "") or "model")
        self.max_steps = max_steps
        self.prefetch_enabled = prefetch
        self.prompt = prompt or load_prompt(PROMPT_ID)
        """The versioned system prompt (prompts/), loaded as package data; its id and hash go with every answer."""
        self.system = self.prompt.section("system")
        self.graph = self._build()

    def _build(self) -> Any:
        g = StateGraph(AgentState)
        g.add_node("prefetch", self._prefetch)
        g.add_node("model", self._call_model)
        g.add_node("tools", self._run_tools)
        g.add_node("verify", self._verify)
        g.add_edge(START, "prefetch")
        g.add_edge("prefetch", "model")
        g.add_conditional_edges("model", self._after_model, ["tools", "verify"])
        g.add_edge("tools", "model")
        g.add_edge("verify", END)
        return g.compile()

    def answer(self, question: str) -> ChatAnswer:
        state = {
            "question": question,
            "messages": [SystemMessage(self.system), HumanMessage(question)],
            "outputs": [],
            "steps": 0,
            "calls": 0,
        }
        result = self.graph.invoke(state, {"recursion_limit": 4 * self.max_steps + 8})
        answer: ChatAnswer = result["answer"]
        return answer

    # --- nodes --------------------------------------------------------------------------------------
    def _prefetch(self, state: AgentState) -> AgentState:
        if not self.prefetch_enabled or self.tools.run() is None:
            return {}
        q = self.deterministic.understand(state["question"])
        if q.problem:
            return {}
        outputs = self.deterministic.gather(q)
        if not outputs:
            return {}
        calls = [{"name": o.tool, "args": _prefetch_args(q, o), "id": f"prefetch-{i}", "type": "tool_call"}
                 for i, o in enumerate(outputs)]  # fmt: skip
        messages: list[AnyMessage] = [AIMessage(content=LOOKUP_TEXT, tool_calls=calls)]
        messages += [
            ToolMessage(content=model_view(o), tool_call_id=c["id"]) for o, c in zip(outputs, calls, strict=True)
        ]
        return {"messages": messages, "outputs": outputs}

    def _call_model(self, state: AgentState) -> AgentState:
        calls = state.get("calls", 0) + 1
        try:
            reply = self.model.invoke([_with_text(m) for m in state["messages"]])
        except Exception as exc:  # any endpoint failure: the deterministic answer is shown instead
            return {"failure": f"the model endpoint failed ({type(exc).__name__}: {str(exc)[:200]})", "calls": calls}
        return {"messages": [reply], "steps": state.get("steps", 0) + 1, "calls": calls}

    def _after_model(self, state: AgentState) -> str:
        if state.get("failure"):
            return "verify"
        last = state["messages"][-1]
        wants_tools = isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls)
        if wants_tools and state.get("steps", 0) < self.max_steps:
            return "tools"
        return "verify"

    def _run_tools(self, state: AgentState) -> AgentState:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        calls = [(c["id"], call_tool(self.tools, c["name"], c.get("args") or {})) for c in last.tool_calls]
        for bad in last.invalid_tool_calls:  # arguments that are not JSON: say so, the model may try again
            error = f"the arguments of {bad.get('name')!r} are not valid JSON: {str(bad.get('args'))[:200]}"
            calls.append((bad.get("id"), ToolOutput(tool=str(bad.get("name")), data={"error": error})))
        messages: list[AnyMessage] = [
            ToolMessage(content=model_view(o), tool_call_id=cid or f"call-{i}") for i, (cid, o) in enumerate(calls)
        ]
        return {"messages": messages, "outputs": [o for _, o in calls]}

    def _use(self, state: AgentState) -> AgentUse:
        usage = [m.usage_metadata for m in state["messages"] if isinstance(m, AIMessage) and m.usage_metadata]
        return AgentUse(model=self.model_name, prompt_id=self.prompt.id, prompt_hash=self.prompt.hash,
                        calls=state.get("calls", 0), input_tokens=sum(u["input_tokens"] for u in usage),
                        output_tokens=sum(u["output_tokens"] for u in usage))  # fmt: skip

    def _verify(self, state: AgentState) -> AgentState:
        outputs = state.get("outputs", [])
        used = list(dict.fromkeys(o.tool for o in outputs))
        failure = state.get("failure")
        text = ""
        if not failure:
            last = state["messages"][-1]
            if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
                failure = f"the model gave no answer within {self.max_steps} turns"
            else:
                text = _text_of(last)
        if not failure:
            check = check_answer(text, outputs, state["question"])
            if check.ok:
                cited = [i for i in dict.fromkeys(_ids(text))]
                return {"answer": ChatAnswer(text=text.strip(), cited=cited, mode="agent", tools=used,
                                             llm=self._use(state))}  # fmt: skip
            failure = "the model's answer was withheld: " + check.reason
        fallback = self.deterministic.answer(state["question"])
        shown = f"{failure[0].upper()}{failure[1:]}. The deterministic answer:\n{fallback.text}"
        return {"answer": ChatAnswer(text=shown, cited=fallback.cited, mode="withheld", understood=fallback.understood,
                                     tools=used or fallback.tools, withheld_reason=failure, llm=self._use(state))}  # fmt: skip


def _with_text(message: AnyMessage) -> AnyMessage:
    """An assistant tool-call turn with some text: llama.cpp's server rejects one whose content is null."""
    if isinstance(message, AIMessage) and message.tool_calls and not message.content:
        return message.model_copy(update={"content": LOOKUP_TEXT})
    return message


def _text_of(message: AnyMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in content)


def _ids(text: str) -> list[str]:
    from agents.journal_tools import DECISION_ID

    return DECISION_ID.findall(text)


AnswerFn = Callable[[str], ChatAnswer]
