"""RecordedFeed: validated candles from CSV or Parquet files, served as strictly as-of snapshots."""

from __future__ import annotations

import csv
import heapq
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.errors import DataError
from tools.market import CandleWindow, Snapshot
from tools.timeframes import timeframe_ms, to_iso

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Gap:
    """Candles missing between two recorded candles."""

    after: int
    before: int
    missing: int


@dataclass(frozen=True, slots=True)
class CandleSeries:
    symbol: str
    timeframe: str
    path: Path
    candles: CandleWindow
    gaps: tuple[Gap, ...]

    @property
    def first(self) -> int:
        return int(self.candles.timestamp[0])

    @property
    def last(self) -> int:
        return int(self.candles.timestamp[-1])


def data_file_stem(exchange: str, symbol: str, timeframe: str) -> str:
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote or "/" in quote:
        raise DataError(f"invalid symbol {symbol!r}: expected BASE/QUOTE, e.g. BTC/USDT")
    return f"{exchange}_{base}-{quote}_{timeframe}"


def _parse_number(text: str, line: int, column: str, path: Path) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path.name} line {line}: {column} is not a number ({text!r})") from None


def _read_csv(path: Path) -> tuple[list[list[float]], str]:
    rows: list[list[float]] = []
    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or tuple(h.strip().lower() for h in header) != COLUMNS:
                raise DataError(f"{path.name} line 1: header must be {','.join(COLUMNS)}, got {header}")
            for line, record in enumerate(reader, start=2):
                if len(record) != len(COLUMNS):
                    raise DataError(f"{path.name} line {line}: expected 6 fields, got {len(record)}")
                rows.append([_parse_number(text, line, col, path) for text, col in zip(record, COLUMNS, strict=True)])
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return rows, "line"


def _read_parquet(path: Path) -> tuple[list[list[float]], str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"cannot read {path.name}: {exc}") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"{path.name}: missing columns {', '.join(missing)}")
    try:
        ts_col = table.column("timestamp")
        if str(ts_col.type).startswith("timestamp"):
            import pyarrow as pa
            import pyarrow.compute as pc

            ts_col = pc.cast(pc.cast(ts_col, pa.timestamp("ms", tz="UTC")), pa.int64())
        columns = [ts_col.to_pylist()] + [table.column(c).to_pylist() for c in COLUMNS[1:]]
    except Exception as exc:  # pyarrow's cast errors (e.g. sub-millisecond timestamps) share no base class
        raise DataError(f"{path.name}: timestamp column cannot be read as UTC milliseconds ({exc})") from None
    rows: list[list[float]] = []
    for index, values in enumerate(zip(*columns, strict=True)):
        try:
            rows.append([math.nan if v is None else float(v) for v in values])
        except (TypeError, ValueError):
            raise DataError(f"{path.name} row {index + 1}: a value is not a number ({values})") from None
    return rows, "row"


