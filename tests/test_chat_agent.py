"""The chat's agent mode: LangGraph tool calling over the journal through a real OpenAI-compatible HTTP exchange.

The model is the loopback stub (tests/openai_stub.py) scripted per test, or the bundled SmolLM2 model served by
llama.cpp (agents/local_server.py) end to end. langchain-openai's ChatOpenAI runs unchanged against both.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from agents.answer_check import check_answer
from agents.chat_agent import TOOL_SPECS, InspectorAgent, call_tool
from agents.chat_deterministic import DeterministicChat
from infra.chat_settings import ChatSettings
from prompts import load_prompt
from tests.openai_stub import OpenAIStub, Reply
from tests.services import unavailable
from tools.journal_reader import DecisionQuery, JournalReader
from tradegraph.cli import main
from tradegraph.composition import ChatSession, inspector_tools, open_journal_reader


@pytest.fixture
def reader(inspect_journal: Path) -> Iterator[JournalReader]:
    r = open_journal_reader(str(inspect_journal))
    yield r
    r.close()


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as s:
        yield s


def _agent(reader: JournalReader, stub: OpenAIStub, **kw: Any) -> InspectorAgent:
    model = ChatOpenAI(base_url=stub.base_url, model=stub.model, api_key=SecretStr("test"), temperature=0,
                       timeout=kw.pop("timeout", 30), max_retries=0)  # fmt: skip
    return InspectorAgent(inspector_tools(reader), model, **kw)


def _last_tool_json(request: dict[str, Any]) -> dict[str, Any]:
    tool_messages = [m for m in request["messages"] if m["role"] == "tool"]
    data: dict[str, Any] = json.loads(tool_messages[-1]["content"])
    return data


def _denied_ids(reader: JournalReader) -> list[str]:
    latest = reader.latest_run()
    assert latest is not None
    return [r["id"] for r in reader.find_decisions(DecisionQuery(run_id=latest["run_id"], verdict="DENY"))]


def test_a_tool_call_round_trip_answers_in_checked_prose(reader: JournalReader, stub: OpenAIStub) -> None:
    def model(request: dict[str, Any]) -> Reply:
        data = _last_tool_json(request)
        first = data["decisions"][0]
        return Reply.text(f"The gate denied {data['total']} ETH/USDT orders; the first, at {first['candle_time']}, "
                          f"was {first['reason']} [{first['id']}].")  # fmt: skip

    stub.script(Reply.tool_call({"symbol": "ETH/USDT", "verdict": "DENY", "limit": 3}, name="find_decisions",
                                prompt_tokens=900, completion_tokens=20))  # fmt: skip
    stub.respond_with(model)
    answer = _agent(reader, stub, prefetch=False).answer("Tell me about the gate's refusals for ether.")
    denied = _denied_ids(reader)
    assert answer.mode == "agent", answer.text
    prompt = load_prompt("chat_inspector.v1")  # the versioned template, read as package data
    assert answer.llm is not None and answer.llm.model == stub.model and answer.llm.calls == 2
    assert (answer.llm.prompt_id, answer.llm.prompt_hash) == ("chat_inspector.v1", prompt.hash)
    assert answer.llm.input_tokens > 900 and answer.llm.output_tokens > 20
    assert answer.text.startswith("The gate denied 7 ETH/USDT orders; the first, at 2024-02-09T15:00, was gate DENY")
    assert answer.cited == [denied[0]] and answer.tools == ["find_decisions"]
    first, second = stub.chat_requests
    assert [t["function"]["name"] for t in first["tools"]] == list(TOOL_SPECS)
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][0]["content"] == prompt.section("system")
    assert "Every number you write must appear in a tool result" in first["messages"][0]["content"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assert second["messages"][2]["tool_calls"][0]["function"]["name"] == "find_decisions"
    assert second["messages"][3]["tool_call_id"] == "call_stub_1"
    sent = _last_tool_json(second)
    assert sent["total"] == 7 and sent["citable_decision_ids"] == denied[:3]


def test_prefetch_hands_the_model_the_deterministic_lookup(reader: JournalReader, stub: OpenAIStub) -> None:
    stub.respond_with(lambda request: Reply.text(
        f"{_last_tool_json(request)['total']} orders were denied, all for COOLDOWN_AFTER_STOP, e.g. "
        f"[{_last_tool_json(request)['citable_decision_ids'][0]}]."))  # fmt: skip
    answer = _agent(reader, stub).answer("which orders were denied and why?")
    assert (
        answer.mode == "agent" and answer.text.startswith("7 orders were denied") and answer.tools == ["denied_orders"]
    )
    (request,) = stub.chat_requests
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "tool"]
    assert request["messages"][2]["content"].strip() == ""  # never null: llama.cpp's server rejects that
    assert request["messages"][2]["tool_calls"][0]["function"]["name"] == "denied_orders"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("ETH was bought at 2,222.22 [{id}].", "it states 2,222.22, which no tool output contains"),
        ("The gate denied these orders [d-ffffffffffffffff].", "it cites d-ffffffffffffffff, which no tool returned"),
        ("The gate denied some orders because of a cooldown.", "it cites no decision id although the tools returned"),
        ("", "the model returned no text"),
    ],
)
def test_unsupported_prose_is_withheld_and_the_deterministic_answer_shown(
    reader: JournalReader, stub: OpenAIStub, reply: str, reason: str
) -> None:
    stub.respond_with(lambda request: Reply.text(reply.format(id=_denied_ids(reader)[0])))
    question = "which orders were denied and why?"
    answer = _agent(reader, stub).answer(question)
    expected = DeterministicChat(inspector_tools(reader)).answer(question)
    assert answer.mode == "withheld" and reason in (answer.withheld_reason or "")
    assert answer.text.startswith("The model's answer was withheld: ") and answer.text.endswith(expected.text)
    assert answer.cited == expected.cited
    assert not reply or reply[:20] not in answer.text  # the withheld prose itself is not shown


def test_endpoint_failures_and_endless_tool_calls_fall_back(reader: JournalReader, stub: OpenAIStub) -> None:
    stub.script(Reply.error(500, "overloaded"))
    answer = _agent(reader, stub).answer("run summary")
    assert answer.mode == "withheld" and "the model endpoint failed" in (answer.withheld_reason or "")
    assert answer.llm is not None and answer.llm.calls == 1 and answer.llm.input_tokens == 0
    assert (
        "Error code: 500" in (answer.withheld_reason or "")
        and "overloaded" in answer.text
        and "Run run-" in answer.text
    )

    stub.script(Reply.hang(60))
    answer = _agent(reader, stub, timeout=1).answer("run summary")
    assert answer.mode == "withheld" and "Timeout" in (answer.withheld_reason or "")

    stub.script(Reply.raw("this is not JSON"))
    assert _agent(reader, stub).answer("run summary").mode == "withheld"

    before = len(stub.chat_requests)
    stub.respond_with(lambda request: Reply.tool_call({}, name="run_info"))
    answer = _agent(reader, stub, max_steps=3).answer("run summary")
    assert answer.withheld_reason == "the model gave no answer within 3 turns"
    assert len(stub.chat_requests) - before == 3


def test_bad_tool_calls_come_back_as_errors_the_model_can_read(reader: JournalReader, stub: OpenAIStub) -> None:
    stub.script(
        Reply.tool_call({"decision_id": 5}, name="explain_decision"),
        Reply.tool_call({}, name="delete_journal"),
        Reply.tool_call({"time": "March 3"}, name="positions_at"),
        Reply.tool_call('{"symbol": ', name="find_decisions"),
        Reply.text("The journal has no answer to that."),
    )
    answer = _agent(reader, stub, prefetch=False).answer("anything")
    assert answer.mode == "agent" and answer.text == "The journal has no answer to that."
    tool_errors = [
        json.loads(m["content"]).get("error") for m in stub.chat_requests[-1]["messages"] if m["role"] == "tool"
    ]
    assert tool_errors[0].startswith("bad argument decision_id: Input should be a valid string")
    assert tool_errors[1].startswith("there is no tool 'delete_journal'")
    assert tool_errors[2] == "time 'March 3' is not a time: use YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)"
    assert tool_errors[3].startswith("the arguments of 'find_decisions' are not valid JSON")


def test_every_tool_is_callable_by_name(reader: JournalReader) -> None:
    tools = inspector_tools(reader)
    did = _denied_ids(reader)[0]
    args = {"run_info": {}, "find_decisions": {"symbol": "BTC", "start": "2024-02-09", "end": "2024-02-10"},
            "decision_at": {"symbol": "ETH", "time": "2024-02-09 16:00"}, "explain_decision": {"decision_id": did},
            "positions_at": {"time": "2024-02-10 12:00"}, "denied_orders": {"symbol": "ETH/USDT"},
            "performance": {"start": "2024-02-09", "end": "2024-02-12"}}  # fmt: skip
    assert set(args) == set(TOOL_SPECS)
    for name, a in args.items():
        out = call_tool(tools, name, a)
        assert out.tool == name and out.error is None, (name, out.error)


def test_chat_command_and_session_with_an_llm_endpoint(
    inspect_journal: Path, stub: OpenAIStub, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.respond_with(lambda request: Reply.text(
        f"It was denied: COOLDOWN_AFTER_STOP [{_last_tool_json(request)['citable_decision_ids'][0]}]."))  # fmt: skip
    code = main(["chat", "--journal", str(inspect_journal), "--llm", stub.base_url, "--model", "stub-model", "-q",
                 "why did it buy ETH at 16:00 on Feb 9?"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and out.startswith("It was denied: COOLDOWN_AFTER_STOP [d-")
    assert stub.chat_requests[-1]["model"] == "stub-model"
    short = load_prompt("chat_inspector.v1").hash[:12]
    assert (
        err == f"tradegraph chat: LLM agent (stub-model at {stub.base_url}, prompt chat_inspector.v1 sha256 {short})\n"
    )
    reader = open_journal_reader(str(inspect_journal))
    try:
        session = ChatSession(reader, ChatSettings(llm=stub.base_url, api_key=SecretStr("sk-secret-123")))
        assert session.uses_llm
        assert session.description == f"LLM agent (default at {stub.base_url}, prompt chat_inspector.v1 sha256 {short})"
        answer = session.answer("run summary")
        assert answer.llm is not None and answer.llm.model == "default" and answer.llm.prompt_hash.startswith(short)
        session.close()
    finally:
        reader.close()


def test_the_bundled_local_model_answers_or_is_withheld_end_to_end(inspect_journal: Path) -> None:
    from agents.local_server import bundled_model_path, llama_server_installed
    from tools.errors import LLMError

    if not llama_server_installed():
        unavailable("llama-cpp-python server (optional extra local-llm)")
    try:
        bundled_model_path()
    except LLMError as exc:
        unavailable(str(exc))
    reader = open_journal_reader(str(inspect_journal))
    session = ChatSession(reader, ChatSettings(llm="local", answer_limit=160, timeout_s=400, max_steps=2))
    try:
        assert session.description.startswith("LLM agent (SmolLM2-135M-Instruct at http://127.0.0.1:")
        question = "which orders were denied and why?"
        answer = session.answer(question)
        # a 135M model may or may not pass the check; either way nothing unchecked reaches the user
        assert answer.mode in ("agent", "withheld"), answer
        if answer.mode == "agent":
            outputs = DeterministicChat(session.tools).respond(question)[1]
            assert check_answer(answer.text, outputs, question).ok
        else:
            assert answer.withheld_reason and "COOLDOWN_AFTER_STOP" in answer.text
            assert "endpoint failed" not in answer.withheld_reason  # the real model answered over the wire
    finally:
        session.close()
        reader.close()


def test_the_chat_prompt_ships_as_package_data(tmp_path: Path) -> None:
    """Only what pyproject ships in the prompts package, zipped (no source tree, no file path to read): the agent
    loads its system prompt from there, with the id and hash its answers report."""
    repo = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["prompts"]
    shipped = [p for p in (repo / "prompts").iterdir()
               if p.suffix == ".py" or any(fnmatch.fnmatch(p.name, g) for g in globs)]  # fmt: skip
    assert "chat_inspector.v1.txt" in {p.name for p in shipped}
    archive = tmp_path / "prompts.zip"
    marked = (repo / "prompts" / "chat_inspector.v1.txt").read_bytes() + b"7. (the shipped copy)\n"
    with zipfile.ZipFile(archive, "w") as z:
        for p in shipped:
            z.writestr(f"prompts/{p.name}", marked if p.name == "chat_inspector.v1.txt" else p.read_bytes())
    code = (
        "import prompts\nfrom langchain_openai import ChatOpenAI\nfrom agents.chat_agent import InspectorAgent\n"
        f"assert prompts.__file__.startswith({str(archive)!r}), prompts.__file__\n"
        "model = ChatOpenAI(base_url='http://127.0.0.1:9/v1', api_key='unused', model='m')\n"
        "agent = InspectorAgent(None, model)\n"
        "print(agent.prompt.id, agent.prompt.hash, agent.system.endswith('7. (the shipped copy)'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(archive)},
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["chat_inspector.v1", hashlib.sha256(marked).hexdigest(), "True"]


def test_the_web_chat_reports_the_agent_model_and_prompt(inspect_journal: Path, stub: OpenAIStub) -> None:
    from fastapi.testclient import TestClient

    from tradegraph.composition import web_app

    stub.respond_with(lambda request: Reply.text(
        f"It was denied: COOLDOWN_AFTER_STOP [{_last_tool_json(request)['citable_decision_ids'][0]}]."))  # fmt: skip
    prompt = load_prompt("chat_inspector.v1")
    reader = open_journal_reader(str(inspect_journal))
    session = ChatSession(reader, ChatSettings(llm=stub.base_url, model="stub-model"))
    try:
        with TestClient(web_app(session)) as client:
            page = client.get("/chat").text
            assert f"prompt chat_inspector.v1 sha256 {prompt.hash[:12]}" in page
            answer = client.post("/api/chat", json={"question": "why did it buy ETH at 16:00 on Feb 9?"}).json()
            assert answer["mode"] == "agent", answer
            assert answer["llm"]["model"] == "stub-model" and answer["llm"]["prompt_hash"] == prompt.hash
            html = client.post("/chat", data={"question": "why did it buy ETH at 16:00 on Feb 9?"}).text
            assert (f'<p class="via">agent · stub-model · prompt chat_inspector.v1 ({prompt.hash[:12]}) · '
                    f"{answer['llm']['calls']} model call(s), ") in html  # fmt: skip
    finally:
        session.close()
        reader.close()
