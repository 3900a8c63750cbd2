"""PaperBroker: simulated execution with an explicit fill model.

- A market order submitted after candle t fills at the open of the symbol's next candle, moved against the
  trader by ``slippage_bps``; a fee of ``fee_bps`` of the filled notional is charged in the quote currency.
- With an order book (live data: the feed's book at the decision, given by ``observe_book``), the order
  instead walks the book it was submitted with: asks for a buy, bids for a sell, best first, and fills at
  the volume-weighted average price of the levels it takes. A book too thin for the order fills what it
  holds; the rest waits for a newer book (and is canceled after ``order_ttl_candles``). An empty side counts
  as no book: the bps model applies.
- Partial fills: with ``max_volume_participation`` set, a fill takes at most that fraction of the candle's
  volume; the rest stays pending for the next candles and is canceled after ``order_ttl_candles``.
- Buys never take cash below zero: a buy is cut to what the cash pays for at the fill price.
- Stop-loss and take-profit are checked on every later candle (and on the fill candle after the fill);
  when one closes a position, the symbol's pending orders are canceled. An exit never sells past flat.
  When both are touched in one candle the stop is assumed (the worse outcome). A candle that opens through
  the stop fills at the open.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from tools.book_fill import walk_book
from tools.market import OrderBook
from tools.timeframes import utc_day
from tools.trade_types import Fill, Order, OrderStatus, PortfolioView, PositionView, Side

HOUR_MS = 3_600_000


class PaperBrokerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_cash: float = Field(default=100_000.0, gt=0)
    fee_bps: float = Field(default=10.0, ge=0)
    slippage_bps: float = Field(default=5.0, ge=0)
    max_volume_participation: float | None = Field(default=None, gt=0, le=1)
    order_ttl_candles: int = Field(default=3, ge=1)


@dataclass(slots=True)
class _Position:
    quantity: float
    average_price: float
    stop_loss: float | None
    take_profit: float | None
    decision_id: str


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class PaperBroker:
    name = "paper"

    def __init__(self, cfg: PaperBrokerConfig) -> None:
        self.cfg = cfg
        self.cash = cfg.initial_cash
        self.positions: dict[str, _Position] = {}
        self.pending: dict[str, Order] = {}
        self._age: dict[str, int] = {}
        self.orders: dict[str, Order] = {}
        self.marks: dict[str, float] = {}
        self.peak_equity = cfg.initial_cash
        self.day_start_equity = cfg.initial_cash
        self._day: int | None = None
        self.last_stop_out: dict[str, int] = {}
        self.order_times: deque[int] = deque()
        self.fees_paid = 0.0
        self.realized_pnl = 0.0
        self._updates: list[Order] = []
        self._books: dict[str, OrderBook] = {}
        self._order_books: dict[str, OrderBook] = {}
        self._book_used: dict[str, int] = {}

    # --- orders -------------------------------------------------------------------------------------
    def submit(self, order: Order) -> Order:
        """Accept a market order to fill at the next candle. Resubmitting a known client order id is a no-op."""
        known = self.orders.get(order.client_order_id)
        if known is not None:
            return known
        self.orders[order.client_order_id] = order
        self.pending[order.client_order_id] = order
        self._age[order.client_order_id] = 0
        book = self._books.get(order.symbol)
        if book is not None:
            self._order_books[order.client_order_id] = book
        self.order_times.append(order.submitted_at)
        return order

    def observe_book(self, symbol: str, book: OrderBook) -> None:
        """The symbol's latest order book; orders submitted from now on fill against it."""
        self._books[symbol] = book

    def _fill_book(self, oid: str, symbol: str) -> OrderBook | None:
        """The book an order fills against now: its own, or a newer one after its own ran out."""
        book = self._order_books.get(oid)
        used = self._book_used.get(oid)
        if book is not None and used is None:
            return book
        latest = self._books.get(symbol)
        if latest is not None and (used is None or latest.timestamp > used):
            return latest
        return None

    # --- market events ------------------------------------------------------------------------------
    def on_candle(self, bar: Bar) -> list[Fill]:
        """Advance the symbol to a newly closed candle: fill pending orders at its open, then stops/targets."""
        day = utc_day(bar.open_time)
        if self._day is None or day != self._day:
            self._day = day
            self.day_start_equity = self.equity()
        fills = self._fill_pending(bar)
        exit_fill = self._check_exits(bar)
        if exit_fill:
            fills.append(exit_fill)
        self.marks[bar.symbol] = bar.close
        self.peak_equity = max(self.peak_equity, self.equity())
        while self.order_times and bar.close_time - self.order_times[0] >= HOUR_MS:
            self.order_times.popleft()
        return fills

    def _fill_pending(self, bar: Bar) -> list[Fill]:
        fills: list[Fill] = []
        for oid, order in list(self.pending.items()):
            if order.symbol != bar.symbol:
                continue
            remaining = order.quantity - order.filled_quantity
            price = self._slipped(bar.open, order.side)
            qty = remaining
            if self.cfg.max_volume_participation is not None:
                qty = min(qty, self.cfg.max_volume_participation * bar.volume)
            book = self._fill_book(oid, order.symbol)
            if book is not None:
                walked = walk_book(book, order.side, qty)
                if walked is not None:
                    self._book_used[oid] = book.timestamp
                    price, qty = walked.average_price, walked.quantity
                else:
                    book = None
            if book is None and oid in self._book_used:
                qty = 0.0  # the order's book ran out and no newer book came: the rest waits
            cut = False  # a buy cut to what the cash pays is finished: its remainder must not fill later
            if order.kind == "exit":  # an exit never goes past flat (no accidental short or flip)
                held = self.positions[order.symbol].quantity if order.symbol in self.positions else 0.0
                room = abs(held) if held * order.side.sign < 0 else 0.0
                cut = room < qty
                qty = min(qty, room)
            elif order.side is Side.BUY and not self._reduces(order.symbol, Side.BUY):
                affordable = max(0.0, self.cash / (price * (1 + self.cfg.fee_bps / 10_000)))
                cut = affordable < qty
                qty = min(qty, affordable)
                if cut and book is not None and qty > 0:  # fewer levels taken: the average price is better
                    walked = walk_book(book, order.side, qty)
                    price = walked.average_price if walked is not None else price
            if qty > 0:
                fill = self._apply_fill(order, qty, price, bar.open_time, order.kind)
                fills.append(fill)
                order.filled_quantity += qty
            self._age[oid] += 1
            done = order.filled_quantity >= order.quantity * (1 - 1e-12)
            if done or self._age[oid] >= self.cfg.order_ttl_candles or cut:
                if done:
                    order.status = OrderStatus.FILLED
                elif order.filled_quantity > 0:
                    order.status = OrderStatus.PARTIALLY_FILLED
                else:
                    order.status = OrderStatus.CANCELED
                self._forget(oid)
                self._updates.append(order)
            elif qty > 0:
                order.status = OrderStatus.PARTIALLY_FILLED
                self._updates.append(order)
        return fills

    def take_order_updates(self) -> list[Order]:
        """Orders whose status changed since the last call (for the journal)."""
        updates, self._updates = self._updates, []
        return updates

    def _check_exits(self, bar: Bar) -> Fill | None:
        pos = self.positions.get(bar.symbol)
        if pos is None or pos.quantity == 0:
            return None
        long = pos.quantity > 0
        stop, take = pos.stop_loss, pos.take_profit
        stop_hit = stop is not None and (bar.low <= stop if long else bar.high >= stop)
        take_hit = take is not None and (bar.high >= take if long else bar.low <= take)
        if not stop_hit and not take_hit:
            return None
        if stop_hit:
            assert stop is not None
            kind = "stop_loss"
            level = min(bar.open, stop) if long else max(bar.open, stop)
        else:
            assert take is not None
            kind = "take_profit"
            level = max(bar.open, take) if long else min(bar.open, take)
        side = Side.SELL if long else Side.BUY
        order = Order(
            client_order_id=f"{pos.decision_id}-{kind}",
            decision_id=pos.decision_id,
            symbol=bar.symbol,
            side=side,
            quantity=abs(pos.quantity),
            reference_price=level,
            submitted_at=bar.open_time,
            kind=kind,
        )
        self.orders[order.client_order_id] = order
        fill = self._apply_fill(order, abs(pos.quantity), self._slipped(level, side), bar.open_time, kind)
        order.filled_quantity = order.quantity
        order.status = OrderStatus.FILLED
        self._updates.append(order)
        if kind == "stop_loss":
            self.last_stop_out[bar.symbol] = bar.close_time
        self._cancel_pending(bar.symbol)
        return fill

    def _cancel_pending(self, symbol: str) -> None:
        """A stop or target closed the position: what is still pending for it must not reopen one."""
        for oid, order in list(self.pending.items()):
            if order.symbol == symbol:
                order.status = OrderStatus.PARTIALLY_FILLED if order.filled_quantity > 0 else OrderStatus.CANCELED
                self._forget(oid)
                self._updates.append(order)

    def _forget(self, oid: str) -> None:
        del self.pending[oid]
        del self._age[oid]
        self._order_books.pop(oid, None)
        self._book_used.pop(oid, None)

    # --- accounting ---------------------------------------------------------------------------------
    def _slipped(self, price: float, side: Side) -> float:
        return price * (1 + side.sign * self.cfg.slippage_bps / 10_000)

    def _reduces(self, symbol: str, side: Side) -> bool:
        pos = self.positions.get(symbol)
        return pos is not None and pos.quantity * side.sign < 0

    def _apply_fill(self, order: Order, qty: float, price: float, ts: int, kind: str) -> Fill:
        fee = qty * price * self.cfg.fee_bps / 10_000
        signed = qty * order.side.sign
        pos = self.positions.get(order.symbol)
        realized = 0.0
        if pos is None or pos.quantity == 0:
            pos = _Position(signed, price, order.stop_loss, order.take_profit, order.decision_id)
            self.positions[order.symbol] = pos
        elif pos.quantity * signed > 0:
            total = pos.quantity + signed
            pos.average_price = (pos.average_price * pos.quantity + price * signed) / total
            pos.quantity = total
            pos.stop_loss, pos.take_profit = order.stop_loss, order.take_profit
            pos.decision_id = order.decision_id
        else:
            closing = min(abs(signed), abs(pos.quantity))
            realized = closing * (price - pos.average_price) * (1 if pos.quantity > 0 else -1)
            pos.quantity += signed
            if abs(pos.quantity) <= 1e-12:
                del self.positions[order.symbol]
            elif pos.quantity * signed > 0:  # crossed through zero
                pos.average_price = price
                pos.stop_loss, pos.take_profit = order.stop_loss, order.take_profit
        self.cash -= signed * price + fee
        self.fees_paid += fee
        self.realized_pnl += realized - fee
        slippage = (price / order.reference_price - 1) * 10_000 * order.side.sign
        return Fill(
            client_order_id=order.client_order_id,
            decision_id=order.decision_id,
            symbol=order.symbol,
            side=order.side,
            quantity=qty,
            price=price,
            fee=fee,
            timestamp=ts,
            kind=kind,
            slippage_bps=slippage,
            realized_pnl=realized - fee,
        )

    def equity(self) -> float:
        return self.cash + sum(p.quantity * self.marks.get(s, p.average_price) for s, p in self.positions.items())

    def unrealized_pnl(self) -> float:
        return sum(
            p.quantity * (self.marks.get(s, p.average_price) - p.average_price) for s, p in self.positions.items()
        )

    def portfolio_view(self) -> PortfolioView:
        pending: dict[str, float] = {}
        reserved = 0.0
        buffer = 1 + (self.cfg.fee_bps + self.cfg.slippage_bps) / 10_000
        for order in self.pending.values():
            remaining = order.quantity - order.filled_quantity
            pending[order.symbol] = pending.get(order.symbol, 0.0) + remaining * order.side.sign
            if order.side is Side.BUY and not self._reduces(order.symbol, Side.BUY):
                reserved += remaining * self.marks.get(order.symbol, order.reference_price) * buffer
        return PortfolioView.model_construct(
            cash=self.cash,
            available_cash=self.cash - reserved,
            equity=self.equity(),
            peak_equity=self.peak_equity,
            day_start_equity=self.day_start_equity,
            positions={
                s: PositionView.model_construct(
                    quantity=p.quantity, average_price=p.average_price, stop_loss=p.stop_loss, take_profit=p.take_profit
                )
                for s, p in self.positions.items()
            },
            pending=pending,
            marks={**{o.symbol: o.reference_price for o in self.pending.values()}, **self.marks},
            last_stop_out=dict(self.last_stop_out),
            order_times=list(self.order_times),
        )
