"""The risk gate: hard-coded checks configured only by limits. It can approve, shrink or deny; never enlarge.

Order of checks (first denial wins; every binding shrink is listed):
1. malformed order (non-finite or non-positive quantity/price)                -> DENY INVALID_ORDER
2. stale data (candle older than max_data_age_candles)                          -> DENY STALE_DATA
3. rate limit (orders in the last hour >= max_orders_per_hour)                  -> DENY ORDER_RATE_LIMIT
4. an order that reduces a position (toward zero, never crossing it) is shrunk to the position and is
   allowed through the halts below: only size limits apply to it.
5. for an order that adds risk: symbol allow-list, shorting, abnormal volatility, drawdown breaker, daily
   loss limit, cooldown after a stop-out, max open positions                    -> DENY with that code
6. size: min of the proposal and each cap (order notional, order size, position per symbol, gross exposure,
   available cash for buys); below the minimum order                            -> DENY, else SHRINK/APPROVE
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from tools.trade_types import GateDecision, GateReason, GateVerdict, OrderProposal, PortfolioView, Side

HOUR_MS = 3_600_000
_EPS = 1e-9


class RiskLimits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_symbols: frozenset[str] = frozenset()
    """Symbols that may take new risk. Empty means the run's own symbols (filled in by the composition root)."""
    allow_short: bool = False
    max_order_notional: float = Field(default=25_000.0, gt=0)
    min_order_notional: float = Field(default=10.0, ge=0)
    min_order_quantity: float = Field(default=0.0, ge=0)
    max_order_quantity: float | None = Field(default=None, gt=0)
    max_position_fraction: float = Field(default=0.5, gt=0, description="per symbol, of equity")
    max_gross_exposure: float = Field(default=1.0, gt=0, description="all positions and pending orders, of equity")
    max_open_positions: int = Field(default=4, ge=0)
    daily_loss_limit: float = Field(default=0.05, gt=0, lt=1, description="loss since the UTC day began")
    max_drawdown: float = Field(default=0.20, gt=0, lt=1, description="from peak equity; halts new risk")
    cooldown_minutes: float = Field(default=360.0, ge=0, description="after a stop-out, per symbol")
    max_orders_per_hour: int = Field(default=12, ge=0)
    max_data_age_candles: float = Field(default=1.0, ge=0)
    max_atr_pct: float = Field(default=0.08, gt=0, description="ATR / price above this is abnormal")
    max_candle_range_pct: float = Field(default=0.15, gt=0, description="(high - low) / close of the last candle")
    cash_buffer_bps: float = Field(default=50.0, ge=0, description="fees and slippage reserved on buys")


class MarketContext(BaseModel):
    """What the gate knows of the market at the decision: the price and how fresh and calm it is."""

    model_config = ConfigDict(frozen=True)

    candle_close_time: int
    as_of: int
    timeframe_ms: int
    atr_pct: float
    last_range_pct: float


def _deny(reason: GateReason, proposal: OrderProposal, increases: bool, detail: str) -> GateVerdict:
    return GateVerdict(
        decision=GateDecision.DENY,
        reasons=[reason],
        proposed_quantity=proposal.quantity,
        approved_quantity=0.0,
        increases_risk=increases,
        details=[detail],
    )


def _risk_halt(
    p: OrderProposal, pf: PortfolioView, m: MarketContext, lim: RiskLimits, current: float
) -> tuple[GateReason, str] | None:
    if p.symbol not in lim.allowed_symbols:
        return GateReason.SYMBOL_NOT_ALLOWED, f"{p.symbol} is not in the allow-list"
    if p.side is Side.SELL and current - p.quantity < -_EPS and not lim.allow_short:
        return GateReason.SHORTING_DISABLED, "selling more than is held would open a short; shorting is off"
    if not (math.isfinite(m.atr_pct) and m.atr_pct <= lim.max_atr_pct):
        return GateReason.ABNORMAL_VOLATILITY, f"ATR {m.atr_pct:.2%} of price > {lim.max_atr_pct:.2%}"
    if not (math.isfinite(m.last_range_pct) and m.last_range_pct <= lim.max_candle_range_pct):
        return (
            GateReason.ABNORMAL_VOLATILITY,
            f"last candle range {m.last_range_pct:.2%} > {lim.max_candle_range_pct:.2%}",
        )
    # Written as "not (ok)" so that an unknown (NaN) equity or drawdown halts instead of passing.
    if not (pf.equity > 0 and pf.peak_equity > 0):
        return GateReason.NO_CAPACITY, "equity is not positive"
    drawdown = 1.0 - pf.equity / pf.peak_equity
    if not drawdown < lim.max_drawdown:
        return GateReason.DRAWDOWN_BREAKER, f"drawdown {drawdown:.2%} >= {lim.max_drawdown:.2%}: new risk halted"
    day_loss = 1.0 - pf.equity / pf.day_start_equity if pf.day_start_equity > 0 else 1.0
    if not day_loss < lim.daily_loss_limit:
        return GateReason.DAILY_LOSS_LIMIT, f"loss today {day_loss:.2%} >= {lim.daily_loss_limit:.2%}"
    stopped = pf.last_stop_out.get(p.symbol)
    if stopped is not None and m.as_of - stopped < lim.cooldown_minutes * 60_000:
        return GateReason.COOLDOWN_AFTER_STOP, f"stopped out {(m.as_of - stopped) / 60_000:.0f} min ago"
    if abs(current) <= _EPS and pf.open_position_count() >= lim.max_open_positions:
        return (
            GateReason.MAX_OPEN_POSITIONS,
            f"{pf.open_position_count()} positions open (max {lim.max_open_positions})",
        )
    return None


