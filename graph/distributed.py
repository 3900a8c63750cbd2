"""Distributed runs: one decision job (run, symbol, timeframe, candle) processed by whichever worker takes it.

Per job: skip it if its key is already decided (republishing its messages if they may not have gone out);
wait until the previous scheduled candle is fully decided; settle the symbol's candle on the shared account
(under the account's row lock, once per key); run the graph with technical analysis and reasoning outside
any lock; at the gate take the lock, read the portfolio, gate, reserve the order and insert the decision in
one transaction; then publish the decision's messages with confirms. The worker acks the job only after.

Ordering guarantees, with N workers on any number of machines:

- A job names the previous scheduled candle (``after``) and how many jobs it had (``expect``) and starts
  only when that many decisions of ``after`` are journaled. So every decision at candle t sees the effects
  of all decisions and settlements, of every symbol, at earlier candles; nothing of a later candle (no
  look-ahead); and each symbol is decided in candle order.
- Within candle t, jobs of different symbols run concurrently. A symbol's candle is settled in its own job,
  before its decision. A decision at (s, t) sees another symbol's same-candle settlement or order exactly
  when that committed before its own lock was taken: the gate's read of the portfolio and the reservation
  are one transaction on the locked account row, so limits hold for every interleaving, but which of two
  same-candle orders is seen by the other is not fixed.
- Against the single-process replay over the same range: with one worker (any number of symbols), or with
  one symbol (any number of workers), jobs are processed in the replay's order and every decision, order,
  fill and portfolio point is identical. With several workers and symbols, the decision keys are identical
  (each decided exactly once) and so is each decision's market evidence (window, inputs hash, indicators,
  signals, aggregate); sizing, verdicts and quantities can differ where same-candle decisions of other
  symbols committed in another order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from graph import nodes
from graph.observer import SessionObserver
from graph.runner import error_record
from graph.state import DecisionState
from infra.bus_messages import DecisionJob
from infra.bus_observer import BusPublisher
from infra.crash_points import crash_point
from infra.job_store import DuplicateDecision, JobStore
from infra.journal import DecisionRecord, PortfolioPoint
from tools.errors import DataError, JournalError
from tools.feed import Feed
from tools.market import OrderBook, Snapshot
from tools.paper_broker import Bar, PaperBroker, PaperBrokerConfig
from tools.paper_state import dump_broker, load_broker
from tools.risk_gate import RiskLimits
from tools.timeframes import timeframe_ms
from tools.trade_types import Fill, Order, PortfolioView

log = logging.getLogger("tradegraph.worker")


class SharedAccount:
    """The Broker the graph sees in a worker: the run's account as last loaded from the store.

    Orders are taken only while this worker holds the account lock (the gate node takes it); they reach the
    database with the decision, in the same transaction."""

    name = "paper"

    def __init__(self, store: JobStore, run_id: str, cfg: PaperBrokerConfig) -> None:
        self.store = store
        self.run_id = run_id
        self.cfg = cfg
        self.current = PaperBroker(cfg)
        self.bookkeeping: dict[str, Any] = {}
        self._book: tuple[str, OrderBook] | None = None

    def lock(self) -> PortfolioView:
        state = self.store.lock_account(self.run_id)
        self.current = load_broker(self.cfg, state)
        if self._book is not None:  # the decision's book: an order placed now fills against it
            self.current.observe_book(*self._book)
        self.bookkeeping = {"settled": state.get("settled", {}), "points": state.get("points")}
        return self.current.portfolio_view()

    def locked_state(self) -> dict[str, Any]:
        """The account state to write with the decision (the broker after the order, same bookkeeping)."""
        return dump_broker(self.current, self.bookkeeping)

    def submit(self, order: Order) -> Order:
        if not self.store.locked:
            raise JournalError("an order may only be placed while the account is locked")
        return self.current.submit(order)

    def on_candle(self, bar: Bar) -> list[Fill]:
        raise JournalError("a shared account is settled through its store, in the job of the candle")

    def observe_book(self, symbol: str, book: OrderBook) -> None:
        self._book = (symbol, book)
        self.current.observe_book(symbol, book)

    def forget_book(self) -> None:
        self._book = None

    def portfolio_view(self) -> PortfolioView:
        return self.current.portfolio_view()

    def take_order_updates(self) -> list[Order]:
        return []

    def equity(self) -> float:
        return self.current.equity()


class JobJournal:
    """The journal node's sink in a worker: the decision (and under the lock its order and the account) commit
    together; a key that is already journaled raises DuplicateDecision and writes nothing."""

    def __init__(self, store: JobStore, account: SharedAccount) -> None:
        self.store = store
        self.account = account

    def record_decision(self, record: DecisionRecord, order: Order | None = None) -> None:
        state = self.account.locked_state() if self.store.locked else None
        if not self.store.commit_decision(record, order, state):
            raise DuplicateDecision(f"decision {record.id} is already journaled")


def locked_risk_gate(state: DecisionState, *, limits: RiskLimits, account: SharedAccount) -> DecisionState:
    """The gate on the portfolio read under the account lock; the journal node's commit releases it."""
    view = account.lock()
    out = nodes.risk_gate({**state, "portfolio": view}, limits=limits)
    return {**out, "portfolio": view}


