from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import empyrical  # type: ignore[import-untyped]
import numpy as np
import pytest

from evals.metrics import (
    Metrics,
    Trade,
    annualized_return,
    annualized_volatility,
    average_trade,
    block_bootstrap_indices,
    bootstrap_sharpe_ci,
    bootstrap_sharpe_diff_ci,
    calmar,
    compute_metrics,
    drawdown_series,
    expectancy,
    exposure_time,
    max_drawdown,
    max_drawdown_duration,
    period_returns,
    profit_factor,
    sharpe,
    sortino,
    turnover,
    win_rate,
)

HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_700_000_000_000
CURVE = np.array([100.0, 110.0, 99.0, 120.0])
REL = 1e-9


def trade(pnl: float, notional: float = 100.0, symbol: str = "BTC/USDT") -> Trade:
    return Trade(
        symbol=symbol,
        entry_time=T0,
        exit_time=T0 + HOUR,
        entry_price=notional,
        exit_price=notional + pnl,
        quantity=1.0,
        pnl=pnl,
        fees=0.1,
        exit_reason="exit",
        entry_notional=notional,
    )


# --- hand-computed values on [100, 110, 99, 120] ------------------------------------------------------------


def test_period_returns_by_hand() -> None:
    np.testing.assert_allclose(period_returns(CURVE), [0.1, -0.1, 21 / 99], rtol=1e-15)
    assert period_returns(np.array([100.0])).size == 0


def test_drawdown_of_the_small_curve() -> None:
    mdd, peak, trough = max_drawdown(CURVE)
    assert (peak, trough) == (1, 2) and mdd == pytest.approx(0.1, rel=1e-15)
    np.testing.assert_allclose(drawdown_series(CURVE), [0.0, 0.0, 0.1, 0.0], atol=1e-15)
    assert max_drawdown_duration(CURVE) == 1


def test_cagr_and_calmar_by_hand() -> None:
    # 3 periods, E_n / E_0 = 1.2: with 3 periods a year the CAGR is 0.2, with 6 it is 1.2^2 - 1
    assert annualized_return(CURVE, 3) == pytest.approx(0.2, rel=1e-12)
    assert annualized_return(CURVE, 6) == pytest.approx(0.44, rel=1e-12)
    assert calmar(CURVE, 3) == pytest.approx(2.0, rel=1e-12)


def test_ratios_by_hand() -> None:
    # r = [0.1, -0.1, 7/33], mean 7/99, deviations [2.9, -16.9, 14] / 99, sum of squares 490.02 / 99^2
    std = math.sqrt(490.02 / 2) / 99
    assert annualized_volatility(period_returns(CURVE), 4) == pytest.approx(std * 2, rel=1e-12)
    assert sharpe(period_returns(CURVE), 4) == pytest.approx(7 / math.sqrt(245.01) * 2, rel=1e-12)
    # downside deviation over ALL three returns: sqrt(0.01 / 3)
    assert sortino(period_returns(CURVE), 4) == pytest.approx((7 / 99) / (0.1 / math.sqrt(3)) * 2, rel=1e-12)


def test_drawdown_peak_is_where_the_fall_started_and_durations_count_open_drawdowns() -> None:
    assert max_drawdown(np.array([100.0, 110.0, 110.0, 99.0, 105.0]))[1:] == (2, 3)
    curve = np.array([100.0, 90.0, 95.0, 100.0, 105.0, 104.0, 103.0, 102.0])
    assert max_drawdown(curve)[0] == pytest.approx(0.1) and max_drawdown(curve)[1:] == (0, 1)
    assert max_drawdown_duration(curve) == 3  # 104, 103, 102: never recovered
    assert max_drawdown_duration(curve[:5]) == 2  # 90, 95; back at 100 is recovered
    np.testing.assert_allclose(drawdown_series(curve)[5:], [1 / 105, 2 / 105, 3 / 105], rtol=1e-12)


