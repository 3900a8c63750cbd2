"""The one composition root: settings in, wired adapters and the compiled graph out."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.reasoner import Reasoner
from agents.rules_reasoner import RulesReasoner
from graph.builder import GraphDeps, build_graph
from graph.observer import SessionObserver
from graph.runner import ReplaySession
from infra.bus import MEMORY_URL, Bus, MemoryBus
from infra.bus_messages import JOB_TOPIC
from infra.bus_observer import BusPublisher
from infra.influx_sink import InfluxSink, SinkCounter
from infra.journal import JournalStore, RunInfo
from infra.redact import is_postgres_url, redact_url
from infra.settings import Settings, load_settings, redacted_config
from infra.sqlite_journal import SqliteJournal
from tools.clock import Clock, SystemClock
from tools.errors import ConfigError
from tools.paper_broker import PaperBroker
from tools.recorded_feed import RecordedFeed
from tools.timeframes import day_start_ms

if TYPE_CHECKING:
    from infra.scheduler import CandleSchedule
    from tools.ccxt_exchange import ExchangeFactory, ExchangeSession
    from tools.ccxt_feed import CcxtFeed


def bundled_data_dir() -> Path:
    return Path(str(resources.files("tradegraph") / "sample_data"))


def open_journal(target: str | Path, read_only: bool = False) -> JournalStore:
    """The journal store a setting names: a postgresql:// URL, or else an SQLite file path."""
    if isinstance(target, str) and is_postgres_url(target):
        from infra.postgres_journal import PostgresJournal

        return PostgresJournal(target, read_only=read_only)
    return SqliteJournal(Path(target), read_only=read_only)


def open_influx_sink(settings: Settings, metrics: SinkCounter | None = None) -> InfluxSink | None:
    """The InfluxDB sink the settings select (``influx.url``), checked and started; None when no URL is set.

    An unreachable server is a SinkError naming the redacted URL, raised before anything is journaled.
    """
    if not settings.influx.enabled:
        return None
    return InfluxSink(settings.influx, settings.exchange, metrics).start()


def new_run_id() -> str:
    return f"run-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def make_reasoner(settings: Settings) -> Reasoner:
    if settings.reasoner == "rules":
        return RulesReasoner(settings.fusion)
    raise ConfigError(f"unknown reasoner {settings.reasoner!r}")  # pragma: no cover - Literal guards it


@dataclass
class ReplayJob:
    session: ReplaySession
    feed: RecordedFeed
    journal: JournalStore
    broker: PaperBroker
    settings: Settings
    start_ms: int | None
    end_ms: int | None
    config: dict[str, Any]
    bus: Bus | None = None
    """The bus the session publishes to (``bus_url`` other than the in-process default), closed by the caller."""

    def snapshot_count(self) -> int:
        return self.feed.count(self.settings.symbols, self.settings.timeframe, self.start_ms, self.end_ms)

    def snapshots(self) -> Any:
        return self.feed.snapshots(self.settings.symbols, self.settings.timeframe, self.start_ms, self.end_ms)


def open_feed(settings: Settings) -> RecordedFeed:
    """The recorded feed of the settings, with every symbol's file loaded and validated."""
    feed = RecordedFeed(settings.data_dir or bundled_data_dir(), settings.exchange, settings.window)
    for symbol in settings.symbols:
        feed.series(symbol, settings.timeframe)
    return feed


def time_range(settings: Settings) -> tuple[int | None, int | None]:
    """[start, end) in UTC ms; ``end`` is an inclusive day in the settings."""
    start_ms = day_start_ms(settings.start) if settings.start else None
    end_ms = day_start_ms(settings.end) + 86_400_000 if settings.end else None
    return start_ms, end_ms


