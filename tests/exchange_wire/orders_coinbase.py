"""Coinbase Advanced Trade's order and account endpoints, in Coinbase's format, over a ``MatchingEngine``.

docs.cdp.coinbase.com, Advanced Trade REST "Orders" and "Accounts": ``POST /api/v3/brokerage/orders``
(``{"success", "success_response" | "error_response"}``; a ``client_order_id`` that is not unique answers
with the order that has it), ``GET /api/v3/brokerage/orders/historical/{order_id}``,
``GET /api/v3/brokerage/orders/historical/batch``, ``POST /api/v3/brokerage/orders/batch_cancel``,
``GET /api/v3/brokerage/accounts``. Requests are signed with a legacy API key (``CB-ACCESS-KEY``,
``CB-ACCESS-TIMESTAMP``, ``CB-ACCESS-SIGN`` = HMAC-SHA256 of timestamp + method + path + body), checked here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt

from tests.exchange_wire.market_data import DATA, RecordedMarket
from tests.exchange_wire.orders_engine import MatchingEngine, Reject, SimOrder, SymbolRules, dec
from tests.exchange_wire.responder import Reply, Request, Responder

STATUS = {"open": "OPEN", "filled": "FILLED", "canceled": "CANCELLED", "expired": "EXPIRED"}
FAILURES = {
    "insufficient_funds": ("INSUFFICIENT_FUND", "Insufficient balance in source account", "PREVIEW_INSUFFICIENT_FUND"),
    "lot_size": ("INVALID_SIZE_PRECISION", "Invalid order size precision", "PREVIEW_INVALID_SIZE_PRECISION"),
    "min_amount": ("INVALID_BASE_SIZE_TOO_SMALL", "Order size too small", "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"),
    "min_notional": ("INVALID_QUOTE_SIZE_TOO_SMALL", "Order too small", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
    "price_tick": ("INVALID_PRICE_PRECISION", "Invalid price precision", "PREVIEW_INVALID_PRICE_PRECISION"),
    "bad_price": ("INVALID_LIMIT_PRICE", "Invalid limit price", "PREVIEW_INVALID_LIMIT_PRICE"),
    "bad_symbol": ("INVALID_PRODUCT_ID", "Invalid product id", "PREVIEW_INVALID_PRODUCT_ID"),
    "no_price": ("INVALID_PRODUCT_ID", "Invalid product id", "PREVIEW_INVALID_PRODUCT_ID"),
}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def fmt(x: Decimal) -> str:
    return format(x.normalize(), "f") if x else "0"


def rules_from_products(products: dict[str, Any]) -> dict[str, SymbolRules]:
    out = {}
    for p in products["products"]:
        out[p["product_id"]] = SymbolRules(
            market_id=p["product_id"], base=p["base_currency_id"], quote=p["quote_currency_id"],
            recorded=p["base_currency_id"], step=dec(p["base_increment"]), tick=dec(p["price_increment"]),
            min_amount=dec(p["base_min_size"]), min_notional=dec(p["quote_min_size"]),
        )  # fmt: skip
    return out


def new_engine(
    clock: Any, market: RecordedMarket, balances: dict[str, Any], credentials: tuple[str, str]
) -> MatchingEngine:
    products = json.loads((DATA / "payloads" / "coinbase_products.json").read_text())
    return MatchingEngine(
        clock, market, rules_from_products(products), balances, fee_rate="0.006", duplicates="return",
        order_ids=lambda n: str(uuid.UUID(int=0xC0FFEE << 64 | n)), trade_ids=lambda n: str(uuid.UUID(int=n)),
        credentials=credentials,
    )  # fmt: skip


def order_json(o: SimOrder) -> dict[str, Any]:
    if o.type == "limit":
        config = {"limit_limit_gtc": {"base_size": fmt(o.amount), "limit_price": fmt(o.price or Decimal(0)),
                                      "post_only": False}}  # fmt: skip
    elif o.quote_size is not None:
        config = {"market_market_ioc": {"quote_size": fmt(o.quote_size)}}
    else:
        config = {"market_market_ioc": {"base_size": fmt(o.amount)}}
    pct = o.filled / o.amount * 100 if o.amount else Decimal(0)
    return {
        "order_id": o.id, "product_id": o.rules.market_id, "user_id": "5e5b2ba1-1c5a-5d5f-9a5f-0c1d2e3f4a5b",
        "order_configuration": config, "side": o.side.upper(), "client_order_id": o.client_id,
        "status": STATUS[o.status], "time_in_force": "GOOD_UNTIL_CANCELLED" if o.type == "limit" else "IMMEDIATE_OR_CANCEL",
        "created_time": iso(o.created), "completion_percentage": fmt(pct), "filled_size": fmt(o.filled),
        "average_filled_price": fmt(o.average), "fee": "", "number_of_fills": str(len(o.trades)),
        "filled_value": fmt(o.cost), "pending_cancel": False, "size_in_quote": o.quote_size is not None,
        "total_fees": fmt(o.fee), "size_inclusive_of_fees": False, "total_value_after_fees": fmt(o.cost + o.fee),
        "trigger_status": "INVALID_ORDER_TYPE", "order_type": o.type.upper(), "reject_reason": "REJECT_REASON_UNSPECIFIED",
        "settled": o.status != "open", "product_type": "SPOT", "reject_message": "", "cancel_message": "",
        "order_placement_source": "RETAIL_ADVANCED", "outstanding_hold_amount": fmt(o.locked),
        "is_liquidation": False, "last_fill_time": iso(o.trades[-1].time) if o.trades else None,
    }  # fmt: skip


def attach_orders(responder: Responder, engine: MatchingEngine) -> None:
    def denied(request: Request) -> Reply | None:
        key = request.headers.get("CB-ACCESS-KEY")
        ts, sign = request.headers.get("CB-ACCESS-TIMESTAMP", ""), request.headers.get("CB-ACCESS-SIGN", "")
        payload = ts + request.method + request.path + (request.body or "")
        expected = hmac.new(engine.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if key != engine.api_key or not hmac.compare_digest(sign, expected):
            return Reply({"error": "unauthorized", "message": "Unauthorized", "error_details": ""}, status=401,
                         reason="Unauthorized")  # fmt: skip
        return None

    def guarded(handler: Any) -> Any:
        def run(request: Request) -> Any:
            refused = denied(request)
            if refused is not None:
                return refused
            try:
                return handler(request)
            except Reject as exc:
                if exc.reason in ("unknown_order", "not_open"):
                    msg = "order with this orderID was not found"
                    return Reply({"error": "NOT_FOUND", "error_details": msg, "message": msg}, status=404,
                                 reason="Not Found")  # fmt: skip
                raise

        return run

    def create(request: Request) -> dict[str, Any]:
        body = json.loads(request.body or "{}")
        config = body.get("order_configuration", {})
        try:
            rules = engine.rules_for(body.get("product_id", ""))
            if "limit_limit_gtc" in config:
                c = config["limit_limit_gtc"]
                order = engine.place(rules, body["side"].lower(), "limit", dec(c["base_size"]), dec(c["limit_price"]),
                                     body.get("client_order_id", ""))  # fmt: skip
            else:
                c = config["market_market_ioc"]
                amount = dec(c["base_size"]) if "base_size" in c else None
                quote = dec(c["quote_size"]) if "quote_size" in c else None
                order = engine.place(rules, body["side"].lower(), "market", amount, None,
                                     body.get("client_order_id", ""), quote)  # fmt: skip
        except Reject as exc:
            error, message, preview = FAILURES[exc.reason]
            return {
                "success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "",
                "error_response": {"error": error, "message": message, "error_details": exc.detail,
                                   "preview_failure_reason": preview, "new_order_failure_reason": error},
                "order_configuration": config,
            }  # fmt: skip
        if engine.take_lost_response():
            raise ccxt.RequestTimeout(
                f"coinbase POST /api/v3/brokerage/orders: the response to {order.client_id} was lost"
            )
        return {
            "success": True, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": order.id,
            "success_response": {"order_id": order.id, "product_id": order.rules.market_id,
                                 "side": order.side.upper(), "client_order_id": order.client_id},
            "order_configuration": config,
        }  # fmt: skip

    def get_order(request: Request) -> dict[str, Any]:
        return {"order": order_json(engine.get(request.path.rsplit("/", 1)[1]))}

    def list_orders(request: Request) -> dict[str, Any]:
        product = request.param("product_id") or request.param("product_ids")
        rules = engine.rules_for(product) if product else None
        start = request.param("start_date")
        since = int(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1000) if start else None
        statuses = [v for k, v in _multi(request, "order_status")]
        orders = [o for o in engine.orders_of(rules, since) if not statuses or STATUS[o.status] in statuses]
        orders.sort(key=lambda o: o.created, reverse=True)
        limit = int(request.param("limit") or 100)
        return {"orders": [order_json(o) for o in orders[:limit]], "sequence": "0", "has_next": False, "cursor": ""}

    def batch_cancel(request: Request) -> dict[str, Any]:
        results = []
        for order_id in json.loads(request.body or "{}").get("order_ids", []):
            try:
                engine.cancel(engine.get(order_id))
                results.append(
                    {"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": order_id}
                )
            except Reject:
                results.append({"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": order_id})
        return {"results": results}

    def accounts(_request: Request) -> dict[str, Any]:
        assets = sorted(set(engine.free) | set(engine.used))
        rows = [
            {
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, a)), "name": f"{a} Wallet", "currency": a,
                "available_balance": {"value": fmt(engine.free.get(a, Decimal(0))), "currency": a},
                "default": True, "active": True, "created_at": "2023-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z", "deleted_at": None, "type": "ACCOUNT_TYPE_CRYPTO",
                "ready": True, "hold": {"value": fmt(engine.used.get(a, Decimal(0))), "currency": a},
                "retail_portfolio_id": "00000000-0000-0000-0000-000000000001",
            }
            for a in assets
        ]  # fmt: skip
        return {"accounts": rows, "has_next": False, "cursor": "", "size": len(rows)}

    def transaction_summary(_request: Request) -> dict[str, Any]:
        """Read by ccxt's load_markets when the instance has keys (the account's fee tier)."""
        return {
            "total_volume": 0, "total_fees": 0, "fee_tier": {
                "pricing_tier": "Advanced 1", "usd_from": "0", "usd_to": "1000", "taker_fee_rate": str(engine.fee_rate),
                "maker_fee_rate": str(engine.fee_rate), "aop_from": "", "aop_to": ""},
            "margin_rate": None, "goods_and_services_tax": None, "advanced_trade_only_volume": 0,
            "advanced_trade_only_fees": 0, "coinbase_pro_volume": 0, "coinbase_pro_fees": 0, "total_balance": "",
            "has_promo_fee": False,
        }  # fmt: skip

    responder.route("GET", r"/api/v3/brokerage/transaction_summary", guarded(transaction_summary))
    responder.route("GET", r"/api/v3/brokerage/orders/historical/[^/]+", guarded(get_order))
    responder.route("GET", r"/api/v3/brokerage/orders/historical/batch", guarded(list_orders))
    responder.route("POST", r"/api/v3/brokerage/orders", guarded(create))
    responder.route("POST", r"/api/v3/brokerage/orders/batch_cancel", guarded(batch_cancel))
    responder.route("GET", r"/api/v3/brokerage/accounts", guarded(accounts))


def _multi(request: Request, name: str) -> list[tuple[str, str]]:
    """Every value of a repeated query parameter (``order_status=OPEN&order_status=FILLED``)."""
    from urllib.parse import parse_qsl

    return [(k, v) for k, v in parse_qsl(request.url.partition("?")[2]) if k == name]
