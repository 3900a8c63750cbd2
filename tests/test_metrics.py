"""Prometheus metrics of a real replay, scraped over HTTP from the session's own endpoint."""

from __future__ import annotations

import socket
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from infra.metrics import SessionMetrics
from infra.settings import load_settings
from tradegraph.cli import main
from tradegraph.composition import build_replay


def _value(text: str, name: str, labels: str = "") -> float:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"{prefix!r} not exported"
    return float(lines[0].split()[-1])


def test_metrics_match_the_run(tmp_path: Path) -> None:
    metrics = SessionMetrics()
    settings = load_settings(journal=tmp_path / "j.sqlite", start=date(2024, 1, 1), end=date(2024, 1, 7))
    job = build_replay(settings, observers=[metrics])
    summary = job.session.run(job.snapshots(), job.config)
    job.journal.close()
    port = metrics.serve(0)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        metrics.close()
    decided = sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("tradegraph_decisions_total{")
    )
    assert decided == summary.snapshots == 336
    assert _value(text, "tradegraph_node_seconds_count", 'node="validate_snapshot"') == 336
    assert _value(text, "tradegraph_node_seconds_count", 'node="technical_analysis"') == 336
    orders = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("tradegraph_orders_total{"))
    fills = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("tradegraph_fills_total{"))
    assert orders == summary.orders > 0 and fills == summary.fills
    assert _value(text, "tradegraph_equity") == pytest.approx(job.broker.equity(), rel=1e-9)
    for reason, count in summary.gate_denials.items():
        assert _value(text, "tradegraph_gate_denials_total", f'reason="{reason}"') == count


def test_a_port_in_use_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        journal = tmp_path / "j.sqlite"
        code = main(["run", "--metrics-port", str(port), "--journal", str(journal), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in err
    assert not journal.exists()


def test_grafana_dashboard_queries_only_exported_metrics() -> None:
    import json
    import re

    dashboard = json.loads((Path(__file__).parents[1] / "infra" / "grafana" / "tradegraph-dashboard.json").read_text())
    exported = {m.name for m in SessionMetrics().registry.collect()}
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"tradegraph_[a-z_]+", target["expr"]))
    suffixes = ("_total", "_bucket", "_count", "_sum")
    base = {next((u.removesuffix(s) for s in suffixes if u.endswith(s)), u) for u in used}
    assert base <= exported, base - exported
    assert {"tradegraph_equity", "tradegraph_drawdown", "tradegraph_gate_denials", "tradegraph_node_seconds"} <= base
