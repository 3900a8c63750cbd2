"""A stateful simulated spot account and matching engine behind the fake exchanges' private endpoints.

Exchange-neutral: the wire modules (``orders_binance``, ``orders_coinbase``, ``orders_kraken``) translate
their exchange's requests into these calls and the results back into the exchange's JSON and error bodies.

What it does, as exchanges do:
- validates an order against the symbol's rules (amount step, price tick, minimum amount and notional),
  rejects a client order id already used by an open order (Binance, Kraken) or answers with the existing
  order (Coinbase: ``duplicates="return"``), checks and locks funds (quote for buys, base for sells);
- matches: ``matching="manual"`` (limit orders rest until the test calls ``execute``; market orders fill at
  the last closed candle's close), ``"book"`` (walks the recorded order book at the clock's time, up to
  ``liquidity`` base units per order, and rests the remainder), ``"candle"`` (resting limit orders fill at
  their price when a candle that closes on the clock trades through it);
- charges fees: in the quote currency, or (``fee_in_received=True``, Binance's default without BNB) in the
  asset received: base for buys, quote for sells;
- keeps every order and trade; ``forget`` makes the exchange lose an order (order-not-found tests) and
  ``lose_create_responses(n)`` makes the next n creates succeed on the exchange and then time out on the
  wire (the response is lost: the classic duplicate-order trap).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tests.exchange_wire.clock import ManualClock
from tests.exchange_wire.market_data import RecordedMarket

ZERO = Decimal(0)


def dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class SymbolRules:
    market_id: str
    """The exchange's id of the market (BTCUSDT, BTC-USDT, XXBTZUSD)."""
    base: str
    quote: str
    """Asset codes as the exchange names them in balances."""
    recorded: str
    """The recorded asset whose candles and book this market trades on (BTC, ETH, SOL)."""
    step: Decimal
    tick: Decimal
    min_amount: Decimal = ZERO
    min_notional: Decimal = ZERO


