"""The one composition root: settings in, wired adapters and the compiled graph out."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

from agents.budget import BudgetTracker, Usage
from agents.cassette import Cassette
from agents.chat_deterministic import ChatAnswer
from agents.crew_reasoner import MEMBERS as CREW_MEMBERS
from agents.crew_reasoner import CrewChat
from agents.journal_tools import InspectorTools
from agents.llm_answer import CallKey
from agents.llm_client import Endpoint, LiveChat, is_openai
from agents.llm_reasoner import CallMeta, LLMReasoner
from agents.llm_sources import AnswerProvider
from agents.local_server import MODEL_ALIAS, LocalLLMServer
from agents.reasoner import Reasoner
from agents.rules_reasoner import RulesReasoner
from graph.builder import GraphDeps, build_graph
from graph.nodes import ReasonerContext
from graph.observer import SessionObserver
from graph.runner import ReplaySession
from infra.bus import Bus, MemoryBus, is_memory_url
from infra.bus_messages import JOB_TOPIC
from infra.bus_observer import BusPublisher
from infra.chat_settings import ChatSettings
from infra.influx_sink import InfluxSink, SinkCounter
from infra.journal import JournalStore, RunInfo
from infra.redact import is_postgres_url, redact_url
from infra.settings import Settings, load_settings, redacted_config
from infra.sqlite_journal import SqliteJournal
from prompts import PromptError, PromptTemplate, load_prompt
from tools.broker import Broker
from tools.clock import Clock, SystemClock
from tools.errors import CassetteError, ConfigError
from tools.journal_reader import JournalReader
from tools.llm_config import LLMSettings
from tools.news import NewsFeed
from tools.paper_broker import PaperBroker
from tools.recorded_feed import RecordedFeed
from tools.risk_gate import RiskLimits
from tools.timeframes import day_start_ms
from tradegraph.execution_cli import Execution

if TYPE_CHECKING:
    from evals.decision_replay import ReplayReport as DecisionReplay
    from infra.checkpoints import CheckpointStore
    from infra.scheduler import CandleSchedule
    from tools.ccxt_broker import Reconciliation
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


def open_journal_reader(target: str | Path) -> JournalReader:
    """The journal opened read-only for inspection (chat, replay, web): SQLite through a read-only URI."""
    if isinstance(target, str) and is_postgres_url(target):
        from infra.postgres_journal import PostgresJournal

        return PostgresJournal(target, read_only=True)
    return SqliteJournal(Path(target), read_only=True)


def inspector_tools(reader: JournalReader, run_id: str | None = None) -> InspectorTools:
    """The chat inspector's journal tools, with performance computed by evals.journal_performance."""
    from evals.journal_performance import performance_vs_buy_and_hold

    return InspectorTools(reader, partial(performance_vs_buy_and_hold, reader), run_id)


class ChatSession:
    """What answers chat questions over one journal: the deterministic reader, or the LLM agent over it."""

    def __init__(self, reader: JournalReader, settings: ChatSettings, run_id: str | None = None) -> None:
        from agents.chat_deterministic import DeterministicChat

        self.reader = reader
        self.tools = inspector_tools(reader, run_id)
        self.tools.run()  # an unknown --run fails here, before any question
        self.deterministic = DeterministicChat(self.tools)
        self._agent: Any = None
        self._stack = contextlib.ExitStack()
        self.description = "deterministic (no LLM configured)"
        if settings.llm and settings.llm.lower() != "none":
            try:
                self._agent = self._make_agent(settings)
            except BaseException:
                self._stack.close()
                raise

    def _make_agent(self, settings: ChatSettings) -> Any:
        from langchain_openai import ChatOpenAI

        from agents.chat_agent import PROMPT_ID as CHAT_PROMPT
        from agents.chat_agent import InspectorAgent

        llm = settings.llm or ""
        if llm.lower() == "local":
            from agents.local_server import LocalLLMServer

            server = self._stack.enter_context(LocalLLMServer())
            base_url, model, key = server.base_url, server.model, "local"
        elif llm.startswith(("http://", "https://")):
            base_url, model = llm, settings.model or "default"
            key = settings.api_key.get_secret_value() if settings.api_key else os.environ.get("OPENAI_API_KEY", "")
        else:
            raise ConfigError(f"--llm {llm!r} is neither 'local', 'none' nor an http(s):// base URL")
        chat_model = ChatOpenAI(base_url=base_url, model=model, api_key=SecretStr(key or "unused"),
                                temperature=settings.temperature, max_tokens=settings.answer_limit,
                                timeout=settings.timeout_s, max_retries=0)  # fmt: skip
        prompt = _prompt(CHAT_PROMPT)
        self.description = (f"LLM agent ({model} at {redact_url(base_url)}, prompt {prompt.id} "
                            f"sha256 {prompt.hash[:12]})")  # fmt: skip
        return InspectorAgent(self.tools, chat_model, max_steps=settings.max_steps, prompt=prompt, model_name=model)

    @property
    def uses_llm(self) -> bool:
        return self._agent is not None

    def answer(self, question: str) -> ChatAnswer:
        if self._agent is not None:
            answer: ChatAnswer = self._agent.answer(question)
            return answer
        return self.deterministic.answer(question)

    def close(self) -> None:
        self._stack.close()


