"""Durable runs: LangGraph checkpointing so that a run killed at any point resumes where it stopped, without
re-deciding or re-ordering, and ends exactly like a run that was never interrupted.

Thread layout: one LangGraph thread per decision (``thread_id`` = the decision id, unique per run, symbol,
timeframe and candle). Decisions are independent graph runs, so a per-run thread would carry one
decision's channels (intent, verdict, order...) into the next; and with one thread per decision the only
thread a resume has to look for is that of the first decision the journal does not hold. A decision's
thread is deleted once the decision is committed (in batches of ``PRUNE_EVERY``), so the store holds a
handful of threads, not one per candle of history.

Durability mode, chosen per stretch of the graph because a checkpoint costs one saver write (3-30 ms per
invoke depending on saver and mode, ~1-2 ms of it per node here):
- validate_snapshot and technical_analysis run with ``durability="exit"``: they are deterministic and cost
  microseconds, so a crash there simply redoes them; most snapshots end there (skipped or invalid) and pay
  for one checkpoint write instead of one per node.
- The graph stops before ``strategy_fusion`` (``interrupt_before``), and the rest (reasoning, sizing, gate,
  execute, journal) continues with ``durability="sync"``: each node's result is durable before the next
  node starts, so a reasoner's answer is never asked for twice and an order execute placed is in the
  checkpoint before anything else happens. ``async`` would let the next node start before the previous
  checkpoint is written, so a crash right after execute could lose the order.

The journal is the rest of the durable state. A durable run commits the journal at every decision (the
decision, its order and the fills and portfolio point of its step, in one transaction) from inside the
journal node, so "the thread finished" implies "the decision is committed". On resume:
- every decision already in the journal is replayed, not re-decided: its candle settles the paper broker
  (same fills, same stops) and its journaled order is handed to the broker again, so the broker's cash,
  positions, pending orders and stops are rebuilt exactly; nothing is journaled twice, observers are quiet;
- the first decision not in the journal continues from its checkpoint (``invoke(None)``) after the order its
  execute node already placed, if any, is handed back to the rebuilt broker (the broker ignores a client
  order id it knows, as an exchange refuses a duplicate one);
- every later decision runs normally.

Guarantee: the process may be killed at any point, any number of times. The checkpoint stores are set up to
survive that (not a power loss: infra/checkpoints.py); the journal commits synchronously.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel

from graph.observer import SessionObserver
from graph.runner import ReplaySession, RunSummary
from graph.state import DecisionState
from infra.checkpoints import drop_threads
from infra.crash_points import crash_point
from infra.journal import DecisionRecord, JournalStore, PortfolioPoint, RunInfo, decision_id
from tools.broker import Broker
from tools.errors import JournalError
from tools.market import Snapshot, SnapshotUnavailable
from tools.trade_types import Fill, Order, OrderStatus

INTERRUPT_BEFORE = ("strategy_fusion",)
PRUNE_EVERY = 64
_RECORD_KEYS = {"trace": "reasoner"}
"""State keys journaled under another name in a decision record."""


def state_types() -> set[type]:
    """Every class a checkpoint of the decision state holds (models, enums, dataclasses), found from the
    state's type hints so that a model another module adds to the state is allowed without a list to keep."""
    found: set[type] = set()

    def walk(tp: Any) -> None:
        for arg in typing.get_args(tp):
            walk(arg)
        if not isinstance(tp, type) or tp in found or tp.__module__ == "builtins":
            return
        if issubclass(tp, BaseModel):
            found.add(tp)
            for info in tp.model_fields.values():
                walk(info.annotation)
        elif issubclass(tp, Enum):
            found.add(tp)
        elif is_dataclass(tp):
            found.add(tp)
            hints = typing.get_type_hints(tp)
            for f in fields(tp):
                walk(hints.get(f.name))

    for hint in typing.get_type_hints(DecisionState).values():
        walk(hint)
    return found


