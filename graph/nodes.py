"""The graph's nodes: small functions of the typed state. Dependencies are bound by graph.builder."""

from __future__ import annotations

from dataclasses import dataclass

from agents.reasoner import Reasoner, ReasonerInput, RecentCandle
from graph.state import DecisionState, Validation
from infra.journal import DecisionRecord, DecisionSink
from tools.broker import Broker
from tools.news import NewsFeed, NewsItem
from tools.risk_gate import MarketContext, RiskLimits, evaluate_gate
from tools.risk_sizing import RiskConfig, assess_risk
from tools.signals import Action
from tools.technical_analysis import TAConfig, analyze
from tools.timeframes import timeframe_ms, to_iso
from tools.trade_types import Order, OrderStatus, TradeIntent


def validate_snapshot(state: DecisionState, *, min_history: int) -> DecisionState:
    snap = state["snapshot"]
    n = len(snap.window)
    if n < min_history:
        return {
            "validation": Validation(ok=False, reason="insufficient_history", detail=f"{n} candles, need {min_history}")
        }
    if snap.missing_before > 0:
        detail = f"{snap.missing_before} candles missing before {to_iso(snap.candle_time)}"
        return {"validation": Validation(ok=False, reason="gap_before_candle", detail=detail)}
    if snap.last_volume == 0:
        return {"validation": Validation(ok=False, reason="zero_volume_candle", detail="exchange halt or maintenance")}
    return {"validation": Validation(ok=True)}


def technical_analysis(state: DecisionState, *, cfg: TAConfig) -> DecisionState:
    return {"technical": analyze(state["snapshot"].window, cfg)}


def nothing_to_decide(state: DecisionState, allow_short: bool) -> str | None:
    """Why there is nothing to decide, or None. No position and no actionable signal means no reasoning."""
    snap, tech = state["snapshot"], state["technical"]
    if state["portfolio"].exposure_quantity(snap.symbol) != 0:
        return None
    if tech.aggregate is Action.HOLD:
        return f"no position and no directional signal (aggregate HOLD, confidence {tech.confidence:.2f})"
    if tech.aggregate is Action.SELL and not allow_short:
        return "no position and bearish signals: nothing to sell (long-only)"
    return None


@dataclass(frozen=True)
class ReasonerContext:
    """What strategy_fusion shows a reasoner beyond the tool outputs: recent candles, the risk budget, news."""

    limits: RiskLimits
    risk: RiskConfig
    recent_candles: int = 5
    news: NewsFeed | None = None
    news_lookback_ms: int = 86_400_000
    news_max_items: int = 5


def strategy_fusion(
    state: DecisionState, *, reasoner: Reasoner, allow_short: bool, context: ReasonerContext | None = None
) -> DecisionState:
    snap, tech, pf = state["snapshot"], state["technical"], state["portfolio"]
    held = pf.positions.get(snap.symbol)
    recent: list[RecentCandle] = []
    budget: dict[str, float] = {}
    news: list[NewsItem] = []
    if context is not None:
        w, n = snap.window, min(context.recent_candles, len(snap.window))
        recent = [
            RecentCandle(time=int(w.timestamp[i]), open=float(w.open[i]), high=float(w.high[i]), low=float(w.low[i]),
                         close=float(w.close[i]), volume=float(w.volume[i]))
            for i in range(len(w) - n, len(w))
        ]  # fmt: skip
        lim = context.limits
        budget = {
            "equity": pf.equity,
            "available_cash": pf.available_cash,
            "max_position_fraction": min(context.risk.max_position_fraction, lim.max_position_fraction),
            "max_order_notional": lim.max_order_notional,
            "max_gross_exposure": lim.max_gross_exposure,
            "open_positions": float(pf.open_position_count()),
            "max_open_positions": float(lim.max_open_positions),
        }
        if context.news is not None:
            news = context.news.items_for(snap.symbol, snap.as_of, context.news_lookback_ms, context.news_max_items)
    inp = ReasonerInput(
        symbol=snap.symbol,
        timeframe=snap.timeframe,
        candle_time=snap.candle_time,
        price=snap.last_close,
        indicators=tech.indicators,
        signals=tech.signals,
        aggregate=tech.aggregate,
        aggregate_confidence=tech.confidence,
        position_quantity=pf.exposure_quantity(snap.symbol),
        position_average_price=held.average_price if held else None,
        equity=pf.equity,
        allow_short=allow_short,
        recent_candles=recent,
        risk_budget=budget,
        news=news,
    )
    intent, trace = reasoner.decide(inp)
    return {"intent": intent, "trace": trace}


def risk_assessment(state: DecisionState, *, cfg: RiskConfig, allow_short: bool) -> DecisionState:
    snap = state["snapshot"]
    atr = state["technical"].indicators["atr"]
    risk, proposal = assess_risk(
        state["intent"], snap.symbol, snap.window.close, atr, state["portfolio"], cfg, allow_short
    )
    return {"risk": risk, "proposal": proposal}