def web_app(session: ChatSession) -> Any:
    """The read-only dashboard (infra.web) over the session's journal, with its chat panel answered by ``session``."""
    from evals.journal_performance import performance_vs_buy_and_hold
    from infra.web.app import WebDeps, create_app

    reader = session.reader

    def chat_run() -> str | None:
        run = session.tools.run()
        return str(run["run_id"]) if run else None

    deps = WebDeps(
        reader=reader,
        answer=lambda question: session.answer(question).model_dump(),
        explain=lambda decision_id: session.tools.explain_decision(decision_id).data,
        performance=lambda run_id: performance_vs_buy_and_hold(reader, run_id),
        chat_run=chat_run,
        chat_mode=session.description,
    )
    return create_app(deps)


def open_influx_sink(settings: Settings, metrics: SinkCounter | None = None) -> InfluxSink | None:
    """The InfluxDB sink the settings select (``influx.url``), checked and started; None when no URL is set.

    An unreachable server is a SinkError naming the redacted URL, raised before anything is journaled.
    """
    if not settings.influx.enabled:
        return None
    return InfluxSink(settings.influx, settings.exchange, metrics).start()


def new_run_id() -> str:
    return f"run-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


LLM_REASONERS = ("llm", "local", "crew")


def remote_endpoint(llm: LLMSettings) -> Endpoint:
    """The endpoint of the ``llm`` section; the key comes from the settings or OPENAI_API_KEY."""
    key = llm.api_key
    if key is None and os.environ.get("OPENAI_API_KEY"):
        key = SecretStr(os.environ["OPENAI_API_KEY"])
    if key is None and is_openai(llm.base_url):
        raise ConfigError(
            f"{llm.base_url} needs an API key: set TRADEGRAPH_LLM__API_KEY or OPENAI_API_KEY (or point "
            "llm.base_url at a local server, e.g. http://127.0.0.1:11434/v1 for Ollama)"
        )
    provider = "openai" if is_openai(llm.base_url) else "openai-compatible"
    return Endpoint(llm.base_url, llm.model, key, provider, redact_url(llm.base_url))


def _uses_local_model(settings: Settings) -> bool:
    return settings.reasoner == "local" or (settings.reasoner == "crew" and settings.llm.crew.endpoint == "local")


@contextmanager
def llm_endpoint(settings: Settings) -> Iterator[Endpoint | None]:
    """The endpoint the settings' reasoner talks to (None for rules and replay). For the bundled local model
    this starts llama.cpp's server and always stops it when the block ends, however it ends."""
    if settings.reasoner not in LLM_REASONERS:
        yield None
        return
    if not _uses_local_model(settings):
        yield remote_endpoint(settings.llm)
        return
    local = settings.llm.local
    if local.base_url:
        yield Endpoint(local.base_url, MODEL_ALIAS, None, "llama.cpp", redact_url(local.base_url))
        return
    with LocalLLMServer(n_ctx=local.n_ctx, n_threads=local.n_threads, startup_timeout_s=local.startup_timeout_s) as srv:
        yield Endpoint(srv.base_url, srv.model, None, "llama.cpp", srv.base_url)


