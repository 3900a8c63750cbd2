"""CcxtBroker: orders on a real exchange account (sandbox/testnet, demo or live) through ccxt.

The same contract as the paper broker: ``submit`` places the gate-approved order, ``on_candle`` polls the
symbol's open orders (fills, status, time-to-live cancels, client-side stop-loss / take-profit),
``portfolio_view`` is the account as the exchange reports it plus our pending orders, and
``take_order_updates`` hands status changes to the journal.

- Client order ids are ours, derived from the decision (``tools.client_ids``): a retry never creates a
  second order. A create whose outcome is unknown (timeout, connection trouble, unreadable answer) is looked
  up by client id before it is sent again; it is sent again only when the exchange answers that it has no
  such order. Temporary errors are retried with exponential backoff (longer after a rate limit, at least the
  exchange's Retry-After); permanent ones (funds, order parameters, symbol, keys) are not retried.
- Precision and limits from the exchange's markets are applied after the gate and never enlarge the order
  (``tools.order_precision``); an order below the market's minimum is not sent and comes back REJECTED with
  the reason in ``Order.note``.
- Orders are limit orders ``limit_offset_bps`` through the decision price (a marketable limit: a fill never
  slips more than that), canceled when unfilled after ``order_ttl_candles`` candles; stop-loss and
  take-profit exits are market orders. Slippage of every fill against the decision price is measured (bps).
- ``start`` loads markets, balances and marks and reconciles the journal with the exchange
  (``tools.reconcile``). Spot only, long only.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ccxt

from tools.ccxt_broker_config import CcxtBrokerConfig, VenueMode
from tools.ccxt_venue import LookupFailed, OrderUnknown, Venue, _num
from tools.client_ids import ClientIds, decision_of, kind_of
from tools.errors import ConfigError, ExchangePermanentError, ExchangeTemporaryError
from tools.exchange_errors import Backoff, Failure, Redactor, classify, describe
from tools.order_precision import fit_order
from tools.paper_broker import Bar
from tools.reconcile import JournalOrder, OrderFinding, ReconciliationReport, balance_lines
from tools.timeframes import utc_day
from tools.trade_types import (
    UNFINISHED_STATUSES,
    Fill,
    Order,
    OrderStatus,
    PortfolioView,
    PositionView,
    Side,
)

log = logging.getLogger("tradegraph.broker")
HOUR_MS = 3_600_000
LOOKUP_SLACK_MS = 10 * 60_000
"""Orders are looked up from this long before their submission time (clock differences)."""


def check_exchange_id(exchange_id: str) -> None:
    if exchange_id not in ccxt.exchanges:
        import difflib

        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (e.g. binance, coinbase, kraken)"
        raise ConfigError(f"unknown exchange {exchange_id!r}: not a ccxt exchange id{hint}")


def create_exchange(exchange_id: str, config: dict[str, Any]) -> Any:
    """The synchronous ccxt instance of ``exchange_id`` with ccxt's rate limiter on."""
    check_exchange_id(exchange_id)
    return getattr(ccxt, exchange_id)({"enableRateLimit": True, **config})


def needs_password(exchange_id: str) -> bool:
    check_exchange_id(exchange_id)
    return bool(getattr(ccxt, exchange_id)().requiredCredentials.get("password"))


def check_venue(exchange: Any, mode: str) -> None:
    """ConfigError when the exchange has no environment for ``mode`` in ccxt (sandbox/testnet, demo)."""
    if mode == "sandbox" and not exchange.urls.get("test"):
        raise ConfigError(f"{exchange.id} has no sandbox/testnet in ccxt: use --live or paper trading")
    if mode == "demo" and not exchange.urls.get("demo"):
        raise ConfigError(f"{exchange.id} has no demo trading environment in ccxt: use --sandbox or --live")


def check_mode(exchange_id: str, mode: str) -> None:
    check_exchange_id(exchange_id)
    check_venue(getattr(ccxt, exchange_id)(), mode)


def select_venue(exchange: Any, mode: VenueMode) -> Any:
    """Point the instance at the exchange's sandbox/testnet or demo environment (ConfigError when it has none)."""
    check_venue(exchange, mode)
    if mode == "sandbox":
        exchange.set_sandbox_mode(True)
    elif mode == "demo":
        exchange.enable_demo_trading(True)
    return exchange


