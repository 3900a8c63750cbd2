"""Feeds snapshots through the compiled graph as one paper-trading session and tallies the result."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from graph.observer import SessionObserver
from infra.journal import DecisionRecord, JournalStore, PortfolioPoint, RunInfo, decision_id
from tools.broker import Broker
from tools.errors import CassetteError, JournalError
from tools.market import Snapshot, SnapshotUnavailable
from tools.paper_broker import Bar
from tools.timeframes import timeframe_ms

log = logging.getLogger("tradegraph.runner")


class RunSummary(BaseModel):
    run_id: str
    snapshots: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)
    actions: dict[str, int] = Field(default_factory=dict)
    orders: int = 0
    fills: int = 0
    gate_denials: dict[str, int] = Field(default_factory=dict)
    gate_shrinks: dict[str, int] = Field(default_factory=dict)
    initial_equity: float = 0.0
    final_equity: float = 0.0
    pnl: float = 0.0
    return_pct: float = 0.0
    max_drawdown: float = 0.0
    fees_paid: float = 0.0
    open_positions: dict[str, float] = Field(default_factory=dict)
    first_candle: int | None = None
    last_candle: int | None = None
    elapsed_s: float = 0.0
    llm_calls: int = 0
    """Requests that went to an LLM endpoint (replayed answers and budget refusals are not calls)."""
    llm_tokens: int = 0
    llm_cost_usd: float = 0.0
    llm_replayed: int = 0
    """Answers taken from a cassette instead of an endpoint."""
    llm_outcomes: dict[str, int] = Field(default_factory=dict)
    """Reasoner outcomes of LLM reasoners: ok, skipped (gating), llm_error, llm_rejected, budget_exhausted."""


def unsettled_bars(snap: Snapshot, last_settled: int | None) -> list[Bar]:
    """The window's candles a broker that has settled the symbol up to ``last_settled`` has not seen: one in a
    replay; more after a live feed could not deliver a snapshot."""
    w = snap.window
    tf = timeframe_ms(snap.timeframe)
    first = len(w) - 1
    while first > 0 and last_settled is not None and int(w.timestamp[first - 1]) > last_settled:
        first -= 1
    return [
        Bar(snap.symbol, int(w.timestamp[i]), int(w.timestamp[i]) + tf, float(w.open[i]), float(w.high[i]),
            float(w.low[i]), float(w.close[i]), float(w.volume[i]))
        for i in range(first, len(w))
    ]  # fmt: skip


def unavailable_record(run_id: str, did: str, item: SnapshotUnavailable, equity: float) -> DecisionRecord:
    """The decision of a key whose snapshot the feed could not build: journaled with the feed's reason."""
    return DecisionRecord(
        id=did,
        run_id=run_id,
        symbol=item.symbol,
        timeframe=item.timeframe,
        candle_time=item.candle_time,
        as_of=item.as_of,
        outcome=item.outcome,
        reason=item.reason.replace("\n", " ")[:500],
        action=None,
        inputs_hash="-",
        window_start=item.candle_time,
        window_end=item.candle_time,
        window_length=0,
        portfolio={"equity": equity},
    )


def error_record(run_id: str, did: str, snap: Snapshot, equity: float, exc: Exception) -> DecisionRecord:
    w = snap.window
    return DecisionRecord(
        id=did,
        run_id=run_id,
        symbol=snap.symbol,
        timeframe=snap.timeframe,
        candle_time=snap.candle_time,
        as_of=snap.as_of,
        outcome="error",
        reason=f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500],
        action=None,
        inputs_hash=w.digest(),
        window_start=int(w.timestamp[0]),
        window_end=int(w.timestamp[-1]),
        window_length=len(w),
        portfolio={"equity": equity},
    )


