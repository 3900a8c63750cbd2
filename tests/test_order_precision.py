"""Precision and limits applied after the gate never enlarge an order (hypothesis, on each exchange's real
markets as ccxt parses them), and an order below a market's minimum is not sent."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.exchange_wire import EXCHANGES, SYMBOLS, T_BOOK, FakeExchange, ManualClock
from tools.order_precision import fit_order, round_price
from tools.trade_types import Side

_MARKETS: dict[str, Any] = {}


def loaded(exchange_id: str) -> Any:
    if exchange_id not in _MARKETS:
        ex = FakeExchange(exchange_id, ManualClock(T_BOOK)).create_sync()
        ex.load_markets()
        _MARKETS[exchange_id] = ex
    return _MARKETS[exchange_id]


@pytest.fixture(scope="module", params=EXCHANGES)
def exchange(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield loaded(request.param)


amounts = st.floats(min_value=1e-9, max_value=1e4, allow_nan=False, allow_infinity=False)
prices = st.floats(min_value=0.01, max_value=2e5, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=amounts, price=prices, base=st.sampled_from(["BTC", "ETH", "SOL"]), side=st.sampled_from(list(Side)),
       limit=st.booleans())  # fmt: skip
def test_fitting_never_enlarges_and_respects_the_minimums(
    exchange: Any, amount: float, price: float, base: str, side: Side, limit: bool
) -> None:
    symbol = SYMBOLS[exchange.id][base]
    market = exchange.market(symbol)
    fitted = fit_order(exchange, symbol, side, amount, price if limit else None, price)
    assert fitted.amount <= amount  # never more than the gate approved
    if limit and fitted.price is not None:
        assert fitted.price <= price if side is Side.BUY else fitted.price >= price  # never a worse limit
        if side is Side.BUY:
            assert fitted.amount * fitted.price <= amount * price * (1 + 1e-12)  # nor a larger buy
    if fitted.rejected is not None:
        assert fitted.rejected  # a reason to journal
        return
    assert fitted.price is not None or not limit
    step = Decimal(str(market["precision"]["amount"]))
    assert Decimal(str(fitted.amount)) % step == 0  # on the amount step
    if limit:
        assert Decimal(str(fitted.price)) % Decimal(str(market["precision"]["price"])) == 0  # on the tick
    limits = market["limits"]
    assert fitted.amount >= (limits["amount"]["min"] or 0)
    assert fitted.amount * (fitted.price or price) >= (limits["cost"]["min"] or 0) - 1e-9
    if limits["amount"]["max"]:
        assert fitted.amount <= limits["amount"]["max"]


def test_below_the_minimum_notional_is_rejected_with_the_reason(exchange: Any) -> None:
    symbol = SYMBOLS[exchange.id]["BTC"]
    fitted = fit_order(exchange, symbol, Side.BUY, 0.00001, 60_000.0, 60_000.0)  # 0.6 USDT
    if exchange.id == "kraken":  # Kraken's minimum is an amount (0.0001 BTC)
        assert fitted.rejected is not None and "minimum amount" in fitted.rejected
    else:
        assert fitted.rejected is not None and "notional" in fitted.rejected and symbol in fitted.rejected


def test_below_the_amount_step_is_rejected(exchange: Any) -> None:
    symbol = SYMBOLS[exchange.id]["BTC"]
    fitted = fit_order(exchange, symbol, Side.BUY, 1e-12, 60_000.0, 60_000.0)
    assert fitted.rejected is not None and "step" in fitted.rejected


def test_above_the_market_maximum_is_cut_not_rejected() -> None:
    ex = loaded("binance")
    fitted = fit_order(ex, "BTC/USDT", Side.SELL, 12_000.0, 600.0, 600.0)  # max amount 9000 BTC
    assert fitted.rejected is None and fitted.amount == 9000.0 and "max amount" in fitted.note
    fitted = fit_order(ex, "BTC/USDT", Side.BUY, 1_000.0, 60_000.0, 60_000.0)  # max cost 9,000,000 USDT
    assert fitted.rejected is None and fitted.amount == 150.0 and "max cost" in fitted.note


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_nonsense_amounts_and_prices_are_rejected(bad: float) -> None:
    ex = loaded("binance")
    assert fit_order(ex, "BTC/USDT", Side.BUY, bad, 60_000.0, 60_000.0).rejected is not None
    assert fit_order(ex, "BTC/USDT", Side.BUY, 0.01, bad, 60_000.0).rejected is not None


def test_prices_round_away_from_a_worse_fill() -> None:
    ex = loaded("kraken")  # BTC/USD ticks of 0.1
    assert round_price(ex, "BTC/USD", 60_000.07, Side.BUY) == 60_000.0
    assert round_price(ex, "BTC/USD", 60_000.01, Side.SELL) == pytest.approx(60_000.1)
    assert round_price(ex, "BTC/USD", 60_000.1, Side.SELL) == pytest.approx(60_000.1)
