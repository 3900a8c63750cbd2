"""Scenario tests for PaperBroker (in the manner of freqtrade's BTContainer tests).

Each test feeds a small hand-built hourly candle sequence and checks fills, prices, fees, PnL, cash and
equity against numbers computed by hand in the test. Unless a test says otherwise: fee 10 bps, slippage 5 bps.
"""

from __future__ import annotations

import pytest

from tools.paper_broker import Bar, PaperBroker, PaperBrokerConfig
from tools.trade_types import Order, OrderStatus, Side

H = 3_600_000
SYM = "BTC/USDT"
FEE = 10 / 10_000
SLIP = 5 / 10_000


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-12, abs=1e-9)


def bar(k: int, o: float, hi: float, lo: float, c: float, volume: float = 1_000_000.0, symbol: str = SYM) -> Bar:
    """Hourly candle ``k``: open_time = k hours, close_time one hour later."""
    return Bar(symbol=symbol, open_time=k * H, close_time=k * H + H, open=o, high=hi, low=lo, close=c, volume=volume)


def flat(k: int, price: float, volume: float = 1_000_000.0, symbol: str = SYM) -> Bar:
    return bar(k, price, price, price, price, volume, symbol)


def order(
    cid: str,
    side: Side,
    quantity: float,
    reference_price: float,
    after_candle: int,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    symbol: str = SYM,
    kind: str = "entry",
) -> Order:
    """An order decided when candle ``after_candle`` has closed."""
    return Order(
        client_order_id=cid,
        decision_id=cid,
        symbol=symbol,
        side=side,
        quantity=quantity,
        reference_price=reference_price,
        submitted_at=(after_candle + 1) * H,
        stop_loss=stop_loss,
        take_profit=take_profit,
        kind=kind,
    )


def broker(**kwargs: float | int | None) -> PaperBroker:
    cfg = {"initial_cash": 10_000.0, "fee_bps": 10.0, "slippage_bps": 5.0, **kwargs}
    return PaperBroker(PaperBrokerConfig(**cfg))


def open_long_at_100(b: PaperBroker, stop: float | None, take: float | None, qty: float = 10.0) -> None:
    """Candle 0 closes at 100, a buy of ``qty`` is submitted and fills at candle 1's open of 100 (=> 100.05)."""
    assert b.on_candle(flat(0, 100.0)) == []
    b.submit(order("d1", Side.BUY, qty, 100.0, 0, stop_loss=stop, take_profit=take))
    fills = b.on_candle(bar(1, 100.0, 101.0, 99.0, 100.0))
    assert [f.kind for f in fills] == ["entry"]
    assert fills[0].price == approx(100.05)
    assert b.cash == approx(10_000.0 - qty * 100.05 * (1 + FEE))


# --- market entry -------------------------------------------------------------------------------------