def _cassette_identity(kind: str, endpoint: Endpoint, llm: LLMSettings, prompt: PromptTemplate,
                       params: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "reasoner": kind, "model": endpoint.model, "provider": endpoint.provider, "base_url": endpoint.display_url,
        "prompt_id": prompt.id, "prompt_hash": prompt.hash, "params": params,
        "llm": llm.model_dump(mode="json", exclude={"api_key", "record_cassette", "cassette"}),
    }  # fmt: skip


def _prompt(prompt_id: str) -> PromptTemplate:
    try:
        return load_prompt(prompt_id)
    except PromptError as exc:
        raise ConfigError(str(exc)) from None


def _day_usage(journal: Callable[[], JournalStore] | None) -> Callable[[int], Usage] | None:
    if journal is None:
        return None

    def usage(since_ms: int) -> Usage:
        u = journal().llm_usage_since(since_ms)
        return Usage(int(u["calls"]), int(u["tokens"]), float(u["cost_usd"]))

    return usage


def replay_llm_settings(settings: Settings) -> tuple[str, LLMSettings, Cassette | None]:
    """(reasoner kind, LLM settings in force, cassette): a replay runs with the recorded reasoner's settings."""
    if settings.reasoner != "replay":
        return settings.reasoner, settings.llm, None
    if settings.llm.cassette is None:
        raise ConfigError("--reasoner replay needs --cassette DIR (a folder recorded with --record-cassette)")
    return recorded_llm_settings(Cassette.open_for_replay(settings.llm.cassette))


def recorded_llm_settings(cassette: Cassette) -> tuple[str, LLMSettings, Cassette]:
    """(reasoner kind, LLM settings, cassette) as the cassette's manifest recorded them."""
    try:
        llm = LLMSettings.model_validate({**cassette.manifest["llm"], "cassette": cassette.root})
    except ValidationError as exc:
        raise CassetteError(f"cassette manifest in {cassette.root} has invalid llm settings: "
                            f"{exc.errors()[0]['msg']}") from None  # fmt: skip
    kind = cassette.manifest["reasoner"]
    if kind not in LLM_REASONERS:
        raise CassetteError(f"cassette manifest in {cassette.root} names an unknown reasoner {kind!r}")
    return str(kind), llm, cassette


def make_reasoner(
    settings: Settings,
    endpoint: Endpoint | None = None,
    journal: Callable[[], JournalStore] | None = None,
    resolved: tuple[str, LLMSettings, Cassette | None] | None = None,
) -> Reasoner:
    """The settings' reasoner. ``journal`` gives the journal whose earlier runs count in the daily budget;
    ``resolved`` is replay_llm_settings' answer when the caller already has it."""
    rules = RulesReasoner(settings.fusion)
    if settings.reasoner == "rules":
        return rules
    kind, llm, cassette = resolved or replay_llm_settings(settings)
    prompt = _prompt("crew.v1" if kind == "crew" else llm.prompt)
    budget = BudgetTracker(llm.budget, llm.input_cost_per_mtok, llm.output_cost_per_mtok, _day_usage(journal))
    max_out = llm.crew.max_output_tokens if kind == "crew" else llm.budget.max_output_tokens
    node = "crew" if kind == "crew" else "strategy_fusion"
    requests = len(CREW_MEMBERS) if kind == "crew" else 1
    if cassette is not None:  # replay: no endpoint, no network, every answer from the cassette
        m = cassette.manifest
        if m["prompt_hash"] != prompt.hash:
            raise CassetteError(f"prompt {prompt.id} changed since cassette {cassette.root} was recorded")
        meta = CallMeta(node, str(m.get("provider", "")), str(m.get("base_url", "")), str(m["model"]),
                        dict(m.get("params") or {}))  # fmt: skip
        provider = AnswerProvider(None, budget, cassette, "replay")
        return LLMReasoner(kind, rules, prompt, provider, meta, llm.gating, llm.fallback, max_out, requests)
    if endpoint is None:
        if _uses_local_model(settings):
            raise ConfigError(f"reasoner {kind} needs the local model server: build it inside llm_endpoint()")
        endpoint = remote_endpoint(llm)
    chat_args: dict[str, Any] = {"temperature": llm.temperature, "max_output_tokens": max_out,
                                 "timeout_s": llm.timeout_s, "max_retries": llm.max_retries, "seed": llm.seed}  # fmt: skip
    live: CrewChat | LiveChat
    if kind == "crew":
        live = CrewChat(endpoint, prompt, **chat_args)
    else:
        live = LiveChat(endpoint, llm.structured_method(endpoint.base_url), **chat_args)
    meta = CallMeta(node, endpoint.provider, endpoint.display_url, endpoint.model, live.params)
    recording = None
    if llm.record_cassette is not None:
        identity = _cassette_identity(kind, endpoint, llm, prompt, live.params)
        recording = Cassette.open_for_recording(llm.record_cassette, identity)
    provider = AnswerProvider(live, budget, recording, "record" if recording else "live")
    return LLMReasoner(kind, rules, prompt, provider, meta, llm.gating, llm.fallback, max_out, requests)


