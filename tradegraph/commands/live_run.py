"""`tradegraph run --feed ccxt`: paper trading on live exchange data, once or at every candle close."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from rich.console import Console
from rich.markup import escape

from infra.journal import PortfolioPoint
from infra.redact import redact_url
from infra.settings import Settings
from tools.errors import ConfigError, TradegraphError
from tools.market import Snapshot, SnapshotUnavailable
from tools.reconcile import ReconciliationReport
from tools.timeframes import to_iso
from tools.trade_types import Fill
from tradegraph.execution_cli import Execution, banner, mode_line

BANNER = "[bold black on yellow] PAPER TRADING [/] [bold yellow]on LIVE market data · no real orders are sent[/]"


class DecisionPrinter:
    """Prints one line per decision as the schedule runs (a live session has no progress bar)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def on_decision(self, snapshot: Snapshot, state: Mapping[str, Any]) -> None:
        order = state.get("order")
        extra = f" · order {order.side.value} {order.quantity:.6g} @ ~{order.reference_price:,.2f}" if order else ""
        book = snapshot.book
        spread = book.spread_bps() if book is not None else None
        market = f"close {snapshot.last_close:,.2f}" + (f", spread {spread:.1f} bps" if spread is not None else "")
        line = f"{to_iso(snapshot.candle_time)} {snapshot.symbol:<10} {state.get('outcome', '?'):<8} {market}{extra}"
        self.console.print(escape(line), soft_wrap=True)

    def on_unavailable(self, item: SnapshotUnavailable) -> None:
        head = f"{to_iso(item.candle_time)} {item.symbol:<10} "
        self.console.print(f"{escape(head)}[red]{item.outcome:<8}[/] {escape(item.reason)}", soft_wrap=True)

    def on_fills(self, fills: Sequence[Fill]) -> None:
        for fill in fills:
            line = (f"  fill {fill.symbol} {fill.side.value} {fill.quantity:.6g} @ {fill.price:,.2f} ({fill.kind}, "
                    f"slippage {fill.slippage_bps:+.1f} bps)")  # fmt: skip
            self.console.print(escape(line), soft_wrap=True)

    def on_portfolio(self, point: PortfolioPoint) -> None:
        return None


def run_live(args: argparse.Namespace, settings: Settings, execution: Execution | None = None) -> int:
    from infra.bus import is_memory_url
    from infra.bus_observer import BusPublisher
    from tradegraph.commands.run_cmd import print_summary
    from tradegraph.composition import build_live, llm_endpoint, new_run_id, open_bus, open_influx_sink

    for flag, value in (("--start", args.start), ("--end", args.end), ("--data", args.data_dir)):
        if value is not None:
            raise ConfigError(f"{flag} applies to recorded data, not to --feed ccxt")
    if args.iterations is not None and not args.schedule:
        raise ConfigError("--iterations needs --schedule")
    if args.iterations is not None and args.iterations < 1:
        raise ConfigError("--iterations must be at least 1")
    execution = execution or Execution()
    banner_text = BANNER if execution.mode == "paper" else f"{banner(execution.mode, settings.exchange)} · live data"
    console = Console(stderr=True)
    console.print(banner_text)
    console.print(f"connecting to {settings.exchange} through ccxt (markets, symbols, timeframe) ...", soft_wrap=True)
    metrics = None
    if args.metrics_port is not None:
        from infra.metrics import SessionMetrics

        if not 0 <= args.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port {args.metrics_port} is not a port number")
        metrics = SessionMetrics()
        metrics.serve(args.metrics_port, settings.metrics_host)
    printer = DecisionPrinter(console)
    sink = None
    llm = ExitStack()  # the bundled model's server (reasoner local) and the bus live as long as the session
    run_id = new_run_id()
    try:
        sink = open_influx_sink(settings, metrics)
        observers: list[Any] = [o for o in (printer, metrics, sink) if o is not None]
        if not is_memory_url(settings.bus_url):  # --bus: decisions and fills also go on the bus
            bus = open_bus(settings, "tradegraph-run")
            llm.callback(bus.close)
            observers.append(BusPublisher(bus, run_id))
        endpoint = llm.enter_context(llm_endpoint(settings))
        job = build_live(settings, iterations=args.iterations if args.schedule else 1, observers=observers,
                         execution=execution, endpoint=endpoint, run_id=run_id)  # fmt: skip
    except BaseException:
        llm.close()
        if sink is not None:
            sink.close()
        if metrics is not None:
            metrics.close()
        raise
    try:
        feed = job.feed
        streams = "websocket + REST" if feed.streaming else "REST"
        console.print(
            f"{banner_text} · {settings.exchange} · {', '.join(settings.symbols)} {settings.timeframe} · {streams} · "
            f"reasoner={settings.reasoner} · journal={redact_url(settings.journal)} · run {job.session.run_id}",
            soft_wrap=True,
        )
        console.print(
            "schedule: every candle close + "
            f"{settings.feed.settle_delay_s:g} s"
            + (f", {args.iterations} closes" if args.iterations else ", until Ctrl-C")
            if args.schedule
            else "once: the last closed candle (add --schedule to run at every close)"
        )

        for symbol in settings.symbols:
            console.print(escape(ticker_line(feed, symbol)), soft_wrap=True)
        if "execution" in job.config:
            report = ReconciliationReport.model_validate(job.config["execution"]["reconciliation"])
            for line in report.lines():
                console.print(escape(line), soft_wrap=True)

        def step(item: Any) -> None:
            if isinstance(item, SnapshotUnavailable):
                printer.on_unavailable(item)

        summary = job.session.run(job.schedule, job.config, on_step=step, mode=execution.mode, stop_on_interrupt=True)
        streams_text = stream_text(feed.stream_states()) if feed.streaming else "not used"
        requests = f"{feed.session.requests} ({feed.session.retries} retried)"
    finally:
        try:
            job.close()
        finally:
            llm.close()
        if sink is not None:
            sink.close()
        if metrics is not None:
            metrics.close()
    print_summary(summary.model_dump(), settings)
    if execution.mode == "paper":
        print(f"mode           PAPER (live {settings.exchange} data; no real orders)")
    else:
        print(f"mode           {mode_line(execution.mode, settings.exchange)}")
    print(f"rest requests  {requests}")
    print(f"streams        {streams_text}")
    return 0


def ticker_line(feed: Any, symbol: str) -> str:
    try:
        t = feed.ticker(symbol)
    except TradegraphError as exc:
        return f"{symbol}: no ticker ({exc})"

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:,.2f}"

    return f"{symbol}: last {num(t.last)}, bid {num(t.bid)}, ask {num(t.ask)}"


def stream_text(states: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for symbol, streams in states.items():
        for kind, st in streams.items():
            status = "stopped: " + st.stopped if st.stopped else ("up" if st.connected else "down")
            parts.append(f"{symbol} {kind} {status} ({st.messages} msgs, {st.errors} drops)")
    return "; ".join(parts) or "none"
