"""`tradegraph schedule`: publish decision jobs, live at every candle close or for a recorded range (replay)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from infra.job_store import JobStore
from infra.settings import load_settings
from tools.errors import ConfigError
from tools.timeframes import to_iso
from tradegraph.cli_common import SubParsers, day
from tradegraph.commands.distributed_common import add_service_flags, start_metrics, stop_on_signals

STALL_HINT_S = 30.0


def register(sub: SubParsers) -> None:
    s = sub.add_parser(
        "schedule", help="publish one decision job per symbol at each candle close (live) or for a recorded range"
    )
    add_service_flags(s)
    s.add_argument("--symbols", help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    s.add_argument("--timeframe", help="e.g. 1h")
    s.add_argument("--start", type=day("--start"), help="replay from this day (YYYY-MM-DD, UTC)")
    s.add_argument("--end", type=day("--end"), help="replay through this day (inclusive)")
    s.add_argument("--data", type=Path, dest="data_dir", help="recorded candles (replay: which candles exist)")
    s.add_argument(
        "--run", dest="run_id", help="run id (default: a new one for a replay, live-EXCHANGE-TIMEFRAME live)"
    )
    s.add_argument("--once", action="store_true", help="live: schedule what is due now, then exit")
    s.add_argument("--no-wait", action="store_true", help="replay: exit once the jobs are published")
    s.add_argument("--no-progress", action="store_true", help="no progress bar while waiting")
    s.set_defaults(handler=cmd_schedule)


def cmd_schedule(args: argparse.Namespace) -> int:
    from graph.distributed_replay import finish_replay, replay_candles
    from infra.job_scheduler import JobScheduler
    from tradegraph.commands.run_cmd import print_summary
    from tradegraph.composition import (
        distributed_bus,
        new_run_id,
        open_feed,
        open_job_store,
        process_name,
        start_distributed_run,
        time_range,
    )

    settings = load_settings(args.config, symbols=args.symbols, timeframe=args.timeframe, start=args.start,
                             end=args.end, data_dir=args.data_dir, journal=args.journal, bus_url=args.bus,
                             progress=False if args.no_progress else None)  # fmt: skip
    replay = settings.start is not None or settings.end is not None
    if args.once and replay:
        raise ConfigError("--once is for live scheduling; a replay (--start/--end) publishes its range once")
    candles: list[tuple[int, list[str]]] = []
    if replay:  # the data is checked before anything is created or published
        feed = open_feed(settings)
        start_ms, end_ms = time_range(settings)
        feed.check_range(settings.symbols, settings.timeframe, start_ms, end_ms)
        candles = replay_candles(feed, settings.symbols, settings.timeframe, start_ms, end_ms)
    metrics, metrics_url = start_metrics(args.metrics_port, settings.metrics_host)
    name = process_name("scheduler")
    store = bus = None
    try:
        store = open_job_store(settings, name)
        bus = distributed_bus(settings, name)
        run_id = args.run_id or (new_run_id() if replay else f"live-{settings.exchange}-{settings.timeframe}")
        start_distributed_run(settings, store, run_id, "paper-distributed" if replay else "paper-live")
        scheduler = JobScheduler(bus, store, run_id, settings.symbols, settings.timeframe, metrics=metrics)
        where = f" · metrics on {metrics_url}" if metrics_url is not None else ""
        print(f"[PAPER] run {run_id} · {', '.join(settings.symbols)} {settings.timeframe} · jobs to "
              f"{settings.bus.jobs_queue} on {bus.display_url} · journal {store.display_url}{where}",
              file=sys.stderr)  # fmt: skip
        if not replay:
            with stop_on_signals() as stop:
                published = scheduler.run_live(stop, max_catch_up=settings.bus.max_catch_up,
                                               close_delay_s=settings.bus.close_delay_s, once=args.once)  # fmt: skip
            print(f"run {run_id}: {published} jobs published")
            return 0
        started = time.monotonic()
        total = scheduler.publish_replay(candles)
        print(f"run {run_id}: {total} jobs published ({to_iso(candles[0][0])} .. {to_iso(candles[-1][0])})",
              file=sys.stderr)  # fmt: skip
        if args.no_wait:
            print(f"run {run_id}: {total} jobs published")
            return 0
        _wait_for_decisions(store, run_id, total, settings.progress, bus.display_url)
        summary = finish_replay(store, run_id, settings.paper, candles[-1][0], time.monotonic() - started)
        print_summary(summary, settings)
        return 0
    finally:
        if bus is not None:
            bus.close()
        if store is not None:
            store.close()
        if metrics is not None:
            metrics.close()


def _wait_for_decisions(store: JobStore, run_id: str, total: int, progress: bool, bus_url: str) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn("decided"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    last, last_change, hinted = -1, time.monotonic(), False
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("decided", total=total)
        while True:
            done = store.count_decisions(run_id)
            bar.update(task, completed=done)
            if done >= total:
                return
            if done != last:
                last, last_change = done, time.monotonic()
            elif not hinted and time.monotonic() - last_change > STALL_HINT_S:
                console.print(f"no decision for {STALL_HINT_S:.0f} s: is a worker running? "
                              f"(tradegraph worker --bus {bus_url} --journal ...)")  # fmt: skip
                hinted = True
            time.sleep(0.5)
