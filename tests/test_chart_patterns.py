"""Chart patterns on hand-built series: piecewise-linear paths through chosen pivot points."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from tools.chart_patterns import Pivot, detect_chart_patterns, find_pivots
from tools.errors import ConfigError, DataError
from tools.market import FloatArray
from tools.signals import Direction, SignalKind, TechnicalSignal

Bars = tuple[FloatArray, FloatArray, FloatArray]


def bars(*points: tuple[int, float]) -> Bars:
    """high, low, close of a path through ``points`` (bar index, price); the last point is the last bar."""
    xs = [float(x) for x, _ in points]
    ys = [y for _, y in points]
    path = np.interp(np.arange(points[-1][0] + 1, dtype=np.float64), xs, ys)
    return path * 1.002, path * 0.998, path.copy()


def detect(series: Bars, *, tolerance: float = 0.03, max_age: int = 15) -> list[TechnicalSignal]:
    high, low, close = series
    return detect_chart_patterns(high, low, close, tolerance=tolerance, max_age=max_age)


def only(signals: list[TechnicalSignal], name: str) -> TechnicalSignal:
    assert [s.name for s in signals] == [name]
    return signals[0]


def random_walk(seed: int, n: int = 300, wick: float = 0.002) -> Bars:
    rng = np.random.default_rng(seed)
    path = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    up = np.abs(rng.normal(0.0, wick, n))
    down = np.abs(rng.normal(0.0, wick, n))
    return path * (1 + up), path * (1 - down), path.copy()


# Shoulders at 100 and 101, head 110, troughs 92 and 93; the path ends 10 bars after the right shoulder (bar 50).
HS = ((0, 85.0), (10, 100.0), (20, 92.0), (30, 110.0), (40, 93.0), (50, 101.0))
IHS = ((0, 115.0), (10, 100.0), (20, 108.0), (30, 90.0), (40, 107.0), (50, 99.0))
DT = ((0, 85.0), (15, 100.0), (27, 92.0), (40, 101.0))
DB = ((0, 115.0), (15, 100.0), (27, 108.0), (40, 99.0))


# --- head and shoulders -------------------------------------------------------------------------------------------


def test_head_and_shoulders_formed() -> None:
    sig = only(detect(bars(*HS, (60, 96.0))), "head_and_shoulders")
    assert sig.kind is SignalKind.CHART_PATTERN
    assert sig.direction is Direction.BEARISH
    assert sig.strength == 0.5
    assert sig.values == {
        "left_shoulder": pytest.approx(100.2),
        "head": pytest.approx(110.22),
        "right_shoulder": pytest.approx(101.202),
        "neckline": pytest.approx(92.5 * 0.998),
        "confirmed": 0.0,
    }


def test_head_and_shoulders_confirmed_below_neckline() -> None:
    sig = only(detect(bars(*HS, (60, 90.0))), "head_and_shoulders")
    assert sig.values["confirmed"] == 1.0
    assert sig.strength == 0.8


def test_head_and_shoulders_values_rounded_to_6_significant_digits() -> None:
    head = 110.123456789
    points = list(HS)
    points[3] = (30, head)
    sig = only(detect(bars(*points, (60, 96.0))), "head_and_shoulders")
    assert sig.values["head"] == 110.344  # 110.123456789 * 1.002 = 110.34370...
    assert sig.values["neckline"] == 92.315


def test_head_and_shoulders_not_detected_when_head_too_low() -> None:
    points = list(HS)
    points[3] = (30, 103.0)  # head only 2 % above the right shoulder
    signals = detect(bars(*points, (60, 96.0)))
    assert [s.name for s in signals] == ["double_top"]  # its last three pivots still make a double top


def test_head_and_shoulders_not_detected_when_shoulders_unequal() -> None:
    points = list(HS)
    points[5] = (50, 106.0)  # |100 - 106| / 103 > 3 %; the head still clears both shoulders by 3 %
    assert detect(bars(*points, (60, 96.0))) == []


def test_head_and_shoulders_not_detected_when_too_old() -> None:
    # Right shoulder at bar 50: age 15 at bar 65 is reported, age 16 at bar 66 is not.
    assert [s.name for s in detect(bars(*HS, (65, 93.5)))] == ["head_and_shoulders"]
    assert detect(bars(*HS, (66, 93.0))) == []
    assert [s.name for s in detect(bars(*HS, (66, 93.0)), max_age=16)] == ["head_and_shoulders"]


def test_head_and_shoulders_invalidated_by_close_above_head() -> None:
    # Dip after the right shoulder, then a rally through the head on the last bar (no new pivot is confirmed yet).
    assert [s.name for s in detect(bars(*HS, (56, 95.0), (60, 109.0)))] == ["head_and_shoulders"]
    assert detect(bars(*HS, (56, 95.0), (60, 112.0))) == []


def test_head_and_shoulders_not_also_reported_as_double_top() -> None:
    # With a 20 % tolerance the head (121) and the right shoulder (100) also pass as two tops around a deep trough.
    points = ((0, 60.0), (10, 100.0), (20, 75.0), (30, 121.0), (40, 75.0), (50, 100.0), (60, 90.0))
    high, low, close = bars(*points)
    signals = detect_chart_patterns(high, low, close, tolerance=0.2)
    assert [s.name for s in signals] == ["head_and_shoulders"]
    # Without the left shoulder the same last three pivots are a double top: the exclusion is what hides it.
    tail = detect_chart_patterns(high[21:], low[21:], close[21:], tolerance=0.2)
    assert [s.name for s in tail] == ["double_top"]


# --- inverse head and shoulders -----------------------------------------------------------------------------------


def test_inverse_head_and_shoulders_formed() -> None:
    sig = only(detect(bars(*IHS, (60, 104.0))), "inverse_head_and_shoulders")
    assert sig.direction is Direction.BULLISH
    assert sig.strength == 0.5
    assert sig.values == {
        "left_shoulder": pytest.approx(99.8),
        "head": pytest.approx(89.82),
        "right_shoulder": pytest.approx(98.802),
        "neckline": pytest.approx(107.5 * 1.002),
        "confirmed": 0.0,
    }


def test_inverse_head_and_shoulders_confirmed_above_neckline() -> None:
    sig = only(detect(bars(*IHS, (60, 110.0))), "inverse_head_and_shoulders")
    assert sig.values["confirmed"] == 1.0
    assert sig.strength == 0.8


def test_inverse_head_and_shoulders_not_detected_when_head_too_shallow() -> None:
    points = list(IHS)
    points[3] = (30, 97.5)  # head only 2.3 % below the right shoulder's low
    signals = detect(bars(*points, (60, 104.0)))
    assert [s.name for s in signals] == ["double_bottom"]  # its last three pivots still make a double bottom


def test_inverse_head_and_shoulders_invalidated_by_close_below_head() -> None:
    assert [s.name for s in detect(bars(*IHS, (56, 103.0), (60, 91.0)))] == ["inverse_head_and_shoulders"]
    assert detect(bars(*IHS, (56, 103.0), (60, 85.0))) == []


# --- double top / bottom ------------------------------------------------------------------------------------------


def test_double_top_formed() -> None:
    sig = only(detect(bars(*DT, (50, 96.0))), "double_top")
    assert sig.direction is Direction.BEARISH
    assert sig.strength == 0.5
    assert sig.values == {
        "first_top": pytest.approx(100.2),
        "trough": pytest.approx(91.816),
        "second_top": pytest.approx(101.202),
        "neckline": pytest.approx(91.816),
        "confirmed": 0.0,
    }


def test_double_top_confirmed_below_trough() -> None:
    sig = only(detect(bars(*DT, (50, 90.0))), "double_top")
    assert sig.values["confirmed"] == 1.0
    assert sig.strength == 0.8


def test_double_top_not_detected_when_tops_too_far_apart() -> None:
    points = list(DT)
    points[3] = (40, 104.0)  # 100.2 vs 104.2: 3.9 % apart
    assert detect(bars(*points, (50, 96.0))) == []
    assert [s.name for s in detect(bars(*points, (50, 96.0)), tolerance=0.04)] == ["double_top"]


def test_double_top_not_detected_when_trough_too_shallow() -> None:
    points = list(DT)
    points[2] = (27, 98.0)  # trough less than 3 % below the lower top
    assert detect(bars(*points, (50, 99.0))) == []


def test_double_top_not_detected_when_too_old() -> None:
    assert [s.name for s in detect(bars(*DT, (55, 94.0)))] == ["double_top"]  # second top at 40: age 15
    assert detect(bars(*DT, (56, 94.0))) == []


def test_double_top_invalidated_by_close_above_tops() -> None:
    assert [s.name for s in detect(bars(*DT, (46, 96.0), (50, 100.0)))] == ["double_top"]
    assert detect(bars(*DT, (46, 96.0), (50, 102.0))) == []


def test_double_bottom_formed() -> None:
    sig = only(detect(bars(*DB, (50, 104.0))), "double_bottom")
    assert sig.direction is Direction.BULLISH
    assert sig.strength == 0.5
    assert sig.values == {
        "first_bottom": pytest.approx(99.8),
        "peak": pytest.approx(108.216),
        "second_bottom": pytest.approx(98.802),
        "neckline": pytest.approx(108.216),
        "confirmed": 0.0,
    }


def test_double_bottom_confirmed_above_peak() -> None:
    sig = only(detect(bars(*DB, (50, 110.0))), "double_bottom")
    assert sig.values["confirmed"] == 1.0
    assert sig.strength == 0.8


def test_double_bottom_not_detected_when_bottoms_too_far_apart() -> None:
    points = list(DB)
    points[3] = (40, 95.0)
    assert detect(bars(*points, (50, 104.0))) == []


def test_double_bottom_invalidated_by_close_below_bottoms() -> None:
    assert [s.name for s in detect(bars(*DB, (46, 104.0), (50, 99.5)))] == ["double_bottom"]
    assert detect(bars(*DB, (46, 104.0), (50, 97.0))) == []


# --- no pattern ---------------------------------------------------------------------------------------------------


def test_monotone_trend_has_no_pivot_and_no_pattern() -> None:
    series = bars((0, 100.0), (200, 150.0))
    assert find_pivots(series[0], series[1]) == []
    assert detect(series) == []
    falling = bars((0, 150.0), (200, 100.0))
    assert detect(falling) == []


def test_staircase_uptrend_has_pivots_but_no_pattern() -> None:
    points = [(10 * i, 100.0 + 6.0 * i + (8.0 if i % 2 else 0.0)) for i in range(20)]
    series = bars(*points, (195, 214.0))
    assert len(find_pivots(series[0], series[1])) >= 15
    assert detect(series) == []


# --- pivots -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3, 5, 8])
def test_pivots_alternate_are_window_extremes_and_skip_the_last_order_bars(order: int) -> None:
    for seed in range(20):
        high, low, _ = random_walk(seed, wick=0.02)  # wide, independent wicks: some bars are outside bars
        pivots = find_pivots(high, low, order)
        assert len(pivots) > 10
        n = len(high)
        for a, b in pairwise(pivots):
            assert a.kind != b.kind
            assert a.index <= b.index
        for p in pivots:
            assert order <= p.index <= n - 1 - order
            window = slice(p.index - order, p.index + order + 1)
            if p.kind == "H":
                assert p.price == high[p.index] == high[window].max()
            else:
                assert p.price == low[p.index] == low[window].min()


def test_no_pivot_in_the_last_order_bars_even_at_the_extreme() -> None:
    high, low, _ = bars((0, 100.0), (20, 90.0), (40, 120.0), (43, 110.0))  # the top sits 3 bars from the end
    assert [p.kind for p in find_pivots(high, low, order=5)] == ["L"]
    assert [p.kind for p in find_pivots(high, low, order=3)] == ["L", "H"]


def test_consecutive_same_kind_pivots_keep_the_more_extreme() -> None:
    high = np.array([1, 2, 5, 2, 1, 2, 6, 2, 1, 0.5, 1, 2, 3, 4], dtype=np.float64)
    low = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.5, 1.5, 2.5, 3.5], dtype=np.float64)
    assert find_pivots(high, low, order=2) == [Pivot(6, 6.0, "H"), Pivot(9, 0.0, "L")]
    high[6] = 5.0  # a tie keeps the earlier one
    assert find_pivots(high, low, order=2) == [Pivot(2, 5.0, "H"), Pivot(9, 0.0, "L")]


def test_plateau_pivot_is_its_first_bar() -> None:
    high = np.array([1, 2, 5, 5, 5, 2, 1, 0.5, 0.4, 0.3], dtype=np.float64)
    low = high - 0.1
    assert find_pivots(high, low, order=2) == [Pivot(2, 5.0, "H")]


def test_outside_bar_is_taken_in_the_alternating_order() -> None:
    high = np.array([1, 2, 9, 2, 1, 1, 8, 1, 1, 1, 1], dtype=np.float64)
    low = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5], dtype=np.float64)
    assert find_pivots(high, low, order=2) == [Pivot(2, 9.0, "H"), Pivot(6, 0.0, "L"), Pivot(6, 8.0, "H")]


def test_no_pivot_next_to_a_missing_price() -> None:
    high, low, _ = bars(*HS, (60, 96.0))
    high[30] = np.nan  # the head's high
    pivots = find_pivots(high, low)
    assert [(p.index, p.kind) for p in pivots] == [(10, "H"), (20, "L"), (50, "H")]
    assert all(np.isfinite(p.price) for p in pivots)


def test_short_input_has_no_pivot() -> None:
    high, low, close = bars((0, 100.0), (5, 110.0), (10, 100.0))
    assert [p.index for p in find_pivots(high, low, order=5)] == [5]
    assert find_pivots(high[:10], low[:10], order=5) == []
    assert detect_chart_patterns(high[:0], low[:0], close[:0]) == []


# --- as-of --------------------------------------------------------------------------------------------------------


def test_signals_are_a_pure_function_of_the_prefix() -> None:
    reported = 0
    for seed in range(10):
        high, low, close = random_walk(seed)
        other_high, other_low, other_close = random_walk(seed + 1000)
        for k in range(20, 300, 3):
            before = detect_chart_patterns(high[:k], low[:k], close[:k])
            # Same prefix, different later bars (views into longer arrays), then a contiguous copy of the prefix.
            spliced = [
                np.concatenate((a[:k], b[k:] * a[k - 1] / b[k - 1]))
                for a, b in zip((high, low, close), (other_high, other_low, other_close), strict=True)
            ]
            assert detect_chart_patterns(spliced[0][:k], spliced[1][:k], spliced[2][:k]) == before
            assert detect_chart_patterns(high[:k].copy(), low[:k].copy(), close[:k].copy()) == before
            assert detect_chart_patterns(high[:k], low[:k], close[:k]) == before
            # ... and built from the prefix's own last pivots.
            last_pivot_prices = {float(f"{p.price:.6g}") for p in find_pivots(high[:k], low[:k])[-5:]}
            for signal in before:
                prices = {v for name, v in signal.values.items() if name not in ("neckline", "confirmed")}
                assert prices <= last_pivot_prices
            reported += len(before)
        assert np.array_equal(high, random_walk(seed)[0])  # inputs are not mutated
    assert reported > 0


def test_pivots_of_a_prefix_are_kept_by_longer_series() -> None:
    """Only the prefix's last pivot may later be replaced (by a more extreme one of its kind): no look-ahead."""
    for seed in range(10):
        high, low, _ = random_walk(seed, wick=0.01)
        full = find_pivots(high, low)
        for k in range(11, 301, 5):
            prefix = find_pivots(high[:k], low[:k])
            assert all(p.index <= k - 1 - 5 for p in prefix)
            if not prefix:
                continue
            assert full[: len(prefix) - 1] == prefix[:-1]
            last, later = prefix[-1], full[len(prefix) - 1]
            assert later.kind == last.kind
            assert later == last or (later.price > last.price if last.kind == "H" else later.price < last.price)


# --- arguments ----------------------------------------------------------------------------------------------------


def test_invalid_arguments_raise() -> None:
    high, low, close = bars(*HS, (60, 96.0))
    with pytest.raises(ConfigError):
        find_pivots(high, low, order=0)
    with pytest.raises(DataError):
        find_pivots(high, low[:-1])
    with pytest.raises(DataError):
        detect_chart_patterns(high, low, close[:-1])
    with pytest.raises(ConfigError):
        detect_chart_patterns(high, low, close, tolerance=-0.1)
    with pytest.raises(ConfigError):
        detect_chart_patterns(high, low, close, max_age=-1)
