"""Typed trade objects: intents from a reasoner, sized proposals, gate verdicts, orders, fills, portfolio."""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tools.signals import Action


class TradeIntent(BaseModel):
    """What a reasoner wants. Data to be validated and sized, never an instruction to execute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Action
    conviction: float = Field(ge=0.0, le=1.0)
    horizon: int = Field(ge=1, le=10_000, description="expected holding period, in candles")
    rationale: str = Field(max_length=4000)
    evidence: dict[str, float] = Field(default_factory=dict)
    reasoner: str = "rules"
    probability_up: float | None = Field(default=None, ge=0.0, le=1.0)
    size_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of the sized target the reasoner asks for (scales it down, never up); None: the full target."""


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderProposal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    side: Side
    quantity: float
    reference_price: float
    stop_loss: float | None = None
    take_profit: float | None = None

    @property
    def notional(self) -> float:
        return self.quantity * self.reference_price


class RiskAssessment(BaseModel):
    model_config = ConfigDict(frozen=True)

    win_probability: float
    payoff_ratio: float
    kelly_fraction: float
    """Full Kelly f* = p - (1 - p) / b, floored at 0."""
    applied_fraction: float
    """Fraction of equity actually targeted: kelly_multiplier * f*, capped."""
    target_notional: float
    current_notional: float
    atr: float
    stop_loss: float | None
    take_profit: float | None
    var_confidence: float
    var_historical: float
    cvar_historical: float
    var_parametric: float
    cvar_parametric: float
    exposure_before: float
    """Gross exposure / equity before the order."""
    exposure_after: float
    note: str = ""


class GateDecision(StrEnum):
    APPROVE = "APPROVE"
    SHRINK = "SHRINK"
    DENY = "DENY"


class GateReason(StrEnum):
    INVALID_ORDER = "INVALID_ORDER"
    SYMBOL_NOT_ALLOWED = "SYMBOL_NOT_ALLOWED"
    STALE_DATA = "STALE_DATA"
    ABNORMAL_VOLATILITY = "ABNORMAL_VOLATILITY"
    DRAWDOWN_BREAKER = "DRAWDOWN_BREAKER"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    COOLDOWN_AFTER_STOP = "COOLDOWN_AFTER_STOP"
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    ORDER_RATE_LIMIT = "ORDER_RATE_LIMIT"
    SHORTING_DISABLED = "SHORTING_DISABLED"
    NO_CAPACITY = "NO_CAPACITY"
    BELOW_MIN_ORDER_SIZE = "BELOW_MIN_ORDER_SIZE"
    SHRUNK_MAX_ORDER_NOTIONAL = "SHRUNK_MAX_ORDER_NOTIONAL"
    SHRUNK_MAX_ORDER_SIZE = "SHRUNK_MAX_ORDER_SIZE"
    SHRUNK_MAX_POSITION = "SHRUNK_MAX_POSITION"
    SHRUNK_MAX_GROSS_EXPOSURE = "SHRUNK_MAX_GROSS_EXPOSURE"
    SHRUNK_CASH = "SHRUNK_CASH"
    SHRUNK_TO_POSITION = "SHRUNK_TO_POSITION"


class GateVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: GateDecision
    reasons: list[GateReason] = Field(default_factory=list)
    proposed_quantity: float
    approved_quantity: float
    increases_risk: bool
    details: list[str] = Field(default_factory=list)

    @property
    def approved(self) -> bool:
        return self.decision is not GateDecision.DENY


class OrderStatus(StrEnum):
    PENDING = "pending"
    """Handed to the broker; for an exchange broker, not yet acknowledged by the exchange."""
    OPEN = "open"
    """Acknowledged by the exchange, nothing filled yet."""
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    LOST = "lost"
    """The journal had the order as unfinished, and the exchange does not know its client order id."""


UNFINISHED_STATUSES = frozenset({OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})
"""Statuses of an exchange order that is not done yet. (The paper broker also leaves PARTIALLY_FILLED on an
order canceled after a partial fill; exchange brokers use CANCELED with a non-zero filled quantity.)"""


class Order(BaseModel):
    """An order handed to a broker. ``client_order_id`` is derived from the decision, so a retry is the same order."""

    client_order_id: str
    decision_id: str
    symbol: str
    side: Side
    quantity: float
    reference_price: float
    submitted_at: int
    stop_loss: float | None = None
    take_profit: float | None = None
    kind: str = "entry"
    """entry | exit (from a decision) or stop_loss | take_profit (raised by the broker)."""
    status: OrderStatus = OrderStatus.PENDING
    filled_quantity: float = 0.0
    exchange_order_id: str | None = None
    note: str = ""
    """Why the order is what it is (a rejection reason, the rounding applied), for the journal."""


class Fill(BaseModel):
    model_config = ConfigDict(frozen=True)

    client_order_id: str
    decision_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    timestamp: int
    kind: str
    slippage_bps: float
    realized_pnl: float = 0.0


class PositionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    quantity: float
    """Signed: positive long, negative short."""
    average_price: float
    stop_loss: float | None = None
    take_profit: float | None = None


class PortfolioView(BaseModel):
    """The portfolio as the gate must see it: positions, pending orders, and the history limits need."""

    model_config = ConfigDict(frozen=True)

    cash: float
    available_cash: float
    """Cash not reserved by pending buys (including their fee buffer)."""
    equity: float
    peak_equity: float
    day_start_equity: float
    positions: dict[str, PositionView] = Field(default_factory=dict)
    pending: dict[str, float] = Field(default_factory=dict)
    """Signed quantity of pending (unfilled) orders per symbol."""
    marks: dict[str, float] = Field(default_factory=dict)
    last_stop_out: dict[str, int] = Field(default_factory=dict)
    order_times: list[int] = Field(default_factory=list)
    """Submission times (UTC ms) of recent orders, for the per-hour limit."""

    def exposure_quantity(self, symbol: str) -> float:
        held = self.positions.get(symbol)
        return (held.quantity if held else 0.0) + self.pending.get(symbol, 0.0)

    def gross_exposure(self, symbol: str | None = None, price: float | None = None) -> float:
        """Gross notional of positions plus pending orders, marking ``symbol`` at ``price`` when given."""
        total = 0.0
        for sym in set(self.positions) | set(self.pending):
            qty = self.exposure_quantity(sym)
            if qty == 0:
                continue
            if sym == symbol and price is not None:
                mark = price
            else:
                held = self.positions.get(sym)
                # an unmarked symbol is valued at its entry price rather than counted as zero exposure
                mark = self.marks.get(sym, held.average_price if held else math.inf)
            total += abs(qty) * mark
        return total

    def open_position_count(self) -> int:
        return sum(1 for sym in set(self.positions) | set(self.pending) if self.exposure_quantity(sym) != 0)
