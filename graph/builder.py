"""Wires nodes and edges into the compiled LangGraph state machine."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from agents.reasoner import Reasoner
from graph import nodes, routing
from graph.nodes import ReasonerContext
from graph.state import DecisionState
from infra.crash_points import crash_point
from infra.journal import DecisionSink
from tools.broker import Broker
from tools.risk_gate import RiskLimits
from tools.risk_sizing import RiskConfig
from tools.technical_analysis import TAConfig

NodeFn = Callable[[DecisionState], DecisionState]


@dataclass(frozen=True)
class GraphDeps:
    ta: TAConfig
    reasoner: Reasoner
    risk: RiskConfig
    limits: RiskLimits
    broker: Broker
    journal: DecisionSink
    run_id: str
    context: ReasonerContext | None = None
    """Recent candles, risk budget and news for reasoners that read them (the LLM ones)."""
    reason_every_snapshot: bool = False
    """Gating off: every valid snapshot goes to the reasoner, even with no position and no signal."""

    @property
    def allow_short(self) -> bool:
        return self.limits.allow_short


def node_functions(deps: GraphDeps) -> dict[str, NodeFn]:
    """The nodes with their dependencies bound; also used by the plain-loop benchmark."""
    short = deps.allow_short
    return {
        "validate_snapshot": partial(nodes.validate_snapshot, min_history=deps.ta.min_history),
        "technical_analysis": partial(nodes.technical_analysis, cfg=deps.ta),
        "strategy_fusion": partial(
            nodes.strategy_fusion, reasoner=deps.reasoner, allow_short=short, context=deps.context
        ),
        "risk_assessment": partial(nodes.risk_assessment, cfg=deps.risk, allow_short=short),
        "risk_gate": partial(nodes.risk_gate, limits=deps.limits),
        "execute": partial(nodes.execute, broker=deps.broker),
        "journal": partial(nodes.journal, store=deps.journal, run_id=deps.run_id, allow_short=short),
    }


def _timed(name: str, fn: NodeFn) -> NodeFn:
    # The runner hands each snapshot a fresh timings dict; writing into it (instead of returning a
    # "timings" update through a reducer channel) keeps timing from costing a channel write per node.
    enter, leave = f"enter:{name}", f"leave:{name}"

    def run(state: DecisionState) -> DecisionState:
        crash_point(enter)
        start = perf_counter()
        out = fn(state)
        timings = state.get("timings")
        if timings is not None:
            timings[name] = round((perf_counter() - start) * 1e6, 1)
        crash_point(leave)
        return out

    return run


def build_graph(
    deps: GraphDeps,
    replace: Mapping[str, NodeFn] | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    interrupt_before: Sequence[str] = (),
) -> Any:
    """The compiled graph; ``replace`` swaps node functions by name (same wiring, e.g. the locked gate of
    distributed runs); durable runs (graph.durable) pass a checkpointer and where to stop for durability."""
    fns = node_functions(deps)
    for name, fn in (replace or {}).items():
        if name not in fns:
            raise ValueError(f"no node {name!r} to replace")
        fns[name] = fn
    g = StateGraph(DecisionState)
    for name, fn in fns.items():
        node: Any = _timed(name, fn)
        g.add_node(name, node)
    g.add_edge(START, "validate_snapshot")
    g.add_conditional_edges("validate_snapshot", routing.after_validate, ["technical_analysis", "journal"])
    g.add_conditional_edges(
        "technical_analysis",
        partial(
            routing.after_technical, allow_short=deps.allow_short, reason_every_snapshot=deps.reason_every_snapshot
        ),
        ["strategy_fusion", "journal"],
    )
    g.add_conditional_edges("strategy_fusion", routing.after_fusion, ["risk_assessment", "journal"])
    g.add_conditional_edges("risk_assessment", routing.after_risk, ["risk_gate", "journal"])
    g.add_conditional_edges("risk_gate", routing.after_gate, ["execute", "journal"])
    g.add_edge("execute", "journal")
    g.add_edge("journal", END)
    return g.compile(checkpointer=checkpointer, interrupt_before=list(interrupt_before) or None)
