"""Publishes a session's decisions and fills on the bus as the graph runs (a SessionObserver).

Called after the journal has the record; ``publish`` returns once the broker confirmed every message, so a
caller that acknowledges work afterwards (a worker acking its job) never acknowledges unsent messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.bus import Bus
from infra.bus_messages import fill_messages, messages_from_record, messages_from_state
from infra.journal import PortfolioPoint
from tools.market import Snapshot
from tools.trade_types import Fill


class BusPublisher:
    def __init__(self, bus: Bus, run_id: str) -> None:
        self.bus = bus
        self.run_id = run_id
        self.published = 0

    def on_decision(self, snapshot: Snapshot, state: Mapping[str, Any]) -> None:
        self._send(messages_from_state(self.run_id, snapshot, state))

    def on_fills(self, fills: Sequence[Fill]) -> None:
        self._send(fill_messages(self.run_id, fills))

    def on_portfolio(self, point: PortfolioPoint) -> None:
        pass  # no seed topic carries portfolio points; they are in the journal and the metrics

    def republish(self, snapshot: Snapshot | None, record: Mapping[str, Any], fills: Sequence[Fill]) -> None:
        """The messages of an already journaled decision, again (same ids), e.g. after a crash before acking."""
        messages = fill_messages(self.run_id, fills)
        if snapshot is not None:
            messages += messages_from_record(self.run_id, snapshot, record)
        self._send(messages)

    def _send(self, messages: list[Any]) -> None:
        if messages:
            self.bus.publish(messages)
            self.published += len(messages)
