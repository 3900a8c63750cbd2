"""The JobStore protocol: what distributed runs keep in the journal database besides the decisions.

A run's paper account (the whole PaperBroker state, as JSON data: ``tools.paper_state``) lives in one row.
Workers change it only while holding that row's lock: once to settle a symbol's candle (fills of pending
orders, stops and targets) and once, if the decision reaches the gate, around the gate's read of the
portfolio, the order's reservation and the decision's insert, committed together. The store only keeps and
locks the state; the broker logic runs in the worker (``graph.distributed``). ``infra.pg_job_store``
implements it on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from infra.journal import DecisionRecord, PortfolioPoint, RunInfo
from tools.errors import JournalError
from tools.trade_types import Fill, Order


class StoreUnavailable(JournalError):
    """The database cannot be reached right now (restart, network): retry the job from the start."""


class UnknownRun(JournalError):
    """A job names a run that no scheduler created (or another database)."""


class DuplicateDecision(JournalError):
    """The decision key is already journaled: another delivery of the same job decided it."""


@dataclass(frozen=True, slots=True)
class JobStatus:
    decided: bool
    published: bool
    previous_done: int
    """Decisions journaled at the job's ``after`` candle (0 when it has none)."""


class JobStore(Protocol):
    display_url: str

    def run_config(self, run_id: str) -> dict[str, Any] | None: ...
    def job_status(self, run_id: str, decision_id: str, after: int | None) -> JobStatus: ...
    def wait_for_decisions(self, run_id: str, candle_time: int, count: int, timeout: float) -> bool:
        """True once ``count`` decisions of ``candle_time`` are journaled, False after ``timeout`` seconds."""
        ...

    def begin_job(
        self, run_id: str, decision_id: str, after: int | None, expect: int, lock: bool
    ) -> tuple[JobStatus, dict[str, Any] | None]:
        """The job's status; with ``lock``, when the job is ready (not decided, ``after`` fully decided), also the
        account state with the account locked until ``finish_settlement`` or ``rollback``."""
        ...

    def finish_settlement(
        self,
        run_id: str,
        state: dict[str, Any],
        fills: Sequence[Fill],
        updates: Sequence[Order],
        points: Sequence[PortfolioPoint],
    ) -> None:
        """Write a settlement (state, fills, order updates, portfolio points) and release the lock."""
        ...

    def lock_account(self, run_id: str) -> dict[str, Any]:
        """Begin a transaction holding the account's row lock; the account state as it is now."""
        ...

    @property
    def locked(self) -> bool: ...
    def commit_decision(self, record: DecisionRecord, order: Order | None, state: dict[str, Any] | None) -> bool:
        """Insert the decision (with its order and, when locked, the new account state) and end any transaction.

        False (and nothing written) when the key is already journaled."""
        ...

    def rollback(self) -> None: ...
    def mark_published(self, decision_id: str) -> None:
        """Note that a decision's messages were confirmed (written with the next settlement or ``flush``)."""
        ...

    def flush(self) -> None: ...
    def decision(self, decision_id: str) -> dict[str, Any] | None: ...
    def settlement_fills(self, run_id: str, symbol: str, candle_time: int) -> list[Fill]: ...
    def create_run(self, run: RunInfo, state: dict[str, Any]) -> dict[str, Any]:
        """Create the run and its account unless they exist; the run's journaled config either way."""
        ...

    def watermark(self, run_id: str, timeframe: str) -> int | None: ...
    def set_watermark(self, run_id: str, timeframe: str, candle_time: int) -> None: ...
    def count_decisions(self, run_id: str) -> int: ...
    def account_state(self, run_id: str) -> dict[str, Any] | None: ...
    def run_tallies(self, run_id: str) -> dict[str, Any]: ...
    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None: ...
    def close(self) -> None: ...