class DurableJournal:
    """The journal of a durable run: commits at every decision, and drops the writes of replayed steps."""

    def __init__(self, inner: JournalStore) -> None:
        self.inner = inner
        self.replaying = False

    @property
    def path(self) -> Path | str:
        return self.inner.path

    @property
    def schema_version(self) -> int:
        return self.inner.schema_version

    def record_decision(self, record: DecisionRecord, order: Order | None = None) -> None:
        if self.replaying:
            return
        self.inner.record_decision(record, order)
        self.inner.flush()
        crash_point("committed")

    def record_order(self, order: Order) -> None:
        if not self.replaying:
            self.inner.record_order(order)

    def record_fills(self, fills: list[Fill]) -> None:
        if not self.replaying:
            self.inner.record_fills(fills)

    def record_portfolio(self, point: PortfolioPoint) -> None:
        if not self.replaying:
            self.inner.record_portfolio(point)

    def start_run(self, run: RunInfo) -> None:
        self.inner.start_run(run)

    def reopen_run(self, run_id: str) -> None:
        self.inner.reopen_run(run_id)

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        self.inner.finish_run(run_id, status, summary)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()

    def list_decisions(
        self, last: int | None = None, symbol: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        return self.inner.list_decisions(last, symbol, run_id)

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        return self.inner.get_decision(decision_id)

    def latest_run(self) -> dict[str, Any] | None:
        return self.inner.latest_run()

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self.inner.get_run(run_id)

    def portfolio_points(self, run_id: str) -> list[dict[str, Any]]:
        return self.inner.portfolio_points(run_id)

    def run_fills(self, run_id: str) -> list[dict[str, Any]]:
        return self.inner.run_fills(run_id)

    def run_decisions(self, run_id: str) -> list[dict[str, Any]]:
        return self.inner.run_decisions(run_id)

    def account_orders(self, exchange: str, mode: str) -> list[dict[str, Any]]:
        return self.inner.account_orders(exchange, mode)

    def account_portfolio(self, exchange: str, mode: str) -> dict[str, Any] | None:
        return self.inner.account_portfolio(exchange, mode)

    def llm_usage_since(self, since_ms: int) -> dict[str, float]:
        return self.inner.llm_usage_since(since_ms)


def replayed_state(record: Mapping[str, Any]) -> dict[str, Any]:
    """The final state of a journaled decision, rebuilt from its record: what the runner tallies and what the
    broker must be given again (the order, as it was when execute placed it)."""
    hints = typing.get_type_hints(DecisionState)
    state: dict[str, Any] = {"outcome": record["outcome"]}
    for key in ("intent", "trace", "risk", "proposal", "verdict", "order"):
        value = record.get(_RECORD_KEYS.get(key, key))
        model = next((a for a in (hints[key], *typing.get_args(hints[key])) if isinstance(a, type)), None)
        if value is not None and model is not None and issubclass(model, BaseModel):
            state[key] = model.model_validate(value)
    if "order" in state:
        state["order"] = state["order"].model_copy(update={"status": OrderStatus.PENDING, "filled_quantity": 0.0})
    return state


class DurableSession(ReplaySession):
    """A replay session whose graph is checkpointed and which can resume a run it (or a killed process) left."""

    def __init__(
        self,
        graph: Any,
        broker: Broker,
        journal: DurableJournal,
        run_id: str,
        saver: BaseCheckpointSaver[Any],
        observers: Sequence[SessionObserver] = (),
        resume: bool = False,
    ) -> None:
        super().__init__(graph, broker, journal, run_id, observers)
        self.durable = journal
        self.saver = saver
        self.resume = resume
        self.replayed = 0
        self._live_observers = list(observers)
        self._replay: Mapping[str, Any] | None = None
        self._look_for_thread = resume
        self._finished_threads: list[str] = []

    def run(
        self,
        snapshots: Iterable[Snapshot | SnapshotUnavailable],
        config: dict[str, Any],
        on_step: Callable[[Any], None] | None = None,
        mode: str = "paper",
        stop_on_interrupt: bool = False,
    ) -> RunSummary:
        committed: dict[str, Mapping[str, Any]] = {}
        if self.resume:
            decisions = self.durable.run_decisions(self.run_id)
            committed = {d["id"]: d for d in decisions}
            # a kill between a commit and the pruning of its thread can leave a few finished threads behind
            self._finished_threads = [d["id"] for d in decisions[-2 * PRUNE_EVERY :]]
        try:
            summary = super().run(self._steps(snapshots, committed), config, on_step, mode, stop_on_interrupt)
        finally:
            self._replay = None
            self.durable.replaying = False
        self._prune(force=True)
        return summary

    def _steps(
        self, snapshots: Iterable[Snapshot | SnapshotUnavailable], committed: dict[str, Mapping[str, Any]]
    ) -> Iterator[Snapshot | SnapshotUnavailable]:
        """The snapshots, each with the session switched to replaying (journaled) or deciding before it."""
        for snap in snapshots:
            record = committed.pop(decision_id(self.run_id, snap.symbol, snap.timeframe, snap.candle_time), None)
            self._replay = record
            self.durable.replaying = record is not None
            self.observers = [] if record is not None else self._live_observers
            if record is None:
                crash_point("step")
            yield snap
        self._replay = None
        self.durable.replaying = False
        self.observers = self._live_observers

    def _open_run(self, config: dict[str, Any], mode: str) -> None:
        if self.resume:
            self.durable.reopen_run(self.run_id)
        else:
            super()._open_run(config, mode)

    def _decide(self, snap: Snapshot, did: str) -> Mapping[str, Any]:
        record = self._replay
        if record is None:
            return super()._decide(snap, did)
        state = replayed_state(record)
        if "order" in state:
            self.broker.submit(state["order"])
        self.replayed += 1
        crash_point("replayed")
        return state

    def _invoke(self, did: str, graph_input: dict[str, Any]) -> Mapping[str, Any]:
        config: Any = {"configurable": {"thread_id": did}}
        state: Mapping[str, Any] | None = None
        if self._look_for_thread:  # only the first decision the journal lacks can have been in flight
            self._look_for_thread = False
            saved = self.graph.get_state(config)
            if saved.values and not saved.next:
                raise JournalError(
                    f"the checkpoint of decision {did} is complete but the journal {self.durable.path} does not hold "
                    "it: resume with the journal and checkpoint store the run was started with"
                )
            if saved.values:
                if "order" in saved.values:  # execute placed it before the crash: the rebuilt broker gets it back
                    self.broker.submit(saved.values["order"])
                state = self.graph.invoke(None, config, durability="sync")
        if state is None:
            state = self.graph.invoke(graph_input, config, durability="exit")
        while "outcome" not in state:  # stopped before strategy_fusion: from here on, node by node
            state = self.graph.invoke(None, config, durability="sync")
        self._finished_threads.append(did)
        self._prune()
        return state

    def _prune(self, force: bool = False) -> None:
        if self._finished_threads and (force or len(self._finished_threads) >= PRUNE_EVERY):
            drop_threads(self.saver, self._finished_threads)
            self._finished_threads = []
