"""Eval throughput: one year of 1h BTC/USDT + ETH/USDT through `tradegraph eval` with the rules reasoner.

Prints the eval's wall time and snapshots/s (the graph replay, baselines, bootstrap and metrics), and the
time spent writing the report, measured in the same run.
Usage: python benchmarks/bench_eval.py [--start 2024-01-01] [--end 2024-12-31]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import evals.harness as harness  # noqa: E402
from evals.harness import EvalOptions, default_range, run_eval  # noqa: E402
from infra.settings import load_settings  # noqa: E402
from tradegraph.composition import build_replay, open_feed, time_range  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--end", default="2024-12-31")
    args = parser.parse_args()
    settings = load_settings(start=date.fromisoformat(args.start), end=date.fromisoformat(args.end), progress=False)
    feed = open_feed(settings)
    start, end = default_range(feed, settings, *time_range(settings))
    snapshots = feed.count(settings.symbols, settings.timeframe, start, end)
    render_seconds: list[float] = []
    original = harness.render_report

    def timed_render(data: harness.ReportData) -> str:
        t0 = time.perf_counter()
        html = original(data)
        render_seconds.append(time.perf_counter() - t0)
        return html

    harness.render_report = timed_render
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_eval(build_replay, settings, feed, start, end, EvalOptions(out=Path(tmp) / "out"))
        wall = time.perf_counter() - t0
        size = (Path(tmp) / "out" / "report.html").stat().st_size
    print(
        f"eval of {snapshots} snapshots ({', '.join(settings.symbols)} {settings.timeframe}, {args.start} .. {args.end})"
    )
    print(f"  wall time          : {wall:8.1f} s")
    print(f"  throughput         : {snapshots / wall:8.0f} snapshots/s (whole eval, incl. baselines and bootstrap)")
    print(f"  report generation  : {render_seconds[0]:8.2f} s ({size / 1e6:.2f} MB HTML), "
          f"{100 * render_seconds[0] / wall:.1f}% of the eval")  # fmt: skip


if __name__ == "__main__":
    main()
