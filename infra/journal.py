"""The JournalStore protocol and the records it keeps. One decision record per snapshot, whatever its path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tools.trade_types import Fill, Order


def decision_id(run_id: str, symbol: str, timeframe: str, candle_time: int) -> str:
    """Stable id of the decision key (run or account, symbol, timeframe, candle open time)."""
    key = f"{run_id}|{symbol}|{timeframe}|{candle_time}".encode()
    return "d-" + hashlib.blake2b(key, digest_size=8).hexdigest()


class DecisionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    run_id: str
    symbol: str
    timeframe: str
    candle_time: int
    as_of: int
    outcome: str
    """invalid | skipped | hold | no_order | denied | ordered | rejected (by the broker) | adopted (reconciliation)"""
    reason: str
    action: str | None
    inputs_hash: str
    window_start: int
    window_end: int
    window_length: int
    indicators: dict[str, float] = Field(default_factory=dict)
    signals: list[dict[str, Any]] = Field(default_factory=list)
    aggregate: dict[str, Any] = Field(default_factory=dict)
    intent: dict[str, Any] | None = None
    reasoner: dict[str, Any] | None = None
    risk: dict[str, Any] | None = None
    proposal: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    order: dict[str, Any] | None = None
    portfolio: dict[str, Any] = Field(default_factory=dict)
    node_timings_us: dict[str, float] = Field(default_factory=dict)
    candle: dict[str, float] | None = None
    """The candle decided on (open, high, low, close, volume; its open time is ``candle_time``)."""


class RunInfo(BaseModel):
    run_id: str
    started_at: int
    mode: str
    config: dict[str, Any]


class PortfolioPoint(BaseModel):
    run_id: str
    timestamp: int
    cash: float
    equity: float
    gross_exposure: float
    drawdown: float
    positions: dict[str, float]


class DecisionSink(Protocol):
    """What the graph's journal node writes to: a JournalStore, or the job journal of distributed runs."""

    def record_decision(self, record: DecisionRecord, order: Order | None = None) -> None: ...


class JournalStore(Protocol):
    @property
    def path(self) -> Path | str: ...
    @property
    def schema_version(self) -> int: ...

    def start_run(self, run: RunInfo) -> None: ...
    def reopen_run(self, run_id: str) -> None:
        """Mark a stopped run as running again (a resumed run); JournalError when there is no such run."""
        ...

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None: ...
    def record_decision(self, record: DecisionRecord, order: Order | None = None) -> None: ...
    def record_order(self, order: Order) -> None: ...
    def record_fills(self, fills: list[Fill]) -> None: ...
    def record_portfolio(self, point: PortfolioPoint) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def list_decisions(
        self, last: int | None = None, symbol: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]: ...
    def get_decision(self, decision_id: str) -> dict[str, Any] | None: ...
    def latest_run(self) -> dict[str, Any] | None: ...
    def get_run(self, run_id: str) -> dict[str, Any] | None: ...
    def portfolio_points(self, run_id: str) -> list[dict[str, Any]]: ...
    def run_fills(self, run_id: str) -> list[dict[str, Any]]: ...
    def run_decisions(self, run_id: str) -> list[dict[str, Any]]: ...
    def llm_usage_since(self, since_ms: int) -> dict[str, float]:
        """LLM requests made at or after ``since_ms`` (UTC ms) by any run in this journal: ``calls``, ``tokens``,
        ``cost_usd``. Replayed answers and budget refusals are not requests."""
        ...

    def account_orders(self, exchange: str, mode: str) -> list[dict[str, Any]]:
        """Every order of the runs that traded on ``exchange`` in ``mode`` (sandbox | demo | live), oldest
        first, with the totals of the fills journaled for each (journal_filled, journal_notional, journal_fee)."""
        ...

    def account_portfolio(self, exchange: str, mode: str) -> dict[str, Any] | None:
        """The latest portfolio point of those runs, with ``peak_equity`` over all of their points."""
        ...


ACCOUNT_ORDERS_SQL = """
SELECT o.*, d.run_id, COALESCE(f.qty, 0) AS journal_filled, COALESCE(f.notional, 0) AS journal_notional,
       COALESCE(f.fee, 0) AS journal_fee
FROM orders o
JOIN decisions d ON d.id = o.decision_id
JOIN runs r ON r.run_id = d.run_id
LEFT JOIN (SELECT client_order_id, SUM(quantity) AS qty, SUM(quantity * price) AS notional, SUM(fee) AS fee
           FROM fills GROUP BY client_order_id) f ON f.client_order_id = o.client_order_id
WHERE {exchange} = {p1} AND {mode} = {p2}
ORDER BY o.submitted_at, o.client_order_id
"""
ACCOUNT_POINTS_SQL = """
SELECT p.*, MAX(p.equity) OVER () AS peak_equity
FROM portfolio_snapshots p JOIN runs r ON r.run_id = p.run_id
WHERE {exchange} = {p1} AND {mode} = {p2}
ORDER BY p.timestamp DESC, r.started_at DESC
LIMIT 1
"""
"""An exchange account's journal history: runs are tagged by ``config.execution`` (exchange, mode)."""


def decode_run(row: dict[str, Any]) -> dict[str, Any]:
    """A runs row with its JSON columns decoded (shared by the journal stores)."""
    row["config"] = json.loads(row["config"])
    row["summary"] = json.loads(row["summary"]) if row["summary"] else None
    return row


def decode_summary(row: dict[str, Any]) -> dict[str, Any]:
    """A decision summary row (tools.journal_reader.SUMMARY_FIELDS) with its gate reasons decoded."""
    reasons = row.get("gate_reasons")
    row["gate_reasons"] = json.loads(reasons) if isinstance(reasons, str) else list(reasons or [])
    if row.get("close") is not None:
        row["close"] = float(row["close"])
    return row
