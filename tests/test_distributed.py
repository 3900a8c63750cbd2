"""Distributed runs against the machine's real PostgreSQL and RabbitMQ: scheduler, workers, exactly-once keys.

What is promised against the single-process replay (see graph.distributed): with one worker, or with one
symbol, every decision, order, fill and portfolio point is identical; with several workers and symbols the
keys (each decided once) and every decision's market evidence are identical and no limit is broken.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from graph.worker import Worker
from infra.bus import MemoryBus
from infra.bus_messages import TOPICS, DecisionJob, decode_job
from infra.distributed_metrics import DistributedMetrics
from infra.job_scheduler import JobScheduler
from tests.distributed_support import (
    Stack,
    WorkerProcess,
    amqp_available,
    check_against_reference,
    check_limits,
    day,
    decided,
    decision_rows,
    fills_of,
    normalized,
    orders_of,
    pg_connect,
    queue_depth,
    reference_run,
    run_threads_until_decided,
    schedule_replay,
    thread_workers,
    wait_until,
)
from tools.timeframes import day_start_ms
from tradegraph.cli import main
from tradegraph.composition import (
    build_worker,
    distributed_bus,
    open_job_store,
    run_contexts,
    start_distributed_run,
)

HOUR = 3_600_000


@pytest.fixture
def stack(pg_url: str) -> Iterator[Stack]:
    amqp_available()
    s = Stack(pg_url)
    yield s
    s.cleanup()


def points(pg_url: str, run_id: str) -> list[tuple[Any, ...]]:
    with pg_connect(pg_url) as c:
        return [tuple(r) for r in c.execute(
            "SELECT timestamp, cash, equity, gross_exposure, drawdown, positions::text FROM portfolio_snapshots "
            "WHERE run_id = %s ORDER BY timestamp", (run_id,)).fetchall()]  # fmt: skip


def test_one_worker_reproduces_the_single_process_replay_exactly(stack: Stack) -> None:
    settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-04"))
    total = schedule_replay(settings, "dist")
    assert total == 192
    [tally] = run_threads_until_decided(settings, "dist", total, n=1)
    assert tally.decided == total and tally.duplicates == 0
    reference_run(settings, "ref")
    checked = check_against_reference(stack.pg_url, "dist", "ref", total)
    assert normalized(checked["rows"]) == normalized(checked["ref"])
    assert [o["status"] for o in checked["orders"]] == [o["status"] for o in orders_of(stack.pg_url, "ref")]

    def strip(fills: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(tuple(v for k, v in f.items() if k != "client_order_id") for f in fills)

    ours, theirs = strip(fills_of(stack.pg_url, "dist")), strip(fills_of(stack.pg_url, "ref"))
    assert len(ours) > 0 and ours == theirs
    assert any(r["outcome"] == "ordered" for r in checked["rows"])
    # the scheduler's finish writes the last point; then every portfolio point matches too
    store = open_job_store(settings, "test")
    try:
        from graph.distributed_replay import finish_replay

        summary = finish_replay(store, "dist", settings.paper, checked["rows"][-1]["candle_time"], 1.0)
    finally:
        store.close()
    assert points(stack.pg_url, "dist") == points(stack.pg_url, "ref")
    with pg_connect(stack.pg_url) as c:  # the schema's derived tables agree too (positions, trades, run metrics)
        for sql in ("SELECT symbol, quantity, average_price, realized_pnl, fees, fills FROM positions "
                    "WHERE run_id = %s ORDER BY symbol",
                    "SELECT symbol, seq, status, entry_time, exit_time, entry_quantity, pnl FROM trades "
                    "WHERE run_id = %s ORDER BY symbol, seq",
                    "SELECT name, time, value FROM performance_metrics WHERE run_id = %s ORDER BY name, time"):  # fmt: skip
            ours, theirs = c.execute(sql, ("dist",)).fetchall(), c.execute(sql, ("ref",)).fetchall()
            assert ours == theirs and ours, sql
    with pg_connect(stack.pg_url) as c:
        ref_summary = json.loads(c.execute("SELECT summary::text FROM runs WHERE run_id = 'ref'").fetchone()[0])
    for key in ("snapshots", "outcomes", "actions", "orders", "fills", "gate_denials", "gate_shrinks",
                "final_equity", "fees_paid", "max_drawdown", "open_positions"):  # fmt: skip
        assert summary[key] == pytest.approx(ref_summary[key]), key


def test_two_workers_on_one_symbol_reproduce_the_replay_exactly(stack: Stack) -> None:
    settings = stack.settings(symbols="ETH/USDT", start=day("2024-01-01"), end=day("2024-01-04"))
    total = schedule_replay(settings, "dist")
    tallies = run_threads_until_decided(settings, "dist", total, n=2)
    assert sum(t.decided for t in tallies) == total
    reference_run(settings, "ref")
    checked = check_against_reference(stack.pg_url, "dist", "ref", total)
    assert normalized(checked["rows"]) == normalized(checked["ref"])


def test_two_workers_two_symbols_same_keys_and_evidence_and_limits_hold(stack: Stack) -> None:
    # tight portfolio limits so that same-candle orders of the two symbols compete for them
    limits = {"max_open_positions": 1, "max_gross_exposure": 0.3, "cooldown_minutes": 0}
    settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-06"), limits=limits)
    total = schedule_replay(settings, "dist")
    tallies = run_threads_until_decided(settings, "dist", total, n=2)
    assert sum(t.decided for t in tallies) == total and all(t.decided > 0 for t in tallies)
    reference_run(settings, "ref")
    checked = check_against_reference(stack.pg_url, "dist", "ref", total)
    check_limits(checked["rows"], settings)
    # max_open_positions = 1: an entry is never placed while another symbol's position or entry is open. Events in
    # the order the barrier guarantees: a decision at candle t (as_of t + 1h) before the settlement of t + 1h.
    filled = {o["client_order_id"] for o in checked["orders"] if o["filled_quantity"] > 0}
    events = sorted(
        [(r["as_of"], 0, r["body"]["order"]) for r in checked["rows"] if r["body"].get("order")]
        + [(f["timestamp"], 1, f) for f in fills_of(stack.pg_url, "dist")],
        key=lambda e: (e[0], e[1]),
    )
    held: dict[str, float] = {}
    pending: set[str] = set()
    entries = 0
    for _t, kind, event in events:
        symbol = event["symbol"]
        if kind == 0 and event["kind"] == "entry":
            others = {s for s, q in held.items() if abs(q) > 1e-9 and s != symbol} | (pending - {symbol})
            assert not others, f"entry for {symbol} at {event['submitted_at']} while {others} open"
            entries += 1
            if event["client_order_id"] in filled:
                pending.add(symbol)
        elif kind == 1:
            pending.discard(symbol)
            held[symbol] = held.get(symbol, 0.0) + (1 if event["side"] == "buy" else -1) * event["quantity"]
    assert entries >= 2


def test_duplicated_and_redelivered_jobs_never_trade_twice(stack: Stack) -> None:
    settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-03"))
    total = schedule_replay(settings, "dist", duplicate=True)  # every job published twice
    tallies = run_threads_until_decided(settings, "dist", total, n=2)
    assert sum(t.decided for t in tallies) == total
    assert sum(t.duplicates for t in tallies) == total  # each second copy acked without deciding again
    reference_run(settings, "ref")
    check_against_reference(stack.pg_url, "dist", "ref", total)
    # and a job delivered again long after (the scheduler republished its candle) changes nothing
    before = (decision_rows(stack.pg_url, "dist"), orders_of(stack.pg_url, "dist"))
    schedule_replay(settings.model_copy(update={"end": day("2024-01-01")}), "dist")
    run_threads_until_decided(settings, "dist", total, n=1)
    assert (decision_rows(stack.pg_url, "dist"), orders_of(stack.pg_url, "dist")) == before


def test_unreadable_jobs_and_unknown_runs_go_to_the_dead_letter_queue(stack: Stack) -> None:
    settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-01"))
    total = schedule_replay(settings, "dist")
    bus = distributed_bus(settings, "test")
    future = json.loads(DecisionJob(run_id="dist", symbol="BTC/USDT", timeframe="1h", candle_time=0).to_bus().body)
    future["v"] = 2
    from infra.bus_messages import BusMessage

    try:
        bus.publish([
            BusMessage("jobs.decide", "v2", json.dumps(future).encode(), True),
            BusMessage("jobs.decide", "garbage", b"{not json", True),
            DecisionJob(run_id="nobody-made-this", symbol="BTC/USDT", timeframe="1h", candle_time=0).to_bus(),
        ])  # fmt: skip
    finally:
        bus.close()
    tallies = run_threads_until_decided(settings, "dist", total, n=1)
    assert tallies[0].rejected == 3 and tallies[0].decided == total
    assert queue_depth(stack.amqp_url, settings.bus.dead_letter_queue)[0] == 3


def test_a_decided_job_whose_messages_may_be_lost_is_republished_with_the_same_ids(stack: Stack) -> None:
    settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-02"))
    total = schedule_replay(settings, "dist")
    tap = f"{stack.exchange}.tap"
    stack.extra_queues.append(tap)
    bus = distributed_bus(settings, "test")
    bus.declare_queue(tap, list(TOPICS))
    bus.close()
    run_threads_until_decided(settings, "dist", total, n=1)
    first = queue_depth(stack.amqp_url, tap)[0]
    assert first >= total  # at least one market.ohlcv per decision
    with pg_connect(stack.pg_url) as c:  # as if the worker died after committing, before its messages went out
        c.execute("DELETE FROM bus_published WHERE decision_id IN (SELECT id FROM decisions WHERE run_id = 'dist' "
                  "AND outcome = 'ordered')")  # fmt: skip
        ordered = c.execute("SELECT count(*) FROM decisions WHERE run_id = 'dist' AND outcome = 'ordered'").fetchone()
    schedule_replay(settings, "dist")  # every job again: duplicates; the unmarked ones are republished
    run_threads_until_decided(settings, "dist", total, n=1)
    assert ordered is not None and ordered[0] > 0
    assert queue_depth(stack.amqp_url, tap)[0] == first + 4 * ordered[0]  # ohlcv, signals, intent, order each
    with pg_connect(stack.pg_url) as c:
        unmarked = c.execute("SELECT count(*) FROM decisions d WHERE run_id = 'dist' AND NOT EXISTS "
                             "(SELECT 1 FROM bus_published p WHERE p.decision_id = d.id)").fetchone()  # fmt: skip
    assert unmarked == (0,)


def test_live_scheduler_catches_up_after_downtime_without_duplicates(stack: Stack) -> None:
    settings = stack.settings(start=None, end=None)
    store = open_job_store(settings, "test")
    bus = distributed_bus(settings, "test")
    try:
        start_distributed_run(settings, store, "live", "paper-live")
        metrics = DistributedMetrics()
        scheduler = JobScheduler(bus, store, "live", settings.symbols, "1h", metrics=metrics)
        t0 = day_start_ms(day("2024-01-02"))
        assert scheduler.tick(t0 + 60_000, max_catch_up=24) == [t0 - HOUR]  # first start: the last closed candle
        assert scheduler.tick(t0 + 30 * 60_000, max_catch_up=24) == []  # same candle again: nothing
        assert scheduler.tick(t0 + 5 * HOUR + 1, max_catch_up=24) == [t0 + i * HOUR for i in range(5)]  # downtime
        assert store.watermark("live", "1h") == t0 + 4 * HOUR
        assert metrics.registry.get_sample_value("tradegraph_jobs_published_total") == 12
        assert metrics.registry.get_sample_value("tradegraph_schedule_watermark_seconds") == (t0 + 4 * HOUR) / 1000
        # a restarted scheduler (new process, same run) resumes from the watermark in PostgreSQL
        again = JobScheduler(bus, store, "live", settings.symbols, "1h")
        assert again.tick(t0 + 5 * HOUR + 10, max_catch_up=24) == []
        assert again.tick(t0 + 40 * HOUR, max_catch_up=3) == [t0 + (37 + i) * HOUR for i in range(3)]  # capped
        # the live loop: a candle counts as closed close_delay_s after its close
        published = again.run_live(threading.Event(), max_catch_up=3, close_delay_s=5.0, once=True,
                                   clock=lambda: t0 + 41 * HOUR + 6_000)  # fmt: skip
        assert published == 6 + 2 and store.watermark("live", "1h") == t0 + 40 * HOUR
        published = again.run_live(threading.Event(), max_catch_up=3, close_delay_s=5.0, once=True,
                                   clock=lambda: t0 + 42 * HOUR + 4_000)  # fmt: skip
        assert published == 8 and store.watermark("live", "1h") == t0 + 40 * HOUR  # 41h closed only 4 s ago
    finally:
        bus.close()
        store.close()
    jobs = 2 * (1 + 5 + 3 + 1)
    assert queue_depth(stack.amqp_url, settings.bus.jobs_queue)[0] == jobs
    run_threads_until_decided(settings, "live", jobs, n=2)  # the recorded data has these candles: all decided
    rows = decision_rows(stack.pg_url, "live")
    assert len({(r["symbol"], r["candle_time"]) for r in rows}) == jobs == len(rows)


def test_schedule_and_worker_commands_with_json_logs(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.private_services import free_port

    port = free_port()
    worker = WorkerProcess(stack, "w1", args=("--metrics-port", str(port)))
    proc = worker.proc
    try:
        monkeypatch.setenv("TRADEGRAPH_BUS__EXCHANGE", stack.exchange)
        args = ["schedule", "--symbols", "ETH/USDT", "--start", "2024-02-01", "--end", "2024-02-01", "--run", "cli",
                "--journal", stack.pg_url, "--bus", stack.amqp_url, "--no-progress"]  # fmt: skip
        assert main(args) == 0
        out, err = capsys.readouterr()
        assert "snapshots      24 in" in out and "run            cli" in out
        assert "guest:***@" in err and "guest:guest@" not in err + out
        assert proc.poll() is None
        assert decided(stack.pg_url, "cli") == 24
        lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
        decided_lines = [x for x in lines if x.get("message", "").startswith("job decided")]
        assert len(decided_lines) == 24 and all(x["decision_id"].startswith("d-") for x in decided_lines)
        assert f"metrics on http://127.0.0.1:{port}/metrics" in worker.output()
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'tradegraph_jobs_total{result="decided"} 24.0' in text
    finally:
        worker.stop()
    assert proc.returncode == 0  # SIGTERM: the current job finishes, then a clean exit


def test_worker_metrics_count_jobs_and_duplicates(stack: Stack) -> None:
    settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-01"))
    total = schedule_replay(settings, "dist", duplicate=True)
    metrics = DistributedMetrics()
    port = metrics.serve(0)
    worker: Worker = build_worker(settings, metrics)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until("all jobs handled", lambda: worker.tally.consumed >= 2 * total)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        stop.set()
        thread.join(60)
        worker.close()
        metrics.close()
    assert f'tradegraph_jobs_total{{result="decided"}} {float(total)}' in text
    assert f'tradegraph_jobs_total{{result="duplicate"}} {float(total)}' in text
    assert f"tradegraph_jobs_consumed_total {float(2 * total)}" in text
    decisions = sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("tradegraph_decisions_total{")
    )
    assert decisions == total


def test_in_process_bus_runs_scheduler_and_workers_in_one_process(stack: Stack) -> None:
    """The same protocol on the in-process bus: a scheduler thread and two worker threads share it."""
    settings = stack.settings(symbols="BTC/USDT", start=day("2024-01-01"), end=day("2024-01-02"))
    bus = MemoryBus()
    bus.declare_queue(settings.bus.jobs_queue, ["jobs.decide"], dead_letter=settings.bus.dead_letter_queue)
    store = open_job_store(settings, "test")
    try:
        start_distributed_run(settings, store, "mem", "paper-distributed")
        from graph.distributed_replay import replay_candles
        from tradegraph.composition import open_feed, time_range

        candles = replay_candles(open_feed(settings), settings.symbols, "1h", *time_range(settings))
        total = JobScheduler(bus, store, "mem", settings.symbols, "1h").publish_replay(candles)
        from graph.distributed import DistributedSession

        stop = threading.Event()
        workers = []
        for _ in range(2):
            wstore = open_job_store(settings, "test")
            session = DistributedSession(wstore, run_contexts(settings, wstore, bus), (), 5.0)
            workers.append(Worker(bus, session, settings.bus.jobs_queue))
        threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
        for t in threads:
            t.start()
        wait_until("in-process decisions", lambda: decided(stack.pg_url, "mem") >= total)
        stop.set()
        for t in threads:
            t.join(60)
        for w in workers:
            w.session.store.close()
    finally:
        store.close()
    assert total == 48 and decided(stack.pg_url, "mem") == 48
    topics = {m.topic for m in bus.published}
    assert {"jobs.decide", "market.ohlcv", "signals.tech"} <= topics
    assert all(decode_job(m.body).run_id == "mem" for m in bus.published if m.topic == "jobs.decide")


def test_barrier_keeps_candles_in_order_across_workers(stack: Stack) -> None:
    """A job of candle t+1 never runs before every job of t is decided: decisions commit in candle order."""
    settings = stack.settings(start=day("2024-01-01"), end=day("2024-01-02"))
    total = schedule_replay(settings, "dist")
    with thread_workers(settings, 3):
        wait_until("decisions", lambda: decided(stack.pg_url, "dist") >= total)
    rows = decision_rows(stack.pg_url, "dist")  # ordered by insert sequence
    times = [r["candle_time"] for r in rows]
    assert times == sorted(times)


def test_live_schedule_once_from_the_command_line_decides_a_candle_without_data_as_invalid(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real clock's last closed candle is beyond the recorded sample: its key is still decided once."""
    monkeypatch.setenv("TRADEGRAPH_BUS__EXCHANGE", stack.exchange)
    args = ["schedule", "--symbols", "BTC/USDT", "--once", "--run", "live-cli", "--journal", stack.pg_url,
            "--bus", stack.amqp_url]  # fmt: skip
    assert main(args) == 0
    assert "run live-cli: 1 jobs published" in capsys.readouterr().out
    assert main(args) == 0  # the same candle again: the watermark says it is scheduled
    assert "run live-cli: 0 jobs published" in capsys.readouterr().out
    settings = stack.settings(symbols="BTC/USDT")
    run_threads_until_decided(settings, "live-cli", 1, n=1)
    [row] = decision_rows(stack.pg_url, "live-cli")
    assert row["outcome"] == "invalid" and row["reason"].startswith("no_data: no BTC/USDT 1h candle at")


