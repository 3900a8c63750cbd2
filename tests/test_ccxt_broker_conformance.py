"""The conformance suite of the ccxt broker, run against every supported exchange id at the wire level.

Each test runs ccxt's real binance / coinbase / kraken class against the fake exchange's signed private
endpoints: place, partial fill, cancel, order not found, timeout then retry without a duplicate, rate-limit
burst with backoff on the fake clock, and a restart with an order in flight (reconciled, nothing duplicated,
nothing lost). "No duplicate" is counted on the exchange side: create requests that reached it, and orders
it holds per client order id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.sqlite_journal import SqliteJournal
from tests.ccxt_rig import SYMBOL, T0, Rig, journal_order, journal_run, make_rig, order
from tests.exchange_wire import EXCHANGES, Fault
from tests.exchange_wire.orders import CREATE_PATH, credentials_for
from tools.ccxt_broker import CcxtBrokerConfig
from tools.trade_types import OrderStatus, Side
from tradegraph import composition
from tradegraph.execution_cli import Execution


@pytest.fixture(params=EXCHANGES)
def rig(request: pytest.FixtureRequest) -> Rig:
    return make_rig(request.param, CcxtBrokerConfig(order_ttl_candles=2))


def sent_client_id(rig: Rig) -> str | None:
    """The client order id of the last create request, read from the wire in the exchange's own field."""
    create = [r for r in rig.fake.responder.requests if r.path == CREATE_PATH[rig.exchange_id] and r.method == "POST"]
    field = {"binance": "newClientOrderId", "coinbase": "client_order_id", "kraken": "cl_ord_id"}[rig.exchange_id]
    return create[-1].param(field)


def test_place_sends_our_client_id_and_a_fitted_order(rig: Rig) -> None:
    broker = rig.broker()
    price = rig.mark()
    placed = broker.submit(order(1, 0.0123456789, price))
    assert placed.status is OrderStatus.OPEN and placed.exchange_order_id
    assert sent_client_id(rig) == rig.ids.encode(placed.client_order_id)
    (sim,) = rig.on_exchange(placed.client_order_id)
    assert float(sim.amount) == placed.quantity <= 0.0123456789  # truncated to the step, never enlarged
    assert sim.price is not None and float(sim.price) <= price * (1 + 20 / 10_000)  # buy limit rounded down
    assert "amount 0.0123456789 ->" in placed.note
    view = broker.portfolio_view()
    assert view.pending == {SYMBOL: pytest.approx(placed.quantity)}
    assert view.available_cash == pytest.approx(10_000 - placed.quantity * float(sim.price), rel=0.01)
    assert rig.creates() == 1


def test_partial_then_full_fill_with_slippage_against_the_decision_price(rig: Rig) -> None:
    broker = rig.broker()
    ref = rig.mark()
    placed = broker.submit(order(2, 0.01, ref, stop=ref * 0.9, take=ref * 1.2))
    (sim,) = rig.on_exchange(placed.client_order_id)
    rig.engine.execute(sim, "0.004", price=round(ref * 1.001, 1))
    fills = rig.next_candle(broker)
    first_at = fills[0].timestamp
    assert [f.quantity for f in fills] == [pytest.approx(0.004)]
    assert fills[0].slippage_bps == pytest.approx((round(ref * 1.001, 1) / ref - 1) * 10_000, abs=1e-6)
    assert fills[0].fee > 0 and fills[0].client_order_id == placed.client_order_id
    assert placed.status is OrderStatus.PARTIALLY_FILLED
    assert [o.status for o in broker.take_order_updates()] == [OrderStatus.PARTIALLY_FILLED]
    rig.engine.execute(sim, "0.006", price=round(ref * 0.999, 1))
    fills = rig.next_candle(broker)
    assert [f.quantity for f in fills] == [pytest.approx(0.006)]
    assert fills[0].timestamp > first_at  # the journal keys fills by (order, time, kind)
    assert fills[0].slippage_bps < 0  # filled better than the decision price
    assert placed.status is OrderStatus.FILLED and placed.filled_quantity == pytest.approx(0.01)
    view = broker.portfolio_view()
    held = view.positions[SYMBOL]
    assert held.quantity == pytest.approx(0.01, rel=0.002)  # Binance takes its fee out of the bought BTC
    assert held.stop_loss == pytest.approx(ref * 0.9) and not view.pending
    assert view.cash < 10_000 - 0.01 * ref * 0.99