def run_limits(settings: Settings) -> RiskLimits:
    """The gate's limits for the settings' run: no symbol list means the run's own symbols."""
    limits = settings.limits
    if not limits.allowed_symbols:
        limits = limits.model_copy(update={"allowed_symbols": frozenset(settings.symbols)})
    return limits


def decision_deps(
    settings: Settings,
    broker: Broker,
    journal: JournalStore,
    run_id: str,
    reasoner: Reasoner | None = None,
    context: ReasonerContext | None = None,
    reason_every_snapshot: bool = False,
) -> GraphDeps:
    """What the decision graph of the settings runs with: executing on ``broker``, journaling into ``journal``
    (``reasoner`` and its ``context`` come from ``reasoning`` for LLM reasoners; by default the settings' own)."""
    return GraphDeps(
        ta=settings.ta,
        reasoner=reasoner or make_reasoner(settings),
        risk=settings.risk,
        limits=run_limits(settings),
        broker=broker,
        journal=journal,
        run_id=run_id,
        context=context,
        reason_every_snapshot=reason_every_snapshot,
    )


class _NoCassette(Cassette):
    """The replay of a decision that never asked the LLM, given no cassette: any question it asks now fails."""

    def __init__(self, decision_id: str, prompt: PromptTemplate) -> None:
        super().__init__(Path("-"), {"prompt_hash": prompt.hash, "model": "-"}, {})
        self.decision_id = decision_id

    def missing(self, key: CallKey) -> CassetteError:
        return CassetteError(
            f"the replay of decision {self.decision_id} asks the LLM, which the journaled decision did not: it does "
            "not reproduce, and replay never calls a model (pass --cassette DIR to replay recorded answers)"
        )


def _needs_cassette(settings: Settings, stored: dict[str, Any]) -> ConfigError:
    trace = stored.get("reasoner") or {}
    llm = settings.llm
    if settings.reasoner == "replay":
        hint = f"the run replayed {llm.cassette}" if llm.cassette else "the run replayed a cassette"
    elif llm.record_cassette is not None:
        hint = f"the run recorded into {llm.record_cassette}"
    else:
        hint = "the run recorded none: record one with tradegraph run --record-cassette DIR"
    if trace.get("calls"):
        what = (f"was reasoned by an LLM ({trace.get('reasoner')}, model {trace.get('model')}, prompt "
                f"{trace.get('prompt_id')})")  # fmt: skip
    else:
        what = "comes from a --reasoner replay run, whose LLM settings are in its cassette"
    return ConfigError(
        f"decision {stored['id']} {what}: replay re-runs it from the recorded answers and never calls a model; "
        f"pass --cassette DIR ({hint})"
    )