@dataclass
class RunContext:
    """What a worker needs to decide the jobs of one run (built once per run by the composition root)."""

    run_id: str
    graph: Any
    account: SharedAccount
    feed: Feed
    paper: PaperBrokerConfig
    publisher: BusPublisher | None


@dataclass(slots=True)
class Settlement:
    broker: PaperBroker
    """The account after the candle's settlement (unlocked: the decision's first read of the portfolio)."""
    fills: list[Fill]
    """Fills of this settlement, also when an earlier delivery of the job made them."""
    fresh: bool


def portfolio_point(
    run_id: str, t: int, broker: PaperBroker, points: dict[str, Any]
) -> tuple[PortfolioPoint, dict[str, Any]]:
    """The point of candle ``t`` as ``ReplaySession`` records it (drawdown from the peak of the points so far)."""
    view = broker.portfolio_view()
    peak = max(points["peak"], view.equity)
    point = PortfolioPoint(run_id=run_id, timestamp=t, cash=view.cash, equity=view.equity,
                           gross_exposure=view.gross_exposure(), drawdown=1 - view.equity / peak if peak > 0 else 0.0,
                           positions={s: p.quantity for s, p in view.positions.items()})  # fmt: skip
    return point, {"through": t, "peak": peak}


def settle(
    store: JobStore, run_id: str, state: dict[str, Any], bar: Bar, cfg: PaperBrokerConfig, after: int | None
) -> Settlement:
    """Settle ``bar`` on the locked account ``state`` once per (run, symbol, candle) and release the lock.

    The portfolio point of ``after`` is journaled first, by the first settlement after that candle: every
    decision of ``after`` is in by then and no settlement of the next candle yet, as in ``ReplaySession``."""
    try:
        broker = load_broker(cfg, state)
        settled: dict[str, int] = state.get("settled", {})
        if settled.get(bar.symbol, -1) >= bar.open_time:  # an earlier delivery of the job settled it
            store.rollback()
            return Settlement(broker, store.settlement_fills(run_id, bar.symbol, bar.open_time), False)
        marks = state.get("points") or {"through": None, "peak": cfg.initial_cash}
        points = []
        if after is not None and (marks["through"] is None or marks["through"] < after):
            point, marks = portfolio_point(run_id, after, broker, marks)
            points.append(point)
        fills = broker.on_candle(bar)
        updates = broker.take_order_updates()
        settled[bar.symbol] = bar.open_time
    except BaseException:
        store.rollback()
        raise
    store.finish_settlement(run_id, dump_broker(broker, {"settled": settled, "points": marks}), fills, updates, points)
    return Settlement(broker, fills, True)


class RunContexts(Protocol):
    """The runs a worker serves: their contexts by run id (UnknownRun for none), and closing what they hold."""

    def __call__(self, run_id: str) -> RunContext: ...
    def close(self) -> None: ...


class JobResult(StrEnum):
    DECIDED = "decided"
    DUPLICATE = "duplicate"
    NOT_READY = "not_ready"


@dataclass
class Processed:
    result: JobResult
    decision_id: str
    outcome: str | None = None
    order: Order | None = None
    waited_s: float = 0.0


def bar_of(snap: Snapshot) -> Bar:
    w = snap.window
    return Bar(symbol=snap.symbol, open_time=snap.candle_time, close_time=snap.candle_time + timeframe_ms(snap.timeframe),
               open=float(w.open[-1]), high=float(w.high[-1]), low=float(w.low[-1]), close=float(w.close[-1]),
               volume=float(w.volume[-1]))  # fmt: skip


