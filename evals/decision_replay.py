"""Re-running one journaled decision and checking that it reproduces.

1. The run's journaled config gives the settings (data dir, symbols, timeframe, window, every limit).
2. The snapshot is rebuilt from the recorded data; its window must hash to the journaled ``inputs_hash`` and
   span the journaled bounds, or the report says the data changed.
3. The portfolio the decision saw is rebuilt by replaying the paper broker over the same candles from the
   run's start, submitting the orders the run's earlier decisions placed (from the journal's orders table),
   exactly as the session did; nothing is re-decided on the way.
4. The same graph runs once on that snapshot and portfolio, journaling into a throwaway journal, and the
   new record is compared field by field with the stored one (timings excepted; an order's later status and
   fills are history, not part of the decision).

A decision of an LLM reasoner (llm, local, crew, replay) runs with the reasoner rebuilt over the run's cassette
(the graph factory's job): the recorded answer goes through the same validation, evidence check, gating and
gate. A missing or mismatched cassette entry is a CassetteError, raised, never turned into an error decision.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from graph.runner import error_record, unsettled_bars
from infra.journal import JournalStore
from infra.settings import Settings
from infra.sqlite_journal import SqliteJournal
from tools.errors import CassetteError, DataError, TradegraphError
from tools.journal_reader import JournalReader
from tools.market import Snapshot
from tools.paper_broker import PaperBroker
from tools.recorded_feed import RecordedFeed
from tools.timeframes import to_iso
from tools.trade_types import Order, OrderStatus

IGNORED = {"node_timings_us", "orders", "fills", "run_id"}
"""Stored keys that are not part of what was decided."""
REDACTED = "***"
IGNORED_NESTED = {"latency_ms", "called_at"}
"""Wall-clock measurements inside the reasoner trace."""
BUDGET_TOTALS = {"run_llm_tokens", "run_llm_cost_usd", "day_llm_tokens", "day_llm_cost_usd"}
"""The run's and the day's running LLM spend in a trace's details: history of the run, not this decision."""
CALL_PROVENANCE = {"source"}
"""Where a call's answer came from (live, recorded, replayed): a replay replays it by design."""

DecisionGraph = Callable[[PaperBroker, JournalStore], Any]
"""The compiled graph, executing on the broker and journaling into the journal given."""


class GraphFactory(Protocol):
    def __call__(self, settings: Settings, stored: dict[str, Any], news_dir: Path) -> DecisionGraph:
        """The graph that re-decides ``stored`` under ``settings`` (news from ``news_dir``). Everything that can
        refuse (a missing or mismatched cassette) is checked here, before the portfolio is rebuilt."""


class FeedFactory(Protocol):
    def __call__(self, settings: Settings) -> RecordedFeed: ...


@dataclass
class ReplayReport:
    decision_id: str
    run_id: str
    reproduced: bool
    stored: dict[str, Any]
    replayed: dict[str, Any] | None
    data_changed: str | None = None
    diff: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_settings(config: dict[str, Any], data_dir: Path | None) -> Settings:
    """The settings a run journaled (its config), with the data directory overridden when given."""
    unused = {"chat", "influx", "metrics_host"}  # sections that play no part in a decision
    values = {k: v for k, v in _without_redacted(config).items() if k in Settings.model_fields and k not in unused}
    values["journal"] = ":memory:"
    values["progress"] = False
    if data_dir is not None:
        values["data_dir"] = str(data_dir)
    try:
        return Settings(**values)
    except ValueError as exc:
        raise DataError(f"the run's journaled config is not usable by this tradegraph: {exc}") from None