def decision_reasoning(
    settings: Settings, stored: dict[str, Any], news_dir: Path, cassette_dir: Path | None
) -> tuple[Reasoner, ReasonerContext | None, bool]:
    """The reasoner, context and routing that re-decide a journaled decision: those of its run. An LLM reasoner
    is rebuilt as ``--reasoner replay`` builds it, over ``cassette_dir``, with the run's journaled LLM settings
    (a replay run's are its cassette's); it can never reach a model."""
    from evals.decision_replay import cassette_mismatch

    if settings.reasoner == "rules":
        if cassette_dir is not None:
            raise ConfigError(f"decision {stored['id']} comes from a run of the rules reasoner, which asks no LLM: "
                              "replay it without --cassette")  # fmt: skip
        return make_reasoner(settings), None, False
    trace = stored.get("reasoner") or {}
    resolved: tuple[str, LLMSettings, Cassette]
    if cassette_dir is None:
        if trace.get("calls") or settings.reasoner == "replay":
            raise _needs_cassette(settings, stored)
        prompt = _prompt("crew.v1" if settings.reasoner == "crew" else settings.llm.prompt)
        resolved = (settings.reasoner, settings.llm, _NoCassette(stored["id"], prompt))
    else:
        cassette = Cassette.open_for_replay(cassette_dir)
        if settings.reasoner == "replay":
            resolved = recorded_llm_settings(cassette)
        else:
            resolved = (settings.reasoner, settings.llm, cassette)
        kind, llm = resolved[0], resolved[1]
        problem = cassette_mismatch(stored["id"], trace, kind, "crew.v1" if kind == "crew" else llm.prompt,
                                    cassette.manifest, cassette_dir)  # fmt: skip
        if problem:
            raise CassetteError(problem)
    return reasoning(settings, run_limits(settings), None, None, news_dir, resolved)


def replay_one(
    reader: JournalReader, decision_id: str, data_dir: Path | None = None, cassette: Path | None = None
) -> DecisionReplay:
    """Re-run one journaled decision on its rebuilt snapshot and portfolio (evals.decision_replay); an LLM
    reasoner's answers come from ``cassette``."""
    from evals.decision_replay import DecisionGraph, replay_decision

    def graph_of(settings: Settings, stored: dict[str, Any], news_dir: Path) -> DecisionGraph:
        reasoner, context, every = decision_reasoning(settings, stored, news_dir, cassette)

        def build(broker: PaperBroker, journal: JournalStore) -> Any:
            return build_graph(decision_deps(settings, broker, journal, stored["run_id"], reasoner, context, every))

        return build

    def feed_of(settings: Settings) -> RecordedFeed:
        return open_feed(settings)

    report = replay_decision(reader, decision_id, graph_of, feed_of, lambda s: time_range(s)[0], data_dir)
    trace = (report.replayed or {}).get("reasoner") or {}
    if cassette is not None:
        calls = len(trace.get("calls") or [])
        asked = f"{calls} LLM call(s) answered" if calls else "the LLM was not asked; checked"
        report.notes.append(f"{asked} from cassette {cassette}, no model called")
    return report


# --- execution: the broker a session sends its orders to ----------------------------------------------


def exchange_client_factory() -> Any:
    """How exchange brokers build their synchronous ccxt instance, ``factory(exchange_id, config)`` (tests
    replace this function with a wire-level fake)."""
    from tools.ccxt_broker import create_exchange

    return create_exchange


def broker_clock() -> tuple[Any, Any]:
    """``(now_ms, sleep)`` of exchange brokers (tests replace them with a manual clock)."""
    return (lambda: int(time.time() * 1000)), time.sleep


def open_broker(
    settings: Settings, execution: Execution, journal: JournalStore, run_id: str
) -> tuple[Broker, dict[str, Any]]:
    """The broker of the execution mode, and what the run's config records about it (``execution``).

    For an exchange mode: the exchange is checked (id, keys, symbols listed, one quote currency), the
    journal's history of this exchange account is reconciled with the exchange, and the reconciliation's
    changes (fills, status updates, adopted orders) and report are journaled, before any decision."""
    if execution.mode == "paper":
        return PaperBroker(settings.paper), {"broker": "paper", "mode": "paper"}
    from tools.ccxt_broker import CcxtBroker, select_venue
    from tools.reconcile import JournalOrder

    if settings.limits.allow_short:
        raise ConfigError("the ccxt broker trades spot, long only: set limits.allow_short = false")
    credentials = execution.credentials
    config: dict[str, Any] = {"timeout": settings.live.request_timeout_ms}
    if credentials is not None:
        config.update(credentials.ccxt_config())
    exchange = select_venue(exchange_client_factory()(settings.exchange, config), execution.mode)
    now_ms, sleep = broker_clock()
    broker = CcxtBroker(exchange, settings.symbols, settings.live, execution.mode, now_ms=now_ms, sleep=sleep,
                        secrets=credentials.values() if credentials else ())  # fmt: skip
    history = [JournalOrder(**row) for row in journal.account_orders(settings.exchange, execution.mode)]
    point = journal.account_portfolio(settings.exchange, execution.mode)
    recon = broker.start(history, point, point["peak_equity"] if point else None)
    record_reconciliation(journal, run_id, settings.timeframe, recon)
    info = {"broker": "ccxt", "mode": execution.mode, "exchange": settings.exchange,
            "reconciliation": recon.report.model_dump(mode="json")}  # fmt: skip
    return broker, info