def test_market_buy_fills_at_next_open_with_slippage_and_fee_and_resubmit_is_a_noop() -> None:
    b = broker()
    assert b.on_candle(bar(0, 99.0, 100.5, 98.5, 100.0)) == []
    buy = order("d1", Side.BUY, 10.0, 100.0, 0, stop_loss=90.0, take_profit=120.0)
    assert b.submit(buy) is buy
    assert b.pending == {"d1": buy}

    # a candle of another symbol does not touch the order
    assert b.on_candle(flat(1, 50.0, symbol="ETH/USDT")) == []
    assert "d1" in b.pending

    fills = b.on_candle(bar(1, 102.0, 103.0, 101.0, 102.5))
    price = 102.0 * (1 + 5 / 10_000)  # 102.051
    fee = 10 * price * 10 / 10_000  # 1.02051
    assert len(fills) == 1
    fill = fills[0]
    assert fill.client_order_id == "d1"
    assert fill.side is Side.BUY
    assert fill.kind == "entry"
    assert fill.timestamp == 1 * H  # candle 1's open
    assert fill.quantity == approx(10.0)
    assert fill.price == approx(102.051)
    assert fill.fee == approx(1.02051)
    assert fill.realized_pnl == approx(-1.02051)
    assert fill.slippage_bps == approx(205.1)  # measured against the decision's reference price of 100
    assert price == approx(102.051) and fee == approx(1.02051)

    assert b.cash == approx(10_000.0 - 1020.51 - 1.02051)  # 8978.46949
    assert b.equity() == approx(8978.46949 + 10 * 102.5)  # marked at candle 1's close
    assert b.unrealized_pnl() == approx(10 * (102.5 - 102.051))
    assert b.fees_paid == approx(1.02051)
    assert b.realized_pnl == approx(-1.02051)
    assert b.pending == {}
    assert buy.status is OrderStatus.FILLED
    assert buy.filled_quantity == approx(10.0)
    assert b.take_order_updates() == [buy]
    assert b.take_order_updates() == []
    view = b.portfolio_view()
    assert view.positions[SYM].quantity == approx(10.0)
    assert view.positions[SYM].average_price == approx(102.051)
    assert (view.positions[SYM].stop_loss, view.positions[SYM].take_profit) == (90.0, 120.0)

    # a retry with the same client_order_id is the same order: nothing new is queued or filled
    retry = order("d1", Side.BUY, 10.0, 100.0, 1, stop_loss=90.0, take_profit=120.0)
    assert b.submit(retry) is buy
    assert b.pending == {}
    assert b.on_candle(bar(2, 102.5, 104.0, 101.5, 103.0)) == []
    assert b.positions[SYM].quantity == approx(10.0)
    assert b.cash == approx(8978.46949)
    assert b.equity() == approx(8978.46949 + 10 * 103.0)
    assert b.take_order_updates() == []


def test_pending_orders_fill_only_on_their_own_symbols_candles() -> None:
    """Pending orders only fill on their own symbol's candles, each at its own open."""
    b = broker(fee_bps=0.0, slippage_bps=0.0)
    b.on_candle(flat(0, 100.0))
    b.on_candle(flat(0, 10.0, symbol="ETH/USDT"))
    b.submit(order("btc", Side.BUY, 1.0, 100.0, 0))
    b.submit(order("eth", Side.BUY, 2.0, 10.0, 0, symbol="ETH/USDT"))
    eth_fills = b.on_candle(flat(1, 11.0, symbol="ETH/USDT"))
    assert [(f.client_order_id, f.price) for f in eth_fills] == [("eth", 11.0)]
    assert set(b.pending) == {"btc"}
    btc_fills = b.on_candle(flat(1, 101.0))
    assert [(f.client_order_id, f.price) for f in btc_fills] == [("btc", 101.0)]
    assert b.cash == approx(10_000.0 - 22.0 - 101.0)


# --- exits of a long ----------------------------------------------------------------------------------


def test_take_profit_hit_on_a_later_candle_exits_at_the_level_minus_slippage() -> None:
    b = broker()
    open_long_at_100(b, stop=95.0, take=110.0)
    b.take_order_updates()
    assert b.on_candle(bar(2, 100.0, 105.0, 99.5, 104.0)) == []  # neither level touched
    fills = b.on_candle(bar(3, 104.0, 111.0, 103.0, 109.0))

    exit_price = 110.0 * (1 - 5 / 10_000)  # 109.945
    exit_fee = 10 * 109.945 * 10 / 10_000  # 1.09945
    gross = 10 * (109.945 - 100.05)  # 98.95
    assert exit_price == approx(109.945) and exit_fee == approx(1.09945) and gross == approx(98.95)
    assert len(fills) == 1
    fill = fills[0]
    assert fill.kind == "take_profit"
    assert fill.client_order_id == "d1-take_profit"
    assert fill.side is Side.SELL
    assert fill.timestamp == 3 * H
    assert fill.quantity == approx(10.0)
    assert fill.price == approx(109.945)
    assert fill.fee == approx(1.09945)
    assert fill.realized_pnl == approx(98.95 - 1.09945)
    assert fill.slippage_bps == approx(5.0)

    assert b.positions == {}
    assert b.realized_pnl == approx(98.95 - 1.0005 - 1.09945)  # 96.85005
    assert b.fees_paid == approx(1.0005 + 1.09945)
    assert b.cash == approx(10_000.0 + 96.85005)
    assert b.equity() == approx(10_096.85005)
    assert b.last_stop_out == {}
    (update,) = b.take_order_updates()
    assert (update.kind, update.status, update.side) == ("take_profit", OrderStatus.FILLED, Side.SELL)


