"""The risk gate: property tests over arbitrary orders, portfolios, limits and markets, then one example per code.

The properties restate the limits from their definitions (RiskLimits field docs, the module docstring) instead of
re-running the gate's own arithmetic, so a gate that forgets a check, mis-orders one or fails open on NaN breaks
them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from tools.risk_gate import HOUR_MS, MarketContext, RiskLimits, evaluate_gate
from tools.trade_types import (
    GateDecision,
    GateReason,
    GateVerdict,
    OrderProposal,
    PortfolioView,
    PositionView,
    Side,
)

NAN = math.nan
INF = math.inf
REL = 1e-9
"""Relative tolerance for float comparisons."""
DUST = 1e-9
"""Exposure at or below this (in units) counts as flat, as in the gate."""
NOW = 1_700_000_000_000
MINUTE = 60_000
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")
T = TypeVar("T")
SHRUNK = frozenset(r for r in GateReason if r.startswith("SHRUNK_"))

PROPERTY = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def le(a: float, b: float) -> bool:
    """a <= b up to a relative tolerance (False when either is NaN)."""
    return a <= b + REL * max(abs(a), abs(b))


# --------------------------------------------------------------------------------------------------------------
# strategies
#
# Hypothesis draws one block of bytes per example and ``decode`` reads the scenario off it. One draw is an order
# of magnitude cheaper than the ~150 separate draws a scenario needs, which is what lets every property run its
# 10,000 examples in seconds; shrinking still works, toward zero bytes, which decode to the first (plainest) option.


class Reader:
    """Reads choices off the bytes Hypothesis drew; past the end every byte is 0."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1] if self.at <= len(self.data) else 0

    def unit(self) -> float:
        """Uniform in [0, 1)."""
        return (self.byte() * 256 + self.byte()) / 65_536

    def pick(self, options: Sequence[T]) -> T:
        return options[self.byte() % len(options)]

    def odds(self, n: int) -> bool:
        """True about once in ``n`` (never on a zero byte)."""
        return self.byte() % n == n - 1

    def between(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.unit()

    def log(self, lo: int, hi: int) -> float:
        """Spread log-uniformly over 10**lo .. 10**hi."""
        return math.pow(10.0, self.between(lo, hi))

    def signed(self, lo: int, hi: int) -> float:
        return self.pick((1.0, -1.0)) * self.log(lo, hi)


NON_FINITE = (NAN, INF, -INF)
BAD = (0.0, -0.0, -1.0, -1e-12, NAN, INF, -INF)
OFFSETS = (MINUTE, 0, 30 * MINUTE, HOUR_MS - 1, HOUR_MS, HOUR_MS + 1, 3 * HOUR_MS, -MINUTE)
"""Ages of past orders: inside, at and outside the one-hour window, and one stamped in the future."""


def decode_limits(r: Reader, sane: bool) -> RiskLimits:
    return RiskLimits(
        allowed_symbols=frozenset(SYMBOLS) if sane or r.byte() < 128 else frozenset(s for s in SYMBOLS if r.byte() & 1),
        allow_short=bool(r.byte() & 1),
        max_order_notional=r.log(-2, 7),
        min_order_notional=0.0 if r.byte() < 96 else r.log(-3, 3),
        min_order_quantity=0.0 if r.byte() < 128 else r.log(-10, 1),
        max_order_quantity=None if r.byte() < 128 else r.log(-7, 6),
        max_position_fraction=r.pick((0.5, 1.0, 2.0, 0.001)) if r.byte() < 64 else r.between(0.001, 3.0),
        max_gross_exposure=r.pick((1.0, 2.0, 0.001)) if r.byte() < 64 else r.between(0.001, 5.0),
        max_open_positions=r.byte() % 6,
        daily_loss_limit=r.between(0.001, 0.999),
        max_drawdown=r.between(0.001, 0.999),
        cooldown_minutes=r.pick((0.0, 1.0, 60.0, 360.0, 1_440.0, r.between(0.0, 2_000.0))),
        max_orders_per_hour=r.pick((12, 20) if sane else (12, 0, 1, 5, r.byte() % 21)),
        max_data_age_candles=r.pick((1.0, 2.0) if sane else (1.0, 0.0, 0.5, r.between(0.0, 3.0))),
        max_atr_pct=r.between(0.001, 0.5),
        max_candle_range_pct=r.between(0.001, 0.5),
        cash_buffer_bps=r.pick((0.0, 10.0, 50.0, r.between(0.0, 500.0))),
    )


def decode_volatility(r: Reader, sane: bool) -> float:
    kind = r.byte()
    if sane or kind < 200:
        return r.between(0.0, 0.1)  # calm, mostly
    return r.pick(NON_FINITE) if kind >= 240 else r.between(0.0, 2.0)


def decode_market(r: Reader, sane: bool) -> MarketContext:
    tf = r.pick((HOUR_MS, MINUTE, 15 * MINUTE, 24 * HOUR_MS))
    age = r.pick((0, tf // 2, tf) if sane else (0, tf // 2, tf, tf + 1, 2 * tf, int(r.unit() * 5 * tf)))
    return MarketContext(
        candle_close_time=NOW - age,
        as_of=NOW,
        timeframe_ms=tf,
        atr_pct=decode_volatility(r, sane),
        last_range_pct=decode_volatility(r, sane),
    )


def decode_money(r: Reader) -> float:
    kind = r.byte()
    if kind < 200:
        return r.log(-2, 9)
    if kind < 215:
        return 0.0
    return r.pick(NON_FINITE) if kind >= 250 else r.signed(-2, 6)


def decode_portfolio(r: Reader, sane: bool) -> PortfolioView:
    positions: dict[str, PositionView] = {}
    pending: dict[str, float] = {}
    marks: dict[str, float] = {}
    stops: dict[str, int] = {}
    for sym in SYMBOLS:
        held, pend, mark, stop = r.byte(), r.byte(), r.byte(), r.byte()
        if held >= 112:
            qty = r.pick(NON_FINITE) if held >= 252 and not sane else 0.0 if held >= 240 else r.signed(-12, 6)
            positions[sym] = PositionView(quantity=qty, average_price=r.log(-3, 5))
        if pend >= 192:
            pending[sym] = r.signed(-6, 5)
        if mark >= 64:
            marks[sym] = r.pick(NON_FINITE) if mark >= 253 and not sane else r.log(-4, 6)
        if stop >= 200:
            stops[sym] = NOW - int(r.between(-1, 3_000) * MINUTE)
    order_times = [NOW - r.pick(OFFSETS) for _ in range(r.pick((0, 1, 2, 5) if sane else (0, 5, 11, 12, 13, 25)))]

    cash = r.log(1, 7) if sane else decode_money(r)
    if sane or r.byte() < 128:  # consistent: equity is cash plus the marked positions
        equity = cash + sum(p.quantity * marks.get(s, p.average_price) for s, p in positions.items())
    else:
        equity = decode_money(r)
    kind = r.byte()
    if sane:
        peak = equity / (1.0 - r.between(0.0, 0.3))
    else:
        peak = equity if kind < 96 else equity / (1.0 - r.unit()) if kind < 224 else decode_money(r)
    kind = r.byte()
    if sane:
        day_start = equity / (1.0 - r.between(-0.3, 0.1))
    else:
        day_start = equity if kind < 96 else equity / (1.0 - r.between(-0.3, 0.9)) if kind < 224 else decode_money(r)
    available = cash * r.unit() if sane or r.byte() < 192 else decode_money(r)
    return PortfolioView(
        cash=cash,
        available_cash=available,
        equity=equity,
        peak_equity=peak,
        day_start_equity=day_start,
        positions=positions,
        pending=pending,
        marks=marks,
        last_stop_out=stops,
        order_times=order_times,
    )


@dataclass(frozen=True)
class Scenario:
    proposal: OrderProposal
    portfolio: PortfolioView
    market: MarketContext
    limits: RiskLimits

    def verdict(self) -> GateVerdict:
        return evaluate_gate(self.proposal, self.portfolio, self.market, self.limits)


def decode(data: bytes) -> Scenario:
    r = Reader(data)
    sane = r.byte() < 128  # half the scenarios: fresh, calm, unhurried, money positive and consistent
    portfolio = decode_portfolio(r, sane)
    symbol, side = r.pick(SYMBOLS), r.pick((Side.BUY, Side.SELL))
    held = abs(portfolio.exposure_quantity(symbol))
    kind = r.byte()
    if kind < 16 and not sane:
        quantity = r.pick(BAD)
    elif kind < 112 and held > 0:  # around the current position: exactly it, part of it, more than it
        quantity = held * r.pick((1.0, 0.5, 2.0, 1.0 + 1e-12, r.between(0.0, 3.0)))
    else:
        quantity = r.log(-12, 9) if kind < 160 else r.log(-4, 4)
    mark = portfolio.marks.get(symbol)
    kind = r.byte()
    price = r.pick(BAD) if kind < 16 and not sane else mark if mark is not None and kind < 128 else r.log(-6, 8)
    proposal = OrderProposal(symbol=symbol, side=side, quantity=quantity, reference_price=price)
    return Scenario(proposal, portfolio, decode_market(r, sane), decode_limits(r, sane))


scenarios = st.binary(min_size=200, max_size=200).map(decode)


# --------------------------------------------------------------------------------------------------------------
# properties


@PROPERTY
@given(scenarios)
def test_never_enlarges(s: Scenario) -> None:
    v = s.verdict()
    q = s.proposal.quantity
    assert v.proposed_quantity == q or (math.isnan(q) and math.isnan(v.proposed_quantity))
    if v.decision is GateDecision.DENY:
        assert v.approved_quantity == 0.0
    else:
        assert 0.0 < v.approved_quantity <= q


@PROPERTY
@given(scenarios)
def test_no_approved_order_breaks_a_limit(s: Scenario) -> None:
    v = s.verdict()
    if v.decision is GateDecision.DENY:
        return
    p, pf, m, lim = s.proposal, s.portfolio, s.market, s.limits
    q, price = v.approved_quantity, p.reference_price
    notional = q * price

    # every approved order
    assert math.isfinite(q) and math.isfinite(price) and price > 0
    assert le(notional, lim.max_order_notional)
    if lim.max_order_quantity is not None:
        assert le(q, lim.max_order_quantity)
    assert q >= lim.min_order_quantity
    assert notional >= lim.min_order_notional
    assert m.as_of - m.candle_close_time <= lim.max_data_age_candles * m.timeframe_ms
    assert sum(1 for t in pf.order_times if 0 <= m.as_of - t < HOUR_MS) < lim.max_orders_per_hour

    current = pf.exposure_quantity(p.symbol)
    post = current + p.side.sign * q
    reduces = current * p.side.sign < -DUST
    assert v.increases_risk is not reduces
    if reduces:
        assert le(q, abs(current)), "a reducing order never crosses zero"
        assert post * current >= 0 or abs(post) <= REL * abs(current)
        return

    # risk-increasing orders
    assert p.symbol in lim.allowed_symbols
    assert pf.equity > 0
    assert le(abs(post) * price, lim.max_position_fraction * pf.equity)
    assert le(pf.gross_exposure(p.symbol, price) + notional, lim.max_gross_exposure * pf.equity)
    if p.side is Side.BUY:
        assert le(notional * (1 + lim.cash_buffer_bps / 1e4), pf.available_cash)
    assert pf.peak_equity > 0 and 1.0 - pf.equity / pf.peak_equity < lim.max_drawdown
    assert pf.day_start_equity > 0 and 1.0 - pf.equity / pf.day_start_equity < lim.daily_loss_limit
    stopped = pf.last_stop_out.get(p.symbol)
    assert stopped is None or m.as_of - stopped >= lim.cooldown_minutes * MINUTE
    if abs(current) <= DUST:
        assert pf.open_position_count() < lim.max_open_positions
    if not lim.allow_short:
        assert post >= -DUST, "opened a short with shorting off"
    assert math.isfinite(m.atr_pct) and m.atr_pct <= lim.max_atr_pct
    assert math.isfinite(m.last_range_pct) and m.last_range_pct <= lim.max_candle_range_pct


@PROPERTY
@given(scenarios)
def test_decision_matches_reasons(s: Scenario) -> None:
    v = s.verdict()
    assert len(set(v.reasons)) == len(v.reasons)
    if v.decision is GateDecision.APPROVE:
        assert v.reasons == []
        assert v.approved_quantity >= v.proposed_quantity - DUST
    elif v.decision is GateDecision.SHRINK:
        assert v.reasons and set(v.reasons) <= SHRUNK
        assert v.approved_quantity < v.proposed_quantity
        if GateReason.SHRUNK_CASH in v.reasons:
            assert s.proposal.side is Side.BUY and v.increases_risk
        if GateReason.SHRUNK_TO_POSITION in v.reasons:
            assert not v.increases_risk
        if {GateReason.SHRUNK_MAX_POSITION, GateReason.SHRUNK_MAX_GROSS_EXPOSURE} & set(v.reasons):
            assert v.increases_risk
    else:
        assert len(v.reasons) == 1 and v.reasons[0] not in SHRUNK
    assert v.approved is (v.decision is not GateDecision.DENY)


@PROPERTY
@given(scenarios)
def test_deterministic_and_pure(s: Scenario) -> None:
    before = [x.model_dump_json() for x in (s.proposal, s.portfolio, s.market, s.limits)]
    first = s.verdict().model_dump_json()
    assert s.verdict().model_dump_json() == first
    copies = [x.model_copy(deep=True) for x in (s.proposal, s.portfolio, s.market, s.limits)]
    assert evaluate_gate(*copies).model_dump_json() == first  # type: ignore[arg-type]
    assert [x.model_dump_json() for x in (s.proposal, s.portfolio, s.market, s.limits)] == before


def _increasing(v: GateVerdict) -> bool:
    return v.decision is not GateDecision.DENY and v.increases_risk


@pytest.mark.parametrize(
    "reached",
    [
        pytest.param(lambda s, v: _increasing(v) and s.proposal.side is Side.BUY, id="approved-buy"),
        pytest.param(lambda s, v: _increasing(v) and s.proposal.side is Side.SELL, id="approved-short"),
        pytest.param(lambda s, v: v.approved and not v.increases_risk, id="approved-reducing"),
        *(pytest.param(lambda s, v, r=r: r in v.reasons, id=r.value) for r in GateReason),
    ],
)
def test_strategy_reaches(reached: Any) -> None:
    """The properties are not vacuous: the generator reaches approvals of every kind and every reason code."""
    quick = settings(max_examples=5_000, deadline=None, database=None, phases=[Phase.generate])
    find(scenarios, lambda s: bool(reached(s, s.verdict())), settings=quick)  # raises NoSuchExample if never


# --------------------------------------------------------------------------------------------------------------
# examples

BTC, ETH, SOL = SYMBOLS[:3]


def limits(**kw: Any) -> RiskLimits:
    return RiskLimits(**{"allowed_symbols": frozenset({BTC, ETH}), **kw})


def market(**kw: Any) -> MarketContext:
    return MarketContext(
        **{"candle_close_time": NOW, "as_of": NOW, "timeframe_ms": HOUR_MS, "atr_pct": 0.02, "last_range_pct": 0.03}
        | kw
    )


def portfolio(**kw: Any) -> PortfolioView:
    base: dict[str, Any] = {
        "cash": 10_000.0,
        "available_cash": 10_000.0,
        "equity": 10_000.0,
        "peak_equity": 10_000.0,
        "day_start_equity": 10_000.0,
    }
    return PortfolioView(**(base | kw))


def long(qty: float, price: float = 100.0) -> PositionView:
    return PositionView(quantity=qty, average_price=price)


def order(side: Side, qty: float, price: float = 100.0, symbol: str = BTC) -> OrderProposal:
    return OrderProposal(symbol=symbol, side=side, quantity=qty, reference_price=price)


def gate(p: OrderProposal, pf: PortfolioView | None = None, m: MarketContext | None = None, **lim: Any) -> GateVerdict:
    return evaluate_gate(p, pf or portfolio(), m or market(), limits(**lim))


def test_a_plain_order_is_approved_whole() -> None:
    v = gate(order(Side.BUY, 10.0))
    assert (v.decision, v.reasons, v.approved_quantity, v.increases_risk) == (GateDecision.APPROVE, [], 10.0, True)


DENIALS: list[Any] = [
    pytest.param(GateReason.INVALID_ORDER, order(Side.BUY, 0.0), {}, {}, {}, id="zero-qty"),
    pytest.param(GateReason.INVALID_ORDER, order(Side.BUY, -1.0), {}, {}, {}, id="negative-qty"),
    pytest.param(GateReason.INVALID_ORDER, order(Side.BUY, NAN), {}, {}, {}, id="nan-qty"),
    pytest.param(GateReason.INVALID_ORDER, order(Side.SELL, INF), {}, {}, {}, id="inf-qty"),
    pytest.param(GateReason.INVALID_ORDER, order(Side.BUY, 1.0, price=0.0), {}, {}, {}, id="zero-price"),
    pytest.param(GateReason.INVALID_ORDER, order(Side.BUY, 1.0, price=NAN), {}, {}, {}, id="nan-price"),
    pytest.param(
        GateReason.STALE_DATA, order(Side.BUY, 1.0), {}, {"candle_close_time": NOW - 2 * HOUR_MS}, {}, id="stale"
    ),
    pytest.param(
        GateReason.ORDER_RATE_LIMIT,
        order(Side.BUY, 1.0),
        {"order_times": [NOW - i * 5 * MINUTE for i in range(12)]},
        {},
        {},
        id="rate",
    ),
    pytest.param(GateReason.SYMBOL_NOT_ALLOWED, order(Side.BUY, 1.0, symbol=SOL), {}, {}, {}, id="symbol"),
    pytest.param(GateReason.SHORTING_DISABLED, order(Side.SELL, 1.0), {}, {}, {}, id="short-from-flat"),
    pytest.param(
        GateReason.SHORTING_DISABLED,
        order(Side.SELL, 1.0),
        {"positions": {BTC: long(2.0)}, "pending": {BTC: -2.0}},
        {},
        {},
        id="short-after-pending-sell",
    ),
    pytest.param(GateReason.ABNORMAL_VOLATILITY, order(Side.BUY, 1.0), {}, {"atr_pct": 0.09}, {}, id="atr"),
    pytest.param(GateReason.ABNORMAL_VOLATILITY, order(Side.BUY, 1.0), {}, {"atr_pct": NAN}, {}, id="atr-nan"),
    pytest.param(GateReason.ABNORMAL_VOLATILITY, order(Side.BUY, 1.0), {}, {"last_range_pct": 0.2}, {}, id="range"),
    pytest.param(
        GateReason.DRAWDOWN_BREAKER,
        order(Side.BUY, 1.0),
        {"equity": 7_900.0, "day_start_equity": 7_900.0},
        {},
        {},
        id="drawdown",
    ),
    pytest.param(GateReason.DAILY_LOSS_LIMIT, order(Side.BUY, 1.0), {"equity": 9_400.0}, {}, {}, id="day-loss"),
    pytest.param(
        GateReason.DAILY_LOSS_LIMIT, order(Side.BUY, 1.0), {"day_start_equity": 0.0}, {}, {}, id="no-day-start"
    ),
    pytest.param(
        GateReason.COOLDOWN_AFTER_STOP,
        order(Side.BUY, 1.0),
        {"last_stop_out": {BTC: NOW - 60 * MINUTE}},
        {},
        {},
        id="cooldown",
    ),
    pytest.param(
        GateReason.MAX_OPEN_POSITIONS,
        order(Side.BUY, 1.0),
        {"positions": {ETH: long(1.0)}, "pending": {SOL: 1.0}, "marks": {ETH: 10.0, SOL: 10.0}},
        {},
        {"max_open_positions": 2},
        id="max-open",
    ),
    pytest.param(
        GateReason.NO_CAPACITY,
        order(Side.BUY, 1.0),
        {"positions": {ETH: long(100.0)}, "marks": {ETH: 100.0}},
        {},
        {},
        id="gross-full",
    ),
    pytest.param(GateReason.NO_CAPACITY, order(Side.BUY, 1.0), {"available_cash": 0.0}, {}, {}, id="no-cash"),
    pytest.param(
        GateReason.NO_CAPACITY,
        order(Side.BUY, 1.0),
        {"equity": 0.0, "peak_equity": 0.0, "day_start_equity": 0.0},
        {},
        {},
        id="no-equity",
    ),
    pytest.param(GateReason.BELOW_MIN_ORDER_SIZE, order(Side.BUY, 0.05), {}, {}, {}, id="below-min-notional"),
    pytest.param(
        GateReason.BELOW_MIN_ORDER_SIZE,
        order(Side.BUY, 0.5),
        {},
        {},
        {"min_order_quantity": 1.0},
        id="below-min-qty",
    ),
    pytest.param(
        GateReason.BELOW_MIN_ORDER_SIZE, order(Side.BUY, 1.0), {"available_cash": 5.0}, {}, {}, id="shrunk-below-min"
    ),
]


@pytest.mark.parametrize(("reason", "proposal", "pf", "mkt", "lim"), DENIALS)
def test_denial_codes(
    reason: GateReason, proposal: OrderProposal, pf: dict[str, Any], mkt: dict[str, Any], lim: dict[str, Any]
) -> None:
    v = gate(proposal, portfolio(**pf), market(**mkt), **lim)
    assert (v.decision, v.reasons, v.approved_quantity) == (GateDecision.DENY, [reason], 0.0)


SHRINKS: list[Any] = [
    pytest.param(GateReason.SHRUNK_MAX_ORDER_NOTIONAL, order(Side.BUY, 10.0), {}, {"max_order_notional": 500.0}, 5.0),
    pytest.param(GateReason.SHRUNK_MAX_ORDER_SIZE, order(Side.BUY, 10.0), {}, {"max_order_quantity": 3.0}, 3.0),
    pytest.param(
        GateReason.SHRUNK_MAX_POSITION,
        order(Side.BUY, 8.0),
        {"positions": {BTC: long(4.0)}, "marks": {BTC: 90.0}},
        {"max_position_fraction": 0.1},
        6.0,
    ),
    pytest.param(
        GateReason.SHRUNK_MAX_POSITION,
        order(Side.SELL, 8.0),
        {"positions": {BTC: long(-4.0)}},
        {"max_position_fraction": 0.1, "allow_short": True},
        6.0,
        id="SHRUNK_MAX_POSITION-short",
    ),
    pytest.param(
        GateReason.SHRUNK_MAX_GROSS_EXPOSURE,
        order(Side.BUY, 10.0),
        {"positions": {ETH: long(95.0)}, "marks": {ETH: 100.0}},
        {},
        5.0,
    ),
    pytest.param(GateReason.SHRUNK_CASH, order(Side.BUY, 10.0), {"available_cash": 502.5}, {}, 5.0),
    pytest.param(GateReason.SHRUNK_TO_POSITION, order(Side.SELL, 5.0), {"positions": {BTC: long(3.0)}}, {}, 3.0),
]


@pytest.mark.parametrize(("reason", "proposal", "pf", "lim", "approved"), SHRINKS)
def test_shrink_codes(
    reason: GateReason, proposal: OrderProposal, pf: dict[str, Any], lim: dict[str, Any], approved: float
) -> None:
    v = gate(proposal, portfolio(**pf), **lim)
    assert (v.decision, v.reasons) == (GateDecision.SHRINK, [reason])
    assert v.approved_quantity == pytest.approx(approved, rel=1e-12)
    assert v.proposed_quantity == proposal.quantity


def test_every_reason_code_has_an_example() -> None:
    shown = {p.values[0] for p in DENIALS} | {p.values[0] for p in SHRINKS}
    assert shown == set(GateReason)


def test_every_binding_cap_is_listed() -> None:
    v = gate(order(Side.BUY, 10.0), max_order_notional=500.0, max_order_quantity=4.0)
    assert v.decision is GateDecision.SHRINK
    assert set(v.reasons) == {GateReason.SHRUNK_MAX_ORDER_NOTIONAL, GateReason.SHRUNK_MAX_ORDER_SIZE}
    assert v.approved_quantity == 4.0


def test_first_denial_wins() -> None:
    """Stale data is checked before the rate limit, which is checked before the halts."""
    pf = portfolio(equity=5_000.0, order_times=[NOW] * 20)
    assert gate(order(Side.BUY, 1.0, symbol=SOL), pf, market(candle_close_time=0)).reasons == [GateReason.STALE_DATA]
    assert gate(order(Side.BUY, 1.0, symbol=SOL), pf).reasons == [GateReason.ORDER_RATE_LIMIT]
    assert gate(order(Side.BUY, 1.0, symbol=SOL), portfolio(equity=5_000.0)).reasons == [GateReason.SYMBOL_NOT_ALLOWED]


@pytest.mark.parametrize(
    ("mkt", "pf", "lim", "allowed"),
    [
        ({"candle_close_time": NOW - HOUR_MS}, {}, {}, True),  # exactly one candle old: still fresh
        ({"candle_close_time": NOW - HOUR_MS - 1}, {}, {}, False),
        ({}, {"order_times": [NOW - i * MINUTE for i in range(11)] + [NOW - HOUR_MS] * 5}, {}, True),
        ({}, {"last_stop_out": {BTC: NOW - 360 * MINUTE}}, {}, True),  # cooldown of 360 min has run out
        ({}, {"last_stop_out": {BTC: NOW - 360 * MINUTE + 1}}, {}, False),
        ({}, {"last_stop_out": {ETH: NOW}}, {}, True),  # cooldown is per symbol
        ({"atr_pct": 0.08, "last_range_pct": 0.15}, {}, {}, True),  # at the limits is calm
        ({}, {"equity": 8_000.01, "day_start_equity": 8_000.01}, {}, True),  # drawdown just under 20 %
    ],
)
def test_boundaries(mkt: dict[str, Any], pf: dict[str, Any], lim: dict[str, Any], allowed: bool) -> None:
    v = gate(order(Side.BUY, 1.0), portfolio(**pf), market(**mkt), **lim)
    assert v.approved is allowed


def test_adding_to_an_open_position_is_not_a_new_position() -> None:
    pf = portfolio(positions={BTC: long(1.0), ETH: long(1.0)})
    assert gate(order(Side.BUY, 1.0), pf, max_open_positions=2).decision is GateDecision.APPROVE
    assert gate(
        order(Side.BUY, 1.0, symbol=ETH), portfolio(positions={BTC: long(1.0)}), max_open_positions=1
    ).reasons == [GateReason.MAX_OPEN_POSITIONS]


HALTS: list[Any] = [
    pytest.param({"equity": 7_000.0, "day_start_equity": 7_000.0}, {}, {}, GateReason.DRAWDOWN_BREAKER, id="drawdown"),
    pytest.param({"equity": 9_000.0}, {}, {}, GateReason.DAILY_LOSS_LIMIT, id="daily-loss"),
    pytest.param({"last_stop_out": {BTC: NOW - MINUTE}}, {}, {}, GateReason.COOLDOWN_AFTER_STOP, id="cooldown"),
    pytest.param({}, {"atr_pct": 0.5}, {}, GateReason.ABNORMAL_VOLATILITY, id="atr"),
    pytest.param({}, {"last_range_pct": NAN}, {}, GateReason.ABNORMAL_VOLATILITY, id="range-nan"),
    pytest.param({}, {}, {"allowed_symbols": frozenset({ETH})}, GateReason.SYMBOL_NOT_ALLOWED, id="not-allowed"),
]


@pytest.mark.parametrize(("pf", "mkt", "lim", "halt"), HALTS)
def test_reducing_orders_pass_the_halts(
    pf: dict[str, Any], mkt: dict[str, Any], lim: dict[str, Any], halt: GateReason
) -> None:
    held = portfolio(positions={BTC: long(5.0)}, marks={BTC: 100.0}, **pf)
    adding = gate(order(Side.BUY, 1.0), held, market(**mkt), **lim)
    assert (adding.decision, adding.reasons) == (GateDecision.DENY, [halt])  # the halt is on for new risk

    closing = gate(order(Side.SELL, 2.0), held, market(**mkt), **lim)
    assert (closing.decision, closing.approved_quantity, closing.increases_risk) == (GateDecision.APPROVE, 2.0, False)

    oversized = gate(order(Side.SELL, 9.0), held, market(**mkt), **lim)
    assert (oversized.decision, oversized.reasons) == (GateDecision.SHRINK, [GateReason.SHRUNK_TO_POSITION])
    assert oversized.approved_quantity == 5.0

    short = portfolio(positions={BTC: long(-5.0)}, marks={BTC: 100.0}, **pf)
    covering = gate(order(Side.BUY, 5.0), short, market(**mkt), **{"allow_short": True, **lim})
    assert (covering.decision, covering.approved_quantity, covering.increases_risk) == (
        GateDecision.APPROVE,
        5.0,
        False,
    )


@pytest.mark.parametrize("allow_short", [False, True])
def test_a_sell_larger_than_the_long_is_cut_at_zero(allow_short: bool) -> None:
    """Never flips through zero, and is not denied as a short: it is shrunk to the position, shorting on or off."""
    v = gate(order(Side.SELL, 7.5), portfolio(positions={BTC: long(3.0)}), allow_short=allow_short)
    assert (v.decision, v.reasons, v.approved_quantity) == (GateDecision.SHRINK, [GateReason.SHRUNK_TO_POSITION], 3.0)
    assert v.increases_risk is False


def test_pending_orders_count_as_exposure() -> None:
    pf = portfolio(positions={BTC: long(5.0)}, pending={BTC: -3.0})
    v = gate(order(Side.SELL, 5.0), pf)
    assert (v.reasons, v.approved_quantity) == ([GateReason.SHRUNK_TO_POSITION], 2.0)
    # a pending buy uses the per-symbol room: 50 % of 10k at 100 is 50 units, 30 of them pending
    v = gate(order(Side.BUY, 40.0), portfolio(pending={BTC: 30.0}), max_order_notional=1e9, max_gross_exposure=5.0)
    assert v.reasons == [GateReason.SHRUNK_MAX_POSITION]
    assert v.approved_quantity == pytest.approx(20.0)


def test_reducing_orders_still_obey_freshness_rate_and_size() -> None:
    held = portfolio(positions={BTC: long(5.0)})
    assert gate(order(Side.SELL, 2.0), held, market(candle_close_time=0)).reasons == [GateReason.STALE_DATA]
    busy = portfolio(positions={BTC: long(5.0)}, order_times=[NOW] * 12)
    assert gate(order(Side.SELL, 2.0), busy).reasons == [GateReason.ORDER_RATE_LIMIT]
    v = gate(order(Side.SELL, 5.0), held, max_order_quantity=1.5)
    assert (v.reasons, v.approved_quantity) == ([GateReason.SHRUNK_MAX_ORDER_SIZE], 1.5)


@pytest.mark.parametrize(
    "pf",
    [
        pytest.param({"equity": NAN}, id="equity-nan"),
        pytest.param({"peak_equity": NAN}, id="peak-nan"),
        pytest.param({"equity": INF, "peak_equity": INF, "day_start_equity": INF}, id="all-inf"),
        pytest.param({"available_cash": NAN}, id="cash-nan"),
        pytest.param({"positions": {ETH: long(1.0)}, "marks": {ETH: NAN}}, id="mark-nan"),
        pytest.param({"pending": {BTC: NAN}}, id="pending-nan"),
    ],
)
def test_unknown_portfolio_figures_fail_closed(pf: dict[str, Any]) -> None:
    v = gate(order(Side.BUY, 1.0), portfolio(**pf))
    assert v.decision is GateDecision.DENY and v.approved_quantity == 0.0
