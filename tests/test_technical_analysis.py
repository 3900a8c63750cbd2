from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import talib

from tools.market import CandleWindow
from tools.recorded_feed import RecordedFeed
from tools.signals import Action, Direction, SignalKind, TechnicalSignal
from tools.technical_analysis import TAConfig, aggregate, analyze, candlestick_signals

CFG = TAConfig()


def _window(o: list[float], h: list[float], lo: list[float], c: list[float]) -> CandleWindow:
    n = len(c)
    arr = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
    return CandleWindow(np.arange(n, dtype=np.int64) * 3_600_000, arr(o), arr(h), arr(lo), arr(c), np.full(n, 10.0))


def test_indicators_match_talib_on_real_candles(sample_dir: Path) -> None:
    feed = RecordedFeed(sample_dir, window=300)
    series = feed.series("BTC/USDT", "1h")
    snap = feed.snapshot_at(series, 5000)
    report = analyze(snap.window, CFG)
    c = snap.window.close
    assert report.indicators["rsi"] == pytest.approx(talib.RSI(c, 14)[-1], rel=1e-5)
    assert report.indicators["sma_slow"] == pytest.approx(talib.SMA(c, 200)[-1], rel=1e-5)
    assert report.indicators["atr"] == pytest.approx(talib.ATR(snap.window.high, snap.window.low, c, 14)[-1], rel=1e-5)
    upper, _, lower = talib.BBANDS(c, 20, 2, 2)
    assert report.indicators["bb_upper"] == pytest.approx(upper[-1], rel=1e-5)
    assert report.indicators["bb_lower"] == pytest.approx(lower[-1], rel=1e-5)
    assert all(math.isfinite(v) for v in report.indicators.values())
    for s in report.signals:
        assert 0 < s.strength <= 1 or s.direction is Direction.NEUTRAL
        assert s.values  # every signal carries the numbers behind it


def test_signals_over_a_real_year_cover_every_kind_and_both_directions(sample_dir: Path) -> None:
    feed = RecordedFeed(sample_dir, window=300)
    series = feed.series("ETH/USDT", "1h")
    names: set[str] = set()
    kinds: set[SignalKind] = set()
    aggregates: set[Action] = set()
    for i in range(400, len(series.candles), 7):
        report = analyze(feed.snapshot_at(series, i).window, CFG)
        names |= {s.name for s in report.signals}
        kinds |= {s.kind for s in report.signals}
        aggregates.add(report.aggregate)
    assert kinds == set(SignalKind)
    assert {"rsi_oversold", "rsi_overbought", "macd_cross", "ema_cross", "engulfing", "doji"} <= names
    assert aggregates == {Action.BUY, Action.SELL, Action.HOLD}


def test_bullish_engulfing_on_the_last_candle() -> None:
    # a down-drift, then a small red candle fully engulfed by a big green one
    closes = [100 - i * 0.5 for i in range(38)]
    o = [c + 0.3 for c in closes] + [81.2, 80.2]
    c = [*closes, 80.8, 81.6]
    h = [max(a, b) + 0.1 for a, b in zip(o, c, strict=True)]
    lo = [min(a, b) - 0.1 for a, b in zip(o, c, strict=True)]
    sigs = {s.name: s for s in candlestick_signals(_window(o, h, lo, c), CFG)}
    assert "engulfing" in sigs
    assert sigs["engulfing"].direction is Direction.BULLISH
    assert sigs["engulfing"].kind is SignalKind.CANDLESTICK


def test_doji_is_neutral() -> None:
    c = [100.0 + (i % 3) for i in range(39)] + [101.0]
    o = [*c[:-1], 101.0]
    h = [x + 1.5 for x in c]
    lo = [x - 1.5 for x in c]
    sigs = {s.name: s for s in candlestick_signals(_window(o, h, lo, c), CFG)}
    assert sigs["doji"].direction is Direction.NEUTRAL


def _sig(name: str, direction: Direction, strength: float) -> TechnicalSignal:
    return TechnicalSignal(
        name=name, kind=SignalKind.INDICATOR, direction=direction, strength=strength, values={"x": 1}
    )


def test_aggregate_formula() -> None:
    sigs = [_sig("a", Direction.BULLISH, 0.6), _sig("b", Direction.BULLISH, 0.4), _sig("c", Direction.BEARISH, 0.5)]
    action, confidence, net = aggregate(sigs, hold_band=0.25)
    total = 1.5
    assert net == pytest.approx((0.6 + 0.4 - 0.5) / total, rel=1e-5)
    assert confidence == pytest.approx(abs(net) * (1 - math.exp(-total)), rel=1e-5)
    assert action is Action.BUY
    assert aggregate(sigs, hold_band=0.3)[0] is Action.HOLD
    assert aggregate([_sig("n", Direction.NEUTRAL, 0.5)], 0.25) == (Action.HOLD, 0.0, 0.0)
    assert aggregate([_sig("s", Direction.BEARISH, 0.9)], 0.25)[0] is Action.SELL


def test_analysis_depends_only_on_the_window(sample_dir: Path) -> None:
    feed = RecordedFeed(sample_dir, window=300)
    series = feed.series("BTC/USDT", "1h")
    a = analyze(feed.snapshot_at(series, 3000).window, CFG)
    longer = RecordedFeed(sample_dir, window=300)
    b = analyze(longer.snapshot_at(longer.series("BTC/USDT", "1h"), 3000).window, CFG)
    assert a == b
