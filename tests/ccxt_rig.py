"""A CcxtBroker on a wire-level fake exchange, shared by the broker's test modules.

ccxt's real synchronous classes build, sign and parse every request; ``tests.exchange_wire`` answers them in
the exchange's own format from a simulated account (``orders_engine``). Time is a ManualClock: the broker's
backoff sleeps move it instead of waiting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ccxt

from infra.journal import DecisionRecord, JournalStore, RunInfo
from tests.exchange_wire import HOUR, T_BOOK, FakeExchange, ManualClock
from tests.exchange_wire.orders import CREATE_PATH, MatchingEngine, SimOrder, attach_orders, credentials_for
from tools.ccxt_broker import CcxtBroker, CcxtBrokerConfig
from tools.client_ids import ClientIds
from tools.paper_broker import Bar
from tools.trade_types import Order, Side

SYMBOL = "BTC/USDT"
"""Listed by every fake (Kraken's XBTUSDT)."""
T0 = T_BOOK
QUOTE_FUNDS = 10_000


def sleeper(clock: ManualClock) -> Any:
    def sleep(seconds: float) -> None:
        clock.sleep_until(clock.now_ms() + round(seconds * 1000))

    return sleep


@dataclass
class Rig:
    exchange_id: str
    clock: ManualClock
    fake: FakeExchange
    engine: MatchingEngine
    cfg: CcxtBrokerConfig = field(default_factory=CcxtBrokerConfig)
    mode: str = "sandbox"
    brokers: list[CcxtBroker] = field(default_factory=list)

    @property
    def ids(self) -> ClientIds:
        return ClientIds(self.exchange_id, self.cfg.client_id_prefix)

    def factory(self, exchange_id: str, config: dict[str, Any]) -> Any:
        """``composition.exchange_client_factory()``'s signature: a sync ccxt instance wired to the fake."""
        assert exchange_id == self.exchange_id
        return self.fake.install(getattr(ccxt, exchange_id)(dict(config)))

    def exchange(self) -> Any:
        return self.factory(self.exchange_id, credentials_for(self.exchange_id))

    def broker(self, start: bool = True, symbols: tuple[str, ...] = (SYMBOL,)) -> CcxtBroker:
        broker = CcxtBroker(self.exchange(), symbols, self.cfg, self.mode, now_ms=self.clock.now_ms,  # type: ignore[arg-type]
                            sleep=sleeper(self.clock), secrets=list(credentials_for(self.exchange_id).values()))  # fmt: skip
        if start:
            broker.start()
        self.brokers.append(broker)
        return broker

    def creates(self) -> int:
        """Create-order requests that reached the fake (faulted ones included)."""
        return self.fake.responder.count(CREATE_PATH[self.exchange_id], "POST")

    def on_exchange(self, client_order_id: str) -> list[SimOrder]:
        return self.engine.by_client_id(self.ids.encode(client_order_id))

    def mark(self) -> float:
        return float(self.engine.last_price(self.engine.rules[market_id(self.exchange_id)]))

    def next_candle(self, broker: CcxtBroker, low: float | None = None, high: float | None = None) -> list[Any]:
        """Move the clock one hour and hand the broker the candle that closed meanwhile."""
        self.clock.advance(HOUR)
        close_time = self.clock.now_ms() // HOUR * HOUR
        px = self.mark()
        bar = Bar(SYMBOL, close_time - HOUR, close_time, px, high or px, low or px, px, 10.0)
        return broker.on_candle(bar)


def market_id(exchange_id: str) -> str:
    return {"binance": "BTCUSDT", "coinbase": "BTC-USDT", "kraken": "XBTUSDT"}[exchange_id]


def make_rig(exchange_id: str, cfg: CcxtBrokerConfig | None = None, funds: dict[str, Any] | None = None) -> Rig:
    clock = ManualClock(T0)
    fake = FakeExchange(exchange_id, clock)
    engine = attach_orders(fake, funds or {"USDT": QUOTE_FUNDS})
    mode = "sandbox" if getattr(ccxt, exchange_id)().urls.get("test") else "live"  # Coinbase, Kraken: no testnet
    return Rig(exchange_id, clock, fake, engine, cfg or CcxtBrokerConfig(), mode)


def order(n: int, quantity: float, price: float, side: Side = Side.BUY, kind: str = "entry", at: int = T0,
          stop: float | None = None, take: float | None = None) -> Order:  # fmt: skip
    decision = f"d-{n:016x}"
    return Order(client_order_id=f"{decision}-o", decision_id=decision, symbol=SYMBOL, side=side, quantity=quantity,
                 reference_price=price, submitted_at=at, kind=kind, stop_loss=stop, take_profit=take)  # fmt: skip


def journal_run(journal: JournalStore, run_id: str, exchange_id: str, mode: str = "sandbox") -> None:
    config = {"exchange": exchange_id, "execution": {"broker": "ccxt", "mode": mode, "exchange": exchange_id}}
    journal.start_run(RunInfo(run_id=run_id, started_at=T0, mode=mode, config=config))


def journal_order(journal: JournalStore, run_id: str, o: Order) -> None:
    """What the graph's journal node writes for a decision that ordered."""
    record = DecisionRecord(
        id=o.decision_id, run_id=run_id, symbol=o.symbol, timeframe="1h", candle_time=o.submitted_at - HOUR,
        as_of=o.submitted_at, outcome="ordered", reason="gate APPROVE", action="BUY", inputs_hash="h",
        window_start=0, window_end=0, window_length=1, order=json.loads(o.model_dump_json()),
    )  # fmt: skip
    journal.record_decision(record, o)
    journal.flush()


def dec(x: Any) -> Decimal:
    return Decimal(str(x))
