"""The Feed protocol shared by the recorded feed and exchange feeds."""

from __future__ import annotations

from typing import Protocol

from tools.market import Snapshot


class Feed(Protocol):
    exchange: str

    def snapshot(self, symbol: str, timeframe: str, candle_time: int) -> Snapshot:
        """The as-of snapshot whose last closed candle opens at ``candle_time``; DataError when unavailable."""
        ...