def _size_caps(
    p: OrderProposal, pf: PortfolioView, lim: RiskLimits, current: float, increases: bool
) -> list[tuple[float, GateReason]]:
    price = p.reference_price
    caps = [(lim.max_order_notional / price, GateReason.SHRUNK_MAX_ORDER_NOTIONAL)]
    if lim.max_order_quantity is not None:
        caps.append((lim.max_order_quantity, GateReason.SHRUNK_MAX_ORDER_SIZE))
    if not increases:
        caps.append((abs(current), GateReason.SHRUNK_TO_POSITION))
        return caps
    position_room = lim.max_position_fraction * pf.equity / price - abs(current)
    gross_room = (lim.max_gross_exposure * pf.equity - pf.gross_exposure(p.symbol, price)) / price
    caps.append((position_room, GateReason.SHRUNK_MAX_POSITION))
    caps.append((gross_room, GateReason.SHRUNK_MAX_GROSS_EXPOSURE))
    if p.side is Side.BUY:
        caps.append((pf.available_cash / (price * (1 + lim.cash_buffer_bps / 10_000)), GateReason.SHRUNK_CASH))
    return caps


def evaluate_gate(
    proposal: OrderProposal, portfolio: PortfolioView, market: MarketContext, limits: RiskLimits
) -> GateVerdict:
    p = proposal
    if not (
        math.isfinite(p.quantity) and math.isfinite(p.reference_price) and p.quantity > 0 and p.reference_price > 0
    ):
        return _deny(GateReason.INVALID_ORDER, p, True, "quantity and price must be positive and finite")
    current = portfolio.exposure_quantity(p.symbol)
    # An order reduces risk only if it moves the position toward zero; a crossing order is cut at zero.
    increases = not (current * p.side.sign < -_EPS)
    age = market.as_of - market.candle_close_time
    if age > limits.max_data_age_candles * market.timeframe_ms:
        return _deny(GateReason.STALE_DATA, p, increases, f"last candle closed {age / 60_000:.0f} min ago")
    recent = sum(1 for t in portfolio.order_times if market.as_of - t < HOUR_MS)
    if recent >= limits.max_orders_per_hour:
        return _deny(GateReason.ORDER_RATE_LIMIT, p, increases, f"{recent} orders in the last hour")
    if increases:
        halt = _risk_halt(p, portfolio, market, limits, current)
        if halt:
            return _deny(halt[0], p, increases, halt[1])
    # A cap that cannot be computed (NaN from an unknown equity, cash, mark or position) leaves no room.
    caps = _size_caps(p, portfolio, limits, current, increases)
    caps = [(0.0 if math.isnan(cap) else cap, reason) for cap, reason in caps]
    approved = max(0.0, min([p.quantity] + [cap for cap, _ in caps]))
    binding = [reason for cap, reason in caps if cap < p.quantity - _EPS]
    if approved <= _EPS:
        return _deny(GateReason.NO_CAPACITY, p, increases, "limits leave no room: " + ", ".join(binding))
    if approved * p.reference_price < limits.min_order_notional or approved < limits.min_order_quantity:
        return _deny(
            GateReason.BELOW_MIN_ORDER_SIZE, p, increases, f"order of {approved:.8g} below the minimum order size"
        )
    decision = GateDecision.SHRINK if binding else GateDecision.APPROVE
    return GateVerdict(
        decision=decision,
        reasons=binding,
        proposed_quantity=p.quantity,
        approved_quantity=approved,
        increases_risk=increases,
        details=[f"approved {approved:.8g} of {p.quantity:.8g}"],
    )
