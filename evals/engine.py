"""Runs the same graph as `tradegraph run` over recorded markets and gathers what the metrics need.

The journal is the source of truth: equity, positions, fills and decisions are read back from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from evals.metrics import Trade
from graph.runner import ReplaySession, RunSummary
from infra.journal import JournalStore
from infra.settings import Settings
from tools.market import Snapshot
from tools.recorded_feed import RecordedFeed

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class ReplayJobLike(Protocol):
    session: ReplaySession
    journal: JournalStore
    config: dict[str, Any]

    def snapshots(self) -> Iterable[Snapshot]: ...
    def snapshot_count(self) -> int: ...


class ReplayFactory(Protocol):
    def __call__(
        self,
        settings: Settings,
        run_id: str | None = None,
        feed: RecordedFeed | None = None,
        journal_path: Path | None = None,
    ) -> ReplayJobLike: ...


@dataclass
class StrategyRun:
    run_id: str
    summary: RunSummary
    timestamps: IntArray
    equity: FloatArray
    in_position: BoolArray
    trades: list[Trade]
    traded_notional: float
    fees_paid: float
    decisions: list[dict[str, Any]]
    llm: dict[str, float] = field(default_factory=dict)


def trades_from_fills(fills: list[dict[str, Any]], last_close: dict[str, tuple[int, float]]) -> list[Trade]:
    """Round trips per symbol: a trade opens when a position leaves zero and closes when it returns to zero.

    pnl sums the fills' realized pnl, which is net of every fee; a trade still open at the end is closed at the
    last close as ``end_of_data`` (no exit fee charged).
    """
    trades: list[Trade] = []
    book: dict[str, dict[str, Any]] = {}
    for f in fills:
        sym, qty = f["symbol"], f["quantity"] * (1 if f["side"] == "buy" else -1)
        t = book.get(sym)
        if t is None:
            book[sym] = {"time": f["timestamp"], "qty": qty, "cost": f["price"] * qty, "entry_qty": qty,
                         "pnl": f["realized_pnl"], "fees": f["fee"], "exit_value": 0.0, "exit_qty": 0.0}  # fmt: skip
            continue
        t["pnl"] += f["realized_pnl"]
        t["fees"] += f["fee"]
        if t["qty"] * qty > 0:
            t["qty"] += qty
            t["cost"] += f["price"] * qty
            t["entry_qty"] += qty
            continue
        t["qty"] += qty
        t["exit_value"] += f["price"] * abs(qty)
        t["exit_qty"] += abs(qty)
        if abs(t["qty"]) <= 1e-12:
            trades.append(_close(sym, t, f["timestamp"], t["exit_value"] / t["exit_qty"], f["kind"], t["pnl"]))
            del book[sym]
    for sym, t in book.items():
        end_time, end_price = last_close[sym]
        pnl = t["pnl"] + t["qty"] * (end_price - t["cost"] / t["entry_qty"])
        trades.append(_close(sym, t, end_time, end_price, "end_of_data", pnl))
    trades.sort(key=lambda tr: (tr.entry_time, tr.symbol))
    return trades


def _close(sym: str, t: dict[str, Any], exit_time: int, exit_price: float, reason: str, pnl: float) -> Trade:
    entry_price = t["cost"] / t["entry_qty"]
    return Trade(
        symbol=sym,
        entry_time=t["time"],
        exit_time=exit_time,
        entry_price=entry_price,
        exit_price=exit_price,
        quantity=t["entry_qty"],
        pnl=pnl,
        fees=t["fees"],
        exit_reason="exit" if reason == "entry" else reason,
        entry_notional=abs(t["entry_qty"]) * entry_price,
    )


def trades_fingerprint(trades: list[Trade]) -> str:
    """sha256 of every trade, rounded so that float noise below the 10th significant digit does not count."""
    canon = [
        [t.symbol, t.entry_time, t.exit_time, f"{t.entry_price:.10g}", f"{t.exit_price:.10g}", f"{t.quantity:.10g}",
         f"{t.pnl:.8g}", t.exit_reason]
        for t in trades
    ]  # fmt: skip
    return hashlib.sha256(json.dumps(canon).encode()).hexdigest()


def decision_key(d: dict[str, Any]) -> tuple[str, int]:
    return d["symbol"], int(d["candle_time"])


def decision_signature(d: dict[str, Any]) -> str:
    """Everything a decision saw and did, minus run-specific ids and timings: it must not change when only
    the future changes."""
    body = {k: d.get(k) for k in ("inputs_hash", "outcome", "reason", "action", "indicators", "signals", "aggregate",
                                  "intent", "risk", "proposal", "verdict", "portfolio")}  # fmt: skip
    order = d.get("order")
    body["order"] = {k: v for k, v in order.items() if k not in ("client_order_id", "decision_id")} if order else None
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def decision_outcome(d: dict[str, Any]) -> tuple[Any, ...]:
    """What was decided (route, action, gate verdict, order), without the indicator values behind it."""
    order = d.get("order") or {}
    verdict = d.get("verdict") or {}
    return (
        d["outcome"],
        d["action"],
        verdict.get("decision"),
        tuple(verdict.get("reasons") or ()),
        order.get("side"),
        None if not order else f"{order['quantity']:.8g}",
    )


def llm_usage(decisions: list[dict[str, Any]]) -> dict[str, float]:
    """LLM requests that went out (replayed answers and budget refusals are not calls), their tokens and cost."""
    llm = {"calls": 0.0, "tokens": 0.0, "cost_usd": 0.0, "replayed": 0.0}
    for d in decisions:
        for call in (d.get("reasoner") or {}).get("calls") or []:
            if call.get("source") == "replayed":
                llm["replayed"] += 1
            elif call.get("outcome") != "budget_exhausted":
                llm["calls"] += 1
                llm["tokens"] += call.get("input_tokens", 0) + call.get("output_tokens", 0)
                llm["cost_usd"] += call.get("cost_usd", 0.0)
    return llm


def run_strategy(
    factory: ReplayFactory,
    settings: Settings,
    feed: RecordedFeed,
    journal_path: Path,
    run_id: str | None = None,
    on_step: Callable[[Snapshot], None] | None = None,
) -> StrategyRun:
    job = factory(settings, run_id=run_id, feed=feed, journal_path=journal_path)
    try:
        summary = job.session.run(job.snapshots(), job.config, on_step=on_step)
        rid = job.session.run_id
        points = job.journal.portfolio_points(rid)
        fills = job.journal.run_fills(rid)
        decisions = job.journal.run_decisions(rid)
    finally:
        job.journal.close()
    timestamps = np.array([p["timestamp"] for p in points], dtype=np.int64)
    equity = np.array([p["equity"] for p in points], dtype=np.float64)
    in_position = np.array([bool(p["positions"]) for p in points], dtype=np.bool_)
    last_close: dict[str, tuple[int, float]] = {}
    for sym in {f["symbol"] for f in fills}:
        series = feed.series(sym, settings.timeframe)
        idx = int(np.searchsorted(series.candles.timestamp, timestamps[-1], side="right")) - 1
        last_close[sym] = (int(series.candles.timestamp[idx]), float(series.candles.close[idx]))
    llm = llm_usage(decisions)
    return StrategyRun(
        run_id=rid,
        summary=summary,
        timestamps=timestamps,
        equity=equity,
        in_position=in_position,
        trades=trades_from_fills(fills, last_close),
        traded_notional=float(sum(f["quantity"] * f["price"] for f in fills)),
        fees_paid=float(sum(f["fee"] for f in fills)),
        decisions=decisions,
        llm=llm,
    )
