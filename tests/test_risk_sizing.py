"""Risk sizing: Kelly by hand, VaR/CVaR against a hand computation, and what assess_risk proposes from a portfolio."""

from __future__ import annotations

import statistics
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from tools.market import FloatArray
from tools.risk_sizing import RiskConfig, assess_risk, kelly_fraction, value_at_risk
from tools.signals import Action
from tools.trade_types import PortfolioView, PositionView, Side, TradeIntent

BTC, ETH = "BTC/USDT", "ETH/USDT"
EQUITY = 10_000.0
PRICE = 100.0
ATR = 2.0

# ten one-candle returns; sorted: -.05 -.03 -.02 -.01 0 .01 .015 .02 .03 .04
RETURNS = np.array([-0.05, -0.02, 0.01, 0.03, -0.01, 0.02, 0.04, -0.03, 0.0, 0.015])


@pytest.mark.parametrize(
    ("p", "b", "expected"),
    [
        (0.6, 1.5, 0.6 - 0.4 / 1.5),  # 0.3333...
        (0.6, 1.0, 0.2),
        (0.55, 2.0, 0.325),
        (0.5, 1.0, 0.0),
        (1.0, 3.0, 1.0),
        (0.4, 1.0, 0.0),  # negative edge floored at 0
        (0.0, 1.5, 0.0),
    ],
)
def test_kelly_fraction(p: float, b: float, expected: float) -> None:
    assert kelly_fraction(p, b) == pytest.approx(expected, abs=1e-12)


def test_kelly_fraction_is_one_third_for_60_percent_at_one_and_a_half() -> None:
    assert kelly_fraction(0.6, 1.5) == pytest.approx(1 / 3, rel=1e-12)
    assert kelly_fraction(0.3, 1.5) == 0.0


def test_historical_var_by_hand() -> None:
    var_h, cvar_h, _, _ = value_at_risk(RETURNS, 1_000.0, 0.9)
    # the 10 % quantile, linear between order statistics: position 0.9 between -0.05 and -0.03
    q = -0.05 + 0.9 * (-0.03 - -0.05)
    assert q == pytest.approx(float(np.quantile(RETURNS, 0.1)))
    assert var_h == pytest.approx(-q * 1_000.0)  # 32
    assert var_h == pytest.approx(32.0)
    assert cvar_h == pytest.approx(50.0)  # only -0.05 lies at or below the quantile


def test_parametric_var_by_hand() -> None:
    _, _, var_p, cvar_p = value_at_risk(RETURNS, 1_000.0, 0.9)
    mean, sd = statistics.fmean(RETURNS.tolist()), statistics.stdev(RETURNS.tolist())
    assert mean == pytest.approx(0.0005)
    z = NormalDist().inv_cdf(0.9)
    assert z == pytest.approx(1.2815515655446004)
    assert var_p == pytest.approx((z * sd - mean) * 1_000.0)
    assert cvar_p == pytest.approx((sd * NormalDist().pdf(z) / 0.1 - mean) * 1_000.0)
    assert cvar_p > var_p


def test_var_scales_with_value_and_confidence() -> None:
    small = value_at_risk(RETURNS, 1_000.0, 0.95)
    big = value_at_risk(RETURNS, 3_000.0, 0.95)
    assert big == pytest.approx(tuple(3 * x for x in small))
    assert value_at_risk(RETURNS, 1_000.0, 0.99)[2] > value_at_risk(RETURNS, 1_000.0, 0.9)[2]


def test_var_is_zero_without_a_position_data_or_losses() -> None:
    assert value_at_risk(RETURNS, 0.0, 0.95) == (0.0, 0.0, 0.0, 0.0)
    assert value_at_risk(np.array([0.01]), 1_000.0, 0.95) == (0.0, 0.0, 0.0, 0.0)
    gains = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    var_h, cvar_h, _, _ = value_at_risk(gains, 1_000.0, 0.95)
    assert (var_h, cvar_h) == (0.0, 0.0)  # the worst case is a gain: no loss to report, never negative


# --------------------------------------------------------------------------------------------------------------
# assess_risk


def closes(n: int = 40, last: float = PRICE) -> FloatArray:
    """A fixed zig-zag path ending at ``last``."""
    steps = np.array([0.01, -0.02, 0.015, -0.005, 0.03, -0.025, 0.01])
    path = np.cumprod(1.0 + np.resize(steps, n - 1))
    path = np.concatenate([[1.0], path])
    return np.asarray(path / path[-1] * last, dtype=np.float64)