def test_no_drawdown_and_degenerate_inputs() -> None:
    rising = np.array([1.0, 2.0, 3.0])
    assert max_drawdown(rising) == (0.0, 0, 0)
    assert max_drawdown_duration(rising) == 0
    assert calmar(rising, 8760) == 0.0
    assert annualized_return(np.array([5.0]), 8760) == 0.0
    assert annualized_return(np.array([1.0, 1e10]), 8760) == math.inf  # float overflow, not an exception
    assert sharpe(np.array([0.01]), 8760) == 0.0
    assert sharpe(np.full(10, 0.001), 8760) == 0.0  # zero dispersion (the float std is not exactly 0)
    assert sortino(np.array([0.01, 0.02, 0.0]), 8760) == 0.0  # no downside
    assert sortino(np.array([-0.01]), 8760) == 0.0
    assert annualized_volatility(np.array([0.01]), 8760) == 0.0


@pytest.mark.parametrize(
    "bad", [np.array([100.0, 0.0]), np.array([100.0, np.nan]), np.array([100.0, -1.0]), np.array([]), np.ones((2, 2))]
)
def test_invalid_equity_is_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="equity"):
        max_drawdown(bad)


def test_invalid_returns_and_ppy_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        sharpe(np.array([0.1, np.inf]), 8760)
    with pytest.raises(ValueError, match="1-D"):
        sortino(np.zeros((3, 2)), 8760)
    with pytest.raises(ValueError, match="periods_per_year"):
        sharpe(np.array([0.1, 0.2]), 0)


# --- cross-check against empyrical-reloaded -----------------------------------------------------------------


def _random_case() -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(42).normal(2e-4, 0.01, 5000)
    equity = 100.0 * np.concatenate([[1.0], np.cumprod(1.0 + r)])
    return equity, r


