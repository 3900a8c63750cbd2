"""The recorded market the fake exchanges serve: candles per base asset and the recorded Binance depth stream.

Candles are the project's recorded Binance spot 1h candles (BTC and ETH from the bundled sample, SOL from
``data/``); longer timeframes that are whole multiples of 1h are aggregated from them exactly (first open,
max high, min low, last close, summed volume, only when every hour is present). Every exchange serves the
same candles for a base asset (Coinbase's BTC-USDT and Kraken's XBT/USD re-encode Binance's BTC/USDT).

The candle that is still open at the clock's ``now`` is served the way exchanges serve it, as a partial
candle: its open is the recorded open; close moves linearly from open towards the recorded close with the
elapsed fraction of the candle, high/low bracket open and that close, volume is the recorded volume times the
fraction. These partial values are never recorded data: a feed must never let them into a snapshot.

Order books are rebuilt from ``data/binance_{BTC,ETH}-USDT_depth.jsonl.gz`` (a 1,000-level REST snapshot
and the ``@depth@100ms`` diffs recorded after it): ``book(base, at_ms)`` applies every diff whose event time
is at or before ``at_ms``. Outside the 30 recorded seconds the book keeps its recorded shape (the snapshot
before the recording, the last state after it) with every price scaled by price(at_ms) / recorded mid,
on the 0.01 tick (bids down, asks up), so that the book sits where the candles are (price(at_ms) is the close of the
candle open at ``at_ms``, partial as above). Sizes and relative depth stay as recorded; its update id is the
last recorded one, so that a stream client never applies the (unscaled) recorded diffs to it.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DATA = HERE / "data"
SAMPLE = HERE.parents[1] / "tradegraph" / "sample_data"
HOUR = 3_600_000
_UNITS = {"m": 60_000, "h": HOUR, "d": 24 * HOUR, "w": 7 * 24 * HOUR}


def timeframe_ms(timeframe: str) -> int:
    return int(timeframe[:-1]) * _UNITS[timeframe[-1]]


@dataclass(frozen=True, slots=True)
class Candle:
    t: int
    o: float
    h: float
    lo: float
    c: float
    v: float
    closed: bool = True


@dataclass
class Book:
    """A full-depth book state: price -> size, with the last applied update id and event time."""

    bids: dict[float, float]
    asks: dict[float, float]
    last_update_id: int
    timestamp: int

    def top(self, depth: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        bids = sorted(self.bids.items(), key=lambda kv: -kv[0])[:depth]
        asks = sorted(self.asks.items())[:depth]
        return bids, asks


@dataclass
class DepthRecording:
    snapshot: dict[str, Any]
    snapshot_time: int
    """The snapshot's local receive time in ms."""
    updates: list[dict[str, Any]]
    """Every recorded ``depthUpdate`` payload in stream order (including those before the snapshot)."""
    _states: dict[int, Book] = field(default_factory=dict)
    _later: list[dict[str, Any]] = field(default_factory=list)
    _times: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        nonce = int(self.snapshot["lastUpdateId"])
        self._later = [u for u in self.updates if int(u["u"]) > nonce]
        self._times = [int(u["E"]) for u in self._later]

    @property
    def end_time(self) -> int:
        """Event time of the last recorded update (the snapshot's time when there is none)."""
        return self._times[-1] if self._times else self.snapshot_time

    def book_at(self, at_ms: int) -> Book:
        nonce = int(self.snapshot["lastUpdateId"])
        later = self._later
        count = bisect.bisect_right(self._times, at_ms)
        if count not in self._states:
            book = Book(
                {float(p): float(q) for p, q in self.snapshot["bids"]},
                {float(p): float(q) for p, q in self.snapshot["asks"]},
                nonce,
                self.snapshot_time,
            )
            for update in later[:count]:
                for side, levels in ((book.bids, update["b"]), (book.asks, update["a"])):
                    for price, size in levels:
                        if float(size) == 0:
                            side.pop(float(price), None)
                        else:
                            side[float(price)] = float(size)
                book.last_update_id = int(update["u"])
                book.timestamp = int(update["E"])
            self._states[count] = book
        return self._states[count]


def _read_candles(path: Path) -> list[Candle]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in rows]


@cache
def _read_depth(path: Path) -> DepthRecording:
    snapshot: dict[str, Any] | None = None
    snapshot_time = 0
    updates: list[dict[str, Any]] = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            received, _, payload = line.rstrip("\n").partition(" ")
            message = json.loads(payload)
            if "lastUpdateId" in message:
                snapshot, snapshot_time = message, int(received) // 1_000_000
            else:
                updates.append(message["data"])
    assert snapshot is not None, f"{path.name} holds no depth snapshot"
    return DepthRecording(snapshot, snapshot_time, updates)