def build_replay(
    settings: Settings,
    run_id: str | None = None,
    feed: RecordedFeed | None = None,
    journal_path: Path | None = None,
    observers: Sequence[SessionObserver] = (),
    publish: bool = False,
) -> ReplayJob:
    """A paper session over recorded data; ``feed`` and ``journal_path`` override the settings' ones.

    With ``publish`` and a ``bus_url`` other than the in-process default, decisions and fills also go on the bus."""
    start_ms, end_ms = time_range(settings)
    if feed is None:  # every file and the range are checked before anything is journaled
        feed = open_feed(settings)
        feed.check_range(settings.symbols, settings.timeframe, start_ms, end_ms)
    data_dir = feed.data_dir
    feed.count(settings.symbols, settings.timeframe, start_ms, end_ms)
    limits = settings.limits
    if not limits.allowed_symbols:
        limits = limits.model_copy(update={"allowed_symbols": frozenset(settings.symbols)})
    rid = run_id or new_run_id()
    bus = None
    if publish and settings.bus_url != MEMORY_URL:  # the in-process bus has no subscriber outside this process
        bus = open_bus(settings, "tradegraph-run")
        observers = [*observers, BusPublisher(bus, rid)]
    try:
        journal = open_journal(journal_path or settings.journal)
    except BaseException:
        if bus is not None:
            bus.close()
        raise
    broker = PaperBroker(settings.paper)
    deps = GraphDeps(
        ta=settings.ta,
        reasoner=make_reasoner(settings),
        risk=settings.risk,
        limits=limits,
        broker=broker,
        journal=journal,
        run_id=rid,
    )
    session = ReplaySession(build_graph(deps), broker, journal, rid, observers)
    config = redacted_config(settings)
    config["data_dir"] = str(data_dir)
    return ReplayJob(session, feed, journal, broker, settings, start_ms, end_ms, config, bus)


# --- the bus and distributed runs --------------------------------------------------------------------------
STRATEGY_FIELDS = ("exchange", "symbols", "timeframe", "window", "reasoner", "ta", "fusion", "risk", "limits", "paper")
"""What a distributed run's scheduler journals and its workers decide with (the run's strategy); the run's
``feed`` section also travels (where the workers read market data: recorded files or the exchange)."""


def open_bus(settings: Settings, name: str = "tradegraph") -> Bus:
    """The bus ``bus_url`` names: memory:// (in-process, the default) or amqp(s)://... (RabbitMQ)."""
    url = settings.bus_url
    if url == MEMORY_URL:
        return MemoryBus()
    if url.startswith(("amqp://", "amqps://")):
        from infra.rabbitmq_bus import RabbitBus

        b = settings.bus
        return RabbitBus(url, b.exchange, connect_timeout=b.connect_timeout, retry_seconds=b.retry_seconds, name=name)
    raise ConfigError(f"unknown bus URL {redact_url(url)}: expected memory:// or amqp://user:password@host/vhost")


def distributed_bus(settings: Settings, name: str) -> Bus:
    """The bus of `schedule` and `worker`, with the durable jobs queue (and its dead-letter queue) declared."""
    if settings.bus_url == MEMORY_URL:
        raise ConfigError(
            "the in-process bus (memory://) cannot connect separate processes: "
            "set --bus amqp://user:password@host/ (or TRADEGRAPH_BUS_URL)"
        )
    bus = open_bus(settings, name)
    try:
        bus.declare_queue(settings.bus.jobs_queue, [JOB_TOPIC], dead_letter=settings.bus.dead_letter_queue)
    except BaseException:
        bus.close()
        raise
    return bus


def open_job_store(settings: Settings, name: str) -> Any:
    """The PostgreSQL store of distributed runs, with the journal schema created or migrated first."""
    if not is_postgres_url(settings.journal):
        raise ConfigError(
            "distributed runs keep the shared paper account in PostgreSQL: "
            "set --journal postgresql://... (or TRADEGRAPH_JOURNAL)"
        )
    from infra.pg_job_store import PgJobStore
    from infra.postgres_journal import PostgresJournal

    PostgresJournal(settings.journal).close()  # migrations (one migrating process at a time)
    return PgJobStore(settings.journal, connect_timeout=settings.bus.connect_timeout, application_name=name)


def process_name(role: str) -> str:
    return f"{role}-{socket.gethostname()}-{os.getpid()}"