def test_stop_loss_hit_exits_at_the_stop_and_records_the_stop_out_time() -> None:
    b = broker()
    open_long_at_100(b, stop=95.0, take=120.0)
    assert b.last_stop_out == {}
    fills = b.on_candle(bar(2, 99.0, 99.5, 94.0, 96.0))

    assert [f.kind for f in fills] == ["stop_loss"]
    fill = fills[0]
    assert fill.client_order_id == "d1-stop_loss"
    assert fill.side is Side.SELL
    assert fill.price == approx(95.0 * (1 - 5 / 10_000))  # 94.9525
    assert fill.fee == approx(0.949525)
    assert fill.realized_pnl == approx(10 * (94.9525 - 100.05) - 0.949525)  # -50.975 - fee
    assert b.cash == approx(10_000.0 - 50.975 - 1.0005 - 0.949525)  # 9947.074975
    assert b.equity() == approx(9947.074975)
    assert b.positions == {}
    assert b.last_stop_out == {SYM: 3 * H}  # candle 2's close_time
    assert b.portfolio_view().last_stop_out == {SYM: 3 * H}


def test_stop_and_take_profit_touched_in_one_candle_assumes_the_stop() -> None:
    b = broker()
    open_long_at_100(b, stop=95.0, take=105.0)
    fills = b.on_candle(bar(2, 100.0, 106.0, 94.0, 100.0))
    assert [f.kind for f in fills] == ["stop_loss"]
    assert fills[0].price == approx(94.9525)
    assert b.cash == approx(9947.074975)
    assert b.last_stop_out == {SYM: 3 * H}


def test_gap_down_through_the_stop_fills_at_the_open() -> None:
    b = broker()
    open_long_at_100(b, stop=95.0, take=120.0)
    fills = b.on_candle(bar(2, 90.0, 92.0, 88.0, 91.0))
    assert [f.kind for f in fills] == ["stop_loss"]
    price = 90.0 * (1 - 5 / 10_000)  # 89.955: the open, worse than the stop
    assert fills[0].price == approx(89.955)
    assert fills[0].price < 95.0 * (1 - 5 / 10_000)
    assert fills[0].fee == approx(10 * price * 10 / 10_000)  # 0.89955
    assert fills[0].realized_pnl == approx(10 * (89.955 - 100.05) - 0.89955)  # -100.95 - fee
    assert b.cash == approx(10_000.0 - 100.95 - 1.0005 - 0.89955)
    assert b.last_stop_out == {SYM: 3 * H}


def test_gap_up_through_the_take_profit_fills_at_the_open() -> None:
    b = broker()
    open_long_at_100(b, stop=95.0, take=110.0)
    fills = b.on_candle(bar(2, 115.0, 116.0, 114.0, 115.0))
    assert [f.kind for f in fills] == ["take_profit"]
    assert fills[0].price == approx(115.0 * (1 - 5 / 10_000))  # 114.9425
    assert b.cash == approx(10_000.0 + 10 * (114.9425 - 100.05) - 1.0005 - 1.149425)


def test_stop_is_checked_on_the_fill_candle_after_the_fill() -> None:
    b = broker()
    b.on_candle(flat(0, 100.0))
    b.submit(order("d1", Side.BUY, 10.0, 100.0, 0, stop_loss=99.0, take_profit=110.0))
    fills = b.on_candle(bar(1, 100.0, 100.5, 98.0, 98.5))
    assert [(f.kind, f.side) for f in fills] == [("entry", Side.BUY), ("stop_loss", Side.SELL)]
    assert fills[0].price == approx(100.05)
    assert fills[1].price == approx(99.0 * (1 - 5 / 10_000))  # 98.9505
    assert b.positions == {}
    assert b.cash == approx(10_000.0 + 10 * (98.9505 - 100.05) - 1.0005 - 0.989505)
    assert b.last_stop_out == {SYM: 2 * H}


