"""Budgets (per call, per run, per UTC day across runs), cassettes (record, replay with zero calls and identical
decisions, clear errors) and the CLI flags around them, against the loopback OpenAI stub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.cassette import Cassette
from agents.llm_answer import Answer, CallKey
from evals.engine import decision_outcome, decision_signature
from infra.sqlite_journal import SqliteJournal
from tests.llm_helpers import llm_settings, prompt_data, run_snapshots, valid_answer
from tests.openai_stub import OpenAIStub, Reply
from tools.errors import CassetteError
from tradegraph.cli import main


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(model="stub-gpt") as s:
        yield s


def mixed_answers(stub: OpenAIStub) -> None:
    """Valid BUY, an invented number, a 500, a HOLD, in turn: every kind of outcome gets recorded."""
    count = {"n": 0}

    def handler(request: dict[str, Any]) -> Reply:
        count["n"] += 1
        data = prompt_data(request)
        kind = count["n"] % 4
        if kind == 1:
            return Reply.tool_call(valid_answer(data, "BUY"))
        if kind == 2:
            return Reply.tool_call(valid_answer(data, "BUY", rationale="Target 99999.5 soon."))
        if kind == 3:
            return Reply.error(500, "flaky")
        return Reply.tool_call(valid_answer(data, "HOLD"))

    stub.respond_with(handler)


# --- budgets -------------------------------------------------------------------------------------------
def test_run_budget_stops_calls_cleanly(stub: OpenAIStub, tmp_path: Path) -> None:
    stub.respond_with(lambda r: Reply.tool_call(valid_answer(prompt_data(r), "HOLD")))
    settings = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False},
                            budget={"max_tokens_per_run": 3000})  # fmt: skip
    summary, decisions = run_snapshots(settings, 8)
    outcomes = [d["outcome"] for d in decisions]
    ok = outcomes.count("hold")
    assert ok >= 1 and outcomes[ok:] == ["budget_exhausted"] * (8 - ok), outcomes
    assert len(stub.requests) == ok == summary.llm_calls and summary.llm_tokens <= 3000
    refused = decisions[ok]
    assert "run budget:" in refused["reason"] and refused["order"] is None
    [call] = refused["reasoner"]["calls"]
    assert call["outcome"] == "budget_exhausted" and call["input_tokens"] == 0 and call["raw_response"] is None
    assert refused["reasoner"]["details"]["run_llm_tokens"] == summary.llm_tokens


def test_per_call_and_cost_budgets(stub: OpenAIStub, tmp_path: Path) -> None:
    stub.respond_with(lambda r: Reply.tool_call(valid_answer(prompt_data(r), "HOLD")))
    tight = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False},
                         budget={"max_tokens_per_call": 100})  # fmt: skip
    _, decisions = run_snapshots(tight, 2)
    assert [d["outcome"] for d in decisions] == ["budget_exhausted"] * 2 and not stub.requests
    assert "per-call budget: about" in decisions[0]["reason"]
    (tmp_path / "journal.sqlite").unlink()
    priced = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False}, input_cost_per_mtok=1000,
                          output_cost_per_mtok=2000, budget={"max_cost_per_run_usd": 2.5})  # fmt: skip
    summary, decisions = run_snapshots(priced, 6)
    assert summary.llm_cost_usd <= 2.5 and summary.llm_calls >= 1
    assert decisions[-1]["outcome"] == "budget_exhausted" and "run budget: $" in decisions[-1]["reason"]
    call = decisions[0]["reasoner"]["calls"][0]
    assert call["cost_usd"] == pytest.approx((call["input_tokens"] * 1000 + call["output_tokens"] * 2000) / 1e6)


def test_daily_budget_counts_earlier_runs_in_the_same_journal(stub: OpenAIStub, tmp_path: Path) -> None:
    stub.respond_with(lambda r: Reply.tool_call(valid_answer(prompt_data(r), "HOLD")))
    first = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False})
    summary, _ = run_snapshots(first, 3)
    journal = SqliteJournal(tmp_path / "journal.sqlite", read_only=True)
    usage = journal.llm_usage_since(0)
    journal.close()
    assert usage == {"calls": 3.0, "tokens": float(summary.llm_tokens), "cost_usd": 0.0}
    second = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False},
                          budget={"max_tokens_per_day": summary.llm_tokens + 50})  # fmt: skip
    _, decisions = run_snapshots(second, 2)
    assert [d["outcome"] for d in decisions] == ["budget_exhausted"] * 2 and len(stub.requests) == 3
    assert (
        f"daily budget: {summary.llm_tokens} tokens used today (UTC, all runs in this journal)"
        in decisions[0]["reason"]
    )


# --- cassettes -----------------------------------------------------------------------------------------
def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _decisions(path: Path) -> list[dict[str, Any]]:
    journal = SqliteJournal(path, read_only=True)
    try:
        run = journal.latest_run()
        assert run is not None
        return journal.run_decisions(run["run_id"])
    finally:
        journal.close()


RANGE = ["--symbols", "BTC/USDT", "--start", "2024-01-01", "--end", "2024-01-03", "--no-progress"]


def _env(monkeypatch: pytest.MonkeyPatch, stub: OpenAIStub, **extra: str) -> None:
    monkeypatch.setenv("TRADEGRAPH_LLM__BASE_URL", stub.base_url)
    monkeypatch.setenv("TRADEGRAPH_LLM__MODEL", stub.model)
    monkeypatch.setenv("TRADEGRAPH_LLM__MAX_RETRIES", "0")
    for k, v in extra.items():
        monkeypatch.setenv(k, v)


def test_record_then_replay_makes_zero_calls_and_identical_decisions(
    stub: OpenAIStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed_answers(stub)
    _env(monkeypatch, stub)
    cassette = tmp_path / "cassette"
    code, out, err = _cli(["run", "--reasoner", "llm", "--record-cassette", str(cassette), "--journal",
                           str(tmp_path / "rec.sqlite"), *RANGE], capsys)  # fmt: skip
    assert code == 0, err
    recorded_calls = len(stub.requests)
    assert recorded_calls >= 8 and f"llm calls      {recorded_calls}," in out
    stub.stop()  # from here on any live call would fail
    code, out, err = _cli(["run", "--reasoner", "replay", "--cassette", str(cassette), "--journal",
                           str(tmp_path / "rep.sqlite"), *RANGE], capsys)  # fmt: skip
    assert code == 0, err
    assert f"llm calls      0, {recorded_calls} replayed from the cassette" in out
    rec, rep = _decisions(tmp_path / "rec.sqlite"), _decisions(tmp_path / "rep.sqlite")
    assert len(rec) == len(rep) == 72
    assert [decision_signature(d) for d in rec] == [decision_signature(d) for d in rep]
    assert [decision_outcome(d) for d in rec] == [decision_outcome(d) for d in rep]
    outcomes = {d["reasoner"]["outcome"] for d in rec if d["reasoner"]}
    assert {"ok", "llm_rejected", "llm_error", "skipped"} <= outcomes
    for a, b in zip(rec, rep, strict=True):
        if a["reasoner"] and a["reasoner"]["calls"]:
            ca, cb = a["reasoner"]["calls"][0], b["reasoner"]["calls"][0]
            assert ca["source"] == "recorded" and cb["source"] == "replayed"
            assert {k: v for k, v in ca.items() if k != "source"} == {k: v for k, v in cb.items() if k != "source"}
    manifest = json.loads((cassette / "manifest.json").read_text())
    assert manifest["reasoner"] == "llm" and manifest["model"] == "stub-gpt" and "api_key" not in manifest["llm"]


def test_replay_faults_are_one_clear_error(
    stub: OpenAIStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed_answers(stub)
    _env(monkeypatch, stub)
    cassette = tmp_path / "cassette"
    assert main(["run", "--reasoner", "llm", "--record-cassette", str(cassette), "--journal",
                 str(tmp_path / "rec.sqlite"), *RANGE]) == 0  # fmt: skip
    capsys.readouterr()
    entries = sorted((cassette / "entries").rglob("*.json"))
    replay = ["run", "--reasoner", "replay", "--cassette", str(cassette), *RANGE]
    entries[0].write_text("{not json")
    code, _, err = _cli([*replay, "--journal", str(tmp_path / "a.sqlite")], capsys)
    assert code == 2 and err.count("\n") == 1 and "is not valid JSON" in err and "Traceback" not in err
    assert not (tmp_path / "a.sqlite").exists()  # checked before anything is journaled
    entries[0].write_text(json.dumps({"key": json.loads(entries[1].read_text())["key"], "answer": {}}))
    code, _, err = _cli([*replay, "--journal", str(tmp_path / "b.sqlite")], capsys)
    assert code == 2 and "holds another key than its name says" in err
    entries[0].unlink()
    entry = json.loads(entries[1].read_text())
    entry["answer"]["kind"] = "maybe"
    entries[1].write_text(json.dumps(entry))
    code, _, err = _cli([*replay, "--journal", str(tmp_path / "c.sqlite")], capsys)
    assert code == 2 and "is malformed: kind" in err
    entries[1].unlink()
    code, _, err = _cli([*replay, "--journal", str(tmp_path / "d.sqlite")], capsys)
    assert code == 2 and "has no answer for node strategy_fusion, model stub-gpt" in err and "re-record" in err
    code, _, err = _cli(["run", "--reasoner", "replay", "--cassette", str(tmp_path), *RANGE], capsys)
    assert code == 2 and "is not a cassette: no manifest.json" in err
    code, _, err = _cli(["run", "--reasoner", "replay", *RANGE], capsys)
    assert code == 2 and "--reasoner replay needs --cassette DIR" in err
    code, _, err = _cli(["run", "--record-cassette", str(tmp_path / "x"), *RANGE], capsys)
    assert code == 2 and "reasoner rules makes none" in err
    code, _, err = _cli(["run", "--reasoner", "llm", "--cassette", str(cassette), *RANGE], capsys)
    assert code == 2 and "use it with --reasoner replay" in err
    code, _, err = _cli(["run", "--cassette", "a", "--record-cassette", "b", *RANGE], capsys)
    assert code == 2 and "not allowed with argument" in err
    monkeypatch.setenv("TRADEGRAPH_LLM__MODEL", "another-model")
    code, _, err = _cli(["run", "--reasoner", "llm", "--record-cassette", str(cassette), *RANGE], capsys)
    assert code == 2 and "was recorded with model 'stub-gpt', this run uses 'another-model'" in err


def test_a_recorded_daily_budget_refusal_replays_identically(
    stub: OpenAIStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.respond_with(lambda r: Reply.tool_call(valid_answer(prompt_data(r), "BUY")))
    _env(monkeypatch, stub, TRADEGRAPH_LLM__BUDGET__MAX_TOKENS_PER_DAY="4000", TRADEGRAPH_LLM__GATING__ENABLED="false")
    cassette = tmp_path / "cassette"
    assert main(["run", "--reasoner", "llm", "--record-cassette", str(cassette), "--journal",
                 str(tmp_path / "rec.sqlite"), *RANGE]) == 0  # fmt: skip
    monkeypatch.delenv("TRADEGRAPH_LLM__BUDGET__MAX_TOKENS_PER_DAY")  # the replay's own budget does not matter
    assert main(["run", "--reasoner", "replay", "--cassette", str(cassette), "--journal",
                 str(tmp_path / "rep.sqlite"), *RANGE]) == 0  # fmt: skip
    capsys.readouterr()
    rec, rep = _decisions(tmp_path / "rec.sqlite"), _decisions(tmp_path / "rep.sqlite")
    assert "budget_exhausted" in {d["outcome"] for d in rec} and "ordered" in {d["outcome"] for d in rec}
    assert [decision_signature(d) for d in rec] == [decision_signature(d) for d in rep]


def test_eval_recording_with_several_replays_never_overwrites(
    stub: OpenAIStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fickle model (a different answer each time it is asked the same thing): the look-ahead analysis replays
    the market several times, and each repeated prompt must get the first recorded answer, never a new call."""
    seen: dict[str, int] = {}

    def fickle(request: dict[str, Any]) -> Reply:
        user = request["messages"][-1]["content"]
        seen[user] = seen.get(user, 0) + 1
        return Reply.tool_call(valid_answer(prompt_data(request), "BUY" if seen[user] == 1 else "HOLD"))

    stub.respond_with(fickle)
    _env(monkeypatch, stub)
    cassette = tmp_path / "cassette"
    args = ["eval", "lookahead", "--checkpoints", "2", *RANGE]
    code, out, err = _cli([*args, "--reasoner", "llm", "--record-cassette", str(cassette)], capsys)
    assert code == 0, err
    assert "no look-ahead bias" in out and max(seen.values()) == 1
    assert len(list((cassette / "entries").rglob("*.json"))) == len(seen) == len(stub.requests)
    stub.stop()
    code, out, err = _cli([*args, "--reasoner", "replay", "--cassette", str(cassette)], capsys)
    assert code == 0 and "no look-ahead bias" in out, err


