"""Edges: where a decision goes next. Every path ends in the journal; execution is reachable only via the gate."""

from __future__ import annotations

from graph.nodes import nothing_to_decide
from graph.state import DecisionState
from tools.signals import Action


def after_validate(state: DecisionState) -> str:
    return "technical_analysis" if state["validation"].ok else "journal"


def after_technical(state: DecisionState, *, allow_short: bool, reason_every_snapshot: bool = False) -> str:
    if reason_every_snapshot:
        return "strategy_fusion"
    return "journal" if nothing_to_decide(state, allow_short) else "strategy_fusion"


def after_fusion(state: DecisionState) -> str:
    trace = state.get("trace")
    if trace is not None and trace.failed and trace.fallback != "rules":
        return "journal"  # a failed, rejected or refused LLM call never reaches sizing, the gate or execution
    return "journal" if state["intent"].action is Action.HOLD else "risk_assessment"


def after_risk(state: DecisionState) -> str:
    return "risk_gate" if state.get("proposal") is not None else "journal"


def after_gate(state: DecisionState) -> str:
    return "execute" if state["verdict"].approved else "journal"
