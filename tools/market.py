"""Market data types: a candle window (plain numpy arrays) and the per-decision snapshot."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class CandleWindow:
    """Closed candles, oldest first. Arrays may be views into a feed's arrays: never mutate them."""

    timestamp: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])

    def tail(self, n: int) -> CandleWindow:
        return CandleWindow(
            self.timestamp[-n:], self.open[-n:], self.high[-n:], self.low[-n:], self.close[-n:], self.volume[-n:]
        )

    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        for arr in (self.timestamp, self.open, self.high, self.low, self.close, self.volume):
            h.update(np.ascontiguousarray(arr).data)
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Price levels (price, size) best first, as an exchange reported them at ``timestamp`` (UTC ms)."""

    symbol: str
    timestamp: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None

    def spread_bps(self) -> float | None:
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return (ask - bid) / ((ask + bid) / 2) * 10_000


class Snapshot(BaseModel):
    """What one decision may see: one symbol, its last closed candle and the window before it."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    symbol: str
    timeframe: str
    candle_time: int
    """Open time (UTC ms) of the last closed candle: the decision key's time."""
    as_of: int
    """When the decision is taken (UTC ms): the close of that candle in a replay, the clock when live."""
    window: CandleWindow
    missing_before: int = 0
    """Candles missing from the feed immediately before this one (a gap is reported, never filled)."""
    book: OrderBook | None = None
    """The order book at ``as_of`` when the feed has one (live feeds); paper fills walk it."""

    @property
    def last_close(self) -> float:
        return float(self.window.close[-1])

    @property
    def last_volume(self) -> float:
        return float(self.window.volume[-1])


class SnapshotUnavailable(BaseModel):
    """A snapshot a feed could not build: the decision for its key is journaled with the reason."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    timeframe: str
    candle_time: int
    as_of: int
    outcome: str
    """Either `invalid` (the data failed validation) or `error` (it could not be fetched)."""
    reason: str