# --- short --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candle", "kind", "level"),
    [
        pytest.param((99.0, 99.5, 94.0, 95.0), "take_profit", 95.0, id="take-profit-below"),
        pytest.param((101.0, 106.0, 100.5, 104.0), "stop_loss", 105.0, id="stop-above"),
        pytest.param((100.0, 106.0, 94.0, 100.0), "stop_loss", 105.0, id="both-touched-stop-assumed"),
        pytest.param((110.0, 112.0, 108.0, 111.0), "stop_loss", 110.0, id="gap-up-through-stop-fills-at-open"),
    ],
)
def test_short_position_mirrors_stop_above_and_take_profit_below(
    candle: tuple[float, float, float, float], kind: str, level: float
) -> None:
    b = broker()
    b.on_candle(flat(0, 100.0))
    b.submit(order("s1", Side.SELL, 10.0, 100.0, 0, stop_loss=105.0, take_profit=95.0))
    fills = b.on_candle(bar(1, 100.0, 101.0, 99.0, 100.0))
    entry = 100.0 * (1 - 5 / 10_000)  # 99.95: a sell is moved down
    assert [(f.side, f.price) for f in fills] == [(Side.SELL, approx(entry))]
    assert fills[0].fee == approx(0.9995)
    assert b.positions[SYM].quantity == approx(-10.0)
    assert b.positions[SYM].average_price == approx(99.95)
    assert b.cash == approx(10_000.0 + 999.5 - 0.9995)  # 10998.5005
    assert b.equity() == approx(10_998.5005 - 10 * 100.0)
    assert b.unrealized_pnl() == approx(-10 * (100.0 - 99.95))  # short loses when the price rises

    fills = b.on_candle(bar(2, *candle))
    exit_price = level * (1 + 5 / 10_000)  # a buy is moved up
    exit_fee = 10 * exit_price * 10 / 10_000
    gross = 10 * (99.95 - exit_price)  # a short earns when it buys back lower
    assert len(fills) == 1
    fill = fills[0]
    assert (fill.kind, fill.side, fill.client_order_id) == (kind, Side.BUY, f"s1-{kind}")
    assert fill.price == approx(exit_price)
    assert fill.fee == approx(exit_fee)
    assert fill.realized_pnl == approx(gross - exit_fee)
    if kind == "take_profit":
        assert fill.price == approx(95.0475)
        assert gross == approx(49.025) and gross > 0
        assert b.last_stop_out == {}
    else:
        assert gross < 0
        assert b.last_stop_out == {SYM: 3 * H}
    assert b.positions == {}
    assert b.realized_pnl == approx(gross - 0.9995 - exit_fee)
    assert b.cash == approx(10_000.0 + gross - 0.9995 - exit_fee)
    assert b.equity() == approx(b.cash)


def test_short_take_profit_numbers_by_hand() -> None:
    b = broker()
    b.on_candle(flat(0, 100.0))
    b.submit(order("s1", Side.SELL, 10.0, 100.0, 0, stop_loss=105.0, take_profit=95.0))
    b.on_candle(bar(1, 100.0, 101.0, 99.0, 100.0))
    (fill,) = b.on_candle(bar(2, 99.0, 99.5, 94.0, 95.0))
    assert fill.price == approx(95.0475)
    assert fill.fee == approx(0.950475)
    assert fill.realized_pnl == approx(48.074525)
    assert b.cash == approx(10_047.075025)


# --- partial fills ------------------------------------------------------------------------------------


