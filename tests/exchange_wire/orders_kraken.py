"""Kraken spot's private trading and account endpoints, in Kraken's format, over a ``MatchingEngine``.

docs.kraken.com, Spot REST "Trading" and "Account Data": ``AddOrder`` (with ``cl_ord_id``),
``QueryOrders``, ``CancelOrder``, ``OpenOrders`` and ``ClosedOrders`` (both filter on ``cl_ord_id``),
``BalanceEx``. Every private call is a form POST signed with ``API-Key`` and ``API-Sign`` (HMAC-SHA512 of
the path and SHA256(nonce + body) with the base64 secret), checked here. Errors come as HTTP 200 with an
``error`` list (``EOrder:Insufficient funds``, ``EOrder:Unknown order``, ...). A ``cl_ord_id`` already used
by an open order is refused; the error text for that case is assumed (``EOrder:Duplicate order``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import ccxt

from tests.exchange_wire.market_data import DATA, RecordedMarket
from tests.exchange_wire.orders_engine import MatchingEngine, Reject, SimOrder, SymbolRules, dec
from tests.exchange_wire.responder import Request, Responder

ERRORS = {
    "insufficient_funds": "EOrder:Insufficient funds",
    "min_amount": "EOrder:Order minimum not met",
    "min_notional": "EOrder:Cost minimum not met",
    "lot_size": "EGeneral:Invalid arguments:volume",
    "price_tick": "EGeneral:Invalid arguments:price",
    "bad_price": "EGeneral:Invalid arguments:price",
    "duplicate": "EOrder:Duplicate order",
    "bad_symbol": "EQuery:Unknown asset pair",
    "no_price": "EQuery:Unknown asset pair",
    "unknown_order": "EOrder:Unknown order",
    "invalid_order": "EOrder:Invalid order",
    "not_open": "EOrder:Unknown order",
}


def fmt(x: Decimal, places: int = 8) -> str:
    return f"{x:.{places}f}"


def rules_from_pairs(pairs: dict[str, Any]) -> dict[str, SymbolRules]:
    recorded = {"XXBT": "BTC", "XETH": "ETH", "SOL": "SOL"}
    out = {}
    for pair_id, p in pairs["result"].items():
        rules = SymbolRules(
            market_id=pair_id, base=p["base"], quote=p["quote"], recorded=recorded[p["base"]],
            step=Decimal(1).scaleb(-int(p["lot_decimals"])), tick=dec(p["tick_size"]),
            min_amount=dec(p["ordermin"]), min_notional=dec(p["costmin"]),
        )  # fmt: skip
        out[pair_id] = out[p["altname"]] = rules
    return out


def new_engine(
    clock: Any, market: RecordedMarket, balances: dict[str, Any], credentials: tuple[str, str]
) -> MatchingEngine:
    pairs = json.loads((DATA / "payloads" / "kraken_asset_pairs.json").read_text())

    def order_id(n: int) -> str:
        return f"O{n:05d}K-FAKE{n % 10}-{n:06d}"

    return MatchingEngine(
        clock, market, rules_from_pairs(pairs), balances, fee_rate="0.0026", order_ids=order_id,
        trade_ids=lambda n: f"T{n:05d}K-FAKE{n % 10}-{n:06d}", credentials=credentials,
    )  # fmt: skip


def order_json(o: SimOrder, altnames: dict[str, str]) -> dict[str, Any]:
    pair = altnames[o.rules.market_id]
    price = fmt(o.price or Decimal(0), 5)
    described = f"{o.side} {fmt(o.amount)} {pair} @ " + (f"limit {price}" if o.type == "limit" else "market")
    return {
        "refid": None, "userref": 0, "cl_ord_id": o.client_id or None, "status": o.status if o.status != "filled" else "closed",
        "reason": "User requested" if o.status == "canceled" else None, "opentm": o.created / 1000,
        "closetm": o.updated / 1000 if o.status != "open" else 0, "starttm": 0, "expiretm": 0,
        "descr": {"pair": pair, "type": o.side, "ordertype": o.type, "price": price, "price2": "0",
                  "leverage": "none", "order": described, "close": ""},
        "vol": fmt(o.amount), "vol_exec": fmt(o.filled), "cost": fmt(o.cost, 5), "fee": fmt(o.fee, 5),
        "price": fmt(o.average, 5), "stopprice": "0.00000", "limitprice": "0.00000", "misc": "", "oflags": "fciq",
        "trades": [t.id for t in o.trades],
    }  # fmt: skip


def attach_orders(responder: Responder, engine: MatchingEngine) -> None:
    pairs = json.loads((DATA / "payloads" / "kraken_asset_pairs.json").read_text())["result"]
    altnames = {pair_id: p["altname"] for pair_id, p in pairs.items()}

    def authed(request: Request) -> tuple[dict[str, str], dict[str, Any] | None]:
        body = request.body or ""
        params = dict(parse_qsl(body))
        if request.headers.get("API-Key") != engine.api_key:
            return params, {"error": ["EAPI:Invalid key"]}
        digest = hashlib.sha256((params.get("nonce", "") + body).encode()).digest()
        expected = hmac.new(base64.b64decode(engine.secret), request.path.encode() + digest, hashlib.sha512)
        if not hmac.compare_digest(request.headers.get("API-Sign", ""), base64.b64encode(expected.digest()).decode()):
            return params, {"error": ["EAPI:Invalid signature"]}
        return params, None

    def guarded(handler: Any) -> Any:
        def run(request: Request) -> Any:
            params, denied = authed(request)
            if denied is not None:
                return denied
            try:
                return {"error": [], "result": handler(params)}
            except Reject as exc:
                return {"error": [ERRORS[exc.reason]]}

        return run

    def add_order(params: dict[str, str]) -> dict[str, Any]:
        rules = engine.rules_for(params.get("pair", ""))
        price = dec(params["price"]) if "price" in params else None
        order = engine.place(rules, params["type"], params["ordertype"], dec(params["volume"]), price,
                             params.get("cl_ord_id", ""))  # fmt: skip
        if engine.take_lost_response():
            raise ccxt.RequestTimeout(f"kraken POST /0/private/AddOrder: the response to {order.client_id} was lost")
        described = order_json(order, altnames)["descr"]["order"]
        return {"descr": {"order": described}, "txid": [order.id]}

    def query_orders(params: dict[str, str]) -> dict[str, Any]:
        out = {}
        for txid in params.get("txid", "").split(","):
            try:
                out[txid] = order_json(engine.get(txid), altnames)
            except Reject:
                raise Reject("invalid_order", txid) from None
        return out

    def matching(params: dict[str, str], orders: list[SimOrder]) -> dict[str, Any]:
        client_id = params.get("cl_ord_id")
        return {o.id: order_json(o, altnames) for o in orders if client_id is None or o.client_id == client_id}

    def cancel_order(params: dict[str, str]) -> dict[str, Any]:
        order = engine.get_by_client(params["cl_ord_id"]) if "cl_ord_id" in params else engine.get(params["txid"])
        engine.cancel(order)
        return {"count": 1}

    def closed_orders(params: dict[str, str]) -> dict[str, Any]:
        since = int(float(params["start"]) * 1000) if "start" in params else None
        closed = [o for o in engine.orders_of(None, since) if o.status != "open"]
        found = matching(params, closed)
        return {"closed": found, "count": len(found)}

    def balance_ex(_params: dict[str, str]) -> dict[str, Any]:
        assets = sorted(set(engine.free) | set(engine.used))
        return {a: {"balance": fmt(engine.free.get(a, Decimal(0)) + engine.used.get(a, Decimal(0)), 10),
                    "hold_trade": fmt(engine.used.get(a, Decimal(0)), 10)} for a in assets}  # fmt: skip

    responder.route("POST", r"/0/private/AddOrder", guarded(add_order))
    responder.route("POST", r"/0/private/QueryOrders", guarded(query_orders))
    responder.route("POST", r"/0/private/CancelOrder", guarded(cancel_order))
    responder.route("POST", r"/0/private/OpenOrders", guarded(lambda p: {"open": matching(p, engine.open_orders())}))
    responder.route("POST", r"/0/private/ClosedOrders", guarded(closed_orders))
    responder.route("POST", r"/0/private/BalanceEx", guarded(balance_ex))
