"""`tradegraph eval`: replay recorded markets through the graph, measure, compare with baselines."""

from __future__ import annotations

import argparse
import shutil
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from tools.errors import ConfigError, TradegraphError
from tools.timeframes import to_iso
from tradegraph.cli_common import SubParsers, add_market_flags, market_settings

if TYPE_CHECKING:
    from agents.llm_client import Endpoint
    from infra.settings import Settings
    from tools.recorded_feed import RecordedFeed


def register(sub: SubParsers) -> None:
    ev = sub.add_parser("eval", help="evaluate the graph on recorded markets: metrics, baselines, report")
    ev.add_argument("analysis", nargs="?", choices=["lookahead", "warmup"], help="a bias analysis instead of an eval")
    add_market_flags(ev)
    ev.add_argument("--fee-bps", type=float, help="fee per fill in basis points (default 10)")
    ev.add_argument("--slippage-bps", type=float, help="slippage per fill in basis points (default 5)")
    ev.add_argument("--out", type=Path, default=Path("eval-results"), help="output folder (default eval-results)")
    ev.add_argument("--seeds", type=int, default=20, help="random-entry baseline seeds (default 20)")
    ev.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    ev.add_argument("--checkpoints", type=int, default=5, help="look-ahead checkpoints (default 5)")
    ev.add_argument("--jobs", type=int, default=1, help="processes for independent replays (default 1)")
    ev.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from evals.harness import check_warmup, default_range, prepare_output
    from tradegraph.composition import llm_endpoint, open_feed, time_range

    for flag in ("seeds", "bootstrap", "checkpoints", "jobs"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag} must be at least 1")
    paper = {k: v for k, v in (("fee_bps", args.fee_bps), ("slippage_bps", args.slippage_bps)) if v is not None}
    settings = market_settings(args, paper=paper or None)
    feed = open_feed(settings)
    feed.check_range(settings.symbols, settings.timeframe, *time_range(settings))
    start, end = default_range(feed, settings, *time_range(settings))
    feed.count(settings.symbols, settings.timeframe, start, end)
    check_warmup(feed, settings, start)
    settings = settings.model_copy(update={"start": _utc_day(start), "end": _utc_day(end - 1)})
    if args.analysis is None:
        shutil.rmtree(prepare_output(args.out))  # an unwritable --out fails now, not after the replay
    # the bundled model's server (reasoner local) lives exactly as long as this block
    with llm_endpoint(settings) as endpoint:
        return _evaluate(args, settings, feed, start, end, endpoint)


def _evaluate(
    args: argparse.Namespace, settings: Settings, feed: RecordedFeed, start: int, end: int, endpoint: Endpoint | None
) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from evals.analysis import lookahead_analysis, warmup_analysis
    from evals.harness import EvalOptions, run_eval
    from tradegraph.composition import build_replay

    build = partial(build_replay, endpoint=endpoint)
    console = Console(stderr=True)
    console.print(f"[bold yellow]EVAL[/] (paper fills, no real orders) · {', '.join(settings.symbols)} "
                  f"{settings.timeframe} · {to_iso(start)} .. {to_iso(end)} · reasoner={settings.reasoner}")  # fmt: skip

    def done(label: str) -> None:
        if settings.progress:
            console.print(f"  replayed: {label}")

    if args.analysis == "lookahead":
        result = lookahead_analysis(build, settings, feed, start, end, args.checkpoints, args.jobs, done)
        for row in result["rows"]:
            print(f"{row['variant']:<40} {row['decisions_compared']:>6} decisions compared, {row['changed']} changed")
        if result["biased"]:
            bad = [r for r in result["rows"] if r["changed"]]
            first = bad[0]["first_change"]
            raise LookaheadBias(
                f"look-ahead bias: decisions changed when only the future changed ({len(bad)} of "
                f"{len(result['rows'])} variants; first: {first['symbol']} {first['candle']} in '{bad[0]['variant']}')"
            )
        print("no look-ahead bias: every decision up to each checkpoint is unchanged")
        return 0
    if args.analysis == "warmup":
        lengths = [settings.ta.min_history, settings.window // 2, settings.window, 2 * settings.window,
                   4 * settings.window]  # fmt: skip
        result = warmup_analysis(build, settings, feed, start, lengths, args.jobs, done)
        for row in result["rows"]:
            print(f"window of {row['window']:>5} candles: {row['decisions_compared']} decisions, "
                  f"{row['changed']} differ from the longest window")  # fmt: skip
        print(f"minimum warm-up: {result['minimum_warmup']} candles (configured window {result['window']}, "
              f"{result['available_history']} candles of history before the start)")  # fmt: skip
        return 0
    total = feed.count(settings.symbols, settings.timeframe, start, end)
    columns = (TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    options = EvalOptions(out=args.out, seeds=args.seeds, bootstrap=args.bootstrap, jobs=args.jobs)
    with Progress(*columns, console=console, disable=not settings.progress, transient=True) as progress:
        task = progress.add_task("eval", total=total)
        results = run_eval(build, settings, feed, start, end, options, lambda _s: progress.advance(task))
    m = results["metrics"]
    bh = results["baselines"]["buy_and_hold"]
    ci = results["confidence_intervals"]["sharpe"]
    print("\n".join([
        f"periods        {results['range']['periods']} ({results['range']['first_candle']} .. {results['range']['last_candle']})",
        f"return         {100 * m['total_return']:+.2f}% (buy and hold {100 * bh['total_return']:+.2f}%)",
        f"sharpe         {m['sharpe']:.2f} [{ci['low']:.2f}, {ci['high']:.2f}] (buy and hold {bh['sharpe']:.2f})",
        f"sortino        {m['sortino']:.2f}",
        f"max drawdown   {100 * m['max_drawdown']:.2f}% (buy and hold {100 * bh['max_drawdown']:.2f}%)",
        f"trades         {m['number_of_trades']}, win rate {100 * m['win_rate']:.1f}%, fees {m['fees_paid']:,.2f}",
        f"fingerprint    {results['trades_fingerprint'][:16]}",
        f"written        {args.out / 'results.json'}, {args.out / 'report.html'}, {args.out / 'journal.sqlite'}",
    ]))  # fmt: skip
    return 0


class LookaheadBias(TradegraphError):
    exit_code = 3


def _utc_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date()