def _first_bad(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def validate_candles(rows: Sequence[Sequence[float]], source: Path | str, timeframe: str, unit: str) -> CandleWindow:
    """Reject the first invalid row with a DataError naming the source and the row; never repair.

    The same checks for every source of candles: files (``source`` a path, ``unit`` "line" or "row") and
    exchanges (``source`` e.g. "binance BTC/USDT 1h", ``unit`` "candle": the row is named by its open time).
    """
    label = source.name if isinstance(source, Path) else source
    if not rows:
        raise DataError(f"{label}: no candles")
    try:
        data = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{label}: candles are not rows of six numbers") from None
    if data.ndim != 2 or data.shape[1] != len(COLUMNS):
        raise DataError(f"{label}: candles are not rows of six numbers (shape {data.shape})")
    offset = 2 if unit == "line" else 1

    def fail(index: int, problem: str) -> DataError:
        if unit == "candle":
            ts = data[index, 0]
            where = f"candle {to_iso(int(ts))}" if np.isfinite(ts) and ts >= 0 else f"candle {index + 1}"
            return DataError(f"{label} {where}: {problem}")
        return DataError(f"{label} {unit} {index + offset}: {problem}")

    for col, name in enumerate(COLUMNS):
        bad = _first_bad(~np.isfinite(data[:, col]))
        if bad is not None:
            raise fail(bad, f"{name} is NaN or infinite")
    ts_float, o, h, lo, c, v = (data[:, i] for i in range(6))
    bad = _first_bad((ts_float != np.floor(ts_float)) | (ts_float < 0))
    if bad is not None:
        raise fail(bad, f"timestamp {ts_float[bad]!r} is not a non-negative integer of milliseconds")
    ts = ts_float.astype(np.int64)
    bad = _first_bad((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0))
    if bad is not None:
        raise fail(bad, "non-positive price")
    bad = _first_bad(v < 0)
    if bad is not None:
        raise fail(bad, f"negative volume {v[bad]}")
    bad = _first_bad(h < lo)
    if bad is not None:
        raise fail(bad, f"high {h[bad]} < low {lo[bad]}")
    bad = _first_bad((o < lo) | (o > h) | (c < lo) | (c > h))
    if bad is not None:
        raise fail(bad, f"open/close outside [low, high] (o={o[bad]}, c={c[bad]}, l={lo[bad]}, h={h[bad]})")
    step = np.diff(ts)
    bad = _first_bad(step == 0)
    if bad is not None:
        raise fail(bad + 1, f"duplicate timestamp {ts[bad + 1]} ({to_iso(int(ts[bad + 1]))})")
    bad = _first_bad(step < 0)
    if bad is not None:
        raise fail(bad + 1, f"timestamp {ts[bad + 1]} is out of order (previous {ts[bad]})")
    tf = timeframe_ms(timeframe)
    bad = _first_bad(ts % tf != 0)
    if bad is not None:
        raise fail(bad, f"timestamp {ts[bad]} is not aligned to {timeframe}")
    return CandleWindow(ts, o.copy(), h.copy(), lo.copy(), c.copy(), v.copy())


def find_gaps(timestamps: np.ndarray, timeframe: str) -> tuple[Gap, ...]:
    tf = timeframe_ms(timeframe)
    step = np.diff(timestamps)
    idx = np.flatnonzero(step != tf)
    return tuple(Gap(int(timestamps[i]), int(timestamps[i + 1]), int(step[i] // tf) - 1) for i in idx)


def load_series(data_dir: Path, exchange: str, symbol: str, timeframe: str) -> CandleSeries:
    stem = data_file_stem(exchange, symbol, timeframe)
    for suffix, reader in ((".csv", _read_csv), (".parquet", _read_parquet)):
        path = data_dir / f"{stem}{suffix}"
        if path.is_file():
            rows, unit = reader(path)
            candles = validate_candles(rows, path, timeframe, unit)
            return CandleSeries(symbol, timeframe, path, candles, find_gaps(candles.timestamp, timeframe))
    if not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} does not exist")
    raise DataError(f"no data for {symbol} {timeframe} in {data_dir} (expected {stem}.csv or {stem}.parquet)")


class RecordedFeed:
    """Serves snapshots from recorded files. A snapshot at candle t holds candles up to and including t."""

    def __init__(self, data_dir: Path, exchange: str = "binance", window: int = 300) -> None:
        if window < 2:
            raise DataError("snapshot window must hold at least 2 candles")
        self.data_dir = data_dir
        self.exchange = exchange
        self.window = window
        self._series: dict[tuple[str, str], CandleSeries] = {}

    def series(self, symbol: str, timeframe: str) -> CandleSeries:
        key = (symbol, timeframe)
        if key not in self._series:
            self._series[key] = load_series(self.data_dir, self.exchange, symbol, timeframe)
        return self._series[key]

    def derive(self, transform: Callable[[CandleSeries], CandleSeries], window: int | None = None) -> RecordedFeed:
        """A feed over transformed copies of the series loaded so far (look-ahead and warm-up analysis)."""
        feed = RecordedFeed(self.data_dir, self.exchange, window or self.window)
        feed._series = {key: transform(series) for key, series in self._series.items()}
        return feed

    def snapshot_at(self, series: CandleSeries, index: int) -> Snapshot:
        candles = series.candles
        lo = max(0, index + 1 - self.window)
        window = CandleWindow(
            candles.timestamp[lo : index + 1],
            candles.open[lo : index + 1],
            candles.high[lo : index + 1],
            candles.low[lo : index + 1],
            candles.close[lo : index + 1],
            candles.volume[lo : index + 1],
        )
        tf = timeframe_ms(series.timeframe)
        t = int(candles.timestamp[index])
        missing = int((t - int(candles.timestamp[index - 1])) // tf) - 1 if index > 0 else 0
        return Snapshot.model_construct(
            symbol=series.symbol,
            timeframe=series.timeframe,
            candle_time=t,
            as_of=t + tf,
            window=window,
            missing_before=missing,
        )

    def snapshot(self, symbol: str, timeframe: str, candle_time: int) -> Snapshot:
        """The snapshot whose last closed candle opens at ``candle_time`` (the Feed protocol)."""
        series = self.series(symbol, timeframe)
        ts = series.candles.timestamp
        index = int(np.searchsorted(ts, candle_time, side="left"))
        if index >= len(ts) or int(ts[index]) != candle_time:
            raise DataError(f"no {symbol} {timeframe} candle at {to_iso(candle_time)} in {series.path.name}")
        return self.snapshot_at(series, index)

    def index_range(self, series: CandleSeries, start: int | None, end: int | None) -> range:
        """Indices of candles whose open time is in [start, end)."""
        ts = series.candles.timestamp
        lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
        hi = len(ts) if end is None else int(np.searchsorted(ts, end, side="left"))
        if hi <= lo:
            raise DataError(
                f"no {series.symbol} {series.timeframe} candles between {to_iso(start or series.first)} and "
                f"{to_iso(end or series.last)}; {series.path.name} covers {to_iso(series.first)} .. {to_iso(series.last)}"
            )
        return range(lo, hi)

    def check_range(self, symbols: Sequence[str], timeframe: str, start: int | None, end: int | None) -> None:
        """Reject a requested [start, end) whose first or last day lies wholly outside a symbol's data."""
        day = 86_400_000
        for symbol in symbols:
            series = self.series(symbol, timeframe)
            cover = f"{series.path.name} covers {to_iso(series.first)} .. {to_iso(series.last)}"
            if start is not None and start + day <= series.first:
                raise DataError(f"start {to_iso(start)[:10]} is before the {symbol} {timeframe} data ({cover})")
            if end is not None and end - day > series.last:
                raise DataError(f"end {to_iso(end - day)[:10]} is after the {symbol} {timeframe} data ({cover})")

    def gaps_in(
        self, symbols: Sequence[str], timeframe: str, start: int | None, end: int | None
    ) -> dict[str, list[Gap]]:
        """The recorded gaps that end inside [start, end), per symbol (reported, never filled)."""
        lo, hi = start if start is not None else -1, end if end is not None else 2**62
        return {s: [g for g in self.series(s, timeframe).gaps if lo <= g.before < hi] for s in symbols}

    def count(self, symbols: Sequence[str], timeframe: str, start: int | None, end: int | None) -> int:
        return sum(len(self.index_range(self.series(s, timeframe), start, end)) for s in symbols)

    def snapshots(
        self, symbols: Sequence[str], timeframe: str, start: int | None = None, end: int | None = None
    ) -> Iterator[Snapshot]:
        """All snapshots of the symbols in time order (symbols in the given order within one candle time)."""
        streams = [
            self._keyed(order, self.series(symbol, timeframe), start, end) for order, symbol in enumerate(symbols)
        ]
        for _t, _order, index, series in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            yield self.snapshot_at(series, index)

    def _keyed(
        self, order: int, series: CandleSeries, start: int | None, end: int | None
    ) -> Iterator[tuple[int, int, int, CandleSeries]]:
        ts = series.candles.timestamp
        for i in self.index_range(series, start, end):
            yield int(ts[i]), order, i, series
