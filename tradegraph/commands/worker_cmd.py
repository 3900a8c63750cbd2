"""`tradegraph worker`: consume decision jobs from the bus and decide them (see graph.distributed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.settings import load_settings
from tools.errors import ConfigError
from tradegraph.cli_common import SubParsers
from tradegraph.commands.distributed_common import add_service_flags, start_metrics, stop_on_signals


def register(sub: SubParsers) -> None:
    w = sub.add_parser("worker", help="decide the jobs a scheduler publishes (distributed runs, N workers)")
    add_service_flags(w)
    w.add_argument("--data", type=Path, dest="data_dir", help="directory of recorded candle files (this machine's)")
    w.add_argument("--max-jobs", type=int, help="exit after handling N jobs")
    w.add_argument("--idle-exit", type=float, metavar="SECONDS", help="exit when no job arrived for SECONDS")
    w.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    from tradegraph.composition import build_worker

    for flag in ("max_jobs", "idle_exit"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise ConfigError(f"--{flag.replace('_', '-')} must be positive")
    settings = load_settings(args.config, journal=args.journal, bus_url=args.bus, data_dir=args.data_dir)
    metrics, metrics_url = start_metrics(args.metrics_port, settings.metrics_host)
    with stop_on_signals() as stop:  # from here on SIGTERM means: finish the current job, then exit 0
        try:
            worker = build_worker(settings, metrics)
        except BaseException:
            if metrics is not None:
                metrics.close()
            raise
        where = f" · metrics on {metrics_url}" if metrics_url is not None else ""
        print(f"worker {worker.name}: jobs from {settings.bus.jobs_queue} on {worker.bus.display_url} · "
              f"journal {worker.session.store.display_url}{where}", file=sys.stderr, flush=True)  # fmt: skip
        try:
            tally = worker.run(stop, max_jobs=args.max_jobs, idle_exit_s=args.idle_exit)
        finally:
            worker.close()
            if metrics is not None:
                metrics.close()
    print(f"worker {worker.name}: {tally.consumed} jobs, {tally.decided} decided, {tally.duplicates} duplicates, "
          f"{tally.requeued} requeued, {tally.rejected} rejected", file=sys.stderr)  # fmt: skip
    return 0