def record_reconciliation(journal: JournalStore, run_id: str, timeframe: str, recon: Reconciliation) -> None:
    """Journal what a start-up reconciliation changed: fills found, statuses, and adopted orders (each with
    a decision of outcome "adopted" in this run, since the journal had none for it)."""
    from infra.journal import DecisionRecord
    from tools.errors import JournalError

    journal.record_fills(recon.fills)
    for order in recon.changed:
        journal.record_order(order)
    for order in recon.adopted:
        record = DecisionRecord(
            id=order.decision_id, run_id=run_id, symbol=order.symbol, timeframe=timeframe,
            candle_time=order.submitted_at, as_of=order.submitted_at, outcome="adopted",
            reason=f"reconciliation: {order.note}", action=None, inputs_hash="-",
            window_start=order.submitted_at, window_end=order.submitted_at, window_length=0,
            order=order.model_dump(mode="json"),
        )  # fmt: skip
        try:
            journal.record_decision(record, order)
        except JournalError:  # the decision is journaled (its order row was not): keep it, add the order
            journal.record_order(order)
    journal.flush()


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
    checkpoints: CheckpointStore | None = None
    bus: Bus | None = None
    """The bus the session publishes to (``bus_url`` other than the in-process default)."""

    def close(self) -> None:
        try:
            self.journal.close()
        finally:
            try:
                if self.checkpoints is not None:
                    self.checkpoints.close()
            finally:
                if self.bus is not None:
                    self.bus.close()

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


def reasoning(
    settings: Settings,
    limits: RiskLimits,
    endpoint: Endpoint | None,
    journal: Callable[[], JournalStore] | None,
    news_dir: Path | None,
    resolved: tuple[str, LLMSettings, Cassette | None] | None = None,
) -> tuple[Reasoner, ReasonerContext | None, bool]:
    """The reasoner, what it is shown beyond the tool outputs, and whether every valid snapshot goes to it
    (gating off). A replay routes and shows what the recorded run did (``resolved``: see make_reasoner).
    ``journal`` (None: none) holds the earlier runs whose LLM use counts in the daily budget."""
    resolved = resolved or replay_llm_settings(settings)
    llm = resolved[1]
    context = None
    if settings.reasoner != "rules":
        context = ReasonerContext(
            limits=limits,
            risk=settings.risk,
            recent_candles=llm.recent_candles,
            news=NewsFeed.from_dir(news_dir) if news_dir is not None else None,
            news_lookback_ms=int(llm.news_lookback_hours * 3_600_000),
            news_max_items=llm.news_max_items,
        )
    return make_reasoner(settings, endpoint, journal, resolved), context, not llm.gating.enabled