def _without_redacted(value: Any) -> Any:
    """The config without the values the journal redacted ("***"): the defaults stand in for them."""
    if isinstance(value, dict):
        return {k: _without_redacted(v) for k, v in value.items() if v != REDACTED}
    return value


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in IGNORED_NESTED}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def comparable_record(record: dict[str, Any]) -> dict[str, Any]:
    """What of a journaled decision a replay must reproduce: no timings, run id, later orders and fills, running
    LLM budget totals or call provenance."""
    out: dict[str, Any] = _comparable({k: v for k, v in record.items() if k not in IGNORED})
    trace = out.get("reasoner")
    if isinstance(trace, dict):
        trace = dict(trace)
        if isinstance(trace.get("details"), dict):
            trace["details"] = {k: v for k, v in trace["details"].items() if k not in BUDGET_TOTALS}
        if isinstance(trace.get("calls"), list):
            trace["calls"] = [{k: v for k, v in c.items() if k not in CALL_PROVENANCE} if isinstance(c, dict) else c
                              for c in trace["calls"]]  # fmt: skip
        out["reasoner"] = trace
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


def decision_diff(stored: dict[str, Any], replayed: dict[str, Any], prefix: str = "") -> list[str]:
    """'path: journaled X, replayed Y' for every leaf that differs (floats compared exactly: same code, same data)."""
    if not prefix:
        stored, replayed = comparable_record(stored), comparable_record(replayed)
    out: list[str] = []
    keys = list(dict.fromkeys([*stored, *replayed]))
    for key in keys:
        path = f"{prefix}{key}"
        out += _diff_values(stored.get(key, "<missing>"), replayed.get(key, "<missing>"), path)
    return out


