"""Walking an order book for a market order: the fill a book of that depth gives, level by level."""

from __future__ import annotations

from dataclasses import dataclass

from tools.market import OrderBook
from tools.trade_types import Side


@dataclass(frozen=True, slots=True)
class BookFill:
    quantity: float
    """What the book holds up to the order's quantity (less than asked when the book is too thin)."""
    average_price: float
    """Volume-weighted average price over the levels taken."""
    levels: int
    worst_price: float


def walk_book(book: OrderBook, side: Side, quantity: float) -> BookFill | None:
    """Take asks (a buy) or bids (a sell) best first until ``quantity`` is filled or the book runs out.

    None when the side is empty or ``quantity`` is not positive.
    """
    levels = book.asks if side is Side.BUY else book.bids
    if quantity <= 0 or not levels:
        return None
    filled = cost = 0.0
    used = 0
    worst = levels[0][0]
    for price, size in levels:
        take = min(size, quantity - filled)
        if take <= 0:
            break
        filled += take
        cost += take * price
        used += 1
        worst = price
        if filled >= quantity * (1 - 1e-12):
            break
    if filled <= 0:
        return None
    return BookFill(filled, cost / filled, used, worst)