def start_distributed_run(settings: Settings, store: Any, run_id: str, mode: str) -> dict[str, Any]:
    """Create the run and its paper account (or resume them: same strategy settings only); the run row."""
    from tools.paper_state import dump_broker

    config = redacted_config(settings)
    config["data_dir"] = str(settings.data_dir or bundled_data_dir())
    run = RunInfo(run_id=run_id, started_at=int(time.time() * 1000), mode=mode, config=config)
    initial = dump_broker(PaperBroker(settings.paper), {"settled": {}, "points": None})
    row: dict[str, Any] = store.create_run(run, initial)
    stored = row["config"]
    differ = [k for k in STRATEGY_FIELDS if stored.get(k) != config.get(k)]
    if (stored.get("feed") or {}).get("source", "recorded") != settings.feed.source:
        differ.append("feed.source")
    if differ:
        raise ConfigError(
            f"run {run_id} already exists with other settings ({', '.join(differ)}); choose another --run"
        )
    return row


def run_settings(config: dict[str, Any], local: Settings) -> Settings:
    """A worker decides a run's jobs with the run's journaled strategy and feed, and its own data directory."""
    return load_settings(**{k: config[k] for k in (*STRATEGY_FIELDS, "feed") if k in config}, data_dir=local.data_dir,
                         journal=local.journal, bus_url=local.bus_url)  # fmt: skip


class WorkerRuns:
    """The runs a worker serves, built once per run id: the graph with the locked gate, the shared account,
    the feed (recorded files, or the exchange through ccxt for a live run) and the bus publisher."""

    def __init__(self, settings: Settings, store: Any, bus: Bus) -> None:
        self.settings, self.store, self.bus = settings, store, bus
        self._runs: dict[str, Any] = {}
        self._feeds: dict[tuple[Any, ...], Any] = {}  # shared by the runs that read the same data

    def _feed(self, s: Settings) -> Any:
        if s.feed.source == "ccxt":
            key: tuple[Any, ...] = ("ccxt", s.exchange, tuple(s.symbols), s.timeframe, s.window)
            if key not in self._feeds:  # exchange, symbols and timeframe are checked against its markets
                self._feeds[key] = open_ccxt_feed(s)
            return self._feeds[key]
        key = ("recorded", s.data_dir or bundled_data_dir(), s.exchange, s.window)
        feed = self._feeds.setdefault(key, RecordedFeed(*key[1:]))
        for symbol in s.symbols:  # a worker with the wrong data must fail, not journal "no data" decisions
            feed.series(symbol, s.timeframe)
        return feed

    def __call__(self, run_id: str) -> Any:
        from graph.distributed import JobJournal, RunContext, SharedAccount, locked_risk_gate
        from infra.job_store import UnknownRun

        if run_id in self._runs:
            return self._runs[run_id]
        config = self.store.run_config(run_id)
        if config is None:
            raise UnknownRun(f"job for unknown run {run_id!r}: no scheduler created it in {self.store.display_url}")
        s = run_settings(config, self.settings)
        feed = self._feed(s)
        limits = s.limits
        if not limits.allowed_symbols:
            limits = limits.model_copy(update={"allowed_symbols": frozenset(s.symbols)})
        account = SharedAccount(self.store, run_id, s.paper)
        deps = GraphDeps(ta=s.ta, reasoner=make_reasoner(s), risk=s.risk, limits=limits, broker=account,
                         journal=JobJournal(self.store, account), run_id=run_id)  # fmt: skip
        graph = build_graph(deps, replace={"risk_gate": partial(locked_risk_gate, limits=limits, account=account)})
        self._runs[run_id] = RunContext(run_id, graph, account, feed, s.paper, BusPublisher(self.bus, run_id))
        return self._runs[run_id]

    def close(self) -> None:
        for feed in self._feeds.values():
            close = getattr(feed, "close", None)
            if close is not None:
                close()


def run_contexts(settings: Settings, store: Any, bus: Bus) -> WorkerRuns:
    return WorkerRuns(settings, store, bus)


