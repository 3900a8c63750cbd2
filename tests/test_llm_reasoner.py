"""The llm reasoner against a real HTTP server on loopback speaking OpenAI's wire format: the happy path, every
fault the issue lists (each gives a journaled llm_error or llm_rejected, no order, and the run goes on), the
fallback policy and gating."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from prompts import load_prompt
from tests.llm_helpers import answering, llm_settings, prompt_data, run_snapshots, valid_answer
from tests.openai_stub import OpenAIStub, Reply


@pytest.fixture
def stub() -> Any:
    with OpenAIStub(model="stub-gpt") as s:
        yield s


def test_a_valid_answer_is_journaled_in_full_and_reaches_the_gate(stub: OpenAIStub, tmp_path: Path) -> None:
    stub.respond_with(answering("BUY"))
    settings = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False})
    summary, decisions = run_snapshots(settings, 6)
    assert len(decisions) == 6 and len(stub.requests) == 6
    assert summary.llm_calls == 6 and summary.llm_tokens > 0 and summary.llm_outcomes == {"ok": 6}
    first = decisions[0]
    assert first["outcome"] == "ordered" and first["order"]["side"] == "buy"
    assert first["intent"]["reasoner"] == "llm" and first["intent"]["size_fraction"] == 0.5
    trace = first["reasoner"]
    assert trace["outcome"] == "ok" and trace["fallback"] is None and trace["model"] == "stub-gpt"
    [call] = trace["calls"]
    prompt = load_prompt("trade_intent.v1")
    assert call["node"] == "strategy_fusion" and call["provider"] == "openai-compatible"
    assert call["base_url"] == stub.base_url and call["model"] == "stub-gpt"
    assert call["prompt_id"] == "trade_intent.v1" and call["prompt_hash"] == prompt.hash == trace["prompt_hash"]
    assert len(call["input_hash"]) == 64 and call["source"] == "live" and call["outcome"] == "ok"
    assert call["params"]["structured_output"] == "function_calling" and call["params"]["max_tokens"] == 400
    assert call["parsed"]["action"] == "BUY" and '"action": "BUY"' in call["raw_response"]
    assert call["input_tokens"] > 0 and call["output_tokens"] > 0 and call["called_at"] > 1_700_000_000_000
    assert call["gating"] == "gating off: every snapshot is asked" and call["injection_flags"] == []
    # the request: forced tool, max_tokens for non-OpenAI servers, the tool outputs as structured DATA
    req = stub.requests[0]
    assert req["tool_choice"]["function"]["name"] == "LLMTradeIntent" and req["max_tokens"] == 400
    data = prompt_data(req)
    assert data["symbol"] == "BTC/USDT" and set(data["indicators"]) >= {"rsi", "macd_hist", "atr"}
    assert {"position", "risk_budget", "recent_candles", "signals", "rules"} <= set(data)
    assert data["risk_budget"]["max_order_notional"] == 25000


def _script_first(stub: OpenAIStub, *replies: Reply) -> None:
    stub.script(*replies)
    stub.respond_with(answering("HOLD"))


FAULTS: dict[str, tuple[list[Reply], dict[str, Any], str, str]] = {
    "http_429": ([Reply.error(429, "slow down", retry_after_ms=1)] * 2, {"max_retries": 1}, "llm_error",
                 "HTTP 429 rate limited (2 attempts): slow down"),
    "http_500": ([Reply.error(500, "boom")], {}, "llm_error", "HTTP 500 (1 attempt): boom"),
    "timeout": ([Reply.hang(30)], {"timeout_s": 0.5}, "llm_error", "timeout: no answer within 0.5 s"),
    "truncated": ([Reply.tool_call('{"symbol": "BTC/USDT", "action": "BU', finish_reason="length")], {},
                  "llm_error", "answer cut at max tokens (400)"),
    "non_json": ([Reply.text("I would buy some bitcoin here.")], {}, "llm_error", "output is not valid JSON"),
    "broken_body": ([Reply(status=200, body=b'{"id": "x", "choices": [{"index": 0}]}', truncate_at=12)], {},
                    "llm_error", "connection failed"),
}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_endpoint_faults_are_journaled_llm_errors_without_order(stub: OpenAIStub, tmp_path: Path, fault: str) -> None:
    replies, llm, outcome, reason = FAULTS[fault]
    _script_first(stub, *replies)
    settings = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False}, **llm)
    summary, decisions = run_snapshots(settings, 3)
    first = decisions[0]
    assert first["outcome"] == outcome, first["reason"]
    assert reason in first["reason"] and "fallback: hold, no order" in first["reason"]
    assert first["order"] is None and first["proposal"] is None and first["verdict"] is None
    [call] = first["reasoner"]["calls"]
    assert call["outcome"] == outcome and reason in call["error"]
    assert first["reasoner"]["fallback"] == "hold" and first["intent"]["action"] == "HOLD"
    # the run goes on: the later snapshots got (HOLD) answers
    assert [d["outcome"] for d in decisions[1:]] == ["hold", "hold"]
    assert summary.outcomes[outcome] == 1 and summary.snapshots == 3
    if fault == "http_429":
        assert len(stub.requests) == 2 + 2  # bounded: 1 try + 1 retry, then the two later snapshots


def _bad(data: dict[str, Any], **override: Any) -> dict[str, Any]:
    return valid_answer(data, "BUY", **override)


ABSURD: dict[str, tuple[Any, str]] = {
    "conviction_7": (lambda d: _bad(d, conviction=7), "invalid answer: conviction: Input should be less than or equal to 1 (got '7')"),
    "unknown_symbol": (lambda d: _bad(d, symbol="DOGE/USDT"), "answer is for symbol 'DOGE/USDT', the decision is for BTC/USDT"),
    "negative_size": (lambda d: _bad(d, size_fraction=-0.5), "size_fraction: Input should be greater than or equal to 0"),
    "invented_number": (lambda d: _bad(d, rationale="Price will reach 71234.5 by Friday."),
                        "evidence check: rationale cites 71234.5 which is not in DATA"),
    "invented_evidence": (lambda d: _bad(d, evidence=[{"field": "rsi", "value": 12.5}]),
                          "evidence check: evidence rsi=12.5 but DATA has"),
    "missing_field": (lambda d: {k: v for k, v in _bad(d).items() if k != "horizon"}, "horizon: Field required"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ABSURD))
def test_absurd_answers_are_rejected_without_order(stub: OpenAIStub, tmp_path: Path, case: str) -> None:
    build, reason = ABSURD[case]
    calls: list[int] = []

    def handler(request: dict[str, Any]) -> Reply:
        calls.append(1)
        data = prompt_data(request)
        return Reply.tool_call(build(data) if len(calls) == 1 else valid_answer(data, "HOLD"))

    stub.respond_with(handler)
    settings = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False})
    summary, decisions = run_snapshots(settings, 3)
    first = decisions[0]
    assert first["outcome"] == "llm_rejected" and reason in first["reason"], first["reason"]
    assert first["order"] is None and first["proposal"] is None
    [call] = first["reasoner"]["calls"]
    assert call["outcome"] == "llm_rejected" and call["parsed"] is not None and call["raw_response"]
    assert [d["outcome"] for d in decisions[1:]] == ["hold", "hold"] and summary.outcomes["llm_rejected"] == 1


def test_unreachable_endpoint(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = llm_settings(f"http://127.0.0.1:{port}/v1", "nobody", tmp_path, gating={"enabled": False})
    summary, decisions = run_snapshots(settings, 3)
    assert [d["outcome"] for d in decisions] == ["llm_error"] * 3 and summary.orders == 0
    assert "connection failed (1 attempt): ConnectionRefusedError" in decisions[0]["reason"]
    assert summary.llm_calls == 3 and summary.llm_tokens == 0


def test_rules_fallback_sends_the_rules_intent_on_and_names_the_failure(stub: OpenAIStub, tmp_path: Path) -> None:
    stub.respond_with(lambda _r: Reply.error(500, "down"))
    llm = llm_settings(stub.base_url, stub.model, tmp_path, fallback="rules")
    rules = llm.model_copy(update={"reasoner": "rules"})
    _, with_llm = run_snapshots(llm, None)
    (tmp_path / "journal.sqlite").unlink()
    _, with_rules = run_snapshots(rules, None)
    asked = [d for d in with_llm if d["reasoner"] and d["reasoner"]["calls"]]
    assert asked and all(
        d["reasoner"]["outcome"] == "llm_error" and d["reasoner"]["fallback"] == "rules" for d in asked
    )
    assert all("HTTP 500" in d["reason"] and "fallback: rules" in d["reason"] for d in asked)
    # the rules decided every snapshot: same actions and orders as a rules run
    assert [(d["action"], (d["order"] or {}).get("quantity")) for d in with_llm] == [
        (d["action"], (d["order"] or {}).get("quantity")) for d in with_rules
    ]
    assert any(d["outcome"] == "ordered" for d in asked) or any(d["outcome"] == "hold" for d in asked)


def test_gating_asks_only_when_the_rules_leave_something_to_decide(stub: OpenAIStub, tmp_path: Path) -> None:
    stub.respond_with(answering("HOLD"))
    settings = llm_settings(stub.base_url, stub.model, tmp_path)
    summary, decisions = run_snapshots(settings, None)
    by_kind: dict[str, list[dict[str, Any]]] = {"graph": [], "gated": [], "asked": []}
    for d in decisions:
        trace = d["reasoner"]
        kind = "graph" if trace is None else "gated" if trace["outcome"] == "skipped" else "asked"
        by_kind[kind].append(d)
    assert all(len(v) > 0 for v in by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    assert len(stub.requests) == len(by_kind["asked"]) == summary.llm_calls
    assert all(d["outcome"] == "skipped" for d in by_kind["graph"])
    for d in by_kind["gated"]:
        assert d["reasoner"]["reason"].startswith("LLM not asked, rules decided: rules decisive: P(up)=")
        assert "rules decisive" in d["reason"] and d["reasoner"]["calls"] == []
    for d in by_kind["asked"]:
        gating = d["reasoner"]["calls"][0]["gating"]
        assert gating.startswith(("conflicting signals:", "rules undecided: P(up)=")), gating
    assert summary.llm_outcomes["skipped"] == len(by_kind["gated"])


def test_json_schema_method_as_used_for_openai(stub: OpenAIStub, tmp_path: Path) -> None:
    import json

    stub.respond_with(lambda r: Reply.text(json.dumps(valid_answer(prompt_data(r), "BUY"))))
    settings = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False},
                            structured_output="json_schema")  # fmt: skip
    _, decisions = run_snapshots(settings, 2)
    fmt = stub.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["required"] == [
        "symbol", "action", "conviction", "size_fraction", "horizon", "rationale", "evidence"
    ]  # fmt: skip
    assert "tools" not in stub.requests[0]
    assert decisions[0]["reasoner"]["outcome"] == "ok" and decisions[0]["outcome"] == "ordered"
    assert decisions[0]["reasoner"]["calls"][0]["params"]["structured_output"] == "json_schema"
