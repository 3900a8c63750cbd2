"""The read-only view of the journal that the chat inspector, replay and the web dashboard use.

Both journal stores (SQLite, PostgreSQL) implement it next to their writing side. Rows are plain dicts with
the journal's own column names; times are candle open times in UTC ms, ranges are half-open [start, end).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["APPROVE", "SHRINK", "DENY"]

SUMMARY_FIELDS = (
    "id", "run_id", "symbol", "timeframe", "candle_time", "as_of", "outcome", "reason", "action", "verdict",
    "gate_reasons", "close",
)  # fmt: skip
"""Keys of a decision summary row: ``verdict`` is the gate's decision (or None when the gate was not reached),
``gate_reasons`` its reason codes, ``close`` the decision candle's close (None when no indicators were computed)."""


class DecisionQuery(BaseModel):
    """Filters for decisions; every filter left as None matches everything."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str | None = None
    symbol: str | None = None
    start: int | None = Field(default=None, description="candle open time >= start (UTC ms)")
    end: int | None = Field(default=None, description="candle open time < end (UTC ms)")
    action: Literal["BUY", "SELL", "HOLD"] | None = None
    verdict: Verdict | None = None
    outcomes: tuple[str, ...] | None = None
    limit: int | None = Field(default=None, ge=1, le=100_000)
    offset: int = Field(default=0, ge=0)
    newest_first: bool = False


class JournalReader(Protocol):
    @property
    def path(self) -> Any: ...
    def close(self) -> None: ...

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run, newest first: run_id, started_at, finished_at, mode, status (no config or summary)."""
        ...

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its decoded config and summary."""
        ...

    def latest_run(self) -> dict[str, Any] | None: ...

    def find_decisions(self, query: DecisionQuery) -> list[dict[str, Any]]:
        """Summary rows (SUMMARY_FIELDS) in candle time order (``newest_first`` reverses it)."""
        ...

    def count_decisions(self, query: DecisionQuery) -> int:
        """How many decisions match, ignoring limit and offset."""
        ...

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        """The whole record with its body, ``orders`` and ``fills``."""
        ...

    def portfolio_points(self, run_id: str, start: int | None = None, end: int | None = None) -> list[dict[str, Any]]:
        """Portfolio snapshots of a run (one per candle time) in [start, end), oldest first."""
        ...

    def portfolio_at(self, run_id: str, at: int) -> dict[str, Any] | None:
        """The last portfolio snapshot at or before ``at``."""
        ...

    def fills_between(
        self, run_id: str, start: int | None = None, end: int | None = None, symbol: str | None = None
    ) -> list[dict[str, Any]]:
        """Fills of a run with timestamp in [start, end), oldest first."""
        ...

    def closes(
        self, run_id: str, symbol: str, start: int | None = None, end: int | None = None
    ) -> list[tuple[int, float, str]]:
        """(candle_time, close, decision id) of a symbol's decisions that computed indicators, oldest first."""
        ...

    def placed_orders(self, run_id: str, end: int | None = None) -> list[dict[str, Any]]:
        """Orders placed by the run's decisions on candles before ``end`` (as orders rows plus the deciding
        candle's ``candle_time``), in decision order; broker-raised stop-loss/take-profit orders are not included."""
        ...

    def run_symbols(self, run_id: str) -> list[str]:
        """The symbols a run decided on, sorted."""
        ...

    def time_span(self, run_id: str) -> tuple[int, int] | None:
        """First and last decision candle time of a run; None when it has no decision."""
        ...
