"""A real HTTP server on loopback that speaks OpenAI's chat-completions wire format, scripted per test.

It stands in only for the paid/remote endpoint: the client code under test (langchain-openai, the openai SDK,
httpx) runs unchanged against it. Replies are taken from a queue (``script``) or computed by a handler
(``respond_with``); every request body is kept in ``requests``.

    with OpenAIStub() as stub:
        stub.script(Reply.error(429, retry_after_ms=1), Reply.tool_call({"action": "HOLD", ...}))
        ChatOpenAI(base_url=stub.base_url, model=stub.model, api_key="test")
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted HTTP answer. Use the constructors; ``body`` is sent as is."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait this long before answering (released early when the stub stops)."""
    truncate_at: int | None = None
    """Announce the full Content-Length but send only this many bytes, then close the connection."""
    build: Callable[[dict[str, Any], str], bytes] | None = None
    """Computes the body from the request and the stub's model (used by the chat constructors)."""

    @classmethod
    def tool_call(
        cls,
        arguments: dict[str, Any] | str,
        *,
        name: str | None = None,
        finish_reason: str = "tool_calls",
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        delay_s: float = 0.0,
    ) -> Reply:
        """A tool call; ``name`` defaults to the tool the request forced (or its first tool)."""
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)

        def build(request: dict[str, Any], model: str) -> bytes:
            tool = name or forced_tool_name(request) or "tool"
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_stub_1", "type": "function", "function": {"name": tool, "arguments": args}}
                ],
            }
            return _completion(request, model, message, finish_reason, prompt_tokens, completion_tokens, args)

        return cls(build=build, delay_s=delay_s)

    @classmethod
    def text(
        cls,
        content: str,
        *,
        finish_reason: str = "stop",
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        delay_s: float = 0.0,
    ) -> Reply:
        """A plain assistant message (also what json_schema / json_mode answers look like)."""

        def build(request: dict[str, Any], model: str) -> bytes:
            message = {"role": "assistant", "content": content}
            return _completion(request, model, message, finish_reason, prompt_tokens, completion_tokens, content)

        return cls(build=build, delay_s=delay_s)

    @classmethod
    def error(cls, status: int, message: str = "stub error", *, retry_after_ms: int | None = None) -> Reply:
        body = json.dumps({"error": {"message": message, "type": "stub_error", "code": status}}).encode()
        headers = {"Content-Type": "application/json"}
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        return cls(status=status, body=body, headers=headers)

    @classmethod
    def raw(cls, body: bytes | str, *, status: int = 200, content_type: str = "application/json") -> Reply:
        data = body.encode() if isinstance(body, str) else body
        return cls(status=status, body=data, headers={"Content-Type": content_type})

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """No answer for ``seconds`` (a client timeout shorter than that fires first), then a 500."""
        reply = cls.error(500, "stub: answered after hanging")
        reply.delay_s = seconds
        return reply


def forced_tool_name(request: dict[str, Any]) -> str | None:
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name:
            return str(name)
    tools = request.get("tools") or []
    if tools:
        return str(tools[0].get("function", {}).get("name") or "tool")
    return None


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _completion(
    request: dict[str, Any],
    model: str,
    message: dict[str, Any],
    finish_reason: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    output: str,
) -> bytes:
    if prompt_tokens is None:
        prompt_tokens = sum(_approx_tokens(str(m.get("content") or "")) for m in request.get("messages", []))
    if completion_tokens is None:
        completion_tokens = _approx_tokens(output)
    return json.dumps(
        {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model") or model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    ).encode()


class OpenAIStub:
    """``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1, answered from a script."""

    def __init__(self, model: str = "stub-model") -> None:
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Reply] = deque()
        self._handler: Callable[[dict[str, Any]], Reply] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting ----------------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Queue replies, answered in order; when the queue is empty the handler (if any) answers."""
        with self._lock:
            self._queue.extend(replies)

    def respond_with(self, handler: Callable[[dict[str, Any]], Reply] | None) -> None:
        """Answer every request the queue does not cover with ``handler(request_body)``."""
        self._handler = handler

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self._queue:
                return self._queue.popleft()
        if self._handler is not None:
            return self._handler(body)
        return Reply.error(500, "stub: no reply scripted for this request")

    # --- lifecycle ----------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stub is not started")
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def start(self) -> OpenAIStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    body = json.dumps({"object": "list", "data": [{"id": stub.model, "object": "model"}]}).encode()
                    self._send(Reply.raw(body))
                else:
                    self._send(Reply.error(404, f"no route {self.path}"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(Reply.error(404, f"no route {self.path}"))
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(Reply.error(400, "request body is not JSON"))
                    return
                reply = stub._next_reply(body)
                if reply.delay_s > 0 and stub._stopping.wait(reply.delay_s):
                    self.close_connection = True
                    return
                if reply.build is not None:
                    reply = Reply(status=reply.status, body=reply.build(body, stub.model), headers=reply.headers,
                                  truncate_at=reply.truncate_at)  # fmt: skip
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": "application/json", **reply.headers}
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply.body)))
                    if reply.truncate_at is not None:
                        self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(reply.body if reply.truncate_at is None else reply.body[: reply.truncate_at])
                    self.wfile.flush()
                    if reply.truncate_at is not None:
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
                    self.close_connection = True

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="openai-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
