"""The `tradegraph` command line. User-facing errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import traceback
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

from infra.logging_setup import configure_logging
from infra.redact import redact_url
from infra.settings import Settings, load_settings
from tools.errors import ConfigError, TradegraphError
from tools.timeframes import parse_day, to_iso
from tradegraph import __version__

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def _day(field: str) -> Any:
    return lambda text: parse_day(text, field)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tradegraph", description="LLM-orchestrated trading on one LangGraph state machine.")
    parser.add_argument("--version", action="version", version=f"tradegraph {__version__}")
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="log lines on stderr")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="warning")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="replay recorded markets through the graph as a paper-trading session")
    run.add_argument("--symbols", help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    run.add_argument("--timeframe", help="e.g. 1h")
    run.add_argument("--start", type=_day("--start"), help="first day, YYYY-MM-DD (UTC)")
    run.add_argument("--end", type=_day("--end"), help="last day, YYYY-MM-DD (UTC, inclusive)")
    run.add_argument("--data", type=Path, dest="data_dir", help="directory of recorded candle files")
    run.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default tradegraph.sqlite)")
    run.add_argument("--config", type=Path, help="TOML or JSON settings file")
    run.add_argument("--reasoner", choices=["rules"], help="strategy_fusion reasoner")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT during the run")

    ev = sub.add_parser("eval", help="evaluate the graph on recorded markets: metrics, baselines, report")
    ev.add_argument("analysis", nargs="?", choices=["lookahead", "warmup"], help="a bias analysis instead of an eval")
    ev.add_argument("--symbols", help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    ev.add_argument("--timeframe", help="e.g. 1h")
    ev.add_argument("--start", type=_day("--start"), help="first day, YYYY-MM-DD (UTC)")
    ev.add_argument("--end", type=_day("--end"), help="last day, YYYY-MM-DD (UTC, inclusive)")
    ev.add_argument("--data", type=Path, dest="data_dir", help="directory of recorded candle files")
    ev.add_argument("--config", type=Path, help="TOML or JSON settings file")
    ev.add_argument("--reasoner", choices=["rules"], help="strategy_fusion reasoner")
    ev.add_argument("--fee-bps", type=float, help="fee per fill in basis points (default 10)")
    ev.add_argument("--slippage-bps", type=float, help="slippage per fill in basis points (default 5)")
    ev.add_argument("--out", type=Path, default=Path("eval-results"), help="output folder (default eval-results)")
    ev.add_argument("--seeds", type=int, default=20, help="random-entry baseline seeds (default 20)")
    ev.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    ev.add_argument("--checkpoints", type=int, default=5, help="look-ahead checkpoints (default 5)")
    ev.add_argument("--jobs", type=int, default=1, help="processes for independent replays (default 1)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")

    dec = sub.add_parser("decisions", help="list journaled decisions")
    dec.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default tradegraph.sqlite)")
    dec.add_argument("--last", type=int, help="only the last N")
    dec.add_argument("--symbol", help="only this symbol")
    dec.add_argument("--run", dest="run_id", help="run id (default: the latest run)")
    dec.add_argument("--json", action="store_true", help="print JSON")

    db = sub.add_parser("db", help="journal database administration")
    db.add_argument("action", choices=["upgrade"], help="create or migrate the journal schema")
    db.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default: the settings' journal)")

    exp = sub.add_parser("explain", help="print one decision's full evidence chain")
    exp.add_argument("decision_id")
    exp.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default tradegraph.sqlite)")
    exp.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _open_journal(arg: str | None) -> Any:
    from tradegraph.composition import open_journal

    return open_journal(arg if arg is not None else load_settings().journal, read_only=True)


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings with the market flags shared by `run` and `eval` (flags that were not given are left out)."""
    return load_settings(
        args.config,
        symbols=args.symbols,
        timeframe=args.timeframe,
        start=args.start,
        end=args.end,
        data_dir=args.data_dir,
        reasoner=args.reasoner,
        progress=False if args.no_progress else None,
        **extra,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tradegraph.composition import build_replay

    settings = _settings(args, journal=args.journal)
    metrics = None
    if args.metrics_port is not None:
        from infra.metrics import SessionMetrics

        if not 0 <= args.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port {args.metrics_port} is not a port number")
        metrics = SessionMetrics()
        port = metrics.serve(args.metrics_port)  # a port in use fails before anything is journaled
    try:
        job = build_replay(settings, metrics=metrics)
    except BaseException:
        if metrics is not None:
            metrics.close()
        raise
    console = Console(stderr=True)
    if metrics is not None:
        console.print(f"metrics on http://127.0.0.1:{port}/metrics")
    console.print(
        f"[bold yellow]PAPER TRADING[/] (no real orders) · {', '.join(settings.symbols)} {settings.timeframe} · "
        f"reasoner={settings.reasoner} · journal={redact_url(settings.journal)} · run {job.session.run_id}"
    )
    total = job.snapshot_count()
    columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not settings.progress, transient=True) as progress:
        task = progress.add_task("replay", total=total)
        try:
            summary = job.session.run(job.snapshots(), job.config, on_step=lambda _s: progress.advance(task))
        finally:
            job.journal.close()
            if metrics is not None:
                metrics.close()
    _print_summary(summary.model_dump(), settings)
    print(
        f"data gaps      {_gap_text(job.feed.gaps_in(settings.symbols, settings.timeframe, job.start_ms, job.end_ms))}"
    )
    return 0


