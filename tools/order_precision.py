"""Fit an approved order to the exchange's market rules, after the risk gate, without ever enlarging it.

The amount is truncated to the market's amount step (ccxt's ``amount_to_precision``) and capped at the
market's maximum amount and maximum cost; a limit buy's price is rounded down to the price tick, a limit
sell's up (both move the price away from a worse fill and a buy's cost down). An order that ends up below
the market's minimum amount or minimum cost (min notional) is not sent: ``FittedOrder.rejected`` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt
from ccxt.base.decimal_to_precision import TRUNCATE, decimal_to_precision

from tools.trade_types import Side


@dataclass(frozen=True)
class FittedOrder:
    amount: float
    price: float | None
    """The limit price to send (None for a market order)."""
    rejected: str | None = None
    """Why the order cannot be sent; None when it can."""
    note: str = ""
    """What was changed, e.g. "amount 0.123456789 -> 0.12345 (step 1e-05)"."""


def _limit(market: dict[str, Any], kind: str, bound: str) -> float | None:
    value = ((market.get("limits") or {}).get(kind) or {}).get(bound)
    return float(value) if value is not None else None


def _text(x: float) -> str:
    return f"{x:.12g}"


def round_price(exchange: Any, symbol: str, price: float, side: Side) -> float:
    """The price on the market's tick: down for a buy, up for a sell."""
    market = exchange.market(symbol)
    tick = market["precision"]["price"]
    if tick is None:
        return price
    down = float(decimal_to_precision(price, TRUNCATE, tick, exchange.precisionMode, exchange.paddingMode))
    if side is Side.SELL and down < price:
        step = Decimal(str(tick)) if exchange.precisionMode == ccxt.TICK_SIZE else Decimal(1).scaleb(-int(tick))
        return float(Decimal(str(down)) + step)
    return down


def fit_order(
    exchange: Any,
    symbol: str,
    side: Side,
    amount: float,
    limit_price: float | None,
    reference_price: float,
) -> FittedOrder:
    """``amount`` (base units) and ``limit_price`` (None: market order) fitted to ``symbol``'s rules.

    ``reference_price`` values a market order against the minimum cost."""
    if not (math.isfinite(amount) and amount > 0):
        return FittedOrder(0.0, None, rejected=f"amount {amount!r} is not a positive number")
    market = exchange.market(symbol)
    notes: list[str] = []
    price = None
    if limit_price is not None:
        if not (math.isfinite(limit_price) and limit_price > 0):
            return FittedOrder(0.0, None, rejected=f"limit price {limit_price!r} is not a positive number")
        price = round_price(exchange, symbol, limit_price, side)
        if price <= 0:
            return FittedOrder(0.0, None, rejected=f"limit price {_text(limit_price)} rounds to 0 on {symbol}")
        if price != limit_price:
            notes.append(f"price {_text(limit_price)} -> {_text(price)}")
    value_price = price if price is not None else reference_price
    wanted = amount
    max_amount = _limit(market, "amount", "max")
    if max_amount is not None and amount > max_amount:
        amount = max_amount
        notes.append(f"capped at the market's max amount {_text(max_amount)}")
    max_cost = _limit(market, "cost", "max")
    if max_cost is not None and value_price > 0 and amount * value_price > max_cost:
        amount = max_cost / value_price
        notes.append(f"capped at the market's max cost {_text(max_cost)}")
    step = market["precision"]["amount"]
    try:
        text = exchange.amount_to_precision(symbol, amount)  # ccxt truncates amounts: never rounds up
    except ccxt.InvalidOrder:
        return FittedOrder(
            0.0, price, rejected=f"amount {_text(wanted)} is below the amount step {_text(float(step))} of {symbol}"
        )
    fitted = float(text)
    if fitted > amount:  # defensive: a precision mode that rounds must never enlarge the order
        return FittedOrder(0.0, price, rejected=f"amount {_text(wanted)} cannot be truncated on {symbol}")
    if fitted != wanted:
        notes.insert(0, f"amount {_text(wanted)} -> {text} (step {_text(float(step))})")
    min_amount = _limit(market, "amount", "min")
    if fitted <= 0 or (min_amount is not None and fitted < min_amount):
        return FittedOrder(
            fitted, price, rejected=f"amount {text} is below {symbol}'s minimum amount {_text(min_amount or 0)}"
        )
    min_cost = _limit(market, "cost", "min")
    cost = fitted * value_price
    if min_cost is not None and cost < min_cost:
        return FittedOrder(
            fitted,
            price,
            rejected=f"notional {cost:.8g} ({text} x {_text(value_price)}) is below {symbol}'s minimum {_text(min_cost)}",
        )
    return FittedOrder(fitted, price, note="; ".join(notes))