def test_an_unfilled_remainder_is_canceled_after_its_time_to_live(rig: Rig) -> None:
    broker = rig.broker()
    placed = broker.submit(order(3, 0.01, rig.mark()))
    (sim,) = rig.on_exchange(placed.client_order_id)
    rig.engine.execute(sim, "0.003")
    rig.next_candle(broker)
    assert sim.status == "open"
    rig.next_candle(broker)  # the second candle: time-to-live reached
    assert sim.status == "canceled"
    assert placed.status is OrderStatus.CANCELED and placed.filled_quantity == pytest.approx(0.003)
    assert rig.engine.used.get(rig.engine.rules[sim.rules.market_id].quote) == 0  # the hold is released
    assert broker.portfolio_view().pending == {}


def test_an_order_the_exchange_no_longer_knows_is_marked_lost_not_resent(rig: Rig) -> None:
    broker = rig.broker()
    placed = broker.submit(order(4, 0.01, rig.mark()))
    (sim,) = rig.on_exchange(placed.client_order_id)
    rig.engine.forget(sim)
    assert rig.next_candle(broker) == []
    assert placed.status is OrderStatus.LOST and "no longer knows" in placed.note
    assert rig.creates() == 1 and not rig.on_exchange(placed.client_order_id)


def test_a_lost_create_response_is_found_by_client_id_not_sent_again(rig: Rig) -> None:
    broker = rig.broker()
    rig.engine.lose_create_responses(1)  # the exchange takes the order; the answer times out on the way back
    placed = broker.submit(order(5, 0.01, rig.mark()))
    assert placed.status is OrderStatus.OPEN and placed.exchange_order_id
    assert rig.creates() == 1 and len(rig.on_exchange(placed.client_order_id)) == 1
    assert rig.clock.sleeps  # it backed off before looking the order up


def test_a_timeout_before_the_exchange_is_looked_up_then_sent_once_more(rig: Rig) -> None:
    broker = rig.broker()
    rig.fake.responder.inject(Fault.TIMEOUT, times=1, path=CREATE_PATH[rig.exchange_id], method="POST")
    placed = broker.submit(order(6, 0.01, rig.mark()))
    assert placed.status is OrderStatus.OPEN
    assert rig.creates() == 2 and len(rig.on_exchange(placed.client_order_id)) == 1
    resubmitted = broker.submit(order(6, 0.01, rig.mark()))  # the same decision again: the same order
    assert resubmitted is placed and rig.creates() == 2


def test_a_rate_limit_burst_is_retried_with_growing_backoff(rig: Rig) -> None:
    broker = rig.broker()
    rig.fake.responder.inject(Fault.RATE_LIMIT, times=3, path=CREATE_PATH[rig.exchange_id], method="POST")
    before = rig.clock.now_ms()
    placed = broker.submit(order(7, 0.01, rig.mark()))
    assert placed.status is OrderStatus.OPEN
    assert rig.creates() == 4 and len(rig.on_exchange(placed.client_order_id)) == 1
    waits = broker.venue.waits
    assert len(waits) == 3 and waits[0] < waits[1] < waits[2]
    assert waits[0] >= 1.0  # a rate limit waits longer than a plain retry (and at least Binance's Retry-After)
    assert rig.clock.now_ms() - before == round(sum(waits) * 1000)  # slept on the fake clock, not in real time


def test_network_down_leaves_the_order_pending_then_rejected_never_duplicated(rig: Rig) -> None:
    broker = rig.broker()
    rig.fake.responder.inject(Fault.NETWORK_DOWN, times=None)
    placed = broker.submit(order(8, 0.01, rig.mark()))
    assert placed.status is OrderStatus.PENDING and "not confirmed" in placed.note
    assert broker.portfolio_view().pending == {SYMBOL: pytest.approx(0.01)}  # the gate still counts it
    rig.next_candle(broker)  # still down: kept, polled again later
    assert placed.status is OrderStatus.PENDING
    rig.fake.responder.clear_faults()
    rig.next_candle(broker)
    assert placed.status is OrderStatus.REJECTED and "has no order" in placed.note
    assert not rig.on_exchange(placed.client_order_id) and not broker.portfolio_view().pending