def _btc_case(sample_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(sample_dir / "binance_BTC-USDT_1h.csv", delimiter=",", skiprows=1)
    assert data.shape[1] == 6 and data.shape[0] > 5000
    closes = data[:, 4]
    return closes, closes[1:] / closes[:-1] - 1.0


@pytest.mark.parametrize("case", ["random", "btc"])
def test_matches_empyrical(case: str, sample_dir: Path) -> None:
    ppy = 8760
    equity, r = _random_case() if case == "random" else _btc_case(sample_dir)
    np.testing.assert_allclose(period_returns(equity), r, rtol=0, atol=1e-13)
    mdd, peak, trough = max_drawdown(equity)
    assert peak < trough and mdd > 0.05
    checks = {
        "sharpe": (sharpe(r, ppy), empyrical.sharpe_ratio(r, annualization=ppy)),
        "sortino": (sortino(r, ppy), empyrical.sortino_ratio(r, annualization=ppy)),
        "max_drawdown": (mdd, -empyrical.max_drawdown(r)),
        "annualized_return": (annualized_return(equity, ppy), empyrical.annual_return(r, annualization=ppy)),
        "volatility": (annualized_volatility(r, ppy), empyrical.annual_volatility(r, annualization=ppy)),
        "calmar": (calmar(equity, ppy), empyrical.calmar_ratio(r, annualization=ppy)),
    }
    for name, (ours, theirs) in checks.items():
        assert math.isfinite(theirs) and theirs != 0.0, name
        assert ours == pytest.approx(theirs, rel=REL), name


# --- trades and activity ------------------------------------------------------------------------------------


def test_trade_statistics_by_hand() -> None:
    trades = [trade(10.0, 100.0), trade(-5.0, 50.0), trade(2.0, 200.0), trade(0.0, 100.0)]
    assert win_rate(trades) == 0.5
    assert profit_factor(trades) == pytest.approx(12 / 5)
    assert expectancy(trades) == pytest.approx(7 / 4)
    assert average_trade(trades) == pytest.approx((0.1 - 0.1 + 0.01 + 0.0) / 4)


def test_trade_statistics_edge_cases() -> None:
    assert (win_rate([]), profit_factor([]), expectancy([]), average_trade([])) == (0.0, 0.0, 0.0, 0.0)
    assert profit_factor([trade(1.0), trade(2.0)]) == math.inf
    assert profit_factor([trade(-1.0)]) == 0.0
    assert profit_factor([trade(0.0)]) == 0.0
    assert win_rate([trade(0.0), trade(-1.0)]) == 0.0
    with pytest.raises(ValueError, match="entry_notional"):
        average_trade([trade(1.0, 0.0)])


def test_exposure_and_turnover_by_hand() -> None:
    assert exposure_time(np.array([False, True, True, False])) == 0.5
    assert exposure_time(np.array([False, False, True])) == pytest.approx(1 / 3)
    # 300 traded over mean equity 107.25, 3 periods and 3 periods a year: one year
    assert turnover(300.0, CURVE, 3) == pytest.approx(300 / 107.25)
    assert turnover(300.0, CURVE, 30) == pytest.approx(3000 / 107.25)
    assert turnover(300.0, np.array([100.0]), 3) == 0.0
    with pytest.raises(ValueError, match="traded_notional"):
        turnover(-1.0, CURVE, 3)


# --- compute_metrics ----------------------------------------------------------------------------------------

FIELDS = [
    "total_return", "annualized_return", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
    "max_drawdown_duration", "max_drawdown_duration_days", "win_rate", "profit_factor", "expectancy",
    "average_trade", "exposure_time", "turnover", "fees_paid", "number_of_trades", "periods",
]  # fmt: skip


def test_compute_metrics_by_hand() -> None:
    ts = T0 + HOUR * np.arange(4, dtype=np.int64)
    trades = [trade(10.0, 100.0), trade(-5.0, 50.0), trade(2.0, 200.0)]
    m = compute_metrics(CURVE, ts, trades, np.array([False, True, True, False]), 300.0, 1.5, 3, HOUR)
    r = period_returns(CURVE)
    expected = {
        "total_return": 0.2,
        "annualized_return": 0.2,
        "volatility": math.sqrt(245.01) / 99 * math.sqrt(3),
        "sharpe": sharpe(r, 3),
        "sortino": sortino(r, 3),
        "calmar": 2.0,
        "max_drawdown": 0.1,
        "max_drawdown_duration": 1,
        "max_drawdown_duration_days": 1 / 24,
        "win_rate": 2 / 3,
        "profit_factor": 2.4,
        "expectancy": 7 / 3,
        "average_trade": 0.01 / 3,
        "exposure_time": 0.5,
        "turnover": 300 / 107.25,
        "fees_paid": 1.5,
        "number_of_trades": 3,
        "periods": 3,
    }
    d = m.to_dict()
    assert list(d) == FIELDS == [f.name for f in fields(Metrics)]
    assert d == pytest.approx(expected, rel=1e-12)
    assert isinstance(d["max_drawdown_duration"], int) and isinstance(d["periods"], int)
    assert m.sharpe == d["sharpe"] and m.calmar == d["calmar"]


def test_drawdown_duration_days_follow_the_timestamps() -> None:
    curve = np.array([100.0, 90.0, 95.0, 100.0])
    in_pos = np.ones(4, dtype=np.bool_)
    regular = T0 + HOUR * np.arange(4, dtype=np.int64)
    gapped = T0 + HOUR * np.array([0, 1, 5, 6], dtype=np.int64)  # 3 candles missing inside the drawdown
    assert compute_metrics(curve, regular, [], in_pos, 0.0, 0.0, 8760, HOUR).max_drawdown_duration_days == 2 / 24
    m = compute_metrics(curve, gapped, [], in_pos, 0.0, 0.0, 8760, HOUR)
    assert (m.max_drawdown_duration, m.max_drawdown_duration_days) == (2, 5 / 24)
    flat = compute_metrics(np.array([100.0, 101.0]), regular[:2], [], in_pos[:2], 0.0, 0.0, 8760, HOUR)
    assert (flat.max_drawdown_duration, flat.max_drawdown_duration_days, flat.number_of_trades) == (0, 0.0, 0)


def test_compute_metrics_refuses_misaligned_inputs() -> None:
    ts = T0 + HOUR * np.arange(4, dtype=np.int64)
    pos = np.zeros(4, dtype=np.bool_)
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(CURVE, ts[:3], [], pos, 0.0, 0.0, 8760, HOUR)
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(CURVE, ts, [], pos[:3], 0.0, 0.0, 8760, HOUR)
    with pytest.raises(ValueError, match="increasing"):
        compute_metrics(CURVE, ts[::-1].copy(), [], pos, 0.0, 0.0, 8760, HOUR)
    with pytest.raises(ValueError, match="period_ms"):
        compute_metrics(CURVE, ts, [], pos, 0.0, 0.0, 8760, 0)


# --- bootstrap ----------------------------------------------------------------------------------------------


def _returns(n: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(3e-4, 0.01, n)


def test_block_indices_are_runs_of_consecutive_periods() -> None:
    idx = block_bootstrap_indices(100, 50, 24, seed=3)
    assert idx.shape == (50, 100)
    assert idx.min() >= 0 and idx.max() <= 99
    steps = np.diff(idx, axis=1)
    inside = np.ones(99, dtype=bool)
    inside[23::24] = False  # the step from one block's last index to the next block's first
    assert (steps[:, inside] == 1).all()
    assert not (steps[:, ~inside] == 1).all()  # blocks start at random places
    np.testing.assert_array_equal(block_bootstrap_indices(10, 3, 50, seed=0), np.tile(np.arange(10), (3, 1)))


def test_bootstrap_ci_contains_the_point_estimate() -> None:
    r = _returns(8760)
    point = sharpe(r, 8760)
    lo, hi = bootstrap_sharpe_ci(r, 8760)
    assert lo < point < hi
    assert hi - lo > 0.5  # a year of hourly data cannot pin the Sharpe ratio down to a tenth


def test_bootstrap_ci_is_deterministic_per_seed() -> None:
    r = _returns(2000)
    assert bootstrap_sharpe_ci(r, 8760, seed=5) == bootstrap_sharpe_ci(r, 8760, seed=5)
    assert bootstrap_sharpe_ci(r, 8760, seed=5) != bootstrap_sharpe_ci(r, 8760, seed=6)
    b = _returns(2000, seed=8)
    assert bootstrap_sharpe_diff_ci(r, b, 8760, seed=5) == bootstrap_sharpe_diff_ci(r, b, 8760, seed=5)


def test_bootstrap_ci_narrows_as_the_series_lengthens() -> None:
    short_lo, short_hi = bootstrap_sharpe_ci(_returns(2000), 8760, n_boot=500)
    long_lo, long_hi = bootstrap_sharpe_ci(_returns(20000), 8760, n_boot=500)
    assert long_hi - long_lo < 0.5 * (short_hi - short_lo)  # about 1 / sqrt(10)


def test_bootstrap_ci_of_a_series_equal_to_itself_is_a_point() -> None:
    r = _returns(500)
    lo, hi = bootstrap_sharpe_ci(r, 8760, block=500)  # one block of the whole series: the series itself
    assert lo == pytest.approx(sharpe(r, 8760), rel=1e-12) and hi == pytest.approx(lo, rel=1e-12)


def test_paired_diff_ci() -> None:
    a, b = _returns(3000, seed=1), _returns(3000, seed=2)
    assert bootstrap_sharpe_diff_ci(a, a, 8760) == (0.0, 0.0)
    # against a flat series (Sharpe 0 in every resample) the diff CI is the plain CI: same indices
    assert bootstrap_sharpe_diff_ci(a, np.zeros(3000), 8760) == bootstrap_sharpe_ci(a, 8760)
    lo, hi = bootstrap_sharpe_diff_ci(a, b, 8760)
    assert lo < sharpe(a, 8760) - sharpe(b, 8760) < hi
    # pairing: a and a slightly noisier copy of a differ much less than two independent series
    near = a + np.random.default_rng(9).normal(0, 0.001, 3000)
    nlo, nhi = bootstrap_sharpe_diff_ci(a, near, 8760)
    assert nhi - nlo < 0.25 * (hi - lo)


def test_bootstrap_edge_cases_and_validation() -> None:
    assert bootstrap_sharpe_ci(np.array([0.01]), 8760) == (0.0, 0.0)
    assert bootstrap_sharpe_diff_ci(np.array([0.01]), np.array([0.02]), 8760) == (0.0, 0.0)
    r = _returns(100)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_sharpe_ci(r, 8760, n_boot=0)
    with pytest.raises(ValueError, match="block"):
        bootstrap_sharpe_ci(r, 8760, block=0)
    for confidence in (0.0, 1.0):
        with pytest.raises(ValueError, match="confidence"):
            bootstrap_sharpe_ci(r, 8760, confidence=confidence)
    with pytest.raises(ValueError, match="same length"):
        bootstrap_sharpe_diff_ci(r, r[:-1], 8760)
    wide = bootstrap_sharpe_ci(r, 8760, confidence=0.99)
    narrow = bootstrap_sharpe_ci(r, 8760, confidence=0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