def build_replay(
    settings: Settings,
    run_id: str | None = None,
    feed: RecordedFeed | None = None,
    journal_path: Path | None = None,
    observers: Sequence[SessionObserver] = (),
    endpoint: Endpoint | None = None,
    checkpoint: str | None = None,
    resume: bool = False,
    publish: bool = False,
) -> ReplayJob:
    """A paper session over recorded data; ``feed`` and ``journal_path`` override the settings' ones.
    ``endpoint`` is where an LLM reasoner's model is served (see ``llm_endpoint``).

    With ``checkpoint`` (a checkpoint store) the session is durable (graph.durable); ``resume`` continues
    ``run_id`` from its journal and checkpoints instead of starting it. With ``publish`` and a ``bus_url``
    other than the in-process default, decisions and fills also go on the bus."""
    start_ms, end_ms = time_range(settings)
    if feed is None:  # every file and the range are checked before anything is journaled
        feed = open_feed(settings)
        feed.check_range(settings.symbols, settings.timeframe, start_ms, end_ms)
    data_dir = feed.data_dir
    feed.count(settings.symbols, settings.timeframe, start_ms, end_ms)
    journal_target = journal_path or settings.journal
    if checkpoint is not None:
        check_checkpoint_target(checkpoint, journal_target)
    opened: list[JournalStore] = []
    # the reasoner (and its cassette) first: a bad cassette or setting fails before the journal is touched
    reasoner, context, every = reasoning(settings, run_limits(settings), endpoint, lambda: opened[0], data_dir)
    rid = run_id or new_run_id()
    bus = None
    if publish and not is_memory_url(settings.bus_url):  # the in-process bus has no subscriber outside this process
        bus = open_bus(settings, "tradegraph-run")
        observers = [*observers, BusPublisher(bus, rid)]
    try:
        journal = open_journal(journal_target)
    except BaseException:
        if bus is not None:
            bus.close()
        raise
    opened.append(journal)
    broker = PaperBroker(settings.paper)
    deps = decision_deps(settings, broker, journal, rid, reasoner, context, every)
    config = redacted_config(settings)
    config["data_dir"] = str(data_dir)
    if checkpoint is not None:  # a resume started from another directory must find the same file
        checkpoint = checkpoint if is_postgres_url(checkpoint) else str(Path(checkpoint).resolve())
    config["checkpoint"] = redact_url(checkpoint) if checkpoint is not None else None
    if checkpoint is None:
        session = ReplaySession(build_graph(deps), broker, journal, rid, observers)
        return ReplayJob(session, feed, journal, broker, settings, start_ms, end_ms, config, bus=bus)
    from graph.durable import INTERRUPT_BEFORE, DurableJournal, DurableSession, state_types
    from infra.checkpoints import open_checkpoints

    try:
        store = open_checkpoints(checkpoint, state_types())
        try:
            store.claim(rid)
        except BaseException:
            store.close()
            raise
    except BaseException:
        journal.close()
        if bus is not None:
            bus.close()
        raise
    durable = DurableJournal(journal)
    deps = replace(deps, journal=durable)
    graph = build_graph(deps, checkpointer=store.saver, interrupt_before=INTERRUPT_BEFORE)
    session = DurableSession(graph, broker, durable, rid, store.saver, observers, resume=resume)
    return ReplayJob(session, feed, durable, broker, settings, start_ms, end_ms, config, store, bus)


def check_checkpoint_target(checkpoint: str, journal: str | Path) -> None:
    """A checkpoint store beside the journal: an SQLite journal file cannot also be the checkpoint file."""
    if is_postgres_url(checkpoint) or (isinstance(journal, str) and is_postgres_url(journal)):
        return
    if Path(checkpoint).resolve() == Path(journal).resolve():
        raise ConfigError(f"the checkpoint store {checkpoint} must not be the journal file: give it its own file")


def resume_settings(run_id: str, journal: str, checkpoint: str | None = None, **overrides: Any) -> Settings:
    """The settings to continue ``run_id`` with: those it was journaled with, its journal and checkpoint store."""
    store = open_journal(journal, read_only=True)
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    where = redact_url(str(journal))
    if run is None:
        raise ConfigError(f"no run {run_id!r} in {where}")
    if run["status"] == "completed":
        raise ConfigError(f"run {run_id} in {where} already completed: nothing to resume")
    config = run["config"]
    saved = config.get("checkpoint")
    if checkpoint is None:
        if saved is None:
            raise ConfigError(f"run {run_id} was not started with --checkpoint, so it cannot be resumed")
        if "***" in saved:
            raise ConfigError(f"run {run_id} used the checkpoint store {saved}: pass --checkpoint with its password")
        checkpoint = saved
    return settings_of_run(config, **overrides, journal=journal, checkpoint=checkpoint)


def resume_replay(
    run_id: str,
    journal: str,
    checkpoint: str | None = None,
    observers: Sequence[SessionObserver] = (),
    progress: bool | None = None,
    endpoint: Endpoint | None = None,
) -> ReplayJob:
    """The job that continues ``run_id`` (see ``resume_settings``)."""
    settings = resume_settings(run_id, journal, checkpoint, progress=progress)
    return build_replay(settings, run_id=run_id, observers=observers, endpoint=endpoint,
                        checkpoint=settings.checkpoint, resume=True)  # fmt: skip