def test_permanent_errors_are_not_retried(rig: Rig) -> None:
    broker = rig.broker()
    placed = broker.submit(order(9, 1.0, rig.mark()))  # about 60,000 USDT with 10,000 in the account
    assert placed.status is OrderStatus.REJECTED
    assert rig.creates() == 1 and not broker.venue.waits
    assert "refused by" in placed.note


def test_an_order_below_the_minimum_is_not_sent(rig: Rig) -> None:
    broker = rig.broker()
    placed = broker.submit(order(10, 0.000004, rig.mark()))  # about 0.25 USDT
    assert placed.status is OrderStatus.REJECTED and placed.note.startswith("not sent:")
    assert rig.creates() == 0


def test_stop_loss_sells_the_position_at_market(rig: Rig) -> None:
    rig.engine.matching = "book"
    broker = rig.broker()
    ref = rig.mark()
    placed = broker.submit(order(11, 0.01, ref, stop=ref * 0.9, take=ref * 1.5))
    rig.next_candle(broker)
    assert placed.status is OrderStatus.FILLED
    held = broker.portfolio_view().positions[SYMBOL].quantity
    fills = rig.next_candle(broker, low=ref * 0.89)
    exits = [f for f in fills if f.kind == "stop_loss"]
    assert exits and exits[0].side is Side.SELL and sum(f.quantity for f in exits) == pytest.approx(held, rel=1e-6)
    assert SYMBOL not in broker.portfolio_view().positions
    assert broker.portfolio_view().last_stop_out == {SYMBOL: rig.clock.now_ms() // 3_600_000 * 3_600_000}


# --- restart with an order in flight --------------------------------------------------------------------


def restart(rig: Rig, journal: SqliteJournal, monkeypatch: pytest.MonkeyPatch, run_id: str = "run-2") -> tuple:  # type: ignore[type-arg]
    """A new process: a new broker through the composition root, reconciling against the same journal."""
    monkeypatch.setattr(composition, "exchange_client_factory", lambda: rig.factory)
    monkeypatch.setattr(composition, "broker_clock", lambda: (rig.clock.now_ms, lambda s: None))
    from pydantic import SecretStr

    from infra.settings import load_settings
    from tools.ccxt_broker_config import ExchangeCredentials

    creds = credentials_for(rig.exchange_id)
    credentials = ExchangeCredentials(api_key=SecretStr(creds["apiKey"]), secret=SecretStr(creds["secret"]))
    execution = Execution(rig.mode, credentials)  # type: ignore[arg-type]
    settings = load_settings(exchange=rig.exchange_id, symbols=[SYMBOL], live=rig.cfg.model_dump())
    broker, info = composition.open_broker(settings, execution, journal, run_id)
    return broker, info


def test_restart_reconciles_an_order_filled_while_away(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite")
    journal_run(journal, "run-1", rig.exchange_id, rig.mode)
    first = rig.broker()
    placed = first.submit(order(12, 0.01, rig.mark()))
    journal_order(journal, "run-1", placed)
    (sim,) = rig.on_exchange(placed.client_order_id)
    rig.engine.execute(sim, "0.01")  # filled while the process is down
    broker, info = restart(rig, journal, monkeypatch)
    finding = info["reconciliation"]["orders"][0]
    assert finding["finding"] == "filled_while_away" and finding["client_order_id"] == placed.client_order_id
    fills = journal.get_decision(placed.decision_id)["fills"]  # type: ignore[index]
    assert [f["quantity"] for f in fills] == [pytest.approx(0.01)]
    row = journal.get_decision(placed.decision_id)["orders"][0]  # type: ignore[index]
    assert row["status"] == "filled"
    assert rig.creates() == 1 and len(rig.on_exchange(placed.client_order_id)) == 1
    assert broker.portfolio_view().positions[SYMBOL].quantity == pytest.approx(0.01, rel=0.002)
    _, info = restart(rig, journal, monkeypatch, "run-3")  # a second restart finds nothing new
    assert info["reconciliation"]["orders"] == [] and rig.creates() == 1


def test_restart_tracks_an_order_still_open_and_cancels_it_later(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite")
    journal_run(journal, "run-1", rig.exchange_id, rig.mode)
    placed = rig.broker().submit(order(13, 0.01, rig.mark()))
    journal_order(journal, "run-1", placed)
    (sim,) = rig.on_exchange(placed.client_order_id)
    rig.engine.execute(sim, "0.002")
    broker, info = restart(rig, journal, monkeypatch)
    assert info["reconciliation"]["orders"][0]["finding"] == "filled_while_away"
    assert broker.portfolio_view().pending == {SYMBOL: pytest.approx(0.008)}
    rig.next_candle(broker)
    rig.next_candle(broker)
    assert sim.status == "canceled" and rig.creates() == 1


def test_restart_adopts_an_order_the_journal_never_got(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite")
    journal_run(journal, "run-1", rig.exchange_id, rig.mode)
    placed = rig.broker().submit(order(14, 0.01, rig.mark()))  # sent; the process dies before journaling it
    (sim,) = rig.on_exchange(placed.client_order_id)
    rig.engine.execute(sim, "0.004")
    # an order of someone else on the same account: not ours, never touched
    rig.engine.place(sim.rules, "buy", "limit", sim.amount, sim.price, "someone-else-1")
    broker, info = restart(rig, journal, monkeypatch)
    (finding,) = info["reconciliation"]["orders"]
    assert finding["finding"] == "adopted" and finding["client_order_id"] == placed.client_order_id
    decision = journal.get_decision(placed.decision_id)
    assert decision is not None and decision["outcome"] == "adopted"
    assert decision["orders"][0]["status"] == "partially_filled"
    assert [f["quantity"] for f in decision["fills"]] == [pytest.approx(0.004)]
    assert broker.portfolio_view().pending == {SYMBOL: pytest.approx(0.006)}  # tracked: only ours
    assert rig.creates() == 1


def test_restart_marks_a_journal_order_the_exchange_never_got_as_lost(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite")
    journal_run(journal, "run-1", rig.exchange_id, rig.mode)
    first = rig.broker()
    rig.fake.responder.inject(Fault.NETWORK_DOWN, times=None)
    placed = first.submit(order(15, 0.01, rig.mark()))
    journal_order(journal, "run-1", placed)  # journaled as pending: the create was never confirmed
    rig.fake.responder.clear_faults()
    creates = rig.creates()
    broker, info = restart(rig, journal, monkeypatch)
    (finding,) = info["reconciliation"]["orders"]
    assert finding["finding"] == "lost" and finding["action"] == "marked lost, not re-sent"
    assert journal.get_decision(placed.decision_id)["orders"][0]["status"] == "lost"  # type: ignore[index]
    assert rig.creates() == creates and not rig.on_exchange(placed.client_order_id)
    assert broker.portfolio_view().pending == {}


def test_restart_while_the_exchange_is_down_verifies_later(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite")
    journal_run(journal, "run-1", rig.exchange_id, rig.mode)
    kept = rig.broker().submit(order(16, 0.01, rig.mark()))
    journal_order(journal, "run-1", kept)
    gone = rig.broker().submit(order(17, 0.01, rig.mark(), at=T0 + 1))
    journal_order(journal, "run-1", gone)
    rig.engine.forget(rig.on_exchange(gone.client_order_id)[0])
    # at start-up the exchange answers for markets and balances but not for orders
    order_paths = {"binance": r"/api/v3/(order|allOrders|openOrders)",
                   "coinbase": r"/api/v3/brokerage/orders/historical/.*",
                   "kraken": r"/0/private/(OpenOrders|ClosedOrders)"}  # fmt: skip
    rig.fake.responder.inject(Fault.NETWORK_DOWN, times=None, path=order_paths[rig.exchange_id])
    broker, info = restart(rig, journal, monkeypatch)
    rig.fake.responder.clear_faults()
    findings = {o["client_order_id"]: o["finding"] for o in info["reconciliation"]["orders"]}
    assert findings == {kept.client_order_id: "unverified", gone.client_order_id: "unverified"}
    assert broker.portfolio_view().pending == {SYMBOL: pytest.approx(0.02)}  # both still count for the gate
    rig.engine.execute(rig.on_exchange(kept.client_order_id)[0], "0.01")
    fills = rig.next_candle(broker)  # the exchange answers again: one order found and filled, one unknown
    assert [(f.client_order_id, f.quantity) for f in fills] == [(kept.client_order_id, pytest.approx(0.01))]
    statuses = {o.client_order_id: o.status for o in broker.take_order_updates()}
    assert statuses == {kept.client_order_id: OrderStatus.FILLED, gone.client_order_id: OrderStatus.LOST}
    assert rig.creates() == 2 and len(rig.on_exchange(kept.client_order_id)) == 1
    assert not rig.on_exchange(gone.client_order_id)