def intent(action: Action, conviction: float = 0.2, **kw: Any) -> TradeIntent:
    return TradeIntent(action=action, conviction=conviction, horizon=10, rationale="test", **kw)


def portfolio(**kw: Any) -> PortfolioView:
    base: dict[str, Any] = {
        "cash": EQUITY,
        "available_cash": EQUITY,
        "equity": EQUITY,
        "peak_equity": EQUITY,
        "day_start_equity": EQUITY,
    }
    return PortfolioView(**(base | kw))


def assess(action: Action, pf: PortfolioView | None = None, allow_short: bool = False, **kw: Any) -> Any:
    cfg = RiskConfig(var_lookback=20)
    return assess_risk(intent(action, **kw), BTC, closes(), ATR, pf or portfolio(), cfg, allow_short)


def window_returns(n: int = 20) -> FloatArray:
    c = closes()[-(n + 1) :]
    return np.asarray(c[1:] / c[:-1] - 1.0, dtype=np.float64)


def test_buy_from_flat() -> None:
    risk, proposal = assess(Action.BUY)  # conviction 0.2: p = 0.6, b = 3/2 -> f* = 1/3, half Kelly = 1/6
    assert risk.win_probability == pytest.approx(0.6)
    assert risk.payoff_ratio == 1.5
    assert risk.kelly_fraction == pytest.approx(1 / 3)
    assert risk.applied_fraction == pytest.approx(1 / 6)
    assert proposal is not None
    assert (proposal.symbol, proposal.side, proposal.reference_price) == (BTC, Side.BUY, PRICE)
    assert proposal.notional == pytest.approx(risk.applied_fraction * EQUITY)
    assert proposal.quantity == pytest.approx(EQUITY / 6 / PRICE)
    assert proposal.stop_loss == pytest.approx(PRICE - 2.0 * ATR)  # 96
    assert proposal.take_profit == pytest.approx(PRICE + 3.0 * ATR)  # 106
    assert (risk.stop_loss, risk.take_profit) == (proposal.stop_loss, proposal.take_profit)
    assert risk.target_notional == pytest.approx(EQUITY / 6)
    assert risk.current_notional == 0.0
    assert risk.exposure_before == 0.0
    assert risk.exposure_after == pytest.approx(1 / 6)
    # VaR of the position after the order, from the last var_lookback returns only
    expected = value_at_risk(window_returns(), proposal.notional, 0.95)
    assert (risk.var_historical, risk.cvar_historical, risk.var_parametric, risk.cvar_parametric) == pytest.approx(
        expected
    )
    assert risk.var_historical > 0


def test_applied_fraction_is_capped() -> None:
    risk, proposal = assess(Action.BUY, conviction=1.0)  # p = 1: f* = 1, half Kelly 0.5 > cap 0.25
    assert (risk.kelly_fraction, risk.applied_fraction) == (1.0, 0.25)
    assert proposal is not None and proposal.notional == pytest.approx(0.25 * EQUITY)


def test_probability_up_is_flipped_for_a_sell() -> None:
    risk, proposal = assess(Action.SELL, allow_short=True, probability_up=0.3)
    assert risk.win_probability == pytest.approx(0.7)
    assert risk.kelly_fraction == pytest.approx(0.7 - 0.3 / 1.5)
    assert proposal is not None and proposal.side is Side.SELL
    assert proposal.notional == pytest.approx(risk.applied_fraction * EQUITY)
    # a short's stop is above the price and its target below
    assert proposal.stop_loss == pytest.approx(PRICE + 2.0 * ATR)
    assert proposal.take_profit == pytest.approx(PRICE - 3.0 * ATR)
    assert risk.target_notional == pytest.approx(-risk.applied_fraction * EQUITY)
    # the short loses when the price rises: VaR comes from the sign-flipped returns
    assert risk.var_historical == pytest.approx(value_at_risk(-window_returns(), proposal.notional, 0.95)[0])
    assert risk.var_historical != pytest.approx(value_at_risk(window_returns(), proposal.notional, 0.95)[0])


def test_no_edge_no_proposal() -> None:
    risk, proposal = assess(Action.BUY, probability_up=0.3)  # 0.3 - 0.7 / 1.5 < 0
    assert proposal is None
    assert (risk.kelly_fraction, risk.applied_fraction) == (0.0, 0.0)
    assert "Kelly fraction is zero" in risk.note
    assert (risk.stop_loss, risk.take_profit) == (None, None)