def build_worker(settings: Settings, metrics: Any = None) -> Any:
    """A worker: the job store, the bus with the jobs queue, the per-run contexts; ``metrics`` also observe."""
    from graph.distributed import DistributedSession
    from graph.worker import Worker

    name = process_name("worker")
    store = open_job_store(settings, name)
    try:
        bus = distributed_bus(settings, name)
    except BaseException:
        store.close()
        raise
    observers = [metrics] if metrics is not None else []
    session = DistributedSession(store, run_contexts(settings, store, bus), observers, settings.bus.barrier_wait_s)
    return Worker(bus, session, settings.bus.jobs_queue, prefetch=settings.bus.prefetch,
                  retry_seconds=settings.bus.retry_seconds, metrics=metrics, name=name)  # fmt: skip


# --- live market data ---------------------------------------------------------------------------------


def live_clock() -> Clock:
    """The clock of live sessions (tests replace this function to run several closes without waiting)."""
    return SystemClock()


def exchange_factory() -> ExchangeFactory:
    """How live sessions build their ccxt exchange (tests replace this with a wire-level fake)."""
    from tools.ccxt_exchange import create_exchange

    return create_exchange


def open_exchange_session(settings: Settings) -> tuple[ExchangeSession, Clock]:
    """A REST session on the settings' exchange with its markets loaded and the symbols and timeframe
    checked against them (ConfigError otherwise), and the clock to read "now" from."""
    from tools.ccxt_exchange import ExchangeSession, RetryPolicy

    cfg = settings.feed.ccxt
    retry = RetryPolicy(cfg.retry_attempts, cfg.retry_base_delay_s, cfg.retry_max_delay_s)
    session = ExchangeSession(settings.exchange, exchange_factory(), {"timeout": cfg.request_timeout_ms}, retry)
    try:
        session.load_markets()
        session.check_timeframe(settings.timeframe)
        session.check_symbols(settings.symbols)
    except BaseException:
        session.close()
        raise
    return session, live_clock()


def open_ccxt_feed(settings: Settings, clock: Clock | None = None) -> CcxtFeed:
    """The live feed of the settings; the exchange id, symbols and timeframe are checked against the
    exchange's markets before it returns (ConfigError otherwise)."""
    from tools.ccxt_feed import CcxtFeed

    return CcxtFeed(
        settings.exchange,
        settings.symbols,
        settings.timeframe,
        settings.window,
        clock or live_clock(),
        settings.feed.ccxt,
        factory=exchange_factory(),
    )


@dataclass
class LiveJob:
    session: ReplaySession
    feed: CcxtFeed
    schedule: CandleSchedule
    journal: JournalStore
    broker: PaperBroker
    settings: Settings
    config: dict[str, Any]

    def close(self) -> None:
        try:
            self.feed.close()
        finally:
            self.journal.close()


def build_live(
    settings: Settings,
    iterations: int | None = None,
    run_id: str | None = None,
    observers: Sequence[SessionObserver] = (),
) -> LiveJob:
    """A paper session on live exchange data, run at each candle close. The feed (exchange, symbols,
    timeframe) is checked before the journal is opened: a bad setting writes nothing."""
    from infra.scheduler import CandleSchedule

    clock = live_clock()
    feed = open_ccxt_feed(settings, clock)
    try:
        limits = settings.limits
        if not limits.allowed_symbols:
            limits = limits.model_copy(update={"allowed_symbols": frozenset(settings.symbols)})
        journal = open_journal(settings.journal)
    except BaseException:
        feed.close()
        raise
    broker = PaperBroker(settings.paper)
    rid = run_id or new_run_id()
    deps = GraphDeps(
        ta=settings.ta,
        reasoner=make_reasoner(settings),
        risk=settings.risk,
        limits=limits,
        broker=broker,
        journal=journal,
        run_id=rid,
    )
    session = ReplaySession(build_graph(deps), broker, journal, rid, observers)
    schedule = CandleSchedule(
        feed,
        settings.symbols,
        settings.timeframe,
        clock,
        settle_delay_ms=int(settings.feed.settle_delay_s * 1000) + feed.lag_ms,  # a lagging exchange closes later
        max_catch_up=settings.feed.max_catch_up,
        iterations=iterations,
    )
    config = redacted_config(settings)
    config["feed"] = {**config["feed"], "source": "ccxt"}
    return LiveJob(session, feed, schedule, journal, broker, settings, config)