def test_partial_fills_follow_volume_participation_and_the_remainder_is_canceled_after_ttl() -> None:
    b = broker(max_volume_participation=0.1, order_ttl_candles=3)
    b.on_candle(flat(0, 100.0))
    buy = order("p1", Side.BUY, 25.0, 100.0, 0)
    b.submit(buy)

    f1 = b.on_candle(bar(1, 100.0, 101.0, 99.0, 100.0, volume=100.0))
    assert [f.quantity for f in f1] == [approx(10.0)]  # 10% of 100
    assert f1[0].price == approx(100.05)
    assert [(o.client_order_id, o.status) for o in b.take_order_updates()] == [("p1", OrderStatus.PARTIALLY_FILLED)]
    assert b.pending == {"p1": buy}
    view = b.portfolio_view()
    assert view.pending == {SYM: approx(15.0)}
    assert view.available_cash == approx(b.cash - 15.0 * 100.0 * (1 + FEE + SLIP))

    f2 = b.on_candle(bar(2, 102.0, 103.0, 101.0, 102.0, volume=50.0))
    assert [f.quantity for f in f2] == [approx(5.0)]
    assert f2[0].price == approx(102.051)
    assert [o.status for o in b.take_order_updates()] == [OrderStatus.PARTIALLY_FILLED]

    f3 = b.on_candle(bar(3, 98.0, 99.0, 97.0, 98.0, volume=80.0))
    assert [f.quantity for f in f3] == [approx(8.0)]
    assert f3[0].price == approx(98.049)
    # third candle = order_ttl_candles: the unfilled 2 are dropped
    assert [o.status for o in b.take_order_updates()] == [OrderStatus.PARTIALLY_FILLED]
    assert b.pending == {}
    assert buy.filled_quantity == approx(23.0)
    assert b.portfolio_view().pending == {}

    notional = 10 * 100.05 + 5 * 102.051 + 8 * 98.049  # 2299.247
    assert b.positions[SYM].quantity == approx(23.0)
    assert b.positions[SYM].average_price == approx(notional / 23.0)
    assert b.cash == approx(10_000.0 - notional * (1 + FEE))
    assert b.fees_paid == approx(notional * FEE)
    assert b.on_candle(bar(4, 98.0, 99.0, 97.0, 98.0, volume=1_000.0)) == []  # nothing more fills
    assert b.take_order_updates() == []


def test_partial_fills_that_complete_within_ttl_end_filled() -> None:
    b = broker(max_volume_participation=0.1, order_ttl_candles=3, fee_bps=0.0, slippage_bps=0.0)
    b.on_candle(flat(0, 100.0))
    buy = order("p1", Side.BUY, 15.0, 100.0, 0)
    b.submit(buy)
    assert [f.quantity for f in b.on_candle(flat(1, 100.0, volume=100.0))] == [approx(10.0)]
    assert [o.status for o in b.take_order_updates()] == [OrderStatus.PARTIALLY_FILLED]
    assert [f.quantity for f in b.on_candle(flat(2, 110.0, volume=100.0))] == [approx(5.0)]
    assert buy.status is OrderStatus.FILLED
    assert [o.status for o in b.take_order_updates()] == [OrderStatus.FILLED]
    assert b.pending == {}
    assert b.cash == approx(10_000.0 - 1000.0 - 550.0)


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_order_with_no_volume_stays_pending_until_ttl_then_is_canceled(side: Side) -> None:
    b = broker(max_volume_participation=0.5, order_ttl_candles=2)
    b.on_candle(flat(0, 100.0))
    o = order("z1", side, 4.0, 100.0, 0)
    b.submit(o)
    assert b.on_candle(flat(1, 100.0, volume=0.0)) == []
    assert b.pending == {"z1": o}  # one empty candle does not cancel it
    assert o.status is OrderStatus.PENDING
    assert b.take_order_updates() == []
    assert b.on_candle(flat(2, 100.0, volume=0.0)) == []
    assert b.pending == {}
    assert o.status is OrderStatus.CANCELED
    assert b.take_order_updates() == [o]
    assert b.cash == approx(10_000.0)
    assert b.positions == {}