@dataclass
class _Tracked:
    order: Order
    client_id: str
    """The id the exchange knows (``ClientIds.encode(order.client_order_id)``)."""
    order_type: str
    limit_price: float | None
    exchange_id: str | None = None
    filled: float = 0.0
    cost: float = 0.0
    fee: float = 0.0
    candles: int = 0
    last_bar: int | None = None
    lock_price: float = 0.0
    from_journal: bool = False
    """Taken from the journal at start-up (a lookup that finds nothing then means lost, not "never placed")."""
    locked: float = 0.0
    """Base quantity whose funds our local balance view holds for this order (until the next refresh)."""
    last_fill_at: int = 0
    """Timestamp of this order's last fill: the next one is later (the journal keys fills by order and time)."""

    @property
    def confirmed(self) -> bool:
        return self.exchange_id is not None


@dataclass
class _Position:
    quantity: float
    average_price: float
    stop_loss: float | None
    take_profit: float | None
    decision_id: str


@dataclass
class Reconciliation:
    report: ReconciliationReport
    changed: list[Order] = field(default_factory=list)
    """Journal orders whose status or filled quantity changed (upsert them)."""
    adopted: list[Order] = field(default_factory=list)
    """Orders of ours the journal lacked (journal them with a decision of their own)."""
    fills: list[Fill] = field(default_factory=list)


