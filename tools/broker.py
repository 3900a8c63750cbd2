"""The Broker protocol shared by the paper broker and exchange brokers."""

from __future__ import annotations

from typing import Protocol

from tools.market import OrderBook
from tools.paper_broker import Bar
from tools.trade_types import Fill, Order, PortfolioView


class Broker(Protocol):
    name: str

    def submit(self, order: Order) -> Order: ...
    def on_candle(self, bar: Bar) -> list[Fill]: ...
    def observe_book(self, symbol: str, book: OrderBook) -> None:
        """The symbol's order book at a decision (live feeds); a broker may ignore it."""
        ...

    def portfolio_view(self) -> PortfolioView: ...
    def take_order_updates(self) -> list[Order]: ...
    def equity(self) -> float: ...