def test_order_with_no_volume_first_fills_on_the_next_candle_within_ttl() -> None:
    b = broker(max_volume_participation=0.5, order_ttl_candles=3)
    b.on_candle(flat(0, 100.0))
    b.submit(order("z1", Side.BUY, 4.0, 100.0, 0))
    assert b.on_candle(flat(1, 100.0, volume=0.0)) == []
    fills = b.on_candle(flat(2, 100.0, volume=100.0))
    assert [(f.quantity, f.price) for f in fills] == [(approx(4.0), approx(100.05))]
    assert b.pending == {}


# --- cash limit ---------------------------------------------------------------------------------------


def test_buy_larger_than_cash_is_cut_to_what_cash_pays() -> None:
    b = broker(initial_cash=1_000.0)
    b.on_candle(flat(0, 100.0))
    buy = order("big", Side.BUY, 50.0, 100.0, 0)
    b.submit(buy)
    fills = b.on_candle(bar(1, 100.0, 101.0, 99.0, 100.0))
    qty = 1_000.0 / (100.05 * (1 + FEE))  # 9.98501748...
    assert len(fills) == 1
    assert fills[0].quantity == approx(qty)
    assert fills[0].price == approx(100.05)
    assert fills[0].fee == approx(qty * 100.05 * FEE)
    assert b.cash == pytest.approx(0.0, abs=1e-9)
    assert b.equity() == approx(qty * 100.0)
    # the order is finished, not left pending with its unaffordable remainder
    assert b.pending == {}
    assert buy.status is OrderStatus.PARTIALLY_FILLED
    assert b.take_order_updates() == [buy]
    view = b.portfolio_view()
    assert view.pending == {}
    assert view.available_cash == pytest.approx(0.0, abs=1e-9)


def test_cut_buy_does_not_refill_its_remainder_after_the_cash_comes_back() -> None:
    """Take profit on the fill candle returns the cash; the cut order must not buy again next candle."""
    b = broker(initial_cash=1_000.0)
    b.on_candle(flat(0, 100.0))
    b.submit(order("big", Side.BUY, 50.0, 100.0, 0, take_profit=110.0))
    fills = b.on_candle(bar(1, 100.0, 112.0, 99.0, 111.0))
    assert [f.kind for f in fills] == ["entry", "take_profit"]
    qty = 1_000.0 / (100.05 * (1 + FEE))
    cash = 1_000.0 + qty * 109.945 * (1 - FEE) - 1_000.0  # spent all of it, got the exit proceeds back
    assert b.cash == approx(cash)
    assert b.on_candle(bar(2, 111.0, 112.0, 110.0, 111.0)) == []
    assert b.positions == {}
    assert b.cash == approx(cash)


def test_buy_when_cash_is_gone_is_canceled() -> None:
    b = broker(initial_cash=1_000.0, fee_bps=0.0, slippage_bps=0.0)
    b.on_candle(flat(0, 100.0))
    b.submit(order("a", Side.BUY, 10.0, 100.0, 0))
    b.on_candle(flat(1, 100.0))
    assert b.cash == approx(0.0)
    b.take_order_updates()
    late = order("b", Side.BUY, 1.0, 100.0, 1)
    b.submit(late)
    assert b.on_candle(flat(2, 100.0)) == []
    assert late.status is OrderStatus.CANCELED
    assert b.take_order_updates() == [late]
    assert b.pending == {}


# --- portfolio view -----------------------------------------------------------------------------------


def test_portfolio_view_shows_pending_orders_and_reserves_cash_for_buys() -> None:
    b = broker()
    b.on_candle(flat(0, 100.0))  # BTC marked at 100
    b.submit(order("b1", Side.BUY, 20.0, 99.0, 0))
    b.submit(order("e1", Side.BUY, 2.0, 50.0, 0, symbol="ETH/USDT"))  # no mark yet: reference price
    b.submit(order("s1", Side.SELL, 3.0, 20.0, 0, symbol="SOL/USDT"))  # sells reserve nothing
    view = b.portfolio_view()
    assert view.cash == approx(10_000.0)
    assert view.pending == {SYM: approx(20.0), "ETH/USDT": approx(2.0), "SOL/USDT": approx(-3.0)}
    buffer = 1 + FEE + SLIP  # 1.0015
    assert view.available_cash == approx(10_000.0 - 20 * 100.0 * buffer - 2 * 50.0 * buffer)  # 7896.85
    assert view.available_cash == approx(7896.85)
    assert view.equity == approx(10_000.0)
    assert view.exposure_quantity(SYM) == approx(20.0)
    assert view.order_times == [H, H, H]
    # symbols with no candle yet are marked at their pending order's reference price
    assert view.marks == {SYM: 100.0, "ETH/USDT": 50.0, "SOL/USDT": 20.0}

    b.on_candle(flat(1, 100.0))  # the BTC buy fills; the others wait for their own candles
    view = b.portfolio_view()
    assert view.pending == {"ETH/USDT": approx(2.0), "SOL/USDT": approx(-3.0)}
    assert view.cash == approx(10_000.0 - 20 * 100.05 * (1 + FEE))
    assert view.available_cash == approx(view.cash - 2 * 50.0 * buffer)


