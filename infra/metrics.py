"""Prometheus metrics of a session: node latencies, decisions, gate verdicts, orders, fills, equity, LLM use.

Each session owns its registry (no process-global state), served on 127.0.0.1 by `--metrics-port`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from infra.journal import PortfolioPoint
from tools.errors import ConfigError
from tools.market import Snapshot
from tools.trade_types import Fill

NODE_BUCKETS = (25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.25, 1.0, 5.0, 30.0)


class SessionMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.node_seconds = Histogram("tradegraph_node_seconds", "Time spent in a graph node", ["node"],
                                      buckets=NODE_BUCKETS, registry=r)  # fmt: skip
        self.decisions = Counter("tradegraph_decisions", "Journaled decisions", ["symbol", "outcome", "action"],
                                 registry=r)  # fmt: skip
        self.gate_denials = Counter("tradegraph_gate_denials", "Orders denied by the risk gate", ["reason"], registry=r)
        self.gate_shrinks = Counter("tradegraph_gate_shrinks", "Orders shrunk by the risk gate", ["reason"], registry=r)
        self.orders = Counter("tradegraph_orders", "Orders submitted to the broker", ["symbol", "side"], registry=r)
        self.fills = Counter("tradegraph_fills", "Fills reported by the broker", ["symbol", "kind"], registry=r)
        self.llm_tokens = Counter("tradegraph_llm_tokens", "LLM tokens used", registry=r)
        self.llm_cost = Counter("tradegraph_llm_cost_usd", "LLM cost in USD", registry=r)
        self.equity = Gauge("tradegraph_equity", "Portfolio equity in the quote currency", registry=r)
        self.drawdown = Gauge("tradegraph_drawdown", "Drawdown from peak equity (fraction)", registry=r)
        self.sink_points = Counter("tradegraph_sink_points", "Points sent to a time-series sink, by outcome",
                                   ["sink", "status"], registry=r)  # fmt: skip

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the /metrics endpoint; returns the bound port (0 picks a free one)."""
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()

    # --- SessionObserver ---------------------------------------------------------------------------
    def on_decision(self, snapshot: Snapshot, state: Mapping[str, Any]) -> None:
        self.record_decision(snapshot.symbol, state)

    def on_fills(self, fills: Sequence[Fill]) -> None:
        for fill in fills:
            self.record_fill(fill.symbol, fill.kind)

    def on_portfolio(self, point: PortfolioPoint) -> None:
        self.record_portfolio(point.equity, point.drawdown)

    def record_decision(self, symbol: str, state: Mapping[str, Any]) -> None:
        for node, micros in (state.get("timings") or {}).items():
            self.node_seconds.labels(node).observe(micros / 1e6)
        intent = state.get("intent")
        self.decisions.labels(symbol, state.get("outcome", "unknown"), intent.action.value if intent else "-").inc()
        verdict = state.get("verdict")
        if verdict is not None:
            target = self.gate_shrinks if verdict.approved else self.gate_denials
            for reason in verdict.reasons:
                target.labels(reason.value).inc()
        order = state.get("order")
        if order is not None:
            self.orders.labels(order.symbol, order.side.value).inc()
        trace = state.get("trace")
        for call in getattr(trace, "calls", None) or ():
            if call.spent:  # replayed answers and budget refusals cost nothing
                self.llm_tokens.inc(call.input_tokens + call.output_tokens)
                self.llm_cost.inc(call.cost_usd)

    def record_fill(self, symbol: str, kind: str) -> None:
        self.fills.labels(symbol, kind).inc()

    def record_portfolio(self, equity: float, drawdown: float) -> None:
        self.equity.set(equity)
        self.drawdown.set(drawdown)

    def record_sink_points(self, sink: str, status: str, count: int) -> None:
        """``status``: written or failed. Called from the sink's writer thread (prometheus-client is thread-safe)."""
        self.sink_points.labels(sink, status).inc(count)
