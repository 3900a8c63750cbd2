"""Replay throughput: the whole graph (LangGraph) vs the same node functions in a plain Python loop.

Prints, from one run on this machine:
- snapshots/s through the compiled graph and through a plain loop calling the same node functions with the
  same routing functions, and their ratio (the graph's own overhead);
- per-snapshot time with 1k vs 100k candles of history behind the snapshots (it must stay flat, since
  indicators are computed on a bounded window).

Usage: python benchmarks/bench_replay.py [--months N] [--repeat K]
The history benchmark uses a seeded geometric random walk (the bundled real sample has ~11k candles only).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graph import routing  # noqa: E402
from graph.builder import GraphDeps, build_graph, node_functions  # noqa: E402
from graph.state import DecisionState  # noqa: E402
from infra.journal import decision_id  # noqa: E402
from infra.settings import Settings, load_settings  # noqa: E402
from infra.sqlite_journal import SqliteJournal  # noqa: E402
from tools.market import Snapshot  # noqa: E402
from tools.paper_broker import Bar, PaperBroker  # noqa: E402
from tools.recorded_feed import RecordedFeed  # noqa: E402
from tools.timeframes import day_start_ms, timeframe_ms  # noqa: E402
from tradegraph.composition import bundled_data_dir, make_reasoner  # noqa: E402


def plain_loop(fns: dict[str, Callable[[DecisionState], DecisionState]], allow_short: bool) -> Callable[..., Any]:
    """The graph's routing, written out by hand: the same nodes and the same edge functions, no LangGraph."""

    def run(state: DecisionState) -> DecisionState:
        state.update(fns["validate_snapshot"](state))
        if routing.after_validate(state) == "technical_analysis":
            state.update(fns["technical_analysis"](state))
            if routing.after_technical(state, allow_short=allow_short) == "strategy_fusion":
                state.update(fns["strategy_fusion"](state))
                if routing.after_fusion(state) == "risk_assessment":
                    state.update(fns["risk_assessment"](state))
                    if routing.after_risk(state) == "risk_gate":
                        state.update(fns["risk_gate"](state))
                        if routing.after_gate(state) == "execute":
                            state.update(fns["execute"](state))
        state.update(fns["journal"](state))
        return state

    return run


def replay(settings: Settings, feed: RecordedFeed, snaps: list[Snapshot], use_graph: bool, workdir: Path) -> float:
    """Seconds to replay ``snaps`` (settle + decide + journal), through the graph or the plain loop."""
    journal_path = workdir / f"bench-{time.perf_counter_ns()}.sqlite"
    journal = SqliteJournal(journal_path)
    broker = PaperBroker(settings.paper)
    limits = settings.limits.model_copy(update={"allowed_symbols": frozenset(settings.symbols)})
    deps = GraphDeps(settings.ta, make_reasoner(settings), settings.risk, limits, broker, journal, "bench")
    step = build_graph(deps).invoke if use_graph else plain_loop(node_functions(deps), limits.allow_short)
    tf = timeframe_ms(settings.timeframe)
    gc.collect()
    start = time.perf_counter()
    for snap in snaps:
        w = snap.window
        bar = Bar(snap.symbol, snap.candle_time, snap.candle_time + tf, float(w.open[-1]), float(w.high[-1]),
                  float(w.low[-1]), float(w.close[-1]), float(w.volume[-1]))  # fmt: skip
        journal.record_fills(broker.on_candle(bar))
        for order in broker.take_order_updates():
            journal.record_order(order)
        step(
            {
                "decision_id": decision_id("bench", snap.symbol, snap.timeframe, snap.candle_time),
                "snapshot": snap,
                "portfolio": broker.portfolio_view(),
                "timings": {},
            }
        )
    journal.flush()
    elapsed = time.perf_counter() - start
    journal.close()
    return elapsed


def synthetic_history(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    vol = rng.uniform(100, 1000, n)
    ts = (1_500_000_000_000 // 3_600_000 + np.arange(n)) * 3_600_000
    rows = "\n".join(
        f"{t},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v:.4f}"
        for t, o, h, lo, c, v in zip(ts, open_, high, low, close, vol, strict=True)
    )
    path.write_text("timestamp,open,high,low,close,volume\n" + rows + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--months", type=int, default=12, help="months of 2024 to replay (BTC/USDT + ETH/USDT 1h)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--history-snapshots", type=int, default=1000)
    args = parser.parse_args()
    settings = load_settings(data_dir=bundled_data_dir(), progress=False)
    feed = RecordedFeed(bundled_data_dir(), window=settings.window)
    end_month = args.months + 1
    end = day_start_ms(date(2024 + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1))
    snaps = list(feed.snapshots(settings.symbols, settings.timeframe, day_start_ms(date(2024, 1, 1)), end))
    print(f"replay of {len(snaps)} snapshots (BTC/USDT + ETH/USDT 1h, {args.months} months of 2024), rules reasoner")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        graph_s, plain_s = [], []
        for _ in range(args.repeat):  # interleaved so both see the same machine load
            graph_s.append(replay(settings, feed, snaps, True, work))
            plain_s.append(replay(settings, feed, snaps, False, work))
        g, p = statistics.median(graph_s), statistics.median(plain_s)
        print(f"  through LangGraph : {len(snaps) / g:8.0f} snapshots/s  ({1e6 * g / len(snaps):7.1f} us/snapshot)")
        print(f"  plain Python loop : {len(snaps) / p:8.0f} snapshots/s  ({1e6 * p / len(snaps):7.1f} us/snapshot)")
        print(f"  ratio plain/graph : {g / p:8.2f}x   (graph overhead {1e6 * (g - p) / len(snaps):.1f} us/snapshot)")

        print(f"per-snapshot time vs history length ({args.history_snapshots} snapshots at the end of the history)")
        results: dict[int, tuple[float, float]] = {}
        for history in (1_000, 100_000):
            data = work / f"h{history}"
            data.mkdir()
            synthetic_history(data / "binance_SYN-USDT_1h.csv", history + args.history_snapshots, seed=7)
            hfeed = RecordedFeed(data, window=settings.window)
            series = hfeed.series("SYN/USDT", "1h")
            hs = [hfeed.snapshot_at(series, i) for i in range(history, history + args.history_snapshots)]
            hset = settings.model_copy(update={"symbols": ["SYN/USDT"]})
            tg = statistics.median(replay(hset, hfeed, hs, True, work) for _ in range(args.repeat))
            tp = statistics.median(replay(hset, hfeed, hs, False, work) for _ in range(args.repeat))
            results[history] = (tg, tp)
            print(
                f"  {history:>7,} candles of history: graph {1e6 * tg / len(hs):7.1f} us/snapshot, "
                f"plain loop {1e6 * tp / len(hs):7.1f} us/snapshot"
            )
        (g1, p1), (g100, p100) = results[1_000], results[100_000]
        print(f"  ratio 100k/1k       : graph {g100 / g1:.2f}x, plain loop {p100 / p1:.2f}x (flat = 1.00)")


if __name__ == "__main__":
    main()