def test_cassette_entries_are_never_overwritten(tmp_path: Path) -> None:
    identity = {"reasoner": "llm", "model": "m", "prompt_id": "p.v1", "prompt_hash": "h", "llm": {}}
    cassette = Cassette.open_for_recording(tmp_path / "c", identity)
    key = CallKey("strategy_fusion", "m", "h", "i")
    first = Answer(kind="answer", arguments={"action": "BUY"}, raw_response="{}")
    assert cassette.put(key, first) is True
    assert cassette.put(key, Answer(kind="error", error="later")) is False
    assert Cassette.open_for_replay(tmp_path / "c").get(key) == first
    with pytest.raises(CassetteError, match="was recorded with reasoner 'llm', this run uses 'crew'"):
        Cassette.open_for_recording(tmp_path / "c", {**identity, "reasoner": "crew"})


def test_the_daily_budget_rolls_over_at_utc_midnight() -> None:
    from agents.budget import BudgetTracker, Usage
    from tools.llm_config import BudgetConfig

    now = {"t": 1_704_153_600.0 - 60}  # 2024-01-01 23:59 UTC
    asked: list[int] = []

    def journal_usage(since_ms: int) -> Usage:
        asked.append(since_ms)
        return Usage(calls=4, tokens=900, cost_usd=0.0)  # earlier runs of that day

    budget = BudgetTracker(BudgetConfig(max_tokens_per_day=1000, max_output_tokens=50), day_usage=journal_usage,
                           clock=lambda: now["t"])  # fmt: skip
    assert "900 tokens used today" in str(budget.refusal(60, 50))
    assert budget.refusal(40, 10) is None
    budget.spend(40, 10, 0.0)
    assert budget.day.tokens == 950 and budget.run.tokens == 50
    now["t"] += 120  # 2024-01-02 00:01: a new day, read again from the journal
    assert budget.refusal(60, 50) is not None and asked == [1_704_067_200_000, 1_704_153_600_000]
    assert budget.day.tokens == 900 and budget.run.tokens == 50