class CcxtBroker:
    name = "ccxt"

    def __init__(
        self,
        exchange: Any,
        symbols: Sequence[str],
        cfg: CcxtBrokerConfig,
        mode: VenueMode = "sandbox",
        *,
        now_ms: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        secrets: Sequence[str] = (),
    ) -> None:
        self.cfg = cfg
        self.mode = mode
        self.symbols = list(dict.fromkeys(symbols))
        self.redact = Redactor(secrets)
        backoff = Backoff(cfg.retry_attempts, cfg.retry_base_delay_s, cfg.retry_max_delay_s)
        self.venue = Venue(exchange, backoff, sleep, self.redact)
        self.exchange = self.venue.exchange
        self.ids = ClientIds(exchange.id, cfg.client_id_prefix)
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.quote = ""
        self.orders: dict[str, _Tracked] = {}
        self.active: dict[str, _Tracked] = {}
        self._snapshot: dict[str, tuple[float, float]] = {}
        self._delta: dict[str, list[float]] = {}
        self._balances_at: int | None = None
        self._filled_since_refresh = False
        self.marks: dict[str, float] = {}
        self.book: dict[str, _Position] = {}
        self.peak_equity = 0.0
        self.day_start_equity = 0.0
        self._day: int | None = None
        self.last_stop_out: dict[str, int] = {}
        self.order_times: deque[int] = deque()
        self.fees_paid = 0.0
        self.realized_pnl = 0.0
        self.poll_errors = 0
        self._updates: list[Order] = []
        self._fills: list[Fill] = []

    # --- start-up -----------------------------------------------------------------------------------
    def start(
        self,
        journal_orders: Sequence[JournalOrder] = (),
        last_point: dict[str, Any] | None = None,
        peak_equity: float | None = None,
    ) -> Reconciliation:
        """Markets, balances and marks from the exchange, then reconciliation with the journal's account
        history (``journal_orders``: every journaled order of this exchange account and mode)."""
        markets = self.venue.load_markets()
        self._check_symbols(markets)
        self._refresh_balances(force=True, strict=True)
        for symbol in self.symbols:
            price = self.venue.last_price(symbol)
            if price:
                self.marks[symbol] = price
        history = sorted(journal_orders, key=lambda j: j.submitted_at)
        self._seed_book(history)
        recon = self._reconcile(history)
        self._refresh_balances(force=True, strict=True)
        recon.report.balances = balance_lines(last_point, self.quote, self._cash(), self._positions())
        recon.report.journal_point_at = int(last_point["timestamp"]) if last_point else None
        equity = self.equity()
        self.peak_equity = max(equity, peak_equity or 0.0)
        self.day_start_equity = equity
        now = self.now_ms()
        self.order_times.extend(j.submitted_at for j in history if now - j.submitted_at < HOUR_MS)
        for line in recon.report.lines():
            log.info("%s", line)
        return recon

    def _check_symbols(self, markets: dict[str, Any]) -> None:
        quotes = set()
        for symbol in self.symbols:
            market = markets.get(symbol)
            if market is None:
                import difflib

                close = difflib.get_close_matches(symbol, list(markets), n=3)
                hint = f" (similar: {', '.join(close)})" if close else ""
                raise ConfigError(f"{symbol} is not listed on {self.venue.id}{hint}")
            if market.get("active") is False:
                raise ConfigError(f"{symbol} is listed on {self.venue.id} but not trading (inactive)")
            if not market.get("spot"):
                raise ConfigError(f"{symbol} on {self.venue.id} is not a spot market (the ccxt broker trades spot)")
            quotes.add(market["quote"])
        if len(quotes) != 1:
            raise ConfigError(
                f"the symbols trade against {', '.join(sorted(quotes))}: the ccxt broker needs one quote currency"
            )
        self.quote = quotes.pop()

    def _seed_book(self, history: Sequence[JournalOrder]) -> None:
        """Cost basis, stops and targets of the positions from the fills the journal holds."""
        for j in history:
            if j.journal_filled > 0:
                price = j.journal_notional / j.journal_filled
                self._position_after(j.symbol, j.side, j.journal_filled, price, j.stop_loss, j.take_profit,
                                     j.decision_id, j.kind)  # fmt: skip

    def _reconcile(self, history: Sequence[JournalOrder]) -> Reconciliation:
        now = self.now_ms()
        recon = Reconciliation(ReconciliationReport(exchange=self.venue.id, mode=self.mode, at=now))
        report = recon.report
        known = {j.client_order_id for j in history}
        for j in history:
            if j.status not in UNFINISHED_STATUSES:
                continue
            try:
                client_id = self.ids.encode(j.client_order_id)
            except ValueError as exc:
                report.notes.append(f"{j.client_order_id}: {exc}; left as it is")
                continue
            order = Order(
                client_order_id=j.client_order_id, decision_id=j.decision_id, symbol=j.symbol, side=j.side,
                quantity=j.quantity, reference_price=j.reference_price, submitted_at=j.submitted_at,
                stop_loss=j.stop_loss, take_profit=j.take_profit, kind=j.kind, status=OrderStatus(j.status),
                filled_quantity=j.journal_filled,
            )  # fmt: skip
            t = _Tracked(order, client_id, "limit", None, filled=j.journal_filled, cost=j.journal_notional,
                         fee=j.journal_fee, from_journal=True)  # fmt: skip
            self.orders[j.client_order_id] = t
            finding = OrderFinding(
                client_order_id=j.client_order_id, exchange_client_id=client_id, symbol=j.symbol,
                finding="in_sync", journal_status=j.status, journal_filled=j.journal_filled,
            )  # fmt: skip
            report.orders.append(finding)
            try:
                raw = self.venue.lookup(j.symbol, client_id, j.submitted_at - LOOKUP_SLACK_MS)
            except LookupFailed as exc:
                self.active[j.client_order_id] = t
                finding.finding = "unverified"
                finding.action = f"kept as {j.status}; looked up again at every candle ({exc})"
                continue
            if raw is None:
                order.status = OrderStatus.LOST
                order.note = f"the exchange has no order with client id {client_id}; not re-sent"
                finding.finding, finding.exchange_status = "lost", "unknown"
                finding.action = "marked lost, not re-sent"
                recon.changed.append(order)
                continue
            before = (order.status, order.filled_quantity)
            fills = self._absorb(t, raw)
            recon.fills += fills
            finding.exchange_status, finding.exchange_filled = str(raw.get("status")), t.filled
            if order.status in UNFINISHED_STATUSES:
                self.active[j.client_order_id] = t
            if fills:
                finding.finding = "filled_while_away"
                total = sum(f.quantity for f in fills)
                finding.action = f"{len(fills)} fill(s) of {total:.8g} recorded; status {order.status.value}"
            elif (order.status, order.filled_quantity) != before:
                finding.finding, finding.action = "changed_while_away", f"status {order.status.value}"
            elif order.status in UNFINISHED_STATUSES:
                finding.finding, finding.action = "still_open", "tracked again"
            if (order.status, order.filled_quantity) != before:
                recon.changed.append(order)
        since = now - int(self.cfg.reconcile_lookback_hours * HOUR_MS)
        for symbol in self.symbols:
            try:
                recent = self.venue.recent_orders(symbol, since, now)
            except (ExchangeTemporaryError, ExchangePermanentError) as exc:
                report.notes.append(f"could not list {symbol}'s recent orders to adopt: {exc}")
                continue
            for raw in sorted(recent, key=lambda r: r.get("timestamp") or 0):
                cid = self.ids.decode(raw.get("clientOrderId"))
                if cid is None or cid in known or cid in self.orders:
                    continue
                self._adopt(cid, raw, symbol, recon)
        return recon

    def _adopt(self, cid: str, raw: dict[str, Any], symbol: str, recon: Reconciliation) -> None:
        side = Side(str(raw.get("side")))
        suffix = kind_of(cid)
        kind = suffix if suffix in ("stop_loss", "take_profit") else ("entry" if side is Side.BUY else "exit")
        amount = _num(raw.get("amount")) or _num(raw.get("filled")) or 0.0
        price = _num(raw.get("price")) or _num(raw.get("average")) or self.marks.get(symbol, 0.0)
        order = Order(
            client_order_id=cid, decision_id=decision_of(cid), symbol=symbol, side=side, quantity=amount,
            reference_price=price, submitted_at=int(raw.get("timestamp") or self.now_ms()), kind=kind,
            note="adopted at start-up: on the exchange with our client id, missing from the journal",
        )  # fmt: skip
        order_type = str(raw.get("type") or "limit")
        t = _Tracked(order, str(raw.get("clientOrderId")), order_type, _num(raw.get("price")))
        self.orders[cid] = t
        fills = self._absorb(t, raw)
        recon.fills += fills
        if order.status in UNFINISHED_STATUSES:
            self.active[cid] = t
        recon.adopted.append(order)
        recon.report.orders.append(
            OrderFinding(
                client_order_id=cid, exchange_client_id=t.client_id, symbol=symbol, finding="adopted",
                exchange_status=str(raw.get("status")), exchange_filled=t.filled,
                action=f"journaled as {order.status.value} with {len(fills)} fill(s)"
                + ("; tracked" if cid in self.active else ""),
            )
        )  # fmt: skip

    # --- orders -------------------------------------------------------------------------------------
    def submit(self, order: Order) -> Order:
        """Place an approved order. Resubmitting a known client order id returns the known order."""
        known = self.orders.get(order.client_order_id)
        if known is not None:
            return known.order
        market_order = self.cfg.order_type == "market" or order.kind in ("stop_loss", "take_profit")
        return self._place(order, "market" if market_order else "limit")

    def _place(self, order: Order, order_type: str) -> Order:
        self.order_times.append(order.submitted_at)
        symbol = order.symbol
        if symbol not in self.symbols or symbol not in (self.exchange.markets or {}):
            return self._reject(order, f"{symbol} is not a symbol of this session on {self.venue.id}")
        if order.side is Side.SELL and order.kind == "entry":
            return self._reject(order, "short selling is not supported by the ccxt broker (spot, long only)")
        limit = None
        if order_type == "limit":
            limit = order.reference_price * (1 + order.side.sign * self.cfg.limit_offset_bps / 10_000)
        fitted = fit_order(self.exchange, symbol, order.side, order.quantity, limit, order.reference_price)
        if fitted.rejected is not None:
            return self._reject(order, f"not sent: {fitted.rejected}")
        try:
            client_id = self.ids.encode(order.client_order_id)
        except ValueError as exc:
            return self._reject(order, str(exc))
        order.quantity = fitted.amount
        order.note = fitted.note
        t = _Tracked(order, client_id, order_type, fitted.price)
        t.lock_price = fitted.price or order.reference_price
        self.orders[order.client_order_id] = t
        raw = self._create(t)
        if raw is not None:
            self._fills += self._absorb(t, raw)
            if order.status in UNFINISHED_STATUSES:
                self.active[order.client_order_id] = t
                if order_type == "market":  # done at once on the exchange; some only acknowledge the create
                    self._poll(t)
        elif order.status is OrderStatus.PENDING:  # outcome unknown: looked up at every candle, never re-sent
            self.active[order.client_order_id] = t
        log.info("order %s %s %s %.8g (%s) -> %s%s", order.client_order_id, order.side.value, symbol, order.quantity,
                 order_type, order.status.value, f": {order.note}" if order.note else "")  # fmt: skip
        return order

    def _reject(self, order: Order, reason: str) -> Order:
        order.status = OrderStatus.REJECTED
        order.note = self.redact(reason)
        if order.client_order_id not in self.orders:
            self.orders[order.client_order_id] = _Tracked(order, "", "limit", None)
        log.warning("order %s %s %s rejected: %s", order.client_order_id, order.side.value, order.symbol, order.note)
        return order

    def _create(self, t: _Tracked) -> dict[str, Any] | None:
        """Send the create, retrying what is temporary; never send it again while the exchange may have it.

        Returns the exchange's order, or None with the order REJECTED (the exchange refused it, or it was
        definitely not placed) or left PENDING (its fate is unknown: looked up again at the next candle)."""
        o = t.order
        attempts = self.cfg.retry_attempts
        maybe_placed = False  # an earlier attempt may have reached the exchange
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            if maybe_placed:
                try:
                    found = self.venue.lookup(o.symbol, t.client_id, o.submitted_at - LOOKUP_SLACK_MS, attempts=1)
                except LookupFailed as exc:
                    log.warning("%s: cannot look %s up yet (%s)", self.venue.id, t.client_id, exc)
                    if attempt < attempts:
                        self.venue.wait(attempt, Failure.UNKNOWN_OUTCOME, "lookup", exc)
                    continue
                if found is not None:
                    log.info("%s: %s was placed after all (found by client id)", self.venue.id, t.client_id)
                    return found
                maybe_placed = False  # the exchange answered that it has no such order: safe to send
            try:
                return self.venue.create(o.symbol, t.order_type, o.side.value, o.quantity, t.limit_price, t.client_id)
            except ccxt.BaseError as exc:
                last = exc
                failure = classify(exc)
                if failure in (Failure.PERMANENT, Failure.NOT_FOUND):
                    # Binance refuses a client id an open order has ("Duplicate order sent.", an InvalidOrder
                    # to ccxt): after an earlier attempt, or when it says so, the order may be there: look
                    if attempt > 1 or "duplicate" in str(exc).lower():
                        found = self._lookup_once(t)
                        if found is not None:
                            return found
                    self._reject(o, f"refused by {self.venue.id}: {describe(exc, self.redact)}")
                    return None
                if failure in (Failure.UNKNOWN_OUTCOME, Failure.DUPLICATE):
                    maybe_placed = True
                if attempt < attempts:
                    self.venue.wait(attempt, failure, "create_order", exc)
        assert last is not None or maybe_placed
        reason = describe(last, self.redact) if last is not None else "no answer"
        if maybe_placed or last is None:
            try:
                found = self.venue.lookup(o.symbol, t.client_id, o.submitted_at - LOOKUP_SLACK_MS, attempts=1)
            except LookupFailed:
                o.note = f"create not confirmed after {attempts} attempts ({reason}); looked up at the next candle"
                log.error("order %s: %s", o.client_order_id, o.note)
                return None
            if found is not None:
                return found
        self._reject(o, f"not placed after {attempts} attempts: {reason}")
        return None

    def _lookup_once(self, t: _Tracked) -> dict[str, Any] | None:
        try:
            return self.venue.lookup(t.order.symbol, t.client_id, t.order.submitted_at - LOOKUP_SLACK_MS, attempts=1)
        except LookupFailed:
            return None

    # --- what the exchange says about an order --------------------------------------------------------
    def _absorb(self, t: _Tracked, raw: dict[str, Any]) -> list[Fill]:
        """Take the exchange's view of an order: its id, new fills (as deltas of the cumulative filled
        quantity, cost and fee), and its status."""
        o = t.order
        if raw.get("id") and t.exchange_id is None:
            t.exchange_id = str(raw["id"])
            o.exchange_order_id = t.exchange_id
            if o.status is OrderStatus.PENDING:
                o.status = OrderStatus.OPEN
                self._lock(t)
        fills: list[Fill] = []
        filled = _num(raw.get("filled"))
        if filled is not None and filled > t.filled * (1 + 1e-12) + 1e-15:
            quantity = filled - t.filled
            average = _num(raw.get("average"))
            cost = _num(raw.get("cost"))
            if cost is None and average is not None:
                cost = average * filled
            if cost is not None and cost > t.cost:
                price = (cost - t.cost) / quantity
            else:
                price = average or t.limit_price or o.reference_price
                cost = t.cost + price * quantity
            fee_total = self._fee(t, raw)
            fee = max(0.0, fee_total - t.fee) if fee_total is not None else 0.0
            # an order's own "timestamp" is when it was placed: every fill of it would share that time
            timestamp = max(int(raw.get("lastTradeTimestamp") or self.now_ms()), t.last_fill_at + 1)
            t.last_fill_at = timestamp
            fills.append(self._fill(t, quantity, price, fee, timestamp))
            t.filled, t.cost = filled, cost
            if fee_total is not None:
                t.fee = max(t.fee, fee_total)
            o.filled_quantity = filled
        status = self._status(str(raw.get("status")), t, _num(raw.get("amount")))
        if status is not None and status is not o.status:
            o.status = status
            if status not in UNFINISHED_STATUSES:
                self._release(t)
                self.active.pop(o.client_order_id, None)
            self._updates.append(o)
        elif fills:
            self._updates.append(o)
        return fills

    def _fee(self, t: _Tracked, raw: dict[str, Any]) -> float | None:
        try:
            return self.venue.cumulative_fee(raw, t.order.symbol, t.order.submitted_at - LOOKUP_SLACK_MS)
        except (ExchangeTemporaryError, ExchangePermanentError, OrderUnknown) as exc:
            log.warning("fee of %s not known yet: %s", t.order.client_order_id, exc)
            return None

    @staticmethod
    def _status(raw_status: str, t: _Tracked, amount: float | None) -> OrderStatus | None:
        if raw_status == "open":
            return OrderStatus.PARTIALLY_FILLED if t.filled > 0 else OrderStatus.OPEN
        if raw_status == "closed":
            whole = amount if amount else t.order.quantity
            return OrderStatus.FILLED if t.filled >= whole * (1 - 1e-9) else OrderStatus.EXPIRED
        if raw_status in ("canceled", "cancelled"):
            return OrderStatus.CANCELED
        if raw_status == "expired":
            return OrderStatus.EXPIRED
        if raw_status == "rejected":
            return OrderStatus.REJECTED
        return None  # unknown or not given (a create acknowledgement): unchanged

    def _fill(self, t: _Tracked, quantity: float, price: float, fee: float, timestamp: int) -> Fill:
        o = t.order
        realized = self._position_after(o.symbol, o.side, quantity, price, o.stop_loss, o.take_profit,
                                        o.decision_id, o.kind)  # fmt: skip
        self.fees_paid += fee
        self.realized_pnl += realized - fee
        self._settle_balance(t, quantity, price, fee)
        self._filled_since_refresh = True
        slippage = (price / o.reference_price - 1) * 10_000 * o.side.sign if o.reference_price > 0 else 0.0
        fill = Fill(
            client_order_id=o.client_order_id, decision_id=o.decision_id, symbol=o.symbol, side=o.side,
            quantity=quantity, price=price, fee=fee, timestamp=timestamp, kind=o.kind, slippage_bps=slippage,
            realized_pnl=realized - fee,
        )  # fmt: skip
        log.info("fill %s %s %.8g @ %.8g (slippage %+.1f bps)", o.client_order_id, o.side.value, quantity, price,
                 slippage)  # fmt: skip
        return fill

    def _position_after(
        self, symbol: str, side: Side, quantity: float, price: float, stop: float | None, take: float | None,
        decision_id: str, kind: str,
    ) -> float:  # fmt: skip
        """Move the local cost basis by a fill; the realized PnL (before fees) of the part that closes."""
        signed = quantity * side.sign
        pos = self.book.get(symbol)
        if pos is None or pos.quantity == 0:
            self.book[symbol] = _Position(signed, price, stop, take, decision_id)
            return 0.0
        if pos.quantity * signed > 0:
            total = pos.quantity + signed
            pos.average_price = (pos.average_price * pos.quantity + price * signed) / total
            pos.quantity = total
            if kind == "entry":
                pos.stop_loss, pos.take_profit, pos.decision_id = stop, take, decision_id
            return 0.0
        closing = min(abs(signed), abs(pos.quantity))
        realized = closing * (price - pos.average_price) * (1 if pos.quantity > 0 else -1)
        pos.quantity += signed
        if abs(pos.quantity) <= 1e-12:
            del self.book[symbol]
        elif pos.quantity * signed > 0:
            self.book[symbol] = _Position(pos.quantity, price, stop, take, decision_id)
        return realized

    # --- candles ------------------------------------------------------------------------------------
    def on_candle(self, bar: Bar) -> list[Fill]:
        """A candle of ``bar.symbol`` closed: poll its orders, cancel what outlived its time-to-live, check
        stops and targets, refresh balances (once per close time). Returns the fills found since the last call."""
        day = utc_day(bar.open_time)
        if self._day is None or day != self._day:
            self._day = day
            self.day_start_equity = self.equity()
        self.marks[bar.symbol] = bar.close
        for t in [t for t in self.active.values() if t.order.symbol == bar.symbol]:
            if bar.close_time > t.order.submitted_at and (t.last_bar is None or bar.open_time > t.last_bar):
                t.candles += 1
                t.last_bar = bar.open_time
            self._poll(t)
            if t.order.client_order_id in self.active and t.confirmed and t.candles >= self.cfg.order_ttl_candles:
                self._cancel(t, f"unfilled after {t.candles} candle(s)")
        # the exchange's holdings (after fees, which local estimates miss) before any exit
        self._refresh_balances(at=bar.close_time, force=self._filled_since_refresh)
        self._check_exits(bar)
        self.peak_equity = max(self.peak_equity, self.equity())
        while self.order_times and bar.close_time - self.order_times[0] >= HOUR_MS:
            self.order_times.popleft()
        fills, self._fills = self._fills, []
        return fills

    def _poll(self, t: _Tracked) -> None:
        o = t.order
        try:
            if t.confirmed:
                assert t.exchange_id is not None
                try:
                    raw: dict[str, Any] | None = self.venue.fetch(t.exchange_id, o.symbol)
                except (OrderUnknown, ExchangePermanentError) as exc:
                    log.warning("%s: polling %s: %s; looking it up by client id", self.venue.id, t.exchange_id, exc)
                    raw = self.venue.lookup(o.symbol, t.client_id, o.submitted_at - LOOKUP_SLACK_MS)
                    if raw is None:
                        self._finish(
                            t, OrderStatus.LOST, f"the exchange no longer knows {t.exchange_id} / {t.client_id}"
                        )
                        return
            else:
                raw = self.venue.lookup(o.symbol, t.client_id, o.submitted_at - LOOKUP_SLACK_MS)
                if raw is None and t.from_journal:
                    self._finish(t, OrderStatus.LOST, f"the exchange has no order with client id {t.client_id}")
                    return
                if raw is None:
                    self._finish(t, OrderStatus.REJECTED, f"not placed: the exchange has no order {t.client_id} "
                                                          f"({o.note or 'create not confirmed'})")  # fmt: skip
                    return
        except (ExchangeTemporaryError, ExchangePermanentError, LookupFailed) as exc:
            self.poll_errors += 1
            log.warning("%s: cannot poll %s now: %s", self.venue.id, o.client_order_id, self.redact(str(exc)))
            return
        assert raw is not None
        self._fills += self._absorb(t, raw)

    def _cancel(self, t: _Tracked, why: str) -> None:
        assert t.exchange_id is not None
        try:
            self.venue.cancel(t.exchange_id, t.order.symbol)
            log.info("canceled %s: %s", t.order.client_order_id, why)
        except (OrderUnknown, ExchangePermanentError) as exc:  # filled or closed meanwhile: the poll says
            log.info("cancel of %s refused (%s); polling its state", t.order.client_order_id, exc)
        except ExchangeTemporaryError as exc:
            self.poll_errors += 1
            log.warning("cannot cancel %s now: %s", t.order.client_order_id, exc)
            return
        self._poll(t)

    def _finish(self, t: _Tracked, status: OrderStatus, note: str) -> None:
        t.order.status = status
        t.order.note = self.redact(note)
        self._release(t)
        self.active.pop(t.order.client_order_id, None)
        self._updates.append(t.order)
        log.warning("order %s %s: %s", t.order.client_order_id, status.value, t.order.note)

    def _check_exits(self, bar: Bar) -> None:
        """Client-side stop-loss / take-profit on the candle, as the paper broker does; the exit is a market
        order for the whole position (long only), and the symbol's other orders are canceled first."""
        pos = self.book.get(bar.symbol)
        held = self._positions().get(bar.symbol, 0.0)
        if pos is None or held <= 0:
            return
        stop_hit = pos.stop_loss is not None and bar.low <= pos.stop_loss
        take_hit = pos.take_profit is not None and bar.high >= pos.take_profit
        if not (stop_hit or take_hit):
            return
        kind = "stop_loss" if stop_hit else "take_profit"
        level = pos.stop_loss if stop_hit else pos.take_profit
        assert level is not None
        cid = f"{pos.decision_id}-{kind}"
        if cid in self.orders:
            return
        for other in [t for t in self.active.values() if t.order.symbol == bar.symbol and t.confirmed]:
            self._cancel(other, f"{kind} of {bar.symbol}")
        order = Order(
            client_order_id=cid, decision_id=pos.decision_id, symbol=bar.symbol, side=Side.SELL, quantity=held,
            reference_price=level, submitted_at=bar.close_time, kind=kind,
        )  # fmt: skip
        self._place(order, "market")
        self._updates.append(order)
        if stop_hit:
            self.last_stop_out[bar.symbol] = bar.close_time

    def observe_book(self, symbol: str, book: Any) -> None:
        """Live feeds hand the order book to brokers; the exchange fills our orders against its own."""

    def take_order_updates(self) -> list[Order]:
        updates, self._updates = self._updates, []
        unique: dict[str, Order] = {}
        for order in updates:
            unique[order.client_order_id] = order
        return list(unique.values())

    # --- balances -----------------------------------------------------------------------------------
    def _refresh_balances(self, at: int | None = None, force: bool = False, strict: bool = False) -> None:
        if not force and at is not None and at == self._balances_at:
            return
        try:
            self._snapshot = self.venue.balances()
        except (ExchangeTemporaryError, ExchangePermanentError) as exc:
            if strict:
                raise
            self.poll_errors += 1
            log.warning("%s: balances not refreshed: %s", self.venue.id, self.redact(str(exc)))
            return
        self._delta = {}
        self._balances_at = at
        self._filled_since_refresh = False

    def _balance(self, currency: str) -> tuple[float, float]:
        free, used = self._snapshot.get(currency, (0.0, 0.0))
        d = self._delta.get(currency, [0.0, 0.0])
        return free + d[0], used + d[1]

    def _adjust(self, currency: str, free: float, used: float) -> None:
        d = self._delta.setdefault(currency, [0.0, 0.0])
        d[0] += free
        d[1] += used

    def _currencies(self, symbol: str) -> tuple[str, str]:
        market = self.exchange.market(symbol)
        return market["base"], market["quote"]

    def _lock(self, t: _Tracked) -> None:
        """Until the next refresh, hold the funds of a newly open order in the local balance view."""
        base, quote = self._currencies(t.order.symbol)
        t.locked = max(0.0, t.order.quantity - t.filled)
        if t.order.side is Side.BUY:
            self._adjust(quote, -t.locked * t.lock_price, t.locked * t.lock_price)
        else:
            self._adjust(base, -t.locked, t.locked)

    def _settle_balance(self, t: _Tracked, quantity: float, price: float, fee: float) -> None:
        base, quote = self._currencies(t.order.symbol)
        released = min(quantity, t.locked)
        t.locked -= released
        if t.order.side is Side.BUY:
            self._adjust(quote, released * t.lock_price - quantity * price - fee, -released * t.lock_price)
            self._adjust(base, quantity, 0.0)
        else:
            self._adjust(base, released - quantity, -released)
            self._adjust(quote, quantity * price - fee, 0.0)

    def _release(self, t: _Tracked) -> None:
        if t.locked <= 0:
            return
        base, quote = self._currencies(t.order.symbol)
        if t.order.side is Side.BUY:
            self._adjust(quote, t.locked * t.lock_price, -t.locked * t.lock_price)
        else:
            self._adjust(base, t.locked, -t.locked)
        t.locked = 0.0

    def _cash(self) -> float:
        return sum(self._balance(self.quote))

    def _positions(self) -> dict[str, float]:
        """Base holdings per symbol, without dust the market would not let us sell."""
        out: dict[str, float] = {}
        for symbol in self.symbols:
            base, _ = self._currencies(symbol)
            quantity = sum(self._balance(base))
            market = self.exchange.market(symbol)
            min_amount = ((market.get("limits") or {}).get("amount") or {}).get("min") or 0.0
            min_cost = ((market.get("limits") or {}).get("cost") or {}).get("min") or 0.0
            mark = self.marks.get(symbol, 0.0)
            if quantity > 0 and quantity >= min_amount and (not mark or quantity * mark >= min_cost):
                out[symbol] = quantity
        return out

    # --- the portfolio as the gate sees it ------------------------------------------------------------
    def equity(self) -> float:
        positions = self._positions()
        total = self._cash()
        for symbol, quantity in positions.items():
            mark = self.marks.get(symbol)
            if mark is None:
                pos = self.book.get(symbol)
                mark = pos.average_price if pos else math.nan
            total += quantity * mark
        return total

    def portfolio_view(self) -> PortfolioView:
        free, _used = self._balance(self.quote)
        pending: dict[str, float] = {}
        for t in self.active.values():
            remaining = max(0.0, t.order.quantity - t.filled)
            pending[t.order.symbol] = pending.get(t.order.symbol, 0.0) + remaining * t.order.side.sign
        positions = {}
        for symbol, quantity in self._positions().items():
            pos = self.book.get(symbol)
            known = pos is not None and pos.quantity > 0
            positions[symbol] = PositionView.model_construct(
                quantity=quantity,
                average_price=pos.average_price if known and pos else self.marks.get(symbol, 0.0),
                stop_loss=pos.stop_loss if known and pos else None,
                take_profit=pos.take_profit if known and pos else None,
            )
        return PortfolioView.model_construct(
            cash=self._cash(),
            available_cash=free,
            equity=self.equity(),
            peak_equity=self.peak_equity,
            day_start_equity=self.day_start_equity,
            positions=positions,
            pending=pending,
            marks=dict(self.marks),
            last_stop_out=dict(self.last_stop_out),
            order_times=list(self.order_times),
        )

    def close(self) -> None:
        session = getattr(self.exchange, "session", None)
        if session is not None:
            session.close()