def test_buy_that_covers_a_short_reserves_no_cash() -> None:
    b = broker()
    b.on_candle(flat(0, 100.0))
    b.submit(order("s1", Side.SELL, 5.0, 100.0, 0))
    b.on_candle(flat(1, 100.0))
    b.submit(order("c1", Side.BUY, 5.0, 100.0, 1, kind="exit"))
    view = b.portfolio_view()
    assert view.pending == {SYM: approx(5.0)}
    assert view.available_cash == approx(view.cash)
    assert view.exposure_quantity(SYM) == approx(0.0)


def test_peak_equity_and_day_start_equity_across_a_utc_day_boundary() -> None:
    b = broker(fee_bps=0.0, slippage_bps=0.0)
    # candles 20..23 are on UTC day 0, candle 24 opens day 1 at 00:00
    b.on_candle(bar(20, 100.0, 100.0, 100.0, 100.0))
    assert (b.peak_equity, b.day_start_equity) == (10_000.0, 10_000.0)
    b.submit(order("d1", Side.BUY, 10.0, 100.0, 20))
    steps = [
        # (candle, open, close, equity after, peak after, day start after)
        (21, 100.0, 110.0, 9_000.0 + 1_100.0, 10_100.0, 10_000.0),
        (22, 110.0, 120.0, 9_000.0 + 1_200.0, 10_200.0, 10_000.0),
        (23, 120.0, 90.0, 9_000.0 + 900.0, 10_200.0, 10_000.0),
        # new UTC day: day start = equity before its first candle (9900), not after it (9950)
        (24, 90.0, 95.0, 9_000.0 + 950.0, 10_200.0, 9_900.0),
        (25, 95.0, 130.0, 9_000.0 + 1_300.0, 10_300.0, 9_900.0),
    ]
    for k, o, c, equity, peak, day_start in steps:
        b.on_candle(bar(k, o, max(o, c), min(o, c), c))
        view = b.portfolio_view()
        assert view.equity == approx(equity), k
        assert view.peak_equity == approx(peak), k
        assert view.day_start_equity == approx(day_start), k


def test_first_candle_sets_day_start_equity_and_a_new_day_resets_it_with_no_position() -> None:
    b = broker(fee_bps=0.0, slippage_bps=0.0)
    b.on_candle(flat(23, 100.0))
    b.submit(order("d1", Side.SELL, 10.0, 100.0, 23, kind="entry"))
    b.on_candle(flat(24, 100.0))  # day 1: reset happens before the fill, at 10_000
    assert b.day_start_equity == approx(10_000.0)
    b.on_candle(flat(25, 105.0))
    assert b.equity() == approx(10_000.0 - 50.0)
    b.on_candle(flat(48, 105.0))  # day 2
    assert b.day_start_equity == approx(9_950.0)
    assert b.peak_equity == approx(10_000.0)