def _diff_values(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return decision_diff(a, b, path + ".")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out: list[str] = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _diff_values(x, y, f"{path}[{i}]")
        return out
    if isinstance(a, float) and isinstance(b, float) and (a == b or (math.isnan(a) and math.isnan(b))):
        return []
    if a == b:
        return []
    return [f"{path}: journaled {_short(a)}, replayed {_short(b)}"]


def _as_submitted(row: dict[str, Any]) -> Order:
    return Order(
        client_order_id=row["client_order_id"],
        decision_id=row["decision_id"],
        symbol=row["symbol"],
        side=row["side"],
        quantity=row["quantity"],
        reference_price=row["reference_price"],
        submitted_at=row["submitted_at"],
        stop_loss=row["stop_loss"],
        take_profit=row["take_profit"],
        kind=row["kind"],
        status=OrderStatus.PENDING,
        filled_quantity=0.0,
    )


def _run_snapshots(feed: RecordedFeed, settings: Settings, start_ms: int | None, end_ms: int) -> Iterator[Snapshot]:
    return feed.snapshots(settings.symbols, settings.timeframe, start_ms, end_ms)


def rebuild_portfolio(
    reader: JournalReader,
    stored: dict[str, Any],
    settings: Settings,
    feed: RecordedFeed,
    start_ms: int | None,
) -> tuple[PaperBroker, Snapshot]:
    """The paper broker as it stood when the decision was taken, and the decision's snapshot."""
    t = int(stored["candle_time"])
    orders: dict[tuple[str, int], Order] = {}
    for row in reader.placed_orders(stored["run_id"], t + 1):
        orders[(row["symbol"], int(row["candle_time"]))] = _as_submitted(row)
    broker = PaperBroker(settings.paper)
    settled: dict[str, int] = {}
    for snap in _run_snapshots(feed, settings, start_ms, t + 1):  # settled exactly as graph.runner does
        for bar in unsettled_bars(snap, settled.get(snap.symbol)):
            broker.on_candle(bar)
        settled[snap.symbol] = snap.candle_time
        broker.take_order_updates()
        if snap.symbol == stored["symbol"] and snap.candle_time == t:
            return broker, snap
        order = orders.get((snap.symbol, snap.candle_time))
        if order is not None:
            broker.submit(order)
    raise DataError(
        f"the recorded data has no {stored['symbol']} {stored['timeframe']} candle at {to_iso(t)} "
        f"in {feed.data_dir}: the data changed since the run"
    )


def replay_decision(
    reader: JournalReader,
    decision_id: str,
    graph_factory: GraphFactory,
    feed_factory: FeedFactory,
    start_ms_of: Any,
    data_dir: Path | None = None,
) -> ReplayReport:
    """Re-run ``decision_id``; ``start_ms_of(settings)`` gives the run's first candle time (None: the data's)."""
    stored = reader.get_decision(decision_id)
    if stored is None:
        raise TradegraphError(f"no decision {decision_id!r} in journal {reader.path}")
    run = reader.get_run(stored["run_id"])
    if run is None:
        raise TradegraphError(f"decision {decision_id} names run {stored['run_id']!r}, which the journal lacks")
    if stored["inputs_hash"] == "-":
        raise TradegraphError(
            f"decision {decision_id} has no snapshot to re-run (outcome {stored['outcome']}: {stored['reason']})"
        )
    if run["mode"] != "paper":
        raise TradegraphError(
            f"decision {decision_id} comes from a run that traded on an exchange ({run['mode']}); replay re-runs "
            "paper sessions only"
        )
    if (run["config"].get("feed") or {}).get("source", "recorded") != "recorded":
        raise TradegraphError(
            f"decision {decision_id} comes from a run on live exchange data; replay rebuilds snapshots and the "
            "portfolio from a recorded-data run only"
        )
    settings = run_settings(run["config"], data_dir)
    feed = feed_factory(settings)
    make_graph = graph_factory(settings, stored, feed.data_dir)
    broker, snap = rebuild_portfolio(reader, stored, settings, feed, start_ms_of(settings))
    report = ReplayReport(decision_id=decision_id, run_id=stored["run_id"], reproduced=False, stored=stored,
                          replayed=None)  # fmt: skip
    w = snap.window
    rebuilt = (w.digest(), int(w.timestamp[0]), int(w.timestamp[-1]), len(w))
    journaled = (stored["inputs_hash"], stored["window_start"], stored["window_end"], stored["window_length"])
    if rebuilt != journaled:
        report.data_changed = (
            f"the recorded data changed: the rebuilt window ({rebuilt[3]} candles {to_iso(rebuilt[1])} .. "
            f"{to_iso(rebuilt[2])}, hash {rebuilt[0]}) differs from the journaled one ({journaled[3]} candles "
            f"{to_iso(journaled[1])} .. {to_iso(journaled[2])}, hash {journaled[0]})"
        )
    with tempfile.TemporaryDirectory(prefix="tradegraph-replay-") as tmp:
        journal = SqliteJournal(Path(tmp) / "replay.sqlite")
        try:
            graph = make_graph(broker, journal)
            portfolio = broker.portfolio_view()
            try:
                graph.invoke({"decision_id": decision_id, "snapshot": snap, "portfolio": portfolio, "timings": {}})
            except CassetteError:  # as in a session: the run would have stopped, not decided
                raise
            except Exception as exc:  # as in a session: a failing node leaves an error decision
                journal.record_decision(error_record(stored["run_id"], decision_id, snap, portfolio.equity, exc))
            journal.flush()
            replayed = journal.get_decision(decision_id)
        finally:
            journal.close()
    if replayed is None:  # pragma: no cover - the graph always journals its one decision
        raise TradegraphError(f"the replay of {decision_id} journaled no decision")
    report.replayed = replayed
    report.diff = decision_diff(stored, replayed)
    report.reproduced = not report.diff and report.data_changed is None
    return report


def cassette_mismatch(
    decision_id: str, trace: dict[str, Any], kind: str, prompt_id: str, manifest: dict[str, Any], where: Path
) -> str | None:
    """Why the cassette at ``where`` cannot hold the answers of this decision (recorded by another reasoner, for
    another model or prompt), or None. ``kind`` and ``prompt_id`` are the run's reasoner and prompt template."""
    recorded = (("reasoner", kind), ("prompt_id", prompt_id),
                *((k, trace[k]) for k in ("model", "prompt_hash") if trace.get(k) is not None))  # fmt: skip
    for key, used in recorded:
        if manifest.get(key) != used:
            return (f"cassette {where} was recorded with {key} {manifest.get(key)!r}, decision {decision_id} used "
                    f"{used!r}: pass the cassette recorded with its run")  # fmt: skip
    return None