class ReplaySession:
    def __init__(
        self,
        graph: Any,
        broker: Broker,
        journal: JournalStore,
        run_id: str,
        observers: Sequence[SessionObserver] = (),
    ) -> None:
        self.graph = graph
        self.broker = broker
        self.journal = journal
        self.run_id = run_id
        self.observers = list(observers)
        self._settled: dict[str, int] = {}

    def run(
        self,
        snapshots: Iterable[Snapshot | SnapshotUnavailable],
        config: dict[str, Any],
        on_step: Callable[[Any], None] | None = None,
        mode: str = "paper",
        stop_on_interrupt: bool = False,
    ) -> RunSummary:
        """Run the session over ``snapshots``. With ``stop_on_interrupt`` (scheduled live runs, which one
        stops with Ctrl-C) an interrupt ends the run normally (status "interrupted") instead of raising."""
        started = time.perf_counter()
        self._open_run(config, mode)
        summary = RunSummary(run_id=self.run_id, initial_equity=self.broker.equity())
        log.info("run started", extra={"fields": {"run_id": self.run_id, "journal": str(config.get("journal", ""))}})
        outcomes: Counter[str] = Counter()
        actions: Counter[str] = Counter()
        denials: Counter[str] = Counter()
        shrinks: Counter[str] = Counter()
        llm_outcomes: Counter[str] = Counter()
        peak = summary.initial_equity
        current_time: int | None = None
        status = "failed"
        try:
            for snap in snapshots:
                if current_time is not None and snap.candle_time != current_time:
                    peak = self._record_portfolio(current_time, peak, summary)
                current_time = snap.candle_time
                did = decision_id(self.run_id, snap.symbol, snap.timeframe, snap.candle_time)
                if isinstance(snap, SnapshotUnavailable):  # the feed failed for this key: journal why, go on
                    self.journal.record_decision(unavailable_record(self.run_id, did, snap, self.broker.equity()))
                    log.warning("no snapshot: %s", snap.reason,
                                extra={"fields": {"decision_id": did, "symbol": snap.symbol, "run_id": self.run_id}})  # fmt: skip
                    summary.snapshots += 1
                    outcomes[snap.outcome] += 1
                    if on_step:
                        on_step(snap)
                    continue
                self._settle(snap, summary)
                if snap.book is not None:
                    self.broker.observe_book(snap.symbol, snap.book)
                state = self._decide(snap, did)
                summary.snapshots += 1
                for observer in self.observers:
                    observer.on_decision(snap, state)
                summary.first_candle = summary.first_candle if summary.first_candle is not None else snap.candle_time
                summary.last_candle = snap.candle_time
                outcomes[state["outcome"]] += 1
                if "intent" in state:
                    actions[state["intent"].action.value] += 1
                if "verdict" in state:
                    reasons = [r.value for r in state["verdict"].reasons]
                    (shrinks if state["verdict"].approved else denials).update(reasons)
                if "order" in state:
                    summary.orders += 1
                trace = state.get("trace")
                if trace is not None and trace.reasoner != "rules":
                    llm_outcomes[trace.outcome] += 1
                    for call in trace.calls:
                        if call.source == "replayed":
                            summary.llm_replayed += 1
                        elif call.spent:
                            summary.llm_calls += 1
                            summary.llm_tokens += call.input_tokens + call.output_tokens
                            summary.llm_cost_usd += call.cost_usd
                if on_step:
                    on_step(snap)
            if current_time is not None:
                peak = self._record_portfolio(current_time, peak, summary)
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            if not stop_on_interrupt:
                raise
        finally:
            summary.outcomes, summary.actions = dict(outcomes), dict(actions)
            summary.gate_denials, summary.gate_shrinks = dict(denials), dict(shrinks)
            summary.llm_outcomes = dict(llm_outcomes)
            summary.final_equity = self.broker.equity()
            summary.pnl = summary.final_equity - summary.initial_equity
            summary.return_pct = 100 * summary.pnl / summary.initial_equity if summary.initial_equity else 0.0
            summary.fees_paid = getattr(self.broker, "fees_paid", 0.0)
            summary.open_positions = {s: p.quantity for s, p in self.broker.portfolio_view().positions.items()}
            summary.elapsed_s = time.perf_counter() - started
            self.journal.flush()
            self.journal.finish_run(self.run_id, status, summary.model_dump(mode="json"))
            log.info("run %s", status, extra={"fields": {"run_id": self.run_id, "snapshots": summary.snapshots,
                                                         "orders": summary.orders, "equity": summary.final_equity}})  # fmt: skip
        return summary

    def _open_run(self, config: dict[str, Any], mode: str) -> None:
        self.journal.start_run(
            RunInfo(run_id=self.run_id, started_at=int(time.time() * 1000), mode=mode, config=config)
        )

    def _decide(self, snap: Snapshot, did: str) -> Mapping[str, Any]:
        """The decision on one snapshot: the graph's final state, or an error decision when a node failed."""
        portfolio = self.broker.portfolio_view()
        try:
            state = self._invoke(did, {"decision_id": did, "snapshot": snap, "portfolio": portfolio, "timings": {}})
        except (JournalError, CassetteError):
            raise
        except Exception as exc:  # a failing node still leaves its one decision, and the run goes on
            self.journal.record_decision(error_record(self.run_id, did, snap, portfolio.equity, exc))
            log.error("node failed: %s: %s", type(exc).__name__, exc,
                      extra={"fields": {"decision_id": did, "symbol": snap.symbol, "run_id": self.run_id}})  # fmt: skip
            return {"outcome": "error"}
        if "order" in state:
            order = state["order"]
            log.info("order %s %s %.8g @ %.8g", order.side.value, order.symbol, order.quantity,
                     order.reference_price, extra={"fields": {"decision_id": did, "run_id": self.run_id,
                                                              "client_order_id": order.client_order_id}})  # fmt: skip
        return state

    def _invoke(self, did: str, graph_input: dict[str, Any]) -> Mapping[str, Any]:
        """One graph run (graph.durable checkpoints it)."""
        state: Mapping[str, Any] = self.graph.invoke(graph_input)
        return state

    def _settle(self, snap: Snapshot, summary: RunSummary) -> None:
        fills = []
        for bar in unsettled_bars(snap, self._settled.get(snap.symbol)):
            fills += self.broker.on_candle(bar)
        self._settled[snap.symbol] = snap.candle_time
        summary.fills += len(fills)
        self.journal.record_fills(fills)
        if fills:
            for observer in self.observers:
                observer.on_fills(fills)
        for order in self.broker.take_order_updates():
            self.journal.record_order(order)

    def _record_portfolio(self, t: int, peak: float, summary: RunSummary) -> float:
        view = self.broker.portfolio_view()
        peak = max(peak, view.equity)
        drawdown = 1 - view.equity / peak if peak > 0 else 0.0
        summary.max_drawdown = max(summary.max_drawdown, drawdown)
        point = PortfolioPoint(
            run_id=self.run_id,
            timestamp=t,
            cash=view.cash,
            equity=view.equity,
            gross_exposure=view.gross_exposure(),
            drawdown=drawdown,
            positions={s: p.quantity for s, p in view.positions.items()},
        )
        self.journal.record_portfolio(point)
        for observer in self.observers:
            observer.on_portfolio(point)
        return peak