def test_sell_while_long_closes_the_whole_position() -> None:
    pf = portfolio(
        positions={
            BTC: PositionView(quantity=5.0, average_price=90.0),
            ETH: PositionView(quantity=2.0, average_price=40.0),
        },
        marks={BTC: 95.0, ETH: 50.0},
    )
    risk, proposal = assess(Action.SELL, pf)
    assert proposal is not None
    assert (proposal.side, proposal.quantity) == (Side.SELL, 5.0)
    assert (proposal.stop_loss, proposal.take_profit) == (None, None)  # nothing left to protect
    assert risk.note == "close the opposite position"
    assert risk.current_notional == pytest.approx(5.0 * PRICE)  # marked at the decision price, not the stale mark
    assert risk.exposure_before == pytest.approx((5.0 * PRICE + 2.0 * 50.0) / EQUITY)  # 0.06
    assert risk.exposure_after == pytest.approx(2.0 * 50.0 / EQUITY)  # 0.01: ETH stays
    assert risk.var_historical == 0.0 and risk.var_parametric == 0.0


def test_sell_closes_a_long_including_pending_buys_even_with_shorting_on() -> None:
    pf = portfolio(positions={BTC: PositionView(quantity=3.0, average_price=90.0)}, pending={BTC: 1.5})
    _, proposal = assess(Action.SELL, pf, allow_short=True)
    assert proposal is not None and (proposal.side, proposal.quantity) == (Side.SELL, 4.5)


def test_buy_while_short_covers() -> None:
    pf = portfolio(positions={BTC: PositionView(quantity=-4.0, average_price=110.0)})
    risk, proposal = assess(Action.BUY, pf, allow_short=True)
    assert proposal is not None and (proposal.side, proposal.quantity) == (Side.BUY, 4.0)
    assert risk.exposure_before == pytest.approx(0.04)
    assert risk.exposure_after == 0.0


def test_sell_while_flat_and_long_only_proposes_nothing() -> None:
    risk, proposal = assess(Action.SELL)
    assert proposal is None
    assert risk.note == "nothing to sell (long-only)"
    assert risk.target_notional == 0.0
    assert risk.exposure_before == risk.exposure_after == 0.0
    assert risk.var_historical == 0.0


def test_buy_at_target_proposes_nothing() -> None:
    at_target = EQUITY / 6 / PRICE  # applied fraction 1/6 of equity, already held
    pf = portfolio(positions={BTC: PositionView(quantity=at_target, average_price=PRICE)})
    risk, proposal = assess(Action.BUY, pf)
    assert proposal is None
    assert risk.note == "position already at or above target"
    assert risk.exposure_before == pytest.approx(1 / 6)
    assert risk.exposure_after == pytest.approx(1 / 6)
    assert risk.var_historical > 0  # the risk of what is held is still reported


@pytest.mark.parametrize(
    ("held_notional", "top_up"),
    [
        (EQUITY / 6 * 0.85, None),  # 15 % short of target: under the 20 % rebalance threshold
        (EQUITY / 6 * 1.5, None),  # above target: never sells to trim
        (EQUITY / 6 * 0.5, EQUITY / 6 * 0.5),  # half way: tops up to the target
    ],
)
def test_top_ups(held_notional: float, top_up: float | None) -> None:
    pf = portfolio(positions={BTC: PositionView(quantity=held_notional / PRICE, average_price=PRICE)})
    risk, proposal = assess(Action.BUY, pf)
    if top_up is None:
        assert proposal is None and risk.note == "position already at or above target"
    else:
        assert proposal is not None and proposal.side is Side.BUY
        assert proposal.notional == pytest.approx(top_up)
        assert risk.exposure_after == pytest.approx(1 / 6)


def test_exposure_counts_other_symbols_and_pending() -> None:
    pf = portfolio(
        positions={ETH: PositionView(quantity=-10.0, average_price=50.0)}, pending={ETH: 4.0}, marks={ETH: 50.0}
    )
    risk, proposal = assess(Action.BUY, pf)
    assert proposal is not None
    assert risk.exposure_before == pytest.approx(6.0 * 50.0 / EQUITY)  # |-10 + 4| at 50
    assert risk.exposure_after == pytest.approx(6.0 * 50.0 / EQUITY + 1 / 6)