class Reject(Exception):
    """An order request the exchange refuses. ``reason`` is one of the keys the wire modules map."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class SimTrade:
    id: str
    order: SimOrder
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    time: int
    maker: bool

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty


@dataclass
class SimOrder:
    id: str
    client_id: str
    rules: SymbolRules
    side: str
    """buy | sell"""
    type: str
    """limit | market"""
    amount: Decimal
    price: Decimal | None
    created: int
    quote_size: Decimal | None = None
    """A market buy sized in quote (Coinbase): ``amount`` is then the base it is expected to buy."""
    status: str = "open"
    """open | filled | canceled | expired"""
    updated: int = 0
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    locked: Decimal = ZERO
    trades: list[SimTrade] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.amount - self.filled)

    @property
    def average(self) -> Decimal:
        return self.cost / self.filled if self.filled else ZERO


class MatchingEngine:
    def __init__(
        self,
        clock: ManualClock,
        market: RecordedMarket,
        rules: dict[str, SymbolRules],
        balances: dict[str, Any],
        *,
        fee_rate: Decimal | str = "0.001",
        fee_in_received: bool = False,
        duplicates: str = "reject",
        order_ids: Callable[[int], str] = str,
        trade_ids: Callable[[int], str] = str,
        credentials: tuple[str, str] = ("", ""),
    ) -> None:
        self.clock = clock
        self.market = market
        self.rules = rules
        """Exchange market id -> rules."""
        self.free: dict[str, Decimal] = {k: dec(v) for k, v in balances.items()}
        self.used: dict[str, Decimal] = {k: ZERO for k in balances}
        self.fee_rate = dec(fee_rate)
        self.fee_in_received = fee_in_received
        self.duplicates = duplicates
        self._order_ids = order_ids
        self._trade_ids = trade_ids
        self._seq = itertools.count(1)
        self._trade_seq = itertools.count(1)
        self.api_key, self.secret = credentials
        self.orders: list[SimOrder] = []
        self.forgotten: list[SimOrder] = []
        self.matching = "manual"
        self.liquidity: Decimal | None = None
        self._lost_responses = 0
        self._matched_until = clock.now_ms()
        clock.on_advance(self._on_advance)

    # --- test controls ------------------------------------------------------------------------------
    def lose_create_responses(self, n: int = 1) -> None:
        self._lost_responses += n

    def take_lost_response(self) -> bool:
        if self._lost_responses > 0:
            self._lost_responses -= 1
            return True
        return False

    def forget(self, order: SimOrder) -> None:
        """The exchange loses the order (it answers 'unknown order' from now on); its funds are released."""
        self._release(order)
        self.orders.remove(order)
        self.forgotten.append(order)

    def by_client_id(self, client_id: str) -> list[SimOrder]:
        return [o for o in self.orders if o.client_id == client_id]

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        return self.free.get(asset, ZERO), self.used.get(asset, ZERO)

    # --- queries ------------------------------------------------------------------------------------
    def rules_for(self, market_id: str) -> SymbolRules:
        rules = self.rules.get(market_id)
        if rules is None:
            raise Reject("bad_symbol", market_id)
        return rules

    def get(self, order_id: str) -> SimOrder:
        for order in self.orders:
            if order.id == order_id:
                return order
        raise Reject("unknown_order", order_id)

    def get_by_client(self, client_id: str) -> SimOrder:
        found = self.by_client_id(client_id)
        if not found:
            raise Reject("unknown_order", client_id)
        return found[-1]

    def open_orders(self, rules: SymbolRules | None = None) -> list[SimOrder]:
        return [o for o in self.orders if o.status == "open" and (rules is None or o.rules == rules)]

    def orders_of(self, rules: SymbolRules | None = None, since: int | None = None) -> list[SimOrder]:
        return [
            o
            for o in self.orders
            if (rules is None or o.rules == rules) and (since is None or o.created >= since or o.updated >= since)
        ]

    def trades_of(self, rules: SymbolRules | None = None, order_id: str | None = None) -> list[SimTrade]:
        out = [t for o in self.orders for t in o.trades]
        if rules is not None:
            out = [t for t in out if t.order.rules == rules]
        if order_id is not None:
            out = [t for t in out if t.order.id == order_id]
        return sorted(out, key=lambda t: (t.time, t.id))

    def last_price(self, rules: SymbolRules) -> Decimal:
        now = self.clock.now_ms()
        candles = self.market.candles(rules.recorded, "1h", now - 48 * 3_600_000, now, now)
        closed = [c for c in candles if c.closed]
        if not closed:
            raise Reject("no_price", rules.market_id)
        return dec(closed[-1].c)

    # --- orders -------------------------------------------------------------------------------------
    def place(
        self,
        rules: SymbolRules,
        side: str,
        order_type: str,
        amount: Decimal | None,
        price: Decimal | None,
        client_id: str,
        quote_size: Decimal | None = None,
    ) -> SimOrder:
        if client_id:
            same = [o for o in self.by_client_id(client_id) if o.status == "open" or self.duplicates == "return"]
            if same:
                if self.duplicates == "return":
                    return same[-1]
                raise Reject("duplicate", client_id)
        if order_type == "limit":
            if price is None or price <= 0:
                raise Reject("bad_price", "a limit order needs a price")
            if price % rules.tick:
                raise Reject("price_tick", f"{price} is not a multiple of {rules.tick}")
        if order_type == "market" and quote_size is not None:
            amount = (quote_size / self.last_price(rules)).quantize(rules.step, ROUND_DOWN)
        if amount is None or amount <= 0:
            raise Reject("lot_size", "amount must be positive")
        if quote_size is None and amount % rules.step:
            raise Reject("lot_size", f"{amount} is not a multiple of {rules.step}")
        if amount < rules.min_amount:
            raise Reject("min_amount", f"{amount} < {rules.min_amount}")
        value_price = price if price is not None else self.last_price(rules)
        notional = quote_size if quote_size is not None else amount * value_price
        if notional < rules.min_notional:
            raise Reject("min_notional", f"{notional} < {rules.min_notional}")
        now = self.clock.now_ms()
        order = SimOrder(
            id=self._order_ids(next(self._seq)), client_id=client_id, rules=rules, side=side, type=order_type,
            amount=amount, price=price, created=now, updated=now, quote_size=quote_size,
        )  # fmt: skip
        self._lock(order, value_price)
        self.orders.append(order)
        self._match_new(order)
        return order

    def _lock_amount(self, order: SimOrder, value_price: Decimal) -> tuple[str, Decimal]:
        if order.side == "buy":
            fee = ZERO if self.fee_in_received else self.fee_rate
            base_cost = order.quote_size if order.quote_size is not None else order.amount * value_price
            return order.rules.quote, base_cost * (1 + fee)
        return order.rules.base, order.amount

    def _lock(self, order: SimOrder, value_price: Decimal) -> None:
        asset, amount = self._lock_amount(order, value_price)
        if self.free.get(asset, ZERO) < amount:
            raise Reject("insufficient_funds", f"{asset}: need {amount}, have {self.free.get(asset, ZERO)}")
        self.free[asset] = self.free.get(asset, ZERO) - amount
        self.used[asset] = self.used.get(asset, ZERO) + amount
        order.locked = amount

    def _release(self, order: SimOrder) -> None:
        asset = order.rules.quote if order.side == "buy" else order.rules.base
        self.used[asset] = self.used.get(asset, ZERO) - order.locked
        self.free[asset] = self.free.get(asset, ZERO) + order.locked
        order.locked = ZERO

    def cancel(self, order: SimOrder) -> SimOrder:
        if order.status != "open":
            raise Reject("not_open", f"{order.id} is {order.status}")
        order.status = "canceled"
        order.updated = self.clock.now_ms()
        self._release(order)
        return order

    def execute(self, order: SimOrder, qty: Any, price: Any = None, maker: bool = True) -> SimTrade:
        """A trade of ``qty`` on ``order`` at ``price`` (default: its limit price, or the last close)."""
        if order.status != "open":
            raise Reject("not_open", f"{order.id} is {order.status}")
        qty = min(dec(qty), order.remaining)
        px = dec(price) if price is not None else (order.price or self.last_price(order.rules))
        return self._trade(order, qty, px, maker)

    def _trade(self, order: SimOrder, qty: Decimal, price: Decimal, maker: bool) -> SimTrade:
        rules = order.rules
        now = self.clock.now_ms()
        quote_qty = qty * price
        if order.side == "buy":
            fee_asset = rules.base if self.fee_in_received else rules.quote
            fee = (qty if self.fee_in_received else quote_qty) * self.fee_rate
            spent = quote_qty + (ZERO if self.fee_in_received else fee)
            release = order.locked if order.remaining == qty else order.locked * qty / order.remaining
            order.locked -= release
            self.used[rules.quote] -= release
            self.free[rules.quote] = self.free.get(rules.quote, ZERO) + release - spent
            self.free[rules.base] = self.free.get(rules.base, ZERO) + qty - (fee if self.fee_in_received else ZERO)
        else:
            fee_asset = rules.quote
            fee = quote_qty * self.fee_rate
            order.locked -= qty
            self.used[rules.base] -= qty
            self.free[rules.quote] = self.free.get(rules.quote, ZERO) + quote_qty - fee
        trade = SimTrade(self._trade_ids(next(self._trade_seq)), order, price, qty, fee, fee_asset, now, maker)
        order.trades.append(trade)
        order.filled += qty
        order.cost += quote_qty
        order.fee += fee
        order.updated = now
        if order.remaining <= 0:
            order.status = "filled"
            self._release(order)
        return trade

    # --- matching -----------------------------------------------------------------------------------
    def _match_new(self, order: SimOrder) -> None:
        if self.matching == "book":
            self._walk_book(order)
        elif order.type == "market":
            self._trade(order, order.remaining, self.last_price(order.rules), maker=False)
        if order.type == "market" and order.status == "open":  # a market order never rests
            order.status = "expired"
            self._release(order)

    def _walk_book(self, order: SimOrder) -> None:
        book = self.market.book(order.rules.recorded, self.clock.now_ms())
        if book is None:
            return
        bids, asks = book.top(1000)
        levels = asks if order.side == "buy" else bids
        budget = order.remaining if self.liquidity is None else min(order.remaining, self.liquidity)
        for level_price, level_qty in levels:
            px = dec(level_price)
            if budget <= 0 or order.status != "open":
                break
            if order.price is not None and (px > order.price if order.side == "buy" else px < order.price):
                break
            qty = min(budget, dec(level_qty)).quantize(order.rules.step, ROUND_DOWN)
            if qty <= 0:
                continue
            self._trade(order, qty, px, maker=False)
            budget -= qty

    def _on_advance(self, now: int) -> None:
        if self.matching != "candle":
            self._matched_until = now
            return
        for order in [o for o in self.orders if o.status == "open" and o.type == "limit"]:
            assert order.price is not None
            candles = self.market.candles(order.rules.recorded, "1h", self._matched_until - 3_600_000, now, now)
            for c in candles:
                if not c.closed or c.t + 3_600_000 <= max(order.created, self._matched_until):
                    continue
                if order.side == "buy" and dec(c.lo) <= order.price:
                    self._trade(order, order.remaining, min(order.price, dec(c.o)), maker=True)
                elif order.side == "sell" and dec(c.h) >= order.price:
                    self._trade(order, order.remaining, max(order.price, dec(c.o)), maker=True)
                if order.status != "open":
                    break
        self._matched_until = now
