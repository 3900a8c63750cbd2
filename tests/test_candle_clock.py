from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tools.candle_clock import due_candles, last_closed, next_close

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z


def test_last_closed_and_next_close_at_and_between_boundaries() -> None:
    assert last_closed(T0, "1h") == T0 - HOUR
    assert last_closed(T0 + 1, "1h") == T0 - HOUR
    assert last_closed(T0 + HOUR - 1, "1h") == T0 - HOUR
    assert last_closed(T0 + HOUR, "1h") == T0
    assert next_close(T0, "1h") == T0 + HOUR
    assert next_close(T0 - 1, "1h") == T0
    assert last_closed(T0 + 7 * 60_000, "5m") == T0


def test_due_candles_catch_up_without_duplicates() -> None:
    assert due_candles(None, T0 + 10, "1h", 24) == [T0 - HOUR]
    assert due_candles(T0 - HOUR, T0 + 10, "1h", 24) == []
    assert due_candles(T0 - 4 * HOUR, T0 + 10, "1h", 24) == [T0 - 3 * HOUR, T0 - 2 * HOUR, T0 - HOUR]
    assert due_candles(T0 - 100 * HOUR, T0 + 10, "1h", 2) == [T0 - 2 * HOUR, T0 - HOUR]


@given(st.integers(0, 10**6), st.integers(0, 500), st.integers(1, 50))
def test_due_candles_are_closed_aligned_and_after_the_watermark(offset_min: int, behind: int, cap: int) -> None:
    now = T0 + offset_min * 60_000
    watermark = last_closed(now, "1h") - behind * HOUR
    due = due_candles(watermark, now, "1h", cap)
    assert len(due) == min(behind, cap)
    assert all(t > watermark and t % HOUR == 0 and t + HOUR <= now for t in due)
    assert due == sorted(set(due))