def risk_gate(state: DecisionState, *, limits: RiskLimits) -> DecisionState:
    snap, proposal = state["snapshot"], state["proposal"]
    assert proposal is not None, "routing sends only proposals to the gate"
    w = snap.window
    tf = timeframe_ms(snap.timeframe)
    market = MarketContext(
        candle_close_time=snap.candle_time + tf,
        as_of=snap.as_of,
        timeframe_ms=tf,
        atr_pct=state["technical"].indicators.get("atr_pct", float("nan")),
        last_range_pct=float((w.high[-1] - w.low[-1]) / w.close[-1]),
    )
    return {"verdict": evaluate_gate(proposal, state["portfolio"], market, limits)}


def execute(state: DecisionState, *, broker: Broker) -> DecisionState:
    proposal, verdict = state["proposal"], state["verdict"]
    assert proposal is not None and verdict.approved, "routing sends only approved orders to execution"
    order = Order(
        client_order_id=f"{state['decision_id']}-o",
        decision_id=state["decision_id"],
        symbol=proposal.symbol,
        side=proposal.side,
        quantity=verdict.approved_quantity,
        reference_price=proposal.reference_price,
        submitted_at=state["snapshot"].as_of,
        stop_loss=proposal.stop_loss,
        take_profit=proposal.take_profit,
        kind="entry" if verdict.increases_risk else "exit",
    )
    return {"order": broker.submit(order)}


def _outcome(state: DecisionState, allow_short: bool) -> tuple[str, str]:
    validation = state["validation"]
    if not validation.ok:
        return "invalid", f"{validation.reason}: {validation.detail}"
    if "intent" not in state:
        return "skipped", nothing_to_decide(state, allow_short) or "nothing to decide"
    intent, trace = state["intent"], state.get("trace")
    if trace is not None and trace.failed and trace.fallback != "rules":
        # never a plain HOLD: the failure is the decision's outcome, and there is no order
        return trace.outcome, f"{trace.reasoner} reasoner: {trace.reason} (fallback: hold, no order)"
    outcome, reason = _route_outcome(state, intent)
    if trace is not None and trace.failed:
        reason += f" [{trace.reasoner} {trace.reason}; fallback: rules]"
    elif trace is not None and trace.reasoner != "rules":
        reason += f" [{trace.reasoner}: {trace.reason}]"
    return outcome, reason


def _route_outcome(state: DecisionState, intent: TradeIntent) -> tuple[str, str]:
    if intent.action is Action.HOLD:
        return "hold", f"{intent.reasoner} reasoner: HOLD (conviction {intent.conviction:.2f})"
    if state.get("proposal") is None:
        return "no_order", f"{intent.action.value}: {state['risk'].note or 'no order'}"
    verdict = state["verdict"]
    codes = ",".join(r.value for r in verdict.reasons)
    if not verdict.approved:
        return "denied", f"gate DENY {codes}: {'; '.join(verdict.details)}"
    gate = f"gate {verdict.decision.value}{' ' + codes if codes else ''}"
    order = state.get("order")
    if order is not None and order.status is OrderStatus.REJECTED:  # e.g. below the exchange's minimum
        return "rejected", f"{gate}; broker rejected the order: {order.note}"
    return "ordered", gate


def journal(state: DecisionState, *, store: DecisionSink, run_id: str, allow_short: bool) -> DecisionState:
    snap = state["snapshot"]
    outcome, reason = _outcome(state, allow_short)
    tech, intent = state.get("technical"), state.get("intent")
    pf = state["portfolio"]
    order = state.get("order")
    proposal = state.get("proposal")
    w = snap.window
    record = DecisionRecord.model_construct(
        id=state["decision_id"],
        run_id=run_id,
        symbol=snap.symbol,
        timeframe=snap.timeframe,
        candle_time=snap.candle_time,
        as_of=snap.as_of,
        outcome=outcome,
        reason=reason,
        action=intent.action.value if intent else None,
        inputs_hash=w.digest(),
        window_start=int(w.timestamp[0]),
        window_end=int(w.timestamp[-1]),
        window_length=len(w),
        indicators=tech.indicators if tech else {},
        signals=[s.model_dump(mode="json") for s in tech.signals] if tech else [],
        aggregate={"action": tech.aggregate.value, "confidence": tech.confidence, "net_score": tech.net_score}
        if tech
        else {},
        intent=intent.model_dump(mode="json") if intent else None,
        reasoner=state["trace"].model_dump(mode="json") if "trace" in state else None,
        risk=state["risk"].model_dump(mode="json") if "risk" in state else None,
        proposal=proposal.model_dump(mode="json") if proposal else None,
        verdict=state["verdict"].model_dump(mode="json") if "verdict" in state else None,
        order=order.model_dump(mode="json") if order else None,
        portfolio={
            "cash": pf.cash,
            "equity": pf.equity,
            "position": pf.exposure_quantity(snap.symbol),
            "gross_exposure": pf.gross_exposure(snap.symbol, snap.last_close),
        },
        node_timings_us=dict(state.get("timings", {})),
        candle={"open": float(w.open[-1]), "high": float(w.high[-1]), "low": float(w.low[-1]),
                "close": float(w.close[-1]), "volume": float(w.volume[-1])},
    )  # fmt: skip
    store.record_decision(record, order)
    return {"outcome": outcome}
