"""What `schedule` and `worker` share: their service flags, the metrics endpoint, graceful stop on SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from infra.distributed_metrics import DistributedMetrics
from tools.errors import ConfigError


def add_service_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--journal", help="postgresql:// URL of the journal (default: TRADEGRAPH_JOURNAL)")
    p.add_argument("--bus", help="amqp://user:password@host/vhost (default: TRADEGRAPH_BUS_URL)")
    p.add_argument("--config", type=Path, help="TOML or JSON settings file")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on PORT "
                   "(on 127.0.0.1 unless TRADEGRAPH_METRICS_HOST says otherwise)")  # fmt: skip
    # also accepted after the command name, for service definitions that put every flag there
    p.add_argument("--log-format", choices=["text", "json"], default=argparse.SUPPRESS, help="log lines on stderr")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=argparse.SUPPRESS)


def start_metrics(port: int | None, host: str) -> tuple[DistributedMetrics | None, str | None]:
    """The metrics (and their URL) when --metrics-port is given, served on ``host`` (``metrics_host``, 0.0.0.0
    in containers); a port in use fails before anything runs."""
    if port is None:
        return None, None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--metrics-port {port} is not a port number")
    metrics = DistributedMetrics()
    return metrics, f"http://{host}:{metrics.serve(port, host)}/metrics"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT: the current job finishes, then the command returns."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    if threading.current_thread() is not threading.main_thread():  # signals reach only the main thread
        yield stop
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