def settings_of_run(config: dict[str, Any], **overrides: Any) -> Settings:
    """The settings a run was journaled with (redacted secrets come from the environment again)."""

    def unredacted(value: Any) -> Any:  # a masked value (or URL) is left to the environment and defaults
        if isinstance(value, dict):
            return {k: unredacted(v) for k, v in value.items() if not (isinstance(v, str) and "***" in v)}
        return value

    values = {k: v for k, v in unredacted(config).items() if k in Settings.model_fields}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return load_settings(None, **values)


# --- the bus and distributed runs --------------------------------------------------------------------------
STRATEGY_FIELDS = ("exchange", "symbols", "timeframe", "window", "reasoner", "ta", "fusion", "risk", "limits", "paper")
"""What a distributed run's scheduler journals and its workers decide with (the run's strategy); the run's
``feed`` section also travels (where the workers read market data: recorded files or the exchange)."""


def open_bus(settings: Settings, name: str = "tradegraph") -> Bus:
    """The bus ``bus_url`` names: memory:// (in-process, the default) or amqp(s)://... (RabbitMQ)."""
    url = settings.bus_url
    if is_memory_url(url):
        return MemoryBus()
    if url.startswith(("amqp://", "amqps://")):
        from infra.rabbitmq_bus import RabbitBus

        b = settings.bus
        return RabbitBus(url, b.exchange, connect_timeout=b.connect_timeout, retry_seconds=b.retry_seconds, name=name)
    raise ConfigError(f"unknown bus URL {redact_url(url)}: expected memory:// or amqp://user:password@host/vhost")


def distributed_bus(settings: Settings, name: str) -> Bus:
    """The bus of `schedule` and `worker`, with the durable jobs queue (and its dead-letter queue) declared."""
    if is_memory_url(settings.bus_url):
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
        limits = run_limits(s)
        # rules or a remote LLM (the bundled local model's server is not started by workers); no journal for
        # the daily LLM budget: it is counted per worker process
        reasoner, context, every = reasoning(s, limits, None, None, s.data_dir)
        account = SharedAccount(self.store, run_id, s.paper)
        deps = GraphDeps(ta=s.ta, reasoner=reasoner, risk=s.risk, limits=limits, broker=account,
                         journal=JobJournal(self.store, account), run_id=run_id, context=context,
                         reason_every_snapshot=every)  # fmt: skip
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
    broker: Broker
    settings: Settings
    config: dict[str, Any]

    def close(self) -> None:
        try:
            self.feed.close()
        finally:
            try:
                close = getattr(self.broker, "close", None)
                if close is not None:
                    close()
            finally:
                self.journal.close()


def build_live(
    settings: Settings,
    iterations: int | None = None,
    run_id: str | None = None,
    observers: Sequence[SessionObserver] = (),
    execution: Execution | None = None,
    endpoint: Endpoint | None = None,
) -> LiveJob:
    """A session on live exchange data, run at each candle close: paper by default, or orders on the
    exchange (``execution``: sandbox, demo, live), reconciled with the journal before the first decision.
    The feed (exchange, symbols, timeframe) is checked before the journal is opened: a bad setting writes
    nothing."""
    from infra.scheduler import CandleSchedule

    execution = execution or Execution()
    clock = live_clock()
    feed = open_ccxt_feed(settings, clock)
    rid = run_id or new_run_id()
    journal: JournalStore | None = None
    try:
        opened: list[JournalStore] = []
        reasoner, context, every = reasoning(settings, run_limits(settings), endpoint, lambda: opened[0],
                                             settings.data_dir)  # fmt: skip
        journal = open_journal(settings.journal)
        opened.append(journal)
        broker, execution_info = open_broker(settings, execution, journal, rid)
    except BaseException:
        feed.close()
        if journal is not None:
            journal.close()
        raise
    deps = decision_deps(settings, broker, journal, rid, reasoner, context, every)
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
    if execution.mode != "paper":
        config["execution"] = execution_info
    return LiveJob(session, feed, schedule, journal, broker, settings, config)
