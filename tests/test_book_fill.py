"""Paper fills that walk an order book: the recorded Binance BTC/USDT book (1,000 levels a side, 2024-08-08)."""

from __future__ import annotations

import pytest

from tests.exchange_wire import shared_market
from tools.book_fill import walk_book
from tools.market import OrderBook
from tools.paper_broker import Bar, PaperBroker, PaperBrokerConfig
from tools.trade_types import Order, OrderStatus, Side

H = 3_600_000
SYM = "BTC/USDT"


def recorded_book(depth: int = 1000, timestamp: int = 1) -> OrderBook:
    snap = shared_market().depth("BTC").snapshot
    bids = tuple((float(p), float(q)) for p, q in snap["bids"][:depth])
    asks = tuple((float(p), float(q)) for p, q in snap["asks"][:depth])
    return OrderBook(SYM, timestamp, bids, asks)


def by_hand(levels: tuple[tuple[float, float], ...], quantity: float) -> tuple[float, float]:
    """(filled, vwap) computed level by level, independently of walk_book."""
    left, cost = quantity, 0.0
    for price, size in levels:
        take = min(size, left)
        cost += take * price
        left -= take
        if left <= 0:
            break
    filled = quantity - max(left, 0.0)
    return filled, cost / filled


def test_walk_buys_up_the_asks_at_the_volume_weighted_price() -> None:
    book = recorded_book()
    quantity = 12.5  # several levels deep (the best ask holds about 1.5 BTC)
    walked = walk_book(book, Side.BUY, quantity)
    assert walked is not None
    filled, vwap = by_hand(book.asks, quantity)
    assert walked.quantity == pytest.approx(quantity) == pytest.approx(filled)
    assert walked.average_price == pytest.approx(vwap, rel=1e-12)
    assert walked.levels > 1
    assert book.asks[0][0] < walked.average_price <= walked.worst_price


def test_walk_sells_down_the_bids_and_a_thin_book_fills_partly() -> None:
    book = recorded_book(depth=5)
    held = sum(q for _, q in book.bids)
    walked = walk_book(book, Side.SELL, held * 3)
    assert walked is not None
    assert walked.quantity == pytest.approx(held)
    assert walked.levels == 5
    assert walked.average_price == pytest.approx(by_hand(book.bids, held)[1], rel=1e-12)
    assert walked.average_price < book.bids[0][0]


def test_walk_of_an_empty_side_is_none() -> None:
    book = OrderBook(SYM, 1, (), ((100.0, 1.0),))
    assert walk_book(book, Side.SELL, 1.0) is None
    assert walk_book(book, Side.BUY, 0.0) is None


def bar(k: int, price: float) -> Bar:
    return Bar(SYM, k * H, k * H + H, price, price, price, price, 1_000_000.0)


def order(cid: str, side: Side, quantity: float, reference: float, kind: str = "entry") -> Order:
    return Order(
        client_order_id=cid, decision_id=cid, symbol=SYM, side=side, quantity=quantity, reference_price=reference,
        submitted_at=H, kind=kind,
    )  # fmt: skip


def test_paper_broker_fills_a_market_buy_by_walking_the_book_it_was_submitted_with() -> None:
    book = recorded_book()
    broker = PaperBroker(PaperBrokerConfig(initial_cash=10_000_000, fee_bps=10, slippage_bps=5))
    broker.observe_book(SYM, book)
    reference = book.asks[0][0]
    broker.submit(order("a", Side.BUY, 12.5, reference))
    broker.observe_book(SYM, recorded_book(depth=1, timestamp=2))  # a later book must not change that fill
    fills = broker.on_candle(bar(1, 50_000.0))  # the open is far away: only the book counts
    _, vwap = by_hand(book.asks, 12.5)
    assert len(fills) == 1 and fills[0].quantity == pytest.approx(12.5)
    assert fills[0].price == pytest.approx(vwap, rel=1e-12)
    assert fills[0].fee == pytest.approx(12.5 * vwap * 10 / 10_000)
    assert fills[0].slippage_bps == pytest.approx((vwap / reference - 1) * 10_000)
    assert broker.orders["a"].status is OrderStatus.FILLED


def test_a_book_too_thin_fills_partly_and_the_rest_waits_for_a_newer_book() -> None:
    thin = recorded_book(depth=3)
    depth = sum(q for _, q in thin.asks)
    broker = PaperBroker(PaperBrokerConfig(initial_cash=10_000_000, order_ttl_candles=3))
    broker.observe_book(SYM, thin)
    broker.submit(order("a", Side.BUY, depth + 1.0, thin.asks[0][0]))
    first = broker.on_candle(bar(1, 60_000.0))
    assert first[0].quantity == pytest.approx(depth)
    assert broker.orders["a"].status is OrderStatus.PARTIALLY_FILLED
    assert broker.on_candle(bar(2, 60_000.0)) == []  # no newer book: nothing more fills
    broker.observe_book(SYM, recorded_book(timestamp=2))
    third = broker.on_candle(bar(3, 60_000.0))
    assert third[0].quantity == pytest.approx(1.0)
    assert broker.orders["a"].status is OrderStatus.FILLED


def test_a_sell_walks_the_bids_and_without_a_book_the_bps_model_applies() -> None:
    book = recorded_book()
    broker = PaperBroker(PaperBrokerConfig(initial_cash=10_000_000, slippage_bps=5))
    broker.submit(order("buy", Side.BUY, 2.0, 60_000.0))  # no book yet: next open + 5 bps
    assert broker.on_candle(bar(1, 60_000.0))[0].price == pytest.approx(60_000.0 * 1.0005)
    broker.observe_book(SYM, book)
    broker.submit(order("sell", Side.SELL, 2.0, book.bids[0][0], kind="exit"))
    sell = broker.on_candle(bar(2, 70_000.0))[0]
    assert sell.price == pytest.approx(by_hand(book.bids, 2.0)[1], rel=1e-12)
    assert broker.positions == {}


def test_an_empty_book_side_counts_as_no_book() -> None:
    broker = PaperBroker(PaperBrokerConfig(initial_cash=1_000_000, slippage_bps=5))
    broker.observe_book(SYM, OrderBook(SYM, 1, ((59_990.0, 5.0),), ()))
    broker.submit(order("a", Side.BUY, 1.0, 60_000.0))
    assert broker.on_candle(bar(1, 60_000.0))[0].price == pytest.approx(60_000.0 * 1.0005)
