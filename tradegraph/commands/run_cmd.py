"""`tradegraph run`: a paper-trading session over recorded markets, or on live exchange data (--feed ccxt)."""

from __future__ import annotations

import argparse
from typing import Any

from infra.redact import redact_url
from infra.settings import Settings, load_settings
from tools.errors import ConfigError
from tools.timeframes import to_iso
from tradegraph.cli_common import SubParsers, add_market_flags, market_settings
from tradegraph.execution_cli import add_execution_flags, banner, resolve_execution


def register(sub: SubParsers) -> None:
    run = sub.add_parser(
        "run", help="a paper-trading session: replay recorded markets, or live exchange data with --feed ccxt"
    )
    add_market_flags(run)
    run.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default tradegraph.sqlite)")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on PORT during the run "
                     "(on 127.0.0.1 unless TRADEGRAPH_METRICS_HOST says otherwise)")  # fmt: skip
    run.add_argument("--influx", metavar="URL", help="also write candles, indicators and books to this InfluxDB v2 "
                     "server (org, bucket, token: TRADEGRAPH_INFLUX_ORG/_BUCKET/_TOKEN)")  # fmt: skip
    run.add_argument("--bus", help="also publish decisions and fills to this bus, e.g. amqp://user:pass@host/")
    run.add_argument("--checkpoint", help="durable run: LangGraph checkpoint store, SQLite path or postgresql:// URL")
    run.add_argument("--resume", metavar="RUN_ID", help="continue a durable run that was stopped or killed")
    live = run.add_argument_group("live market data (paper trading unless --sandbox, --demo or --live)")
    live.add_argument("--feed", choices=["recorded", "ccxt"], help="recorded files (default) or live data via ccxt")
    live.add_argument("--schedule", action="store_true", help="with --feed ccxt: decide at every candle close")
    live.add_argument("--iterations", type=int, help="with --schedule: stop after N candle closes")
    live.add_argument("--no-websocket", action="store_true", help="with --feed ccxt: REST only, no ccxt.pro streams")
    run.set_defaults(handler=cmd_run)
    add_execution_flags(run)


