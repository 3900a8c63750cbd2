"""What a session tells the outside world as it runs: metrics, the message bus, a time-series sink.

Observers are called after the journal has the record, so a failing observer never loses a decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from infra.journal import PortfolioPoint
from tools.market import Snapshot
from tools.trade_types import Fill


class SessionObserver(Protocol):
    def on_decision(self, snapshot: Snapshot, state: Mapping[str, Any]) -> None: ...
    def on_fills(self, fills: Sequence[Fill]) -> None: ...
    def on_portfolio(self, point: PortfolioPoint) -> None: ...
