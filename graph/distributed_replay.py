"""Distributed replays of recorded data: which jobs a range has, and closing the run once all are decided."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graph.distributed import portfolio_point
from infra.job_store import JobStore
from tools.paper_broker import PaperBrokerConfig
from tools.paper_state import load_broker
from tools.recorded_feed import RecordedFeed


def replay_candles(
    feed: RecordedFeed, symbols: Sequence[str], timeframe: str, start: int | None, end: int | None
) -> list[tuple[int, list[str]]]:
    """Recorded candle times in [start, end) with the symbols that have a candle then (symbols in order):
    the keys a single-process replay of the range decides."""
    by_time: dict[int, list[str]] = {}
    for symbol in symbols:
        series = feed.series(symbol, timeframe)
        for i in feed.index_range(series, start, end):
            by_time.setdefault(int(series.candles.timestamp[i]), []).append(symbol)
    return sorted(by_time.items())


def finish_replay(
    store: JobStore, run_id: str, cfg: PaperBrokerConfig, last_candle: int, elapsed_s: float
) -> dict[str, Any]:
    """Close a fully decided replay: its last portfolio point (as the single-process session writes at its end),
    a summary like `tradegraph run`'s, status completed."""
    state = store.lock_account(run_id)
    try:
        broker = load_broker(cfg, state)
        marks = state.get("points") or {"through": None, "peak": cfg.initial_cash}
    except BaseException:
        store.rollback()
        raise
    if marks["through"] is None or marks["through"] < last_candle:
        point, state["points"] = portfolio_point(run_id, last_candle, broker, marks)
        store.finish_settlement(run_id, state, [], [], [point])
    else:
        store.rollback()
    tallies = store.run_tallies(run_id)
    initial, final = cfg.initial_cash, broker.equity()
    summary = {
        "run_id": run_id, "snapshots": tallies["snapshots"], "outcomes": tallies["outcomes"],
        "actions": tallies["actions"], "orders": tallies["orders"], "fills": tallies["fills"],
        "gate_denials": tallies["gate_denials"], "gate_shrinks": tallies["gate_shrinks"],
        "initial_equity": initial, "final_equity": final, "pnl": final - initial,
        "return_pct": 100 * (final - initial) / initial, "max_drawdown": tallies["max_drawdown"],
        "fees_paid": broker.fees_paid, "open_positions": {s: p.quantity for s, p in broker.positions.items()},
        "first_candle": tallies["first_candle"], "last_candle": tallies["last_candle"], "elapsed_s": elapsed_s,
    }  # fmt: skip
    store.finish_run(run_id, "completed", summary)
    return summary