_MARKET_FLAGS = ("symbols", "timeframe", "start", "end", "data_dir", "config", "reasoner", "feed")


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tradegraph.composition import build_replay, llm_endpoint, open_influx_sink, resume_settings

    influx = {"url": args.influx} if args.influx else None
    feed: dict[str, Any] = {}
    if args.feed is not None:
        feed["source"] = args.feed
    if args.no_websocket:
        feed["ccxt"] = {"websocket": False}
    if args.resume is not None:
        given = [f"--{f.replace('_', '-').removesuffix('-dir')}" for f in _MARKET_FLAGS if getattr(args, f) is not None]
        if given:
            raise ConfigError(f"--resume continues a run with its journaled settings: drop {', '.join(given)}")
        where = load_settings(journal=args.journal, checkpoint=args.checkpoint)
        settings = resume_settings(args.resume, where.journal, where.checkpoint,
                                   progress=False if args.no_progress else None, influx=influx,
                                   bus_url=args.bus)  # fmt: skip
    else:
        settings = market_settings(args, journal=args.journal, feed=feed or None, influx=influx,
                                   checkpoint=args.checkpoint, bus_url=args.bus)  # fmt: skip
    execution = resolve_execution(args, settings)
    if settings.feed.source == "ccxt":
        if settings.checkpoint is not None:
            raise ConfigError("--checkpoint makes replays of recorded data durable; live runs (--feed ccxt) are not")
        from tradegraph.commands.live_run import run_live

        return run_live(args, settings, execution)
    for flag in ("schedule", "iterations", "no_websocket"):
        if getattr(args, flag):
            raise ConfigError(f"--{flag.replace('_', '-')} applies to live data: add --feed ccxt")
    if execution.mode != "paper":
        raise ConfigError(f"--{execution.mode} sends orders to the exchange: it needs live data (--feed ccxt); "
                          "a replay of recorded candles trades on paper only")  # fmt: skip
    metrics = None
    if args.metrics_port is not None:
        from infra.metrics import SessionMetrics

        if not 0 <= args.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port {args.metrics_port} is not a port number")
        metrics = SessionMetrics()
        port = metrics.serve(args.metrics_port, settings.metrics_host)  # a port in use fails before the journal
    sink = None
    console = Console(stderr=True)
    try:
        sink = open_influx_sink(settings, metrics)  # an unreachable server fails before anything is journaled
        observers = [o for o in (metrics, sink) if o is not None]
        # the bundled model's server (reasoner local) lives exactly as long as this block
        with llm_endpoint(settings) as endpoint:
            job = build_replay(settings, run_id=args.resume, observers=observers, endpoint=endpoint,
                               checkpoint=settings.checkpoint, resume=args.resume is not None,
                               publish=True)  # fmt: skip
            if metrics is not None:
                console.print(f"metrics on http://{settings.metrics_host}:{port}/metrics")
            if sink is not None:
                console.print(f"influx sink {sink.url} (org {settings.influx.org}, bucket {settings.influx.bucket})")
            model = f" ({endpoint.model} at {endpoint.display_url})" if endpoint is not None else ""
            durable = f" · checkpoints={redact_url(settings.checkpoint)}" if settings.checkpoint else ""
            console.print(
                f"{'[bold]RESUMING[/] ' if args.resume else ''}{banner('paper', settings.exchange)} · "
                f"{', '.join(settings.symbols)} {settings.timeframe} · reasoner={settings.reasoner}{model} · "
                f"journal={redact_url(settings.journal)}{durable} · run {job.session.run_id}"
                + (f" · bus={job.bus.display_url}" if job.bus is not None else "")
            )
            total = job.snapshot_count()
            columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=console, disable=not settings.progress, transient=True) as progress:
                task = progress.add_task("replay", total=total)
                try:
                    summary = job.session.run(job.snapshots(), job.config, on_step=lambda _s: progress.advance(task))
                finally:
                    job.close()
    finally:
        try:
            if sink is not None:
                sink.close()  # the explicit flush: waits for the queued points (bounded by the retry budget)
        finally:
            if metrics is not None:
                metrics.close()

    print_summary(summary.model_dump(), settings)
    if args.resume is not None:
        replayed = getattr(job.session, "replayed", 0)
        print(f"resumed        {replayed} decisions replayed from the journal, {summary.snapshots - replayed} decided")
    print(
        f"data gaps      {gap_text(job.feed.gaps_in(settings.symbols, settings.timeframe, job.start_ms, job.end_ms))}"
    )
    if sink is not None:
        print(f"influx         {sink.points_written} points written, {sink.points_failed} failed ({sink.url})")
    return 0


def gap_text(gaps: dict[str, Any]) -> str:
    parts = [f"{s}: {len(g)} ({sum(x.missing for x in g)} candles missing, first after {to_iso(g[0].after)})"
             for s, g in gaps.items() if g]  # fmt: skip
    return "; ".join(parts) or "none"


def llm_lines(s: dict[str, Any], settings: Settings) -> list[str]:
    if settings.reasoner == "rules":
        return []
    replayed = f", {s['llm_replayed']} replayed from the cassette" if s.get("llm_replayed") else ""
    return [
        f"llm calls      {s['llm_calls']}{replayed}, {s['llm_tokens']:,} tokens, ${s['llm_cost_usd']:.4f}",
        f"llm outcomes   {', '.join(f'{k}={v}' for k, v in sorted(s['llm_outcomes'].items())) or 'none'}",
    ]


def print_summary(s: dict[str, Any], settings: Settings) -> None:
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
        *llm_lines(s, settings),
        f"journal        {redact_url(settings.journal)}",
    ]
    print("\n".join(lines))
