"""Typed state of one decision. Values are pydantic models; each node returns only what it changes."""

from __future__ import annotations

from typing import TypedDict

from pydantic import BaseModel, ConfigDict

from agents.reasoner import ReasonerTrace
from tools.market import Snapshot
from tools.signals import TechnicalReport
from tools.trade_types import GateVerdict, Order, OrderProposal, PortfolioView, RiskAssessment, TradeIntent


class Validation(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    reason: str = "ok"
    detail: str = ""


class DecisionState(TypedDict, total=False):
    decision_id: str
    snapshot: Snapshot
    portfolio: PortfolioView
    validation: Validation
    technical: TechnicalReport
    intent: TradeIntent
    trace: ReasonerTrace
    risk: RiskAssessment
    proposal: OrderProposal | None
    verdict: GateVerdict
    order: Order
    outcome: str
    timings: dict[str, float]
    """Node name -> microseconds; a per-snapshot dict the runner creates and the node wrappers fill in."""
