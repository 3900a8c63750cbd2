"""`tradegraph download-data`: closed candles from an exchange into the files `run --data` and `eval` read."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from infra.redact import is_postgres_url, redact_url
from tools.errors import ConfigError
from tools.timeframes import day_start_ms, to_iso
from tradegraph.cli_common import SubParsers, day


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "download-data",
        help="download closed candles from an exchange (incremental, resumable) into recorded-data files",
    )
    p.add_argument("--exchange", help="ccxt exchange id (default binance)")
    p.add_argument("--symbols", help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    p.add_argument("--timeframe", help="e.g. 1h (one the exchange offers)")
    p.add_argument("--since", type=day("--since"), required=True, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--until", type=day("--until"), help="last day, YYYY-MM-DD (UTC, inclusive; default: up to now)")
    p.add_argument("--out", type=Path, default=Path("data"), help="output directory (default data)")
    p.add_argument("--format", choices=["csv", "parquet"], help="file format of new files (default csv)")
    p.add_argument("--journal", help="a postgresql:// journal URL also receives the candles (candles table)")
    p.add_argument("--config", type=Path, help="TOML or JSON settings file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_download)


def cmd_download(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from infra.settings import load_settings
    from tools.candle_download import CandleDownloader, describe
    from tradegraph.composition import open_exchange_session

    settings = load_settings(
        args.config,
        exchange=args.exchange,
        symbols=args.symbols,
        timeframe=args.timeframe,
        journal=args.journal,
        progress=False if args.no_progress else None,
    )
    since_ms = day_start_ms(args.since)
    until_ms = day_start_ms(args.until) + 86_400_000 if args.until else None
    if until_ms is not None and until_ms <= since_ms:
        raise ConfigError(f"--until {args.until} is before --since {args.since}")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is not a directory")
    console = Console(stderr=True)
    session, clock = open_exchange_session(settings)  # exchange id, symbols and timeframe checked here
    try:
        now = clock.now_ms() - session.measure_lag(clock.now_ms)  # a lagging exchange's open candle stays out
        if since_ms >= now:
            raise ConfigError(f"--since {args.since} is in the future")
        downloader = CandleDownloader(session, args.out, settings.timeframe, args.format, now)
        plans = [downloader.plan(symbol, since_ms, until_ms) for symbol in settings.symbols]
        sink = _candle_sink(settings.journal)
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create --out {args.out}: {exc.strerror}") from None
        if not os.access(args.out, os.W_OK):
            raise ConfigError(f"--out {args.out} is not writable")
        console.print(
            f"downloading {settings.exchange} {', '.join(settings.symbols)} {settings.timeframe} closed candles since "
            f"{args.since} into {args.out}"
            + (f" and the candles table of {redact_url(settings.journal)}" if sink else ""),
            soft_wrap=True,
        )
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                   TimeRemainingColumn())  # fmt: skip
        lines = []
        with Progress(*columns, console=console, disable=not settings.progress, transient=True) as progress:
            for plan in plans:
                task = progress.add_task(plan.symbol, total=max(plan.expected, 1))
                if not plan.ranges:
                    progress.update(task, completed=1)

                def store(rows: list[list[float]], symbol: str = plan.symbol) -> None:
                    if sink is not None:
                        sink.upsert(settings.exchange, symbol, settings.timeframe, rows)

                def advance(ms: int, task: Any = task) -> None:
                    progress.advance(task, ms)

                result = downloader.run(plan, advance, store)
                if sink is not None and plan.rows:
                    _sync_existing(sink, settings.exchange, plan.symbol, settings.timeframe, plan.rows)
                lines.append(describe(result, settings.timeframe))
                if result.starts_late is not None:
                    lines.append(
                        f"  note: {settings.exchange} serves {plan.symbol} {settings.timeframe} candles from "
                        f"{to_iso(result.starts_late)} only (asked since {args.since}): listing date or history limit"
                    )
    finally:
        session.close()
    print("\n".join(lines))
    return 0


def _candle_sink(journal: str) -> Any:
    if not is_postgres_url(journal):
        return None
    from infra.pg_candles import PgCandleSink

    return PgCandleSink(journal)


def _sync_existing(sink: Any, exchange: str, symbol: str, timeframe: str, rows: list[list[float]]) -> None:
    """Candles already in the file but not yet in the table (the table was added later) go in too."""
    bounds = sink.bounds(exchange, symbol, timeframe)
    missing = rows if bounds is None else [r for r in rows if not bounds[0] <= r[0] <= bounds[1]]
    sink.upsert(exchange, symbol, timeframe, missing)
