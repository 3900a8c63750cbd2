"""The loopback OpenAI stub speaks the wire format the real clients expect."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.openai_stub import OpenAIStub, Reply


class Answer(BaseModel):
    """An answer."""

    word: str
    n: int


def _chat(stub: OpenAIStub, **kw: Any) -> ChatOpenAI:
    return ChatOpenAI(base_url=stub.base_url, model=stub.model, api_key="test", **kw)


def test_tool_calls_text_and_models() -> None:
    with OpenAIStub() as stub:
        stub.script(Reply.tool_call({"word": "hi", "n": 3}), Reply.text("plain"))
        parsed = _chat(stub, max_retries=0).with_structured_output(Answer, method="function_calling").invoke("x")
        assert parsed == Answer(word="hi", n=3)
        msg = _chat(stub, max_retries=0).invoke("y")
        assert msg.content == "plain" and msg.usage_metadata and msg.usage_metadata["input_tokens"] >= 1
        assert stub.requests[0]["tool_choice"]["function"]["name"] == "Answer"
        assert stub.requests[1]["messages"][-1]["content"] == "y"
        with urllib.request.urlopen(f"{stub.base_url}/models", timeout=5) as resp:
            assert json.load(resp)["data"][0]["id"] == stub.model


def test_errors_retries_truncation_and_handler() -> None:
    with OpenAIStub() as stub:
        stub.script(Reply.error(429, retry_after_ms=1), Reply.text("after retry"))
        assert _chat(stub, max_retries=1).invoke("a").content == "after retry"
        assert len(stub.requests) == 2
        stub.script(Reply.error(500), Reply.error(500))
        with pytest.raises(openai.InternalServerError):
            _chat(stub, max_retries=1).invoke("b")
        stub.script(Reply(status=200, body=b'{"choices": [{"index": 0}]}', truncate_at=5))
        with pytest.raises((openai.APIConnectionError, httpx.HTTPError)):
            _chat(stub, max_retries=0).invoke("c")
        stub.respond_with(lambda body: Reply.text(f"echo {body['messages'][-1]['content']}"))
        assert _chat(stub, max_retries=0).invoke("d").content == "echo d"
        stub.script(Reply.hang(30))
        with pytest.raises(openai.APITimeoutError):
            _chat(stub, max_retries=0, timeout=0.5).invoke("e")
