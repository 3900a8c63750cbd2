"""One live structured-output call through langchain-openai's ChatOpenAI, against any OpenAI-compatible endpoint.

The endpoint's failures become an ``Answer`` of kind ``error`` with a one-line reason (unreachable, HTTP
status, timeout, no structured answer, not JSON, cut at max tokens); nothing is raised to the graph.
Timeouts and bounded retries (429, 5xx, connection errors; exponential back-off, Retry-After honoured) are
the openai client's own.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from langchain_core.messages import AIMessage
from pydantic import SecretStr

from agents.llm_answer import Answer
from agents.llm_schema import strict_json_schema, tool_schema

Method = Literal["function_calling", "json_schema", "json_mode"]


@dataclass(frozen=True)
class Endpoint:
    """Where the model is served. ``display_url`` is the redacted base URL for journals and logs."""

    base_url: str
    model: str
    api_key: SecretStr | None
    provider: str
    display_url: str


def is_openai(base_url: str) -> bool:
    return (urlsplit(base_url).hostname or "") == "api.openai.com"


def _short(text: str, n: int = 240) -> str:
    return re.sub(r"\s+", " ", text).strip()[:n]


def _status_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        msg = inner.get("message") if isinstance(inner, dict) else None
        if msg:
            return _short(str(msg))
    return _short(exc.message)


def _root_cause(exc: BaseException) -> BaseException:
    """The transport error under the SDK's wrapper (e.g. httpx.ConnectError: connection refused)."""
    seen = 0
    while seen < 6 and (exc.__cause__ is not None or exc.__context__ is not None):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return exc


def describe_error(exc: BaseException, timeout_s: float, retries: int) -> str:
    tries = f"{retries + 1} attempt{'s' if retries else ''}"
    if isinstance(exc, openai.APITimeoutError):
        return f"timeout: no answer within {timeout_s:g} s ({tries})"
    if isinstance(exc, openai.APIConnectionError):
        cause = _root_cause(exc)
        return f"connection failed ({tries}): {_short(f'{type(cause).__name__}: {cause}')}"
    if isinstance(exc, openai.RateLimitError):
        return f"HTTP 429 rate limited ({tries}): {_status_message(exc)}"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} ({tries}): {_status_message(exc)}"
    if isinstance(exc, openai.LengthFinishReasonError):
        return "answer cut at max tokens"
    return f"{type(exc).__name__}: {_short(str(exc))}"


def raw_text(message: AIMessage) -> str | None:
    """What the model wrote: its tool-call arguments (also the legacy function_call), else its text."""
    kwargs = message.additional_kwargs
    calls = kwargs.get("tool_calls") or []
    if calls and isinstance(calls[0], dict):
        args = (calls[0].get("function") or {}).get("arguments")
        if isinstance(args, str):
            return args
    legacy = kwargs.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        return str(legacy["arguments"])
    if message.invalid_tool_calls:
        args = message.invalid_tool_calls[0].get("args")
        if isinstance(args, str):
            return args
    if message.tool_calls:
        return json.dumps(message.tool_calls[0]["args"])
    if isinstance(message.content, str) and message.content:
        return message.content
    return None


def json_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON object in ``text`` (a ```json fence is tolerated), or why there is none."""
    body = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.DOTALL)
    if fence:
        body = fence.group(1)
    try:
        value = json.loads(body)
    except ValueError as exc:
        return None, f"output is not valid JSON ({exc.args[0]})"
    if not isinstance(value, dict):
        return None, f"output is JSON but not an object ({type(value).__name__})"
    return value, None


class LiveChat:
    """Calls the endpoint with the prompt and returns an ``Answer``; never raises for endpoint failures."""

    def __init__(
        self,
        endpoint: Endpoint,
        method: Method,
        *,
        temperature: float,
        max_output_tokens: int,
        timeout_s: float,
        max_retries: int,
        seed: int | None,
    ) -> None:
        from langchain_openai import ChatOpenAI

        self.endpoint = endpoint
        self.method = method
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_output_tokens = max_output_tokens
        extra: dict[str, Any] = {}
        if not is_openai(endpoint.base_url):
            extra["max_tokens"] = max_output_tokens  # llama.cpp and older servers ignore max_completion_tokens
        self.chat = ChatOpenAI(
            base_url=endpoint.base_url,
            model=endpoint.model,
            api_key=endpoint.api_key or SecretStr("not-needed"),
            temperature=temperature,
            max_tokens=max_output_tokens,
            timeout=timeout_s,
            max_retries=max_retries,
            seed=seed,
            extra_body=extra or None,
        )
        schema: Any = strict_json_schema() if method == "json_schema" else tool_schema()
        self.runnable = self.chat.with_structured_output(schema, method=method, include_raw=True)
        self.params: dict[str, Any] = {
            "temperature": temperature, "max_tokens": max_output_tokens, "timeout_s": timeout_s,
            "max_retries": max_retries, "seed": seed, "structured_output": method,
        }  # fmt: skip

    def __call__(self, messages: list[tuple[str, str]]) -> Answer:
        called_at = int(time.time() * 1000)
        start = time.perf_counter()
        try:
            out = self.runnable.invoke(messages)
        except Exception as exc:  # whatever the endpoint or client did, it is this call's llm_error, not a crash
            return Answer(kind="error", error=describe_error(exc, self.timeout_s, self.max_retries),
                          latency_ms=(time.perf_counter() - start) * 1000, called_at=called_at)  # fmt: skip
        latency = (time.perf_counter() - start) * 1000
        raw: AIMessage = out["raw"]
        usage: dict[str, Any] = dict(raw.usage_metadata or {})
        finish = raw.response_metadata.get("finish_reason")
        text = raw_text(raw)
        common: dict[str, Any] = {
            "raw_response": text, "finish_reason": finish, "input_tokens": int(usage.get("input_tokens", 0)),
            "output_tokens": int(usage.get("output_tokens", 0)), "latency_ms": latency, "called_at": called_at,
        }  # fmt: skip
        if text is None or not text.strip():
            return Answer(kind="error", error="no structured answer: the model returned nothing", **common)
        arguments, problem = json_object(text)
        if arguments is None:
            if finish == "length":
                problem = f"answer cut at max tokens ({self.max_output_tokens}): {problem}"
            return Answer(kind="error", error=f"no structured answer: {problem}", **common)
        return Answer(kind="answer", arguments=arguments, **common)