def _gap_text(gaps: dict[str, Any]) -> str:
    parts = [f"{s}: {len(g)} ({sum(x.missing for x in g)} candles missing, first after {to_iso(g[0].after)})"
             for s, g in gaps.items() if g]  # fmt: skip
    return "; ".join(parts) or "none"


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from evals.analysis import lookahead_analysis, warmup_analysis
    from evals.harness import EvalOptions, check_warmup, default_range, prepare_output, run_eval
    from tradegraph.composition import build_replay, open_feed, time_range

    for flag in ("seeds", "bootstrap", "checkpoints", "jobs"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag} must be at least 1")
    paper = {k: v for k, v in (("fee_bps", args.fee_bps), ("slippage_bps", args.slippage_bps)) if v is not None}
    settings = _settings(args, paper=paper or None)
    feed = open_feed(settings)
    feed.check_range(settings.symbols, settings.timeframe, *time_range(settings))
    start, end = default_range(feed, settings, *time_range(settings))
    feed.count(settings.symbols, settings.timeframe, start, end)
    check_warmup(feed, settings, start)
    settings = settings.model_copy(update={"start": _utc_day(start), "end": _utc_day(end - 1)})
    if args.analysis is None:
        shutil.rmtree(prepare_output(args.out))  # an unwritable --out fails now, not after the replay
    console = Console(stderr=True)
    console.print(f"[bold yellow]EVAL[/] (paper fills, no real orders) · {', '.join(settings.symbols)} "
                  f"{settings.timeframe} · {to_iso(start)} .. {to_iso(end)} · reasoner={settings.reasoner}")  # fmt: skip

    def done(label: str) -> None:
        if settings.progress:
            console.print(f"  replayed: {label}")

    if args.analysis == "lookahead":
        result = lookahead_analysis(build_replay, settings, feed, start, end, args.checkpoints, args.jobs, done)
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
        result = warmup_analysis(build_replay, settings, feed, start, lengths, args.jobs, done)
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
        results = run_eval(build_replay, settings, feed, start, end, options, lambda _s: progress.advance(task))
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


def _print_summary(s: dict[str, Any], settings: Settings) -> None:
    def fmt(counts: dict[str, int]) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"

    span = f"{to_iso(s['first_candle'])} .. {to_iso(s['last_candle'])}" if s["first_candle"] is not None else "-"
    rate = s["snapshots"] / s["elapsed_s"] if s["elapsed_s"] > 0 else 0.0
    lines = [
        f"run            {s['run_id']}",
        f"candles        {span} ({settings.timeframe})",
        f"snapshots      {s['snapshots']} in {s['elapsed_s']:.1f} s ({rate:.0f}/s)",
        f"decisions      {fmt(s['outcomes'])}",
        f"actions        {fmt(s['actions'])}",
        f"orders         {s['orders']} ({s['fills']} fills)",
        f"gate denials   {fmt(s['gate_denials'])}",
        f"gate shrinks   {fmt(s['gate_shrinks'])}",
        f"final equity   {s['final_equity']:,.2f} (start {s['initial_equity']:,.2f})",
        f"pnl            {s['pnl']:+,.2f} ({s['return_pct']:+.2f}%), fees {s['fees_paid']:,.2f}",
        f"max drawdown   {100 * s['max_drawdown']:.2f}%",
        f"open positions {', '.join(f'{k} {v:.6g}' for k, v in s['open_positions'].items()) or 'none'}",
        f"journal        {redact_url(settings.journal)}",
    ]
    print("\n".join(lines))


