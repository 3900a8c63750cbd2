"""The job store of distributed runs on the machine's PostgreSQL: the account lock, settlement once per key,
duplicate decisions that write nothing, and recovery from a lost connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date

import pytest

from graph.distributed import SharedAccount, settle
from infra.job_store import StoreUnavailable, UnknownRun
from infra.journal import DecisionRecord, decision_id
from infra.pg_job_store import PgJobStore, libpq_url
from infra.settings import Settings, load_settings
from tests.distributed_support import pg_connect, wait_until
from tools.paper_broker import Bar
from tools.risk_gate import MarketContext, RiskLimits, evaluate_gate
from tools.trade_types import GateReason, Order, OrderProposal, Side
from tradegraph.composition import open_job_store, start_distributed_run

T0 = 1_704_067_200_000
HOUR = 3_600_000


@pytest.fixture
def settings(pg_url: str) -> Settings:
    return load_settings(journal=pg_url, start=date(2024, 1, 1), end=date(2024, 1, 1))


@pytest.fixture
def store(settings: Settings) -> Iterator[PgJobStore]:
    s = open_job_store(settings, "test-store")
    start_distributed_run(settings, s, "acct", "paper-distributed")
    yield s
    s.close()


def bar(symbol: str, t: int, price: float) -> Bar:
    return Bar(symbol, t, t + HOUR, price, price * 1.01, price * 0.99, price, 1000.0)


def record(symbol: str, t: int, outcome: str = "ordered") -> DecisionRecord:
    return DecisionRecord(id=decision_id("acct", symbol, "1h", t), run_id="acct", symbol=symbol, timeframe="1h",
                          candle_time=t, as_of=t + HOUR, outcome=outcome, reason="test", action=None, inputs_hash="h",
                          window_start=t, window_end=t, window_length=1)  # fmt: skip


def entry(symbol: str, t: int, qty: float, price: float) -> Order:
    did = decision_id("acct", symbol, "1h", t)
    return Order(client_order_id=f"{did}-o", decision_id=did, symbol=symbol, side=Side.BUY, quantity=qty,
                 reference_price=price, submitted_at=t + HOUR)  # fmt: skip


def test_libpq_url_keeps_libpq_parameters_and_turns_the_rest_into_settings() -> None:
    url, settings = libpq_url("postgresql://u:p@h:5/db?sslmode=disable&search_path=s1&application_name=a")
    assert url == "postgresql://u:p@h:5/db?sslmode=disable&application_name=a" and settings == {"search_path": "s1"}


def test_settlement_happens_once_per_key_and_a_redelivery_gets_the_same_fills(
    store: PgJobStore, settings: Settings
) -> None:
    cfg = settings.paper
    status, state = store.begin_job("acct", decision_id("acct", "BTC/USDT", "1h", T0), None, 0, True)
    assert state is not None and store.locked and not status.decided
    settled = settle(store, "acct", state, bar("BTC/USDT", T0, 100.0), cfg, None)
    assert settled.fresh and not store.locked
    account = SharedAccount(store, "acct", cfg)
    account.lock()
    account.submit(entry("BTC/USDT", T0, 10.0, 100.0))
    assert store.commit_decision(record("BTC/USDT", T0), entry("BTC/USDT", T0, 10.0, 100.0), account.locked_state())
    t1 = T0 + HOUR
    did1 = decision_id("acct", "BTC/USDT", "1h", t1)
    _, state = store.begin_job("acct", did1, T0, 1, True)
    assert state is not None
    first = settle(store, "acct", state, bar("BTC/USDT", t1, 101.0), cfg, T0)
    assert first.fresh and [f.quantity for f in first.fills] == [10.0]
    _, state = store.begin_job("acct", did1, T0, 1, True)  # the job delivered again
    assert state is not None
    again = settle(store, "acct", state, bar("BTC/USDT", t1, 101.0), cfg, T0)
    assert not again.fresh and again.fills == first.fills and not store.locked
    assert again.broker.portfolio_view() == first.broker.portfolio_view()
    with pg_connect(settings.journal) as c:
        assert c.execute("SELECT count(*) FROM fills").fetchone() == (1,)
        assert c.execute("SELECT timestamp FROM portfolio_snapshots").fetchall() == [(T0,)]  # the point of T0
    status, none = store.begin_job("acct", did1, T0, 2, True)  # the previous candle is not complete
    assert none is None and status.previous_done == 1 and not status.decided and not store.locked


def test_a_duplicate_decision_writes_nothing_not_even_its_order(store: PgJobStore, settings: Settings) -> None:
    account = SharedAccount(store, "acct", settings.paper)
    order = entry("ETH/USDT", T0, 1.0, 2000.0)
    account.lock()
    account.submit(order)
    assert store.commit_decision(record("ETH/USDT", T0), order, account.locked_state())
    before = store.account_state("acct")
    account.lock()  # a second delivery decided it again, differently
    bigger = entry("ETH/USDT", T0, 5.0, 2000.0).model_copy(update={"client_order_id": "other"})
    account.submit(bigger)
    assert not store.commit_decision(record("ETH/USDT", T0), bigger, account.locked_state())
    assert store.account_state("acct") == before and not store.locked
    with pg_connect(settings.journal) as c:
        assert c.execute("SELECT client_order_id, quantity FROM orders").fetchall() == [(order.client_order_id, 1.0)]
    status = store.job_status("acct", record("ETH/USDT", T0).id, None)
    assert status.decided and not status.published
    with pytest.raises(UnknownRun):
        store.lock_account("nobody")


def test_the_account_lock_makes_the_second_gate_see_the_first_reservation(
    store: PgJobStore, settings: Settings
) -> None:
    """Two workers gate entries for different symbols at the same moment with room for one position: the second
    blocks on the account row until the first commits, then sees its pending order and is denied."""
    limits = RiskLimits(allowed_symbols=frozenset({"BTC/USDT", "ETH/USDT"}), max_open_positions=1)
    market = MarketContext(candle_close_time=T0 + HOUR, as_of=T0 + HOUR, timeframe_ms=HOUR, atr_pct=0.01,
                           last_range_pct=0.01)  # fmt: skip
    other = open_job_store(settings, "test-second-worker")
    first, second = SharedAccount(store, "acct", settings.paper), SharedAccount(other, "acct", settings.paper)
    verdict = evaluate_gate(OrderProposal(symbol="BTC/USDT", side=Side.BUY, quantity=10, reference_price=100.0),
                            first.lock(), market, limits)  # fmt: skip
    assert verdict.approved
    seen: dict[str, object] = {}

    def second_worker() -> None:
        view = second.lock()  # blocks while the first holds the row
        seen["verdict"] = evaluate_gate(
            OrderProposal(symbol="ETH/USDT", side=Side.BUY, quantity=1, reference_price=2000.0), view, market, limits
        )
        other.commit_decision(record("ETH/USDT", T0, "denied"), None, second.locked_state())

    thread = threading.Thread(target=second_worker)
    thread.start()
    try:
        with pg_connect(settings.journal) as c:  # the second worker is waiting for the row lock, not done
            wait_until("the second worker to wait for the account lock", lambda: c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'test-second-worker' "
                "AND wait_event_type = 'Lock'").fetchone() == (1,))  # fmt: skip
        assert "verdict" not in seen
        first.submit(entry("BTC/USDT", T0, 10, 100.0))
        assert store.commit_decision(record("BTC/USDT", T0), entry("BTC/USDT", T0, 10, 100.0), first.locked_state())
        thread.join(60)
    finally:
        other.close()
    denied = seen["verdict"]
    assert not denied.approved and denied.reasons == [GateReason.MAX_OPEN_POSITIONS]  # type: ignore[attr-defined]


def test_a_lost_connection_is_reported_then_replaced(store: PgJobStore, settings: Settings) -> None:
    with pg_connect(settings.journal) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'test-store'")
    with pytest.raises(StoreUnavailable, match="unavailable"):
        store.count_decisions("acct")
    assert store.count_decisions("acct") == 0 and store.reconnects == 1
    # a lock held when the connection dies is released by the server; the next lock works
    store.lock_account("acct")
    with pg_connect(settings.journal) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'test-store'")
    with pytest.raises(StoreUnavailable):
        store.commit_decision(record("BTC/USDT", T0), None, None)
    assert not store.locked
    assert store.lock_account("acct")["v"] == 1
    store.rollback()


def test_a_run_resumes_only_with_its_own_strategy_settings(store: PgJobStore, settings: Settings) -> None:
    from tools.errors import ConfigError

    row = start_distributed_run(settings, store, "acct", "paper-distributed")  # same settings: resumes
    assert row["run_id"] == "acct" and row["config"]["symbols"] == settings.symbols
    changed = settings.model_copy(update={"limits": settings.limits.model_copy(update={"max_open_positions": 1})})
    with pytest.raises(ConfigError, match="run acct already exists with other settings \\(limits\\)"):
        start_distributed_run(changed, store, "acct", "paper-distributed")
