"""The paper broker's whole state as plain JSON data, so a shared account can live in a database row.

Distributed runs keep one account per run in PostgreSQL: a worker loads the state under a row lock, lets a
``PaperBroker`` settle a candle or take an order, and writes the state back in the same transaction.
Floats survive the round trip exactly (JSON writes the shortest repr that parses back to the same double) and
dicts keep their order, so a loaded broker behaves bit for bit like the one that was dumped.

Besides the broker's own fields the state carries two bookkeeping fields of the distributed run:
``settled`` (symbol -> open time of the last candle settled, so a redelivered job never settles twice) and
``points`` (the last candle time whose portfolio point was journaled, and the peak equity of those points).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from tools.market import OrderBook
from tools.paper_broker import PaperBroker, PaperBrokerConfig, _Position
from tools.trade_types import Order

STATE_VERSION = 1


def dump_broker(broker: PaperBroker, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything ``load_broker`` needs; ``orders`` keeps only the pending ones (the journal holds the rest)."""
    return {
        "v": STATE_VERSION,
        "cash": broker.cash,
        "positions": {
            s: [p.quantity, p.average_price, p.stop_loss, p.take_profit, p.decision_id]
            for s, p in broker.positions.items()
        },
        "pending": [o.model_dump(mode="json") for o in broker.pending.values()],
        "age": dict(broker._age),
        "marks": dict(broker.marks),
        "peak_equity": broker.peak_equity,
        "day_start_equity": broker.day_start_equity,
        "day": broker._day,
        "last_stop_out": dict(broker.last_stop_out),
        "order_times": list(broker.order_times),
        "fees_paid": broker.fees_paid,
        "realized_pnl": broker.realized_pnl,
        "books": {s: _book(b) for s, b in broker._books.items()},
        "order_books": {oid: _book(b) for oid, b in broker._order_books.items()},
        "book_used": dict(broker._book_used),
        **(extra or {}),
    }


def _book(book: OrderBook) -> dict[str, Any]:
    return {"symbol": book.symbol, "timestamp": book.timestamp, "bids": book.bids, "asks": book.asks}


def _unbook(raw: dict[str, Any]) -> OrderBook:
    levels = ("bids", "asks")
    bids, asks = (tuple((float(p), float(q)) for p, q in raw[side]) for side in levels)
    return OrderBook(symbol=raw["symbol"], timestamp=raw["timestamp"], bids=bids, asks=asks)


def load_broker(cfg: PaperBrokerConfig, state: dict[str, Any]) -> PaperBroker:
    if state.get("v") != STATE_VERSION:
        raise ValueError(f"paper account state version {state.get('v')!r} is not supported (reads v{STATE_VERSION})")
    broker = PaperBroker(cfg)
    broker.cash = state["cash"]
    broker.positions = {
        s: _Position(q, avg, stop, take, did) for s, (q, avg, stop, take, did) in state["positions"].items()
    }
    broker.pending = {}
    for raw in state["pending"]:
        order = Order.model_validate(raw)
        broker.pending[order.client_order_id] = order
        broker.orders[order.client_order_id] = order
    broker._age = dict(state["age"])
    broker.marks = dict(state["marks"])
    broker.peak_equity = state["peak_equity"]
    broker.day_start_equity = state["day_start_equity"]
    broker._day = state["day"]
    broker.last_stop_out = dict(state["last_stop_out"])
    broker.order_times = deque(state["order_times"])
    broker.fees_paid = state["fees_paid"]
    broker.realized_pnl = state["realized_pnl"]
    broker._books = {s: _unbook(b) for s, b in state.get("books", {}).items()}
    broker._order_books = {oid: _unbook(b) for oid, b in state.get("order_books", {}).items()}
    broker._book_used = dict(state.get("book_used", {}))
    return broker
