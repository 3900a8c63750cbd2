"""The ccxt broker inside the whole decision graph: recorded snapshots through the real graph and runner,
orders on a wire-level fake exchange whose resting limit orders fill when a recorded candle trades through
them, the journal in SQLite. The session is stopped halfway and a new process (a new broker through the
composition root) reconciles and carries on: every order reaches the exchange once, every fill the exchange
made is in the journal, and the journal's order statuses match the exchange's."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from graph.builder import GraphDeps, build_graph
from graph.runner import ReplaySession, RunSummary
from infra.settings import Settings, load_settings, redacted_config
from infra.sqlite_journal import SqliteJournal
from tests.ccxt_rig import Rig, sleeper
from tests.exchange_wire import EXCHANGES, HOUR, FakeExchange, ManualClock
from tests.exchange_wire.orders import CREATE_PATH, attach_orders, credentials_for
from tools.ccxt_broker_config import ExchangeCredentials
from tools.timeframes import day_start_ms
from tradegraph import composition
from tradegraph.execution_cli import Execution

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
STATUS = {"filled": "filled", "canceled": "canceled", "expired": "expired"}


def run_half(
    rig: Rig,
    settings: Settings,
    journal: SqliteJournal,
    run_id: str,
    monkeypatch: pytest.MonkeyPatch,
    quiet_from: int | None = None,
) -> tuple[RunSummary, dict[str, Any]]:
    """One process's session. From ``quiet_from`` on, the exchange fills nothing (a quiet market): orders
    placed then are still open when the session ends, and may fill after it, "while the process is away"."""
    monkeypatch.setattr(composition, "exchange_client_factory", lambda: rig.factory)
    monkeypatch.setattr(composition, "broker_clock", lambda: (rig.clock.now_ms, sleeper(rig.clock)))
    # every fake serves Binance's recorded candles (see tests/exchange_wire): the snapshots are the same
    feed = composition.open_feed(settings.model_copy(update={"exchange": "binance"}))
    start, end = composition.time_range(settings)
    rig.clock.set(max(rig.clock.now_ms(), (start or 0) + HOUR))
    creds = credentials_for(rig.exchange_id)
    execution = Execution(
        rig.mode,  # type: ignore[arg-type]
        ExchangeCredentials(api_key=SecretStr(creds["apiKey"]), secret=SecretStr(creds["secret"])),
    )
    broker, info = composition.open_broker(settings, execution, journal, run_id)
    limits = settings.limits.model_copy(update={"allowed_symbols": frozenset(settings.symbols)})
    deps = GraphDeps(settings.ta, composition.make_reasoner(settings), settings.risk, limits, broker, journal, run_id)
    session = ReplaySession(build_graph(deps), broker, journal, run_id)
    config = {**redacted_config(settings), "execution": info}

    rig.engine.matching = "candle"

    def step(snap: Any) -> None:  # the market moves on: the next candle closes on the exchange
        if quiet_from is not None and snap.candle_time >= quiet_from:
            rig.engine.matching = "manual"
        rig.clock.set(max(rig.clock.now_ms(), snap.candle_time + 2 * HOUR))

    summary = session.run(feed.snapshots(settings.symbols, settings.timeframe, start, end), config, on_step=step)
    return summary, info


@pytest.fixture(params=EXCHANGES)
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    exchange_id = request.param
    clock = ManualClock(day_start_ms(load_settings(start="2024-03-01").start))  # type: ignore[arg-type]
    fake = FakeExchange(exchange_id, clock)
    engine = attach_orders(fake, {"USDT": 100_000})
    engine.matching = "candle"
    import ccxt

    mode = "sandbox" if getattr(ccxt, exchange_id)().urls.get("test") else "live"
    yield Rig(exchange_id, clock, fake, engine, mode=mode)
    fake.close()


def test_a_session_stopped_and_resumed_sends_each_order_once_and_loses_no_fill(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite")
    common: dict[str, Any] = {"exchange": rig.exchange_id, "symbols": SYMBOLS, "journal": str(tmp_path / "j.sqlite"),
                              "live": {"order_ttl_candles": 24}}  # fmt: skip
    quiet = day_start_ms(load_settings(start="2024-03-04").start) + 6 * HOUR  # type: ignore[arg-type]
    first, _ = run_half(rig, load_settings(start="2024-03-01", end="2024-03-04", **common), journal, "run-1",
                        monkeypatch, quiet_from=quiet)  # fmt: skip
    in_flight = [o.client_id for o in rig.engine.open_orders()]
    assert in_flight  # the first process stops with orders open on the exchange
    rig.engine.matching = "candle"
    rig.clock.advance(8 * HOUR)  # the second process starts later; the orders left open may fill meanwhile
    second, info = run_half(rig, load_settings(start="2024-03-05", end="2024-03-08", **common), journal, "run-2",
                            monkeypatch)  # fmt: skip
    findings = {o["exchange_client_id"]: o["finding"] for o in info["reconciliation"]["orders"]}
    assert set(in_flight) <= set(findings)
    assert {findings[c] for c in in_flight} <= {"filled_while_away", "changed_while_away", "still_open"}, findings
    assert "filled_while_away" in findings.values()
    assert first.orders + second.orders >= 4 and first.fills + second.fills >= 2
    ours = [o for o in rig.engine.orders if rig.ids.decode(o.client_id)]
    assert len(ours) == len(rig.engine.orders)  # nothing but our orders
    client_ids = [o.client_id for o in ours]
    assert len(client_ids) == len(set(client_ids))  # each order reached the exchange once
    assert rig.fake.responder.count(CREATE_PATH[rig.exchange_id], "POST") == len(ours)
    for sim in ours:
        cid = rig.ids.decode(sim.client_id)
        assert cid is not None
        decision = journal.get_decision(cid.rsplit("-", 1)[0])
        assert decision is not None, f"{cid} is on the exchange but not in the journal"
        (row,) = [r for r in decision["orders"] if r["client_order_id"] == cid]
        journaled = sum(Decimal(str(f["quantity"])) for f in decision["fills"] if f["client_order_id"] == cid)
        if sim.status == "open":
            assert row["status"] in ("open", "partially_filled")
        else:
            assert row["status"] == STATUS[sim.status], cid
            assert float(journaled) == pytest.approx(float(sim.filled), rel=1e-9, abs=1e-12), cid
    assert "lost" not in findings.values()
    fills = journal.run_fills("run-1") + journal.run_fills("run-2")
    limit_fills = [f["slippage_bps"] for f in fills if f["kind"] in ("entry", "exit")]
    assert limit_fills and all(s <= 20 + 1e-6 for s in limit_fills)  # a limit order never slips past its offset
