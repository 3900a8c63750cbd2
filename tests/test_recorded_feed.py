from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import HOUR, read_rows, write_rows
from tools.errors import DataError
from tools.recorded_feed import RecordedFeed, load_series
from tools.timeframes import day_start_ms, parse_day

BTC = "binance_BTC-USDT_1h.csv"


def test_bundled_sample_loads_clean(sample_dir: Path) -> None:
    series = load_series(sample_dir, "binance", "BTC/USDT", "1h")
    assert len(series.candles) == 10_992
    assert series.gaps == ()
    assert series.first == day_start_ms(parse_day("2023-10-01", "x"))


def test_snapshots_are_strictly_as_of(sample_dir: Path) -> None:
    feed = RecordedFeed(sample_dir, window=300)
    start = day_start_ms(parse_day("2024-01-01", "x"))
    snaps = list(feed.snapshots(["BTC/USDT", "ETH/USDT"], "1h", start, start + 48 * HOUR))
    assert len(snaps) == 96
    assert [s.symbol for s in snaps[:4]] == ["BTC/USDT", "ETH/USDT", "BTC/USDT", "ETH/USDT"]
    for snap in snaps:
        assert int(snap.window.timestamp[-1]) == snap.candle_time
        assert snap.window.timestamp.max() == snap.candle_time  # nothing after t
        assert snap.as_of == snap.candle_time + HOUR  # decided when candle t has closed
        assert len(snap.window) == 300
    times = [s.candle_time for s in snaps]
    assert times == sorted(times)


def test_snapshot_window_is_bounded_and_shorter_at_the_start(sample_dir: Path) -> None:
    feed = RecordedFeed(sample_dir, window=300)
    first = next(feed.snapshots(["BTC/USDT"], "1h"))
    assert len(first.window) == 1


@pytest.mark.parametrize(
    ("row", "col", "value", "message"),
    [
        (5, 4, "nan", "close is NaN"),
        (6, 1, "-1", "non-positive price"),
        (7, 2, "1", "high 1.0 < low"),
        (8, 1, "999999", "open/close outside"),
        (9, 5, "-3", "negative volume"),
        (0, 0, "1696118400001", "not aligned"),
        (11, 3, "abc", "low is not a number"),
    ],
)
def test_validation_names_file_and_line(data_copy: Path, row: int, col: int, value: str, message: str) -> None:
    path = data_copy / BTC
    rows = read_rows(path)
    rows[row][col] = value
    write_rows(path, rows)
    with pytest.raises(DataError) as err:
        load_series(data_copy, "binance", "BTC/USDT", "1h")
    assert f"{BTC} line {row + 2}:" in str(err.value)
    assert message in str(err.value)


def test_duplicate_and_out_of_order_timestamps(data_copy: Path) -> None:
    path = data_copy / BTC
    rows = read_rows(path)
    write_rows(path, [*rows[:20], rows[19], *rows[20:]])
    with pytest.raises(DataError, match=r"line 22: duplicate timestamp"):
        load_series(data_copy, "binance", "BTC/USDT", "1h")
    rows[30], rows[31] = rows[31], rows[30]
    write_rows(path, rows)
    with pytest.raises(DataError, match=r"line 33: timestamp .* out of order"):
        load_series(data_copy, "binance", "BTC/USDT", "1h")


def test_bad_header_and_short_rows(data_copy: Path) -> None:
    path = data_copy / BTC
    path.write_text("time,o,h,l,c,v\n1,2,3,4,5,6\n")
    with pytest.raises(DataError, match="line 1: header"):
        load_series(data_copy, "binance", "BTC/USDT", "1h")
    path.write_text("timestamp,open,high,low,close,volume\n1696118400000,1,2\n")
    with pytest.raises(DataError, match="line 2: expected 6 fields"):
        load_series(data_copy, "binance", "BTC/USDT", "1h")


def test_gaps_are_reported_not_filled(data_copy: Path) -> None:
    path = data_copy / BTC
    rows = read_rows(path)
    del rows[100:103]
    write_rows(path, rows)
    series = load_series(data_copy, "binance", "BTC/USDT", "1h")
    assert len(series.candles) == 10_989
    assert len(series.gaps) == 1 and series.gaps[0].missing == 3
    feed = RecordedFeed(data_copy)
    assert feed.snapshot_at(series, 100).missing_before == 3
    assert feed.snapshot_at(series, 101).missing_before == 0


