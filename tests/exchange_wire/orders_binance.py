"""Binance spot's signed account and order endpoints, in Binance's format, over a ``MatchingEngine``.

developers.binance.com, Spot API "Trading endpoints" and "Account endpoints": ``POST /api/v3/order``
(``newOrderRespType=FULL``: the order with its fills), ``GET /api/v3/order`` (by ``orderId`` or
``origClientOrderId``), ``DELETE /api/v3/order``, ``GET /api/v3/openOrders``, ``GET /api/v3/allOrders``,
``GET /api/v3/myTrades``, ``GET /api/v3/account``. Requests must carry the key in ``X-MBX-APIKEY`` and a valid
HMAC-SHA256 ``signature`` of the query (GET/DELETE) or body (POST). Errors are Binance's ``{"code","msg"}``
bodies with its HTTP statuses; a client order id already used by an open order is refused with -2010
"Duplicate order sent." (ccxt maps -2010 to InvalidOrder).
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import ccxt

from tests.exchange_wire.market_data import DATA, RecordedMarket
from tests.exchange_wire.orders_engine import MatchingEngine, Reject, SimOrder, SimTrade, SymbolRules, dec
from tests.exchange_wire.responder import Reply, Request, Responder

STATUS = {"open": "NEW", "filled": "FILLED", "canceled": "CANCELED", "expired": "EXPIRED"}
ERRORS = {
    "insufficient_funds": (-2010, "Account has insufficient balance for requested action."),
    "duplicate": (-2010, "Duplicate order sent."),
    "lot_size": (-1013, "Filter failure: LOT_SIZE"),
    "min_amount": (-1013, "Filter failure: LOT_SIZE"),
    "price_tick": (-1013, "Filter failure: PRICE_FILTER"),
    "bad_price": (-1013, "Filter failure: PRICE_FILTER"),
    "min_notional": (-1013, "Filter failure: NOTIONAL"),
    "bad_symbol": (-1121, "Invalid symbol."),
    "no_price": (-1121, "Invalid symbol."),
}


def fmt(x: Decimal) -> str:
    return f"{x:.8f}"


def rules_from_exchange_info(info: dict[str, Any]) -> dict[str, SymbolRules]:
    out = {}
    for s in info["symbols"]:
        f = {x["filterType"]: x for x in s["filters"]}
        out[s["symbol"]] = SymbolRules(
            market_id=s["symbol"], base=s["baseAsset"], quote=s["quoteAsset"], recorded=s["baseAsset"],
            step=dec(f["LOT_SIZE"]["stepSize"]).normalize(), tick=dec(f["PRICE_FILTER"]["tickSize"]).normalize(),
            min_amount=dec(f["LOT_SIZE"]["minQty"]), min_notional=dec(f["NOTIONAL"]["minNotional"]),
        )  # fmt: skip
    return out


def error(code: int, msg: str, status: int = 400) -> Reply:
    return Reply({"code": code, "msg": msg}, status=status, reason="Bad Request")


def order_json(o: SimOrder) -> dict[str, Any]:
    status = STATUS[o.status]
    if o.status == "open" and o.filled > 0:
        status = "PARTIALLY_FILLED"
    return {
        "symbol": o.rules.market_id, "orderId": int(o.id), "orderListId": -1, "clientOrderId": o.client_id,
        "price": fmt(o.price or Decimal(0)), "origQty": fmt(o.amount), "executedQty": fmt(o.filled),
        "cummulativeQuoteQty": fmt(o.cost), "status": status, "timeInForce": "GTC" if o.type == "limit" else "IOC",
        "type": o.type.upper(), "side": o.side.upper(), "stopPrice": "0.00000000", "icebergQty": "0.00000000",
        "time": o.created, "updateTime": o.updated, "isWorking": True, "workingTime": o.created,
        "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER",
    }  # fmt: skip


def trade_json(t: SimTrade) -> dict[str, Any]:
    return {
        "symbol": t.order.rules.market_id, "id": int(t.id), "orderId": int(t.order.id), "orderListId": -1,
        "price": fmt(t.price), "qty": fmt(t.qty), "quoteQty": fmt(t.quote_qty), "commission": fmt(t.fee),
        "commissionAsset": t.fee_asset, "time": t.time, "isBuyer": t.order.side == "buy", "isMaker": t.maker,
        "isBestMatch": True,
    }  # fmt: skip


def new_engine(
    clock: Any, market: RecordedMarket, balances: dict[str, Any], credentials: tuple[str, str]
) -> MatchingEngine:
    import json

    info = json.loads((DATA / "payloads" / "binance_exchangeInfo.json").read_text())
    return MatchingEngine(
        clock, market, rules_from_exchange_info(info), balances, fee_in_received=True,
        order_ids=lambda n: str(4_000_000 + n), trade_ids=lambda n: str(900_000 + n), credentials=credentials,
    )  # fmt: skip


def attach_orders(responder: Responder, engine: MatchingEngine) -> None:
    def authed(request: Request) -> tuple[dict[str, str], Reply | None]:
        if request.headers.get("X-MBX-APIKEY") != engine.api_key:
            return {}, error(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        signed = request.body if request.method == "POST" else request.url.partition("?")[2]
        payload, _, signature = (signed or "").rpartition("&signature=")
        expected = hmac.new(engine.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return {}, error(-1022, "Signature for this request is not valid.")
        return dict(parse_qsl(payload)), None

    def guarded(handler: Any) -> Any:
        def run(request: Request) -> Any:
            params, denied = authed(request)
            if denied is not None:
                return denied
            try:
                return handler(params)
            except Reject as exc:
                if exc.reason in ("unknown_order", "not_open"):
                    if request.method == "DELETE":
                        return error(-2011, "Unknown order sent.")
                    return error(-2013, "Order does not exist.")
                code, msg = ERRORS[exc.reason]
                return error(code, msg)

        return run

    def find(params: dict[str, str]) -> SimOrder:
        engine.rules_for(params.get("symbol", ""))
        if "orderId" in params:
            return engine.get(params["orderId"])
        return engine.get_by_client(params.get("origClientOrderId", ""))

    def create(params: dict[str, str]) -> dict[str, Any]:
        rules = engine.rules_for(params.get("symbol", ""))
        order_type = params["type"].lower()
        price = dec(params["price"]) if "price" in params else None
        quote = dec(params["quoteOrderQty"]) if "quoteOrderQty" in params else None
        amount = dec(params["quantity"]) if "quantity" in params else None
        order = engine.place(rules, params["side"].lower(), order_type, amount, price,
                             params.get("newClientOrderId", ""), quote)  # fmt: skip
        if engine.take_lost_response():
            raise ccxt.RequestTimeout(f"binance POST /api/v3/order: the response to {order.client_id} was lost")
        body = order_json(order)
        body.update({"transactTime": order.created, "fills": [
            {"price": fmt(t.price), "qty": fmt(t.qty), "commission": fmt(t.fee), "commissionAsset": t.fee_asset,
             "tradeId": int(t.id)} for t in order.trades
        ]})  # fmt: skip
        return body

    def cancel(params: dict[str, str]) -> dict[str, Any]:
        order = engine.cancel(find(params))
        return {**order_json(order), "origClientOrderId": order.client_id, "clientOrderId": "cancel-" + order.id}

    def open_orders(params: dict[str, str]) -> list[dict[str, Any]]:
        rules = engine.rules_for(params["symbol"]) if "symbol" in params else None
        return [order_json(o) for o in engine.open_orders(rules)]

    def all_orders(params: dict[str, str]) -> list[dict[str, Any]]:
        rules = engine.rules_for(params.get("symbol", ""))
        since = int(params["startTime"]) if "startTime" in params else None
        until = int(params["endTime"]) if "endTime" in params else None
        if since is not None and until is not None and until - since > 24 * 3_600_000:
            return error(-1127, "More than 24 hours between startTime and endTime.")
        if since is not None and until is None:
            until = since + 24 * 3_600_000
        limit = int(params.get("limit", "500"))
        listed = [o for o in engine.orders_of(rules) if (since is None or o.created >= since)
                  and (until is None or o.created <= until)]  # fmt: skip
        return [order_json(o) for o in listed][:limit]

    def my_trades(params: dict[str, str]) -> list[dict[str, Any]]:
        rules = engine.rules_for(params.get("symbol", ""))
        return [trade_json(t) for t in engine.trades_of(rules, params.get("orderId"))]

    def account(_params: dict[str, str]) -> dict[str, Any]:
        assets = sorted(set(engine.free) | set(engine.used))
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0", "seller": "0"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": engine.clock.now_ms(),
            "accountType": "SPOT", "permissions": ["SPOT"], "uid": 354937868,
            "balances": [{"asset": a, "free": fmt(engine.free.get(a, Decimal(0))),
                          "locked": fmt(engine.used.get(a, Decimal(0)))} for a in assets],
        }  # fmt: skip

    responder.route("POST", r"/api/v3/order", guarded(create))
    responder.route("GET", r"/api/v3/order", guarded(lambda params: order_json(find(params))))
    responder.route("DELETE", r"/api/v3/order", guarded(cancel))
    responder.route("GET", r"/api/v3/openOrders", guarded(open_orders))
    responder.route("GET", r"/api/v3/allOrders", guarded(all_orders))
    responder.route("GET", r"/api/v3/myTrades", guarded(my_trades))
    responder.route("GET", r"/api/v3/account", guarded(account))
