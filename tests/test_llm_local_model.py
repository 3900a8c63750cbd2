"""End to end with the real bundled model (SmolLM2-135M-Instruct via llama.cpp's server) and the real CrewAI:
prompt, HTTP, generation, parsing, validation, gate, journal. The 135M model rarely gives a usable intent, so
these tests require answers that really came back from the model (tokens counted by the server, raw text
kept) whatever their verdict, and the server process gone afterwards. Slow (tens of seconds a call on a busy
2-core machine): few snapshots."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.crew_reasoner import crew_installed
from agents.local_server import MODEL_ALIAS, bundled_model_path, llama_server_installed
from tests.llm_helpers import llm_settings, run_snapshots
from tests.services import unavailable
from tools.errors import LLMError
from tradegraph.cli import main
from tradegraph.composition import llm_endpoint

OUTCOMES = {"ok", "llm_error", "llm_rejected"}


@pytest.fixture
def local_model() -> Path:
    if not llama_server_installed():
        unavailable("llama-cpp-python server (optional extra local-llm)")
    try:
        return bundled_model_path()
    except LLMError as exc:
        unavailable(str(exc))


def llama_children() -> list[int]:
    """Live llama.cpp server processes started by this process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        state = stat.rsplit(")", 1)[1].split()[0]
        if ppid == os.getpid() and b"llama_cpp.server" in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def no_server_left() -> Iterator[None]:
    assert llama_children() == []
    yield
    assert llama_children() == []


def _real_answers(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    calls = [c for d in decisions for c in (d["reasoner"] or {}).get("calls", [])]
    return [c for c in calls if c["input_tokens"] > 0 and c["output_tokens"] > 0 and c["raw_response"]]


def test_local_reasoner_end_to_end(local_model: Path, tmp_path: Path, no_server_left: None) -> None:
    # gating off so that every snapshot asks the model; rules fallback so a rejected answer still reaches the gate
    # (snapshot 22 of 2024-01-01 is a rules BUY)
    settings = llm_settings("http://127.0.0.1:9/v1", "unused", tmp_path, reasoner="local", gating={"enabled": False},
                            fallback="rules", timeout_s=240, budget={"max_output_tokens": 160})  # fmt: skip
    with llm_endpoint(settings) as endpoint:
        assert endpoint is not None and endpoint.model == MODEL_ALIAS and endpoint.provider == "llama.cpp"
        assert len(llama_children()) == 1
        summary, decisions = run_snapshots(settings, 2, endpoint=endpoint, skip=21)
    assert len(decisions) == 2 and summary.llm_calls == 2
    answers = _real_answers(decisions)
    assert answers, [d["reason"] for d in decisions]  # the model itself answered, not a failure path
    for d in decisions:
        trace = d["reasoner"]
        [call] = trace["calls"]
        assert call["provider"] == "llama.cpp" and call["model"] == MODEL_ALIAS and call["source"] == "live"
        assert call["outcome"] in OUTCOMES and trace["outcome"] == call["outcome"]
        assert call["params"]["structured_output"] == "function_calling"
        if call["outcome"] == "ok":
            assert d["intent"]["reasoner"] == "local"
        else:
            assert trace["fallback"] == "rules" and call["error"]
    gated = [d for d in decisions if d["verdict"] is not None]
    assert gated or any(d["reasoner"]["outcome"] == "ok" for d in decisions)
    for d in gated:
        assert d["outcome"] in ("ordered", "denied") and d["verdict"]["decision"] in ("APPROVE", "SHRINK", "DENY")


def test_local_reasoner_through_the_cli_starts_and_stops_its_server(
    local_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_server_left: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # a run budget of one answer: the server starts, answers once, every later call is refused, the server stops
    monkeypatch.setenv("TRADEGRAPH_LLM__BUDGET__MAX_TOKENS_PER_RUN", "2000")
    monkeypatch.setenv("TRADEGRAPH_LLM__BUDGET__MAX_OUTPUT_TOKENS", "120")
    monkeypatch.setenv("TRADEGRAPH_LLM__TIMEOUT_S", "240")
    monkeypatch.setenv("TRADEGRAPH_LLM__GATING__ENABLED", "false")
    code = main(["run", "--reasoner", "local", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end", "2024-01-01",
                 "--journal", str(tmp_path / "j.sqlite"), "--no-progress"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"reasoner=local ({MODEL_ALIAS} at http://127.0.0.1:" in " ".join(err.split())
    assert "budget_exhausted=" in out and "llm calls      " in out


def test_crew_reasoner_end_to_end(local_model: Path, tmp_path: Path, no_server_left: None) -> None:
    if not crew_installed():
        unavailable("crewai (optional extra crew)")
    settings = llm_settings("http://127.0.0.1:9/v1", "unused", tmp_path, reasoner="crew", crew={"endpoint": "local",
                            "max_output_tokens": 120}, gating={"enabled": False}, fallback="rules", timeout_s=300)  # fmt: skip
    with llm_endpoint(settings) as endpoint:
        summary, decisions = run_snapshots(settings, 2, endpoint=endpoint, skip=21)
    assert len(decisions) == 2
    for d in decisions:
        trace = d["reasoner"]
        assert trace["reasoner"] == "crew" and trace["outcome"] in OUTCOMES
        nodes = [c["node"] for c in trace["calls"]]
        if trace["outcome"] != "llm_error" or len(nodes) > 1:
            assert nodes == ["crew.bull_analyst", "crew.bear_analyst", "crew.portfolio_manager"]
            assert trace["calls"][-1]["outcome"] == trace["outcome"]
            assert trace["input_tokens"] == sum(c["input_tokens"] for c in trace["calls"])
    answers = _real_answers(decisions)
    assert len(answers) >= 3, [d["reason"] for d in decisions]  # every member of at least one crew answered
    assert summary.llm_calls == sum(len(d["reasoner"]["calls"]) for d in decisions)