class RecordedMarket:
    """Recorded candles (per base asset) and recorded depth (BTC, ETH) with the queries the fakes need."""

    def __init__(self, candle_files: dict[str, Path], depth_files: dict[str, Path]) -> None:
        self._hourly = {base: _read_candles(path) for base, path in candle_files.items()}
        self._depth_files = depth_files
        self._index = {base: [c.t for c in rows] for base, rows in self._hourly.items()}

    @classmethod
    def default(cls) -> RecordedMarket:
        return cls(
            {
                "BTC": SAMPLE / "binance_BTC-USDT_1h.csv",
                "ETH": SAMPLE / "binance_ETH-USDT_1h.csv",
                "SOL": DATA / "binance_SOL-USDT_1h.csv",
            },
            {
                "BTC": DATA / "binance_BTC-USDT_depth.jsonl.gz",
                "ETH": DATA / "binance_ETH-USDT_depth.jsonl.gz",
            },
        )

    @property
    def bases(self) -> list[str]:
        return list(self._hourly)

    def span(self, base: str) -> tuple[int, int]:
        rows = self._hourly[base]
        return rows[0].t, rows[-1].t

    def recorded(self, base: str, timeframe: str, start: int, end: int) -> list[Candle]:
        """Closed candles with open time in [start, end), as recorded (aggregated for multiples of 1h)."""
        tf = timeframe_ms(timeframe)
        if tf < HOUR or tf % HOUR:
            return []  # only 1h and its multiples are recorded here
        rows, index = self._hourly[base], self._index[base]
        if tf == HOUR:
            return rows[bisect.bisect_left(index, start) : bisect.bisect_left(index, end)]
        out: list[Candle] = []
        first = (start + tf - 1) // tf * tf
        for t in range(first, end, tf):
            lo, hi = bisect.bisect_left(index, t), bisect.bisect_left(index, t + tf)
            part = rows[lo:hi]
            if len(part) == tf // HOUR:
                out.append(
                    Candle(t, part[0].o, max(c.h for c in part), min(c.lo for c in part), part[-1].c,
                           sum(c.v for c in part))
                )  # fmt: skip
        return out

    def candles(self, base: str, timeframe: str, start: int, end: int, now: int) -> list[Candle]:
        """What an exchange serves for open times in [start, end) at ``now``: closed candles, then the open one."""
        tf = timeframe_ms(timeframe)
        current = now // tf * tf
        out = self.recorded(base, timeframe, start, min(end, current))
        if start <= current < end:
            final = self.recorded(base, timeframe, current, current + tf)
            if final:
                out.append(partial(final[0], (now - current) / tf))
        return out

    def has_book(self, base: str) -> bool:
        return base in self._depth_files

    def depth(self, base: str) -> DepthRecording:
        return _read_depth(self._depth_files[base])

    def book(self, base: str, at_ms: int) -> Book | None:
        """The book as of ``at_ms`` (see the module docstring), or None for a base asset without a recorded book."""
        if base not in self._depth_files:
            return None
        recording = self.depth(base)
        book = recording.book_at(at_ms)
        if recording.snapshot_time <= at_ms <= recording.end_time:
            return book
        price = self.price_at(base, at_ms)
        if price is None or not book.bids or not book.asks:
            return book
        ratio = price / ((max(book.bids) + min(book.asks)) / 2)
        # a scaled book is newer than every recorded diff: a stream client must not apply them to it
        last_id = max(book.last_update_id, int(recording.updates[-1]["u"]) if recording.updates else 0)
        return Book(_scaled(book.bids, ratio, math.floor), _scaled(book.asks, ratio, math.ceil), last_id, at_ms)

    def price_at(self, base: str, at_ms: int) -> float | None:
        """The close of the 1h candle open at ``at_ms`` (partial), or None outside the recorded candles."""
        current = at_ms // HOUR * HOUR
        rows = self.candles(base, "1h", current, current + HOUR, at_ms)
        return rows[-1].c if rows else None


def _scaled(levels: dict[float, float], ratio: float, to_tick: Callable[[float], int]) -> dict[float, float]:
    """Prices times ``ratio`` on the 0.01 tick (bids rounded down, asks up: the book never crosses)."""
    out: dict[float, float] = {}
    for price, size in levels.items():
        key = round(to_tick(round(price * ratio * 100, 6)) / 100, 2)
        out[key] = out.get(key, 0.0) + size
    return out


def partial(final: Candle, fraction: float) -> Candle:
    fraction = min(max(fraction, 0.0), 1.0)
    close = final.o + (final.c - final.o) * fraction
    return Candle(final.t, final.o, max(final.o, close), min(final.o, close), close, final.v * fraction, closed=False)


def fmt(value: float, decimals: int = 8) -> str:
    return f"{value:.{decimals}f}"