def test_order_times_drop_entries_one_hour_old() -> None:
    b = broker()
    b.on_candle(flat(0, 100.0))
    b.submit(order("a", Side.BUY, 1.0, 100.0, 0))  # submitted at H
    late = order("b", Side.BUY, 1.0, 100.0, 0).model_copy(update={"submitted_at": H + 1})
    b.submit(late)
    assert b.portfolio_view().order_times == [H, H + 1]
    b.on_candle(flat(1, 100.0))  # closes at 2H: the order from H is one hour old, the other is not
    assert b.portfolio_view().order_times == [H + 1]
    b.on_candle(flat(2, 100.0))  # closes at 3H
    assert b.portfolio_view().order_times == []


# --- fee and slippage arithmetic ----------------------------------------------------------------------


def test_round_trip_without_price_move_loses_two_fees_and_two_slippages() -> None:
    b = broker()
    b.on_candle(flat(0, 100.0))
    b.submit(order("in", Side.BUY, 10.0, 100.0, 0))
    (buy,) = b.on_candle(flat(1, 100.0))
    b.submit(order("out", Side.SELL, 10.0, 100.0, 1, kind="exit"))
    (sell,) = b.on_candle(flat(2, 100.0))

    slippage_cost = 2 * 10 * 100.0 * 5 / 10_000  # 0.5 on the way in, 0.5 on the way out
    fees = 10 * 100.05 * 10 / 10_000 + 10 * 99.95 * 10 / 10_000  # 1.0005 + 0.9995
    assert slippage_cost == approx(1.0)
    assert fees == approx(2.0)
    assert (buy.price, sell.price) == (approx(100.05), approx(99.95))
    assert (buy.fee, sell.fee) == (approx(1.0005), approx(0.9995))
    assert sell.kind == "exit"
    assert sell.slippage_bps == approx(5.0)
    assert sell.realized_pnl == approx(10 * (99.95 - 100.05) - 0.9995)  # -1.9995
    assert b.positions == {}
    assert b.fees_paid == approx(2.0)
    assert b.realized_pnl == approx(-3.0)
    assert b.cash == approx(10_000.0 - 3.0)
    assert b.equity() == approx(9_997.0)
    assert b.peak_equity == approx(10_000.0)


def test_zero_fee_zero_slippage_round_trip_is_free() -> None:
    b = broker(fee_bps=0.0, slippage_bps=0.0)
    b.on_candle(flat(0, 100.0))
    b.submit(order("in", Side.BUY, 10.0, 100.0, 0))
    b.on_candle(flat(1, 100.0))
    b.submit(order("out", Side.SELL, 10.0, 100.0, 1, kind="exit"))
    b.on_candle(flat(2, 100.0))
    assert b.cash == 10_000.0
    assert b.realized_pnl == 0.0
    assert b.fees_paid == 0.0


def test_partial_exit_never_goes_past_flat_after_a_stop_out() -> None:
    # review finding: the rest of a partly filled exit used to keep selling after a stop closed the position
    b = PaperBroker(PaperBrokerConfig(initial_cash=10_000.0, fee_bps=0, slippage_bps=0, max_volume_participation=0.1,
                                      order_ttl_candles=10))  # fmt: skip
    b.submit(order("in", Side.BUY, 10.0, 100.0, 0, stop_loss=90.0))
    b.on_candle(Bar(SYM, H, 2 * H, 100.0, 100.5, 99.5, 100.0, 1_000.0))
    assert b.positions[SYM].quantity == approx(10.0)
    b.submit(Order(client_order_id="out", decision_id="d-out", symbol=SYM, side=Side.SELL, quantity=10.0,
                   reference_price=100.0, submitted_at=2 * H, kind="exit"))  # fmt: skip
    b.on_candle(Bar(SYM, 2 * H, 3 * H, 100.0, 100.5, 99.5, 100.0, 20.0))  # sells 2
    b.on_candle(Bar(SYM, 3 * H, 4 * H, 100.0, 100.5, 89.0, 95.0, 20.0))  # sells 2, then the stop closes 6
    assert SYM not in b.positions
    assert b.pending == {}
    assert b.orders["out"].status is OrderStatus.PARTIALLY_FILLED
    b.on_candle(Bar(SYM, 4 * H, 5 * H, 95.0, 96.0, 94.0, 95.0, 20.0))
    assert SYM not in b.positions  # no short was opened