def test_a_live_run_on_exchange_data_is_decided_by_the_workers(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose feed is the exchange (ccxt's real binance class behind the wire-level fake, on a manual
    clock): the live scheduler's jobs are decided on the exchange's candles, not on recorded files."""
    import tradegraph.composition as composition
    from tests.exchange_wire import FakeExchange, ManualClock

    t_close = 1723161600000  # 2024-08-09T00:00, inside the fake's recorded market
    clock = ManualClock(t_close + 10_000)
    fake = FakeExchange("binance", clock, websocket=False)
    monkeypatch.setattr(composition, "live_clock", lambda: clock)
    monkeypatch.setattr(composition, "exchange_factory", lambda: fake.factory)
    monkeypatch.setenv("TRADEGRAPH_FEED__CCXT__RETRY_BASE_DELAY_S", "0")
    settings = stack.settings(feed={"source": "ccxt", "ccxt": {"websocket": False}})
    store = open_job_store(settings, "test")
    bus = distributed_bus(settings, "test")
    try:
        start_distributed_run(settings, store, "live-ccxt", "paper-live")
        scheduler = JobScheduler(bus, store, "live-ccxt", settings.symbols, "1h")
        assert scheduler.tick(clock.now_ms() - 5_000, max_catch_up=3) == [t_close - HOUR]
        clock.advance(HOUR)
        assert scheduler.tick(clock.now_ms() - 5_000, max_catch_up=3) == [t_close]
    finally:
        bus.close()
        store.close()
    try:
        run_threads_until_decided(settings, "live-ccxt", 4, n=2)
    finally:
        fake.close()
    rows = decision_rows(stack.pg_url, "live-ccxt")
    assert sorted((r["symbol"], r["candle_time"]) for r in rows) == [
        (s, t) for s in ("BTC/USDT", "ETH/USDT") for t in (t_close - HOUR, t_close)
    ]
    assert all(r["outcome"] not in ("invalid", "error") and r["window_length"] == settings.window for r in rows)
    assert fake.responder.count(r"/api/v3/klines") > 0
