"""Incremental, resumable download of closed candles into the RecordedFeed's files.

For each symbol: read and validate the existing file (if any) first; fetch only what it lacks (the head
before its first candle when ``since`` is earlier, the tail after its last candle up to the last closed
candle); merge, validate (the RecordedFeed's checks) and replace the file atomically after every chunk of
``chunk_candles`` candles, so an interrupted download keeps every complete chunk and the next run resumes
after it. Gaps the exchange has are kept as gaps. Nothing is written for a symbol whose data fails
validation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.candle_clock import last_closed
from tools.candle_files import candle_path, write_candles
from tools.ccxt_exchange import ExchangeSession
from tools.ccxt_ohlcv import fetch_closed
from tools.errors import DataError
from tools.recorded_feed import Gap, find_gaps, load_series, validate_candles
from tools.timeframes import timeframe_ms, to_iso

Rows = list[list[float]]
CHUNK_CANDLES = 20_000
"""Candles fetched between two rewrites of a file: what an interrupted download can lose at most."""


@dataclass
class SeriesPlan:
    symbol: str
    path: Path
    rows: Rows
    """What the file holds now (validated), oldest first."""
    ranges: list[tuple[int, int]]
    """[start, end) open-time ranges to fetch, oldest first."""

    @property
    def expected(self) -> int:
        return sum(end - start for start, end in self.ranges)


@dataclass
class SeriesResult:
    symbol: str
    path: Path
    new: list[list[float]] = field(default_factory=list)
    rows: int = 0
    first: int | None = None
    last: int | None = None
    gaps: tuple[Gap, ...] = ()
    starts_late: int | None = None
    """The first candle the exchange has when that is later than ``since`` (listing date, history limit)."""


class CandleDownloader:
    def __init__(
        self,
        session: ExchangeSession,
        out_dir: Path,
        timeframe: str,
        fmt: str | None,
        now_ms: int,
        chunk_candles: int | None = None,
    ) -> None:
        self.session = session
        self.exchange = session.exchange_id
        self.out_dir = out_dir
        self.timeframe = timeframe
        self.fmt = fmt
        self.now_ms = now_ms
        self.tf = timeframe_ms(timeframe)
        self.chunk_ms = (chunk_candles or CHUNK_CANDLES) * self.tf

    def plan(self, symbol: str, since_ms: int, until_ms: int | None) -> SeriesPlan:
        """What to fetch for ``symbol``; reads and validates its file (DataError when it is corrupt)."""
        path = candle_path(self.out_dir, self.exchange, symbol, self.timeframe, self.fmt)
        since = (since_ms + self.tf - 1) // self.tf * self.tf
        end = last_closed(self.now_ms, self.timeframe) + self.tf
        if until_ms is not None:
            end = min(end, until_ms)
        rows: Rows = []
        if path.is_file():
            series = load_series(path.parent, self.exchange, symbol, self.timeframe)
            c = series.candles
            rows = [[float(t), o, h, lo, cl, v] for t, o, h, lo, cl, v in zip(
                c.timestamp.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist(),
                c.volume.tolist(), strict=True)]  # fmt: skip
        ranges: list[tuple[int, int]] = []
        if not rows:
            ranges.append((since, end))
        else:
            first, last = int(rows[0][0]), int(rows[-1][0])
            if since < first:
                ranges.append((since, min(first, end)))
            ranges.append((max(since, last + self.tf), end))
        return SeriesPlan(symbol, path, rows, [(a, b) for a, b in ranges if a < b])

    def run(
        self,
        plan: SeriesPlan,
        on_progress: Callable[[int], None] | None = None,
        on_chunk: Callable[[list[list[float]]], None] | None = None,
    ) -> SeriesResult:
        """Fetch the plan's ranges chunk by chunk, rewriting the file after each. ``on_progress(ms)`` gets
        the time covered by each page; ``on_chunk(rows)`` the new rows of each chunk once they are written."""
        store: dict[int, list[float]] = {int(r[0]): r for r in plan.rows}
        result = SeriesResult(plan.symbol, plan.path)
        label = f"{self.exchange} {plan.symbol} {self.timeframe}"
        first_fetched: int | None = None
        for start, end in plan.ranges:
            for chunk_start in range(start, end, self.chunk_ms):
                chunk_end = min(chunk_start + self.chunk_ms, end)
                covered = [chunk_start]

                def page(until: int, _count: int, covered: list[int] = covered) -> None:
                    if on_progress is not None and until > covered[0]:
                        on_progress(until - covered[0])
                    covered[0] = max(covered[0], until)

                fetched = self.session.run(
                    fetch_closed(self.session, plan.symbol, self.timeframe, chunk_start, chunk_end, self.now_ms, page)
                )
                if on_progress is not None and chunk_end > covered[0]:
                    on_progress(chunk_end - covered[0])
                new = [[float(t), *row[1:]] for t, row in sorted(fetched.items()) if t not in store]
                if not new:
                    continue
                if first_fetched is None:
                    first_fetched = int(new[0][0])
                for row in new:
                    store[int(row[0])] = row
                merged = [store[t] for t in sorted(store)]
                validate_candles(merged, label, self.timeframe, "candle")
                write_candles(plan.path, merged)
                result.new.extend(new)
                if on_chunk is not None:
                    on_chunk(new)
        merged = [store[t] for t in sorted(store)]
        if merged:
            window = validate_candles(merged, label, self.timeframe, "candle")
            result.rows, result.first, result.last = len(merged), int(merged[0][0]), int(merged[-1][0])
            result.gaps = find_gaps(window.timestamp, self.timeframe)
        if plan.ranges and first_fetched is not None and not plan.rows and first_fetched > plan.ranges[0][0]:
            result.starts_late = first_fetched
        return result


def describe(result: SeriesResult, timeframe: str) -> str:
    if result.first is None or result.last is None:
        return f"{result.symbol} {timeframe}: no closed candles available"
    missing = sum(g.missing for g in result.gaps)
    gaps = f", {len(result.gaps)} gaps ({missing} candles missing)" if result.gaps else ", no gaps"
    return (
        f"{result.symbol} {timeframe}: {len(result.new):,} new, {result.rows:,} in {result.path} "
        f"({to_iso(result.first)} .. {to_iso(result.last)}{gaps})"
    )


def check_plan_files(plans: list[SeriesPlan]) -> None:
    """Every target must be writable before anything is fetched."""
    for plan in plans:
        directory = plan.path.parent
        if directory.exists() and not directory.is_dir():
            raise DataError(f"--out {directory} is not a directory")
