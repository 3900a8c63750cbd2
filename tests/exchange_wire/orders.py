"""The private (account and order) side of the fake exchanges: ``attach_orders(fake)`` gives a FakeExchange a
simulated account and matching engine behind its exchange's signed order endpoints.

Quick use::

    fake = FakeExchange("kraken", clock)
    engine = attach_orders(fake, balances={"USDT": 10_000})   # the account, in the exchange's asset codes
    ex = fake.create_sync(credentials_for("kraken"))          # ccxt signs every request; the fake checks it
    ex.create_order("BTC/USDT", "limit", "buy", 0.01, 60000, {"clientOrderId": "..."})
    engine.execute(engine.orders[-1], "0.004")                  # a partial fill, when the test says so
    fake.responder.count(CREATE_PATH["kraken"], "POST")        # how many creates reached the exchange

Balances are given in unified codes (BTC, USD, USDT) and translated to the exchange's own (Kraken's XXBT,
ZUSD). See ``orders_engine`` for the matching modes and the fault controls (lost responses, lost orders).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from tests.exchange_wire import FakeExchange, orders_binance, orders_coinbase, orders_kraken
from tests.exchange_wire.market_data import RecordedMarket
from tests.exchange_wire.orders_engine import MatchingEngine, Reject, SimOrder, SimTrade, SymbolRules
from tests.exchange_wire.responder import Responder

__all__ = ["CREATE_PATH", "MatchingEngine", "Reject", "SimOrder", "SimTrade", "SymbolRules", "attach_orders",
           "credentials_for"]  # fmt: skip

_MODULES: dict[str, Any] = {"binance": orders_binance, "coinbase": orders_coinbase, "kraken": orders_kraken}
CREATE_PATH = {
    "binance": r"/api/v3/order",
    "coinbase": r"/api/v3/brokerage/orders",
    "kraken": r"/0/private/AddOrder",
}
"""The path of each exchange's create-order request (a POST), for fault injection and request counts."""
_CREDENTIALS = {
    "binance": ("tg-test-binance-key-7Hq2", "tg-test-binance-secret-3c9f0a7d5e"),
    "coinbase": ("tg-test-coinbase-key-K81z", "tg-test-coinbase-secret-9b4e2d1f"),
    "kraken": ("tg-test-kraken-key-Wm5p", base64.b64encode(b"tg-test-kraken-secret-" + b"k" * 42).decode()),
}
_KRAKEN_ASSETS = {"BTC": "XXBT", "ETH": "XETH", "USD": "ZUSD"}


def credentials_for(exchange_id: str) -> dict[str, str]:
    """Test API keys in ccxt's config form (the fakes check requests signed with them)."""
    key, secret = _CREDENTIALS[exchange_id]
    return {"apiKey": key, "secret": secret}


def exchange_asset(exchange_id: str, code: str) -> str:
    return _KRAKEN_ASSETS.get(code, code) if exchange_id == "kraken" else code


def attach_orders(fake: FakeExchange, balances: dict[str, Any] | None = None) -> MatchingEngine:
    module = _MODULES[fake.exchange_id]
    account = {exchange_asset(fake.exchange_id, k): v for k, v in (balances or {}).items()}
    engine: MatchingEngine = module.new_engine(fake.clock, fake.market, account, _CREDENTIALS[fake.exchange_id])
    module.attach_orders(fake.responder, engine)
    return engine


def engine_factory(
    exchange_id: str,
) -> Callable[[Any, RecordedMarket, dict[str, Any], tuple[str, str]], MatchingEngine]:
    return _MODULES[exchange_id].new_engine  # type: ignore[no-any-return]


def attach(responder: Responder, engine: MatchingEngine, exchange_id: str) -> None:
    _MODULES[exchange_id].attach_orders(responder, engine)
