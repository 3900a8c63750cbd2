"""Start-up of an exchange broker through the composition root: bad exchange ids, symbols and modes are one
clear error before anything is journaled; sandbox and demo requests go to the exchange's test hosts; the
reconciliation report lands in the run's config and lists balance differences; the journal's account
history is scoped to one exchange and mode (SQLite and the real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from infra.journal import JournalStore, PortfolioPoint
from infra.settings import load_settings
from infra.sqlite_journal import SqliteJournal
from tests.ccxt_rig import SYMBOL, T0, Rig, journal_order, journal_run, make_rig, order
from tests.exchange_wire import Fault
from tests.exchange_wire.orders import credentials_for
from tools.ccxt_broker_config import ExchangeCredentials
from tools.errors import ConfigError, ExchangeTemporaryError
from tools.reconcile import ReconciliationReport
from tradegraph import composition
from tradegraph.composition import open_journal
from tradegraph.execution_cli import Execution


def execution(rig: Rig, mode: str | None = None) -> Execution:
    creds = credentials_for(rig.exchange_id)
    credentials = ExchangeCredentials(api_key=SecretStr(creds["apiKey"]), secret=SecretStr(creds["secret"]))
    return Execution(mode or rig.mode, credentials)  # type: ignore[arg-type]


def open_broker(rig: Rig, journal: JournalStore, monkeypatch: pytest.MonkeyPatch, mode: str | None = None,
                **settings: Any) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    monkeypatch.setattr(composition, "exchange_client_factory", lambda: rig.factory)
    monkeypatch.setattr(composition, "broker_clock", lambda: (rig.clock.now_ms, lambda s: None))
    merged = {"exchange": rig.exchange_id, "symbols": [SYMBOL], **settings}
    return composition.open_broker(load_settings(**merged), execution(rig, mode), journal, "run-x")


@pytest.mark.parametrize(
    ("exchange_id", "settings", "message"),
    [
        ("binance", {"symbols": ["DOGE/USDT"]}, "DOGE/USDT is not listed on binance"),
        ("kraken", {"symbols": ["BTC/USD", "ETH/USDT"]}, "needs one quote currency"),
        ("coinbase", {"limits": {"allow_short": True}}, "long only"),
    ],
)
def test_bad_settings_are_one_clear_error(
    exchange_id: str, settings: dict[str, Any], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(exchange_id)
    journal = SqliteJournal(tmp_path / "j.sqlite")
    with pytest.raises(ConfigError, match=message):
        open_broker(rig, journal, monkeypatch, **settings)
    assert journal.list_decisions() == [] and journal.latest_run() is None


@pytest.mark.parametrize(("exchange_id", "mode"), [("coinbase", "sandbox"), ("kraken", "sandbox"), ("kraken", "demo")])
def test_modes_an_exchange_does_not_have_are_refused(
    exchange_id: str, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(exchange_id)
    with pytest.raises(ConfigError, match=f"{exchange_id} has no (sandbox|demo)"):
        open_broker(rig, SqliteJournal(tmp_path / "j.sqlite"), monkeypatch, mode=mode)
    assert rig.fake.responder.requests == []


def test_unknown_exchange_id() -> None:
    from tools.ccxt_broker import create_exchange

    with pytest.raises(ConfigError, match=r"unknown exchange 'krakn'.*did you mean kraken"):
        create_exchange("krakn", {})


@pytest.mark.parametrize(("mode", "host"), [("sandbox", "testnet.binance.vision"), ("demo", "demo-api.binance.com")])
def test_binance_sandbox_and_demo_go_to_their_hosts(
    mode: str, host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig("binance")
    broker, info = open_broker(rig, SqliteJournal(tmp_path / "j.sqlite"), monkeypatch, mode=mode)
    broker.submit(order(1, 0.01, rig.mark()))
    private = [r for r in rig.fake.responder.requests if r.path.startswith("/api/v3/") and "signature" in r.url]
    assert private and {r.host for r in private} == {host}
    assert info["mode"] == mode and info["exchange"] == "binance"


def test_network_down_at_start_up_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig("kraken")
    rig.fake.responder.inject(Fault.NETWORK_DOWN, times=None)
    with pytest.raises(ExchangeTemporaryError, match="kraken load_markets failed 5 times"):
        open_broker(rig, SqliteJournal(tmp_path / "j.sqlite"), monkeypatch)


def test_the_report_lists_balance_differences_with_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig("binance")
    journal = SqliteJournal(tmp_path / "j.sqlite")
    journal_run(journal, "run-1", "binance")
    journal.record_portfolio(PortfolioPoint(run_id="run-1", timestamp=T0 - 3_600_000, cash=9_000.0, equity=11_500.0,
                                            gross_exposure=0.0, drawdown=0.0, positions={SYMBOL: 0.05}))  # fmt: skip
    broker, info = open_broker(rig, journal, monkeypatch)
    report = ReconciliationReport.model_validate(info["reconciliation"])
    diffs = {b.asset: b.difference for b in report.balance_differences()}
    assert diffs == {"USDT": pytest.approx(1_000.0), SYMBOL: pytest.approx(-0.05)}
    assert not report.clean and "balance USDT: journal 9000, exchange 10000" in "\n".join(report.lines())
    assert broker.peak_equity == 11_500.0  # the drawdown breaker keeps the account's peak across restarts


def test_a_report_line_per_difference() -> None:
    report = ReconciliationReport.model_validate(
        {"exchange": "kraken", "mode": "live", "at": T0, "orders": [
            {"client_order_id": "d-1-o", "exchange_client_id": "x", "symbol": SYMBOL, "finding": "lost",
             "journal_status": "open", "action": "marked lost, not re-sent"},
            {"client_order_id": "d-2-o", "exchange_client_id": "y", "symbol": SYMBOL, "finding": "in_sync"}]}
    )  # fmt: skip
    lines = report.lines()
    assert lines[0].startswith("reconciliation with kraken (live): orders checked 2 (in sync 1, lost 1)")
    assert len(lines) == 2 and "lost: BTC/USDT d-1-o" in lines[1] and "marked lost, not re-sent" in lines[1]


# --- the journal's account history ----------------------------------------------------------------------


def fill_history(journal: JournalStore) -> None:
    from tools.trade_types import Fill, OrderStatus, Side

    journal_run(journal, "run-live", "kraken", "live")
    journal_run(journal, "run-sandbox", "kraken", "sandbox")
    journal_run(journal, "run-other", "binance", "live")
    from infra.journal import RunInfo

    journal.start_run(RunInfo(run_id="run-paper", started_at=T0, mode="paper", config={"exchange": "kraken"}))
    for n, run_id in enumerate(["run-live", "run-sandbox", "run-other", "run-paper"], start=1):
        o = order(n, 0.5, 100.0, at=T0 + n)
        o.status = OrderStatus.PARTIALLY_FILLED
        journal_order(journal, run_id, o)
        journal.record_fills([Fill(client_order_id=o.client_order_id, decision_id=o.decision_id, symbol=SYMBOL,
                                   side=Side.BUY, quantity=q, price=p, fee=0.1, timestamp=T0 + n + k, kind="entry",
                                   slippage_bps=0.0) for k, (q, p) in enumerate(((0.1, 100.0), (0.2, 103.0)))])  # fmt: skip
        for t, equity in ((T0, 1_000.0 * n), (T0 + 1, 900.0 * n)):
            journal.record_portfolio(PortfolioPoint(run_id=run_id, timestamp=t, cash=equity, equity=equity,
                                                    gross_exposure=0.0, drawdown=0.0, positions={SYMBOL: n}))  # fmt: skip
    journal.flush()


def check_history(journal: JournalStore) -> None:
    fill_history(journal)
    (row,) = journal.account_orders("kraken", "live")
    assert row["client_order_id"] == "d-0000000000000001-o" and row["status"] == "partially_filled"
    assert row["journal_filled"] == pytest.approx(0.3)
    assert row["journal_notional"] == pytest.approx(0.1 * 100 + 0.2 * 103) and row["journal_fee"] == pytest.approx(0.2)
    assert [r["client_order_id"] for r in journal.account_orders("kraken", "sandbox")] == ["d-0000000000000002-o"]
    assert journal.account_orders("kraken", "paper") == [] and journal.account_orders("coinbase", "live") == []
    point = journal.account_portfolio("binance", "live")
    assert point is not None and point["equity"] == 2_700.0 and point["peak_equity"] == 3_000.0
    assert point["positions"] == {SYMBOL: 3}
    assert journal.account_portfolio("coinbase", "live") is None


def test_account_history_in_sqlite(tmp_path: Path) -> None:
    check_history(SqliteJournal(tmp_path / "j.sqlite"))


def test_account_history_in_postgres(pg_url: str) -> None:
    journal = open_journal(pg_url)
    try:
        check_history(journal)
    finally:
        journal.close()


@pytest.mark.parametrize("exchange_id", ["binance", "coinbase", "kraken"])
def test_an_unjournaled_order_a_day_old_is_still_adopted(
    exchange_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(exchange_id)
    journal = SqliteJournal(tmp_path / "j.sqlite")
    placed = rig.broker().submit(order(7, 0.01, rig.mark()))  # never journaled
    rig.clock.advance(30 * 3_600_000)  # 42 h into the 72 h lookback: Binance lists a day at a time
    (sim,) = rig.on_exchange(placed.client_order_id)
    rig.engine.execute(sim, "0.01")
    _, info = open_broker(rig, journal, monkeypatch)
    assert [o["finding"] for o in info["reconciliation"]["orders"]] == ["adopted"]
    decision = journal.get_decision(placed.decision_id)
    assert decision is not None and decision["orders"][0]["status"] == "filled"
    assert rig.creates() == 1
