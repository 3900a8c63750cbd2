"""Snapshot-to-verdict latency of paper trading on a replayed live stream, without LLM (rules reasoner).

The session is the one `tradegraph run --feed ccxt --schedule` builds (composition.build_live): ccxt's real
binance class, REST answered at the wire by tests/exchange_wire's responder, websockets from its local server
speaking Binance's stream format, replaying the bundled recorded 1h candles of BTC/USDT and ETH/USDT close
after close (a manual clock jumps to each close; the stream publishes each closed kline as the exchange does).
For every decision it measures, in one run:

- feed: candle close -> snapshot ready (waiting for the stream to confirm the close, REST back-fill of what is
  missing, the order book), measured around ``feed.snapshot``;
- verdict: snapshot -> gate verdict: the graph's nodes up to and including ``risk_gate`` (for decisions that
  stop earlier - invalid, nothing to decide, hold - up to their last deciding node), from the node timings;
- journaled: snapshot -> decision journaled: the whole graph invoke (execute + journal included);
- side by side, per decision of the same run: the feed's share of close -> verdict, and each p95 against
  its target (snapshot -> verdict 50 ms; close -> verdict against the seed's 300 ms order latency).

Not included: the network. Against the real exchange a REST back-fill costs one round trip (tens to
hundreds of ms) when the stream has not confirmed the close in time; the stream itself adds its own delay.

Usage: python benchmarks/bench_live_latency.py [--closes N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tradegraph.composition as composition  # noqa: E402
from infra.settings import load_settings  # noqa: E402
from tests.exchange_wire import FakeExchange, ManualClock  # noqa: E402
from tools.market import Snapshot  # noqa: E402

HOUR = 3_600_000
START = 1717200000000 + 2000  # 2024-06-01T00:00:02: every close replayed is in the bundled sample
VERDICT_NODES = ("validate_snapshot", "technical_analysis", "strategy_fusion", "risk_assessment", "risk_gate")
TARGET_P95_MS = 50.0
ORDER_TARGET_MS = 300.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class TimedFeed:
    """Wraps the live feed: how long each snapshot took to build."""

    def __init__(self, feed: Any) -> None:
        self.feed = feed
        self.exchange = feed.exchange
        self.ms: list[float] = []

    def snapshot(self, symbol: str, timeframe: str, candle_time: int) -> Snapshot:
        started = time.perf_counter()
        try:
            snap: Snapshot = self.feed.snapshot(symbol, timeframe, candle_time)
            return snap
        finally:
            self.ms.append((time.perf_counter() - started) * 1000)


class TimedGraph:
    """Wraps the compiled graph: wall time of each invoke, and the node timings it filled in."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.invoke_ms: list[float] = []
        self.verdict_ms: list[float] = []
        self.gated_ms: list[float] = []
        self.outcomes: dict[str, int] = {}

    def invoke(self, state: dict[str, Any]) -> Any:
        started = time.perf_counter()
        out = self.graph.invoke(state)
        self.invoke_ms.append((time.perf_counter() - started) * 1000)
        timings = state["timings"]
        verdict = sum(timings.get(n, 0.0) for n in VERDICT_NODES) / 1000
        self.verdict_ms.append(verdict)
        if "risk_gate" in timings:
            self.gated_ms.append(verdict)
        self.outcomes[out["outcome"]] = self.outcomes.get(out["outcome"], 0) + 1
        return out


def live_run(closes: int, journal: Path) -> tuple[TimedFeed, TimedGraph, dict[str, Any], float]:
    clock = ManualClock(START)
    fake = FakeExchange("binance", clock, websocket=True)
    composition.live_clock = lambda: clock
    composition.exchange_factory = lambda: fake.factory
    settings = load_settings(symbols="BTC/USDT,ETH/USDT", journal=str(journal), progress=False)
    job = composition.build_live(settings, iterations=closes)
    timed_feed, timed_graph = TimedFeed(job.feed), TimedGraph(job.session.graph)
    job.schedule.feed = timed_feed
    job.session.graph = timed_graph
    started = time.perf_counter()
    try:
        summary = job.session.run(job.schedule, job.config)
    finally:
        elapsed = time.perf_counter() - started
        job.close()
        fake.close()
    info = {
        "summary": summary,
        "klines": fake.responder.count(r"/api/v3/klines"),
        "depth": fake.responder.count(r"/api/v3/depth"),
    }
    return timed_feed, timed_graph, info, elapsed


def line(label: str, values: list[float]) -> str:
    if not values:
        return f"{label:<44} (none)"
    return (f"{label:<44} p50 {percentile(values, 0.5):7.2f} ms   p95 {percentile(values, 0.95):7.2f} ms   "
            f"max {max(values):7.2f} ms   n={len(values)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--closes", type=int, default=300, help="candle closes to replay (2 symbols each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        feed, graph, info, elapsed = live_run(args.closes, Path(tmp) / "live.sqlite")
    total = [f + v for f, v in zip(feed.ms, graph.verdict_ms, strict=False)]
    print(f"replayed live stream: binance BTC/USDT + ETH/USDT 1h, {args.closes} closes, {len(graph.invoke_ms)} "
          f"decisions in {elapsed:.1f} s; outcomes {graph.outcomes}")  # fmt: skip
    print(f"REST requests: klines {info['klines']} (the first window of each symbol, then only closes the stream "
          f"had not confirmed in time), order books {info['depth']} (the recorded depth stream is 30 s long: later "
          f"books come from REST)")  # fmt: skip
    print(line("feed: close -> snapshot", feed.ms))
    print(line("verdict: snapshot -> gate verdict (all)", graph.verdict_ms))
    print(line("verdict: snapshot -> gate verdict (gated)", graph.gated_ms))
    print(line("journaled: snapshot -> decision journaled", graph.invoke_ms))
    print(line("close -> verdict (feed + verdict)", total))
    p95 = percentile(graph.verdict_ms, 0.95)
    p95_total = percentile(total, 0.95)
    share = [f / t for f, t in zip(feed.ms, total, strict=False) if t > 0]
    print(f"snapshot -> verdict p95 {p95:.2f} ms = {p95 / TARGET_P95_MS:.2f} x the {TARGET_P95_MS:.0f} ms target "
          f"({'met' if p95 <= TARGET_P95_MS else 'MISSED'}); close -> verdict p95 {p95_total:.2f} ms = "
          f"{p95_total / ORDER_TARGET_MS:.2f} x the {ORDER_TARGET_MS:.0f} ms order-latency target")  # fmt: skip
    print(f"feed share of close -> verdict per decision: median {statistics.median(share):.0%}, "
          f"p95 {percentile(share, 0.95):.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
