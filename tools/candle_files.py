"""Writing candle files in the format the RecordedFeed reads, atomically (never a half-written file).

CSV: header ``timestamp,open,high,low,close,volume``, one row per closed candle, open times in UTC ms,
numbers in their shortest exact form. Parquet: the same columns (int64 timestamp, float64 values).
A file is written next to its target under a temporary name and moved over it with ``os.replace``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tools.errors import DataError
from tools.recorded_feed import COLUMNS, data_file_stem

FORMATS = ("csv", "parquet")


def candle_path(out_dir: Path, exchange: str, symbol: str, timeframe: str, fmt: str | None) -> Path:
    """The file of a series: an existing CSV or Parquet file wins, else ``fmt`` (default csv)."""
    stem = data_file_stem(exchange, symbol, timeframe)
    for suffix in (".csv", ".parquet"):
        path = out_dir / f"{stem}{suffix}"
        if path.is_file():
            if fmt is not None and suffix[1:] != fmt:
                raise DataError(f"{path} exists as {suffix[1:]}; --format {fmt} would write a second copy")
            return path
    return out_dir / f"{stem}.{fmt or 'csv'}"


def write_candles(path: Path, rows: Sequence[Sequence[float]]) -> None:
    """Replace ``path`` with ``rows`` (sorted, validated by the caller) in one atomic step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        if path.suffix == ".parquet":
            os.close(fd)
            _write_parquet(tmp, rows)
        else:
            with os.fdopen(fd, "w", newline="") as handle:
                handle.write(",".join(COLUMNS) + "\n")
                for r in rows:
                    handle.write(f"{int(r[0])},{r[1]!r},{r[2]!r},{r[3]!r},{r[4]!r},{r[5]!r}\n")
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_parquet(path: Path, rows: Sequence[Sequence[float]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: list[Sequence[float]] = [[row[i] for row in rows] for i in range(len(COLUMNS))]
    table = pa.table(
        {
            "timestamp": pa.array([int(x) for x in columns[0]], pa.int64()),
            **{
                name: pa.array([float(x) for x in col], pa.float64())
                for name, col in zip(COLUMNS[1:], columns[1:], strict=True)
            },
        }
    )
    pq.write_table(table, path)