def cmd_decisions(args: argparse.Namespace) -> int:
    if args.last is not None and args.last <= 0:
        raise ConfigError("--last must be a positive number")
    store = _open_journal(args.journal)
    try:
        run_id = args.run_id
        if run_id is None:
            latest = store.latest_run()
            run_id = latest["run_id"] if latest else None
        symbol = args.symbol.upper() if args.symbol else None
        rows = store.list_decisions(last=args.last, symbol=symbol, run_id=run_id) if run_id else []
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no decisions journaled" + (f" for run {run_id}" if run_id else ""))
        return 0
    for r in rows:
        print(
            f"{r['id']}  {to_iso(r['candle_time'])}  {r['symbol']:<10} {r['outcome']:<8} {r['action'] or '-':<4}  {r['reason']}"
        )
    return 0


def _explain_text(d: dict[str, Any]) -> str:
    def block(title: str, value: Any) -> str:
        if value in (None, {}, []):
            return f"{title}: -"
        return f"{title}:\n" + "\n".join("  " + line for line in json.dumps(value, indent=2).splitlines())

    head = [
        f"decision   {d['id']} (run {d['run_id']})",
        f"market     {d['symbol']} {d['timeframe']} candle {to_iso(d['candle_time'])} (decided {to_iso(d['as_of'])})",
        f"outcome    {d['outcome']}: {d['reason']}",
        f"inputs     {d['window_length']} candles {to_iso(d['window_start'])} .. {to_iso(d['window_end'])}, "
        f"hash {d['inputs_hash']}",
    ]
    parts = [
        "\n".join(head),
        block("indicators", d.get("indicators")),
        block("signals (incl. candlestick and chart patterns)", d.get("signals")),
        block("aggregate", d.get("aggregate")),
        block("intent", d.get("intent")),
        block("reasoner", d.get("reasoner")),
        block("risk assessment", d.get("risk")),
        block("order proposal", d.get("proposal")),
        block("gate verdict", d.get("verdict")),
        block("orders", d.get("orders")),
        block("fills", d.get("fills")),
        block("portfolio at decision", d.get("portfolio")),
        block("node timings (us)", d.get("node_timings_us")),
    ]
    return "\n".join(parts)


def cmd_explain(args: argparse.Namespace) -> int:
    store = _open_journal(args.journal)
    try:
        record = store.get_decision(args.decision_id)
    finally:
        store.close()
    if record is None:
        raise TradegraphError(f"no decision {args.decision_id!r} in {store.path}")
    print(json.dumps(record, indent=1) if args.json else _explain_text(record))
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from infra.journal import SCHEMA_VERSION
    from tradegraph.composition import open_journal

    target = args.journal if args.journal is not None else load_settings().journal
    store = open_journal(target)
    try:
        timescale = getattr(store, "timescaledb", None)
    finally:
        store.close()
    extension = (
        "" if timescale is None else (", TimescaleDB loaded" if timescale else ", plain PostgreSQL (no TimescaleDB)")
    )
    print(f"journal {redact_url(str(target))} is at schema v{SCHEMA_VERSION}{extension}")
    return 0


COMMANDS = {"run": cmd_run, "eval": cmd_eval, "db": cmd_db, "decisions": cmd_decisions, "explain": cmd_explain}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        configure_logging(args.log_format, args.log_level)
        return COMMANDS[args.command](args)
    except TradegraphError as exc:
        print(f"tradegraph: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_USER_ERROR))
    except KeyboardInterrupt:
        print("tradegraph: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line unless TRADEGRAPH_DEBUG asks for the traceback
        if os.environ.get("TRADEGRAPH_DEBUG"):
            traceback.print_exc()
        print(
            f"tradegraph: internal error: {type(exc).__name__}: {exc} (set TRADEGRAPH_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1
