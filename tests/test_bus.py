"""The bus: versioned messages, topic routing, the in-process adapter, and RabbitMQ (the machine's server)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graph.distributed import bar_of
from infra.bus import BusError, MemoryBus, is_memory_url, topic_matches
from infra.bus_messages import (
    JOB_TOPIC,
    TOPICS,
    BusMessage,
    DecisionJob,
    MessageError,
    MessageVersionError,
    decode,
    decode_job,
    messages_from_record,
    messages_from_state,
)
from infra.journal import PortfolioPoint
from infra.pg_job_store import decode_state, encode_state
from infra.rabbitmq_bus import RabbitBus
from infra.settings import load_settings
from tests.distributed_support import amqp_available, delete_amqp
from tests.services import AMQP_URL
from tools.market import OrderBook, Snapshot
from tools.paper_broker import PaperBroker
from tools.paper_state import dump_broker, load_broker
from tools.trade_types import Fill, Order, Side
from tradegraph.cli import main
from tradegraph.composition import build_replay, open_feed, time_range


# --- messages ---------------------------------------------------------------------------------------------
def test_every_topic_has_a_versioned_model_and_unknown_versions_are_refused() -> None:
    job = DecisionJob(run_id="r", symbol="BTC/USDT", timeframe="1h", candle_time=3_600_000, after=0, expect=2)
    wire = job.to_bus()
    assert wire.topic == JOB_TOPIC and wire.mandatory and json.loads(wire.body)["v"] == 1
    assert decode_job(wire.body) == job
    assert wire.message_id == f"{job.decision_id}.job" == job.to_bus().message_id  # stable ids
    newer = json.dumps({**json.loads(wire.body), "v": 2}).encode()
    with pytest.raises(MessageVersionError, match=r"jobs.decide message version 2 is not supported \(this "
                                                  r"tradegraph reads v1\)"):  # fmt: skip
        decode_job(newer)
    with pytest.raises(MessageError, match="no version field"):
        decode_job(b'{"run_id": "r"}')
    with pytest.raises(MessageError, match="not JSON"):
        decode_job(b"\xff")
    with pytest.raises(MessageError, match=r"malformed jobs\.decide message: candle_time"):
        decode_job(json.dumps({**json.loads(wire.body), "candle_time": "noon"}).encode())
    with pytest.raises(MessageError, match="unknown topic"):
        decode("trade.nothing", wire.body)
    assert set(TOPICS) == {"market.ohlcv", "signals.tech", "trade.intent", "trade.order", "execution.report"}


class _Capture:
    def __init__(self) -> None:
        self.seen: list[tuple[Snapshot, str, list[BusMessage]]] = []
        self.fills: list[Fill] = []

    def on_decision(self, snapshot: Snapshot, state: Mapping[str, Any]) -> None:
        # built when the observer is called, as the bus publisher does (the order object changes afterwards)
        self.seen.append((snapshot, state["decision_id"], messages_from_state("r", snapshot, state)))

    def on_fills(self, fills: Any) -> None:
        self.fills.extend(fills)

    def on_portfolio(self, point: PortfolioPoint) -> None:
        pass


def test_messages_rebuilt_from_the_journal_equal_the_ones_published_live(tmp_path: Path) -> None:
    """Republishing after a crash sends byte-identical messages: checked on every decision of a real replay."""
    capture = _Capture()
    settings = load_settings(journal=tmp_path / "j.sqlite", start=date(2024, 1, 1), end=date(2024, 1, 10))
    job = build_replay(settings, run_id="r", observers=[capture])
    job.session.run(job.snapshots(), job.config)
    try:
        topics: set[str] = set()
        for snap, did, live in capture.seen:
            record = job.journal.get_decision(did)
            assert record is not None
            assert live == messages_from_record("r", snap, record)
            for m in live:
                topics.add(m.topic)
                assert decode(m.topic, m.body).to_bus() == m  # every message reads back to itself
        assert topics == {"market.ohlcv", "signals.tech", "trade.intent", "trade.order"}
        assert capture.fills
    finally:
        job.journal.close()


def test_paper_account_state_round_trips_exactly_through_json() -> None:
    """A broker reloaded from its JSON state at many points of a replay behaves exactly like the original."""
    settings = load_settings(start=date(2024, 1, 1), end=date(2024, 1, 20))
    feed = open_feed(settings)
    broker, original = PaperBroker(settings.paper), PaperBroker(settings.paper)
    copies = booked = 0
    for i, snap in enumerate(feed.snapshots(settings.symbols, "1h", *time_range(settings))):
        for b in (broker, original):
            b.on_candle(bar_of(snap))
            b.take_order_updates()
            if i % 40 == 7:  # positions, pending orders and the books they fill against, to carry over
                if i % 80 == 7:
                    p = snap.last_close
                    b.observe_book(snap.symbol, OrderBook(snap.symbol, snap.as_of, ((p * 0.999, 0.05), (p * 0.998, 5.0)),
                                                          ((p * 1.001, 0.05), (p * 1.002, 5.0))))  # fmt: skip
                b.submit(Order(client_order_id=f"o{i}", decision_id=f"d{i}", symbol=snap.symbol, side=Side.BUY,
                               quantity=0.1 if snap.symbol == "BTC/USDT" else 2.0, reference_price=snap.last_close,
                               submitted_at=snap.as_of, stop_loss=snap.last_close * 0.97,
                               take_profit=snap.last_close * 1.05))  # fmt: skip
        if i % 13 == 0:
            text = encode_state(dump_broker(broker, {"settled": {"X": i}}))
            state = decode_state(text)
            broker = load_broker(settings.paper, state)  # carry on with the copy
            assert state["settled"] == {"X": i} and encode_state(dump_broker(broker, {"settled": {"X": i}})) == text
            copies += 1
        assert broker.portfolio_view() == original.portfolio_view() and broker.equity() == original.equity()
        booked = max(booked, len(original._order_books))
    assert copies > 10 and broker.fees_paid == original.fees_paid > 0 and booked > 0
    with pytest.raises(ValueError, match="version"):
        load_broker(settings.paper, {"v": 99})


# --- topic routing and the in-process bus ------------------------------------------------------------------
def test_topic_patterns() -> None:
    assert topic_matches("#", "market.ohlcv") and topic_matches("trade.*", "trade.order")
    assert not topic_matches("trade.*", "trade.order.extra") and topic_matches("trade.#", "trade.order.extra")
    assert topic_matches("*.ohlcv", "market.ohlcv") and not topic_matches("market", "market.ohlcv")
    assert topic_matches("jobs.decide", "jobs.decide") and topic_matches("#.decide", "jobs.decide")


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4))
def test_hash_matches_any_key_and_exact_pattern_matches_itself(words: list[str]) -> None:
    key = ".".join(words)
    assert topic_matches("#", key) and topic_matches(key, key)
    assert topic_matches(".".join("*" for _ in words), key)


def test_memory_bus_routes_acks_requeues_and_dead_letters() -> None:
    bus = MemoryBus()
    bus.declare_queue("jobs", [JOB_TOPIC], dead_letter="jobs.dead")
    bus.declare_queue("trades", ["trade.*"])
    jobs = [DecisionJob(run_id="r", symbol="BTC/USDT", timeframe="1h", candle_time=i).to_bus() for i in range(3)]
    bus.publish([*jobs, BusMessage("trade.order", "o1", b"{}"), BusMessage("market.ohlcv", "m1", b"{}")])
    assert [d.message_id for d in bus.queued("trades")] == ["o1"]
    bus.consume("jobs", prefetch=1)
    first = bus.get(1.0)
    assert first is not None and not first.redelivered
    assert bus.get(0.01) is None  # prefetch 1: nothing more until the first is settled
    assert bus.nack(first, requeue=True)
    again = bus.get(1.0)
    assert again is not None and again.message_id == first.message_id and again.redelivered
    assert bus.ack(again) and not bus.ack(again)  # a settled delivery cannot be settled twice
    second = bus.get(1.0)
    assert second is not None and bus.nack(second, requeue=False)
    assert [d.message_id for d in bus.queued("jobs.dead")] == [second.message_id]
    with pytest.raises(BusError):
        bus.consume("nope", 1)
    # a journaled config keeps the URL normalized ("memory:"): still the in-process bus
    assert is_memory_url("memory://") and is_memory_url("memory:") and not is_memory_url("amqp://u:p@h/")


# --- RabbitMQ ------------------------------------------------------------------------------------------------
@pytest.fixture
def exchange() -> Iterator[str]:
    amqp_available()
    name = f"tg-test-{secrets.token_hex(4)}"
    yield name
    delete_amqp(AMQP_URL, name, [f"{name}.q", f"{name}.dead", f"{name}.taps"])


def test_rabbitmq_confirms_durable_queues_manual_acks_and_dead_letters(exchange: str) -> None:
    bus = RabbitBus(AMQP_URL, exchange)
    try:
        bus.declare_queue(f"{exchange}.q", [JOB_TOPIC], dead_letter=f"{exchange}.dead")
        jobs = [DecisionJob(run_id="r", symbol="ETH/USDT", timeframe="1h", candle_time=i).to_bus() for i in range(3)]
        bus.publish(jobs)  # returns once the broker confirmed all three
        bus.consume(f"{exchange}.q", prefetch=1)
        first = bus.get(10.0)
        assert first is not None and decode_job(first.body).candle_time == 0 and not first.redelivered
        assert bus.nack(first, requeue=True)
        again = bus.get(10.0)
        assert again is not None and again.message_id == first.message_id and again.redelivered
        assert bus.ack(again)
        second = bus.get(10.0)
        assert second is not None and bus.nack(second, requeue=False)
        third = bus.get(10.0)
        assert third is not None and bus.ack(third)
        assert bus.get(0.2) is None
    finally:
        bus.close()

    async def dead_lettered() -> list[str]:
        conn = await aio_pika.connect(AMQP_URL)
        try:
            ch = await conn.channel()
            dead = await ch.declare_queue(f"{exchange}.dead", passive=True)
            out = []
            while (msg := await dead.get(timeout=5, fail=False)) is not None:
                out.append(msg.message_id or "")
                await msg.ack()
            return out
        finally:
            await conn.close()

    assert asyncio.run(dead_lettered()) == [second.message_id]


def test_rabbitmq_unroutable_job_is_an_error_not_a_silent_drop(exchange: str) -> None:
    bus = RabbitBus(AMQP_URL, exchange)
    try:
        with pytest.raises(BusError, match="could not route"):
            bus.publish([DecisionJob(run_id="r", symbol="ETH/USDT", timeframe="1h", candle_time=0).to_bus()])
    finally:
        bus.close()


def test_unreachable_bus_is_one_error_naming_the_url_without_its_password() -> None:
    with pytest.raises(BusError) as caught:
        RabbitBus("amqp://trader:hunter2@127.0.0.1:1/", connect_timeout=2)
    assert "cannot connect to the bus at amqp://trader:***@127.0.0.1:1/" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_run_publishes_the_seed_topics_as_the_graph_runs(
    exchange: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    taps = RabbitBus(AMQP_URL, exchange)
    taps.declare_queue(f"{exchange}.taps", list(TOPICS))
    monkeypatch.setenv("TRADEGRAPH_BUS__EXCHANGE", exchange)
    journal = tmp_path / "j.sqlite"
    code = main(["run", "--start", "2024-01-01", "--end", "2024-01-05", "--journal", str(journal), "--no-progress",
                 "--bus", AMQP_URL])  # fmt: skip
    assert code == 0
    assert "bus=amqp://guest:***@" in capsys.readouterr().err
    counts: dict[str, int] = {}
    try:
        taps.consume(f"{exchange}.taps", prefetch=500)
        while (d := taps.get(2.0)) is not None:
            counts[d.topic] = counts.get(d.topic, 0) + 1
            decode(d.topic, d.body)
            taps.ack(d)
    finally:
        taps.close()
    import sqlite3

    db = sqlite3.connect(journal)
    n = db.execute("SELECT count(*) FROM decisions").fetchone()[0]
    with_ta = db.execute("SELECT count(*) FROM decisions WHERE json_extract(body, '$.aggregate.action') IS NOT NULL")
    intents = db.execute("SELECT count(*) FROM decisions WHERE action IS NOT NULL").fetchone()[0]
    orders = db.execute("SELECT count(*) FROM decisions WHERE outcome = 'ordered'").fetchone()[0]
    fills = db.execute("SELECT count(*) FROM fills").fetchone()[0]
    assert counts == {"market.ohlcv": n, "signals.tech": with_ta.fetchone()[0], "trade.intent": intents,
                      "trade.order": orders, "execution.report": fills}  # fmt: skip
    assert orders > 0 and fills > 0


def test_distributed_commands_refuse_bad_settings_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pg_url: str
) -> None:
    def run(args: list[str]) -> tuple[int, str]:
        code = main(args)
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return code, err

    code, err = run(["worker", "--bus", "memory://", "--journal", pg_url])
    assert code == 2 and "cannot connect separate processes" in err
    code, err = run(["worker", "--bus", AMQP_URL, "--journal", str(tmp_path / "j.sqlite")])
    assert code == 2 and "keep the shared paper account in PostgreSQL" in err
    code, err = run(["worker", "--bus", AMQP_URL, "--journal", "postgresql://trader:hunter2@127.0.0.1:1/x"])
    assert code == 2 and "cannot connect to the journal at postgresql://trader:***@127.0.0.1:1/x" in err
    code, err = run(["schedule", "--bus", "amqp://trader:hunter2@127.0.0.1:1/", "--journal", pg_url, "--once"])
    assert code == 2 and "cannot connect to the bus at amqp://trader:***@127.0.0.1:1/" in err
    code, err = run(["worker", "--bus", "kafka://x", "--journal", pg_url])
    assert code == 2 and "unknown bus URL" in err
    code, err = run(["schedule", "--start", "2024-01-01", "--once", "--bus", AMQP_URL, "--journal", pg_url])
    assert code == 2 and "--once is for live scheduling" in err
    code, err = run(["worker", "--max-jobs", "0"])
    assert code == 2 and "--max-jobs must be positive" in err
    for out in (err,):
        assert "hunter2" not in out


def test_a_live_run_publishes_its_decisions_too(
    exchange: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`run --feed ccxt --bus ...` (ccxt's binance class behind the wire-level fake, on a manual clock)."""
    import tradegraph.composition as composition
    from tests.exchange_wire import FakeExchange, ManualClock

    clock = ManualClock(1723161600000 + 2500)
    fake = FakeExchange("binance", clock, websocket=False)
    monkeypatch.setattr(composition, "live_clock", lambda: clock)
    monkeypatch.setattr(composition, "exchange_factory", lambda: fake.factory)
    monkeypatch.setenv("TRADEGRAPH_BUS__EXCHANGE", exchange)
    taps = RabbitBus(AMQP_URL, exchange)
    taps.declare_queue(f"{exchange}.taps", ["market.ohlcv"])
    try:
        code = main(["run", "--feed", "ccxt", "--exchange", "binance", "--symbols", "BTC/USDT,ETH/USDT",
                     "--no-websocket", "--journal", str(tmp_path / "live.sqlite"), "--bus", AMQP_URL])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        taps.consume(f"{exchange}.taps", prefetch=10)
        got = []
        while (d := taps.get(2.0)) is not None:
            got.append(decode(d.topic, d.body))
            taps.ack(d)
    finally:
        taps.close()
        fake.close()
    assert sorted(m.symbol for m in got) == ["BTC/USDT", "ETH/USDT"]  # type: ignore[attr-defined]
    assert {m.candle_time for m in got} == {1723161600000 - 3_600_000}  # type: ignore[attr-defined]