def test_unknown_symbol_and_range_errors(sample_dir: Path, tmp_path: Path) -> None:
    feed = RecordedFeed(sample_dir)
    with pytest.raises(DataError, match="no data for DOGE/USDT 1h"):
        feed.series("DOGE/USDT", "1h")
    with pytest.raises(DataError, match="invalid symbol"):
        feed.series("BTCUSDT", "1h")
    series = feed.series("BTC/USDT", "1h")
    with pytest.raises(DataError, match=r"covers 2023-10-01T00:00 \.\. 2024-12-31T23:00"):
        feed.index_range(series, day_start_ms(parse_day("2019-01-01", "x")), day_start_ms(parse_day("2019-02-01", "x")))
    with pytest.raises(DataError, match="does not exist"):
        RecordedFeed(tmp_path / "nope").series("BTC/USDT", "1h")


def test_parquet_reads_the_same_candles(sample_dir: Path, tmp_path: Path) -> None:
    csv_series = load_series(sample_dir, "binance", "BTC/USDT", "1h")
    c = csv_series.candles
    table = pa.table(
        {
            "timestamp": pa.array(c.timestamp, pa.int64()),
            "open": c.open,
            "high": c.high,
            "low": c.low,
            "close": c.close,
            "volume": c.volume,
        }
    )
    pq.write_table(table, tmp_path / "binance_BTC-USDT_1h.parquet")
    pq_series = load_series(tmp_path, "binance", "BTC/USDT", "1h")
    assert pq_series.path.suffix == ".parquet"
    for name in ("timestamp", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(pq_series.candles, name), getattr(c, name))
    # timestamps stored as a timestamp type are converted to ms
    ts_table = table.set_column(0, "timestamp", pa.array(c.timestamp.astype("datetime64[ms]")))
    pq.write_table(ts_table, tmp_path / "binance_BTC-USDT_1h.parquet")
    np.testing.assert_array_equal(load_series(tmp_path, "binance", "BTC/USDT", "1h").candles.timestamp, c.timestamp)


def test_parquet_validation_and_corruption(sample_dir: Path, tmp_path: Path) -> None:
    table = pa.table({"timestamp": [0, 3_600_000], "open": [1.0, 1.0], "high": [2.0, 0.5], "low": [0.5, 0.9],
                      "close": [1.0, 1.0], "volume": [1.0, 1.0]})  # fmt: skip
    pq.write_table(table, tmp_path / "binance_BTC-USDT_1h.parquet")
    with pytest.raises(DataError, match=r"binance_BTC-USDT_1h.parquet row 2: high 0.5 < low 0.9"):
        load_series(tmp_path, "binance", "BTC/USDT", "1h")
    (tmp_path / "binance_BTC-USDT_1h.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"cannot read binance_BTC-USDT_1h\.parquet"):
        load_series(tmp_path, "binance", "BTC/USDT", "1h")
    pq.write_table(table.drop(["volume"]), tmp_path / "binance_BTC-USDT_1h.parquet")
    with pytest.raises(DataError, match="missing columns volume"):
        load_series(tmp_path, "binance", "BTC/USDT", "1h")


def test_parquet_with_text_values_or_microsecond_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "binance_BTC-USDT_1h.parquet"
    pq.write_table(pa.table({"timestamp": [0, 3_600_000], "open": ["1", "x"], "high": [2.0, 2.0], "low": [0.5, 0.5],
                             "close": [1.0, 1.0], "volume": [1.0, 1.0]}), path)  # fmt: skip
    with pytest.raises(DataError, match=r"binance_BTC-USDT_1h\.parquet row 2: a value is not a number"):
        load_series(tmp_path, "binance", "BTC/USDT", "1h")
    micro = pa.array([1_000_001, 3_600_000_001], pa.timestamp("us"))
    pq.write_table(pa.table({"timestamp": micro, "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
                             "close": [1.0, 1.0], "volume": [1.0, 1.0]}), path)  # fmt: skip
    with pytest.raises(DataError, match="timestamp column cannot be read as UTC milliseconds"):
        load_series(tmp_path, "binance", "BTC/USDT", "1h")


def test_snapshot_by_candle_time_matches_the_stream_and_rejects_missing_times(sample_dir: Path) -> None:
    feed = RecordedFeed(sample_dir, window=300)
    t = day_start_ms(parse_day("2024-03-01", "t"))
    streamed = next(feed.snapshots(["BTC/USDT"], "1h", t, t + HOUR))
    direct = feed.snapshot("BTC/USDT", "1h", t)
    assert direct.candle_time == streamed.candle_time == t
    assert direct.window.digest() == streamed.window.digest()
    with pytest.raises(DataError, match="no BTC/USDT 1h candle at"):
        feed.snapshot("BTC/USDT", "1h", t + 1)