def unavailable_record(job: DecisionJob, exc: Exception) -> DecisionRecord:
    return DecisionRecord(
        id=job.decision_id, run_id=job.run_id, symbol=job.symbol, timeframe=job.timeframe,
        candle_time=job.candle_time, as_of=job.candle_time + timeframe_ms(job.timeframe), outcome="invalid",
        reason=f"no_data: {exc}"[:500], action=None, inputs_hash="", window_start=job.candle_time,
        window_end=job.candle_time, window_length=0,
    )  # fmt: skip


class DistributedSession:
    def __init__(
        self,
        store: JobStore,
        contexts: RunContexts,
        observers: Sequence[SessionObserver] = (),
        barrier_wait_s: float = 10.0,
    ) -> None:
        self.store = store
        self.contexts = contexts
        self.observers = list(observers)
        self.barrier_wait_s = barrier_wait_s

    def process(self, job: DecisionJob) -> Processed:
        ctx = self.contexts(job.run_id)
        did = job.decision_id
        try:
            snap: Snapshot | None = ctx.feed.snapshot(job.symbol, job.timeframe, job.candle_time)
            missing: DataError | None = None
        except DataError as exc:
            snap, missing = None, exc
        bar = bar_of(snap) if snap is not None else None
        waited = 0.0
        settlement: Settlement | None = None
        while True:
            status, state = self.store.begin_job(job.run_id, did, job.after, job.expect, bar is not None)
            if state is not None and bar is not None:
                settlement = settle(self.store, job.run_id, state, bar, ctx.paper, job.after)
            if status.decided:
                if not status.published:
                    self._republish(ctx, job, did, snap)
                    self.store.mark_published(did)
                return Processed(JobResult.DUPLICATE, did, waited_s=waited)
            if settlement is not None or (bar is None and status.previous_done >= job.expect):
                break
            if status.previous_done < job.expect:
                started = time.monotonic()
                ready = self._wait_for_previous(job)
                waited += time.monotonic() - started
                if not ready:
                    return Processed(JobResult.NOT_READY, did, waited_s=waited)
        if snap is None or settlement is None:  # a key without data is still decided once (invalid): the run goes on
            if not self.store.commit_decision(unavailable_record(job, missing or DataError("no data")), None, None):
                return Processed(JobResult.DUPLICATE, did, waited_s=waited)
            log.warning("no data for a scheduled candle: %s", missing, extra={"fields": {"decision_id": did}})
            self.store.mark_published(did)
            return Processed(JobResult.DECIDED, did, "invalid", waited_s=waited)
        ctx.account.current = settlement.broker
        ctx.account.forget_book()
        if snap.book is not None:
            ctx.account.observe_book(snap.symbol, snap.book)
        portfolio = settlement.broker.portfolio_view()
        try:
            state = ctx.graph.invoke({"decision_id": did, "snapshot": snap, "portfolio": portfolio, "timings": {}})
        except DuplicateDecision:
            return Processed(JobResult.DUPLICATE, did, waited_s=waited)
        except JournalError:
            raise
        except Exception as exc:  # a failing node still leaves its one decision
            self.store.rollback()
            record = error_record(job.run_id, did, snap, portfolio.equity, exc)
            if not self.store.commit_decision(record, None, None):
                return Processed(JobResult.DUPLICATE, did, waited_s=waited)
            log.error("node failed: %s: %s", type(exc).__name__, exc,
                      extra={"fields": {"decision_id": did, "symbol": job.symbol, "run_id": job.run_id}})  # fmt: skip
            state = {"outcome": "error"}
        finally:
            self.store.rollback()  # no-op unless a failure left the account locked
        order = state.get("order")
        if order is not None:
            crash_point("worker:order-committed")
        for observer in self.observers:
            if settlement.fills:
                observer.on_fills(settlement.fills)
            observer.on_decision(snap, state)
        if ctx.publisher is not None:
            ctx.publisher.on_fills(settlement.fills)
            ctx.publisher.on_decision(snap, state)
        self.store.mark_published(did)
        return Processed(JobResult.DECIDED, did, state["outcome"], order, waited)

    def _wait_for_previous(self, job: DecisionJob) -> bool:
        assert job.after is not None
        return self.store.wait_for_decisions(job.run_id, job.after, job.expect, self.barrier_wait_s)

    def _republish(self, ctx: RunContext, job: DecisionJob, did: str, snap: Snapshot | None) -> None:
        if ctx.publisher is None:
            return
        record = self.store.decision(did)
        if record is None:  # pragma: no cover - the status said it is decided
            return
        fills = self.store.settlement_fills(job.run_id, job.symbol, job.candle_time)
        ctx.publisher.republish(snap, record, fills)
        log.info("republished the messages of an already decided job", extra={"fields": {"decision_id": did}})
