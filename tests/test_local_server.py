"""The bundled local model server: started and stopped by its owner, one clear error when it cannot serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from agents.local_server import MODEL_ALIAS, LocalLLMServer, bundled_model_path, llama_server_installed
from tests.services import unavailable
from tools.errors import LLMError


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def need_local_model() -> Path:
    if not llama_server_installed():
        unavailable("llama-cpp-python server (optional extra local-llm)")
    try:
        return bundled_model_path()
    except LLMError as exc:
        unavailable(str(exc))


def test_bundled_model_answers_a_chat_and_the_server_is_stopped(need_local_model: Path) -> None:
    from langchain_openai import ChatOpenAI

    with LocalLLMServer(n_ctx=2048) as server:
        pid = server.pid
        assert pid is not None and server.running
        assert server.base_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=10) as resp:
            ids = [m["id"] for m in json.load(resp)["data"]]
        assert ids == [MODEL_ALIAS]
        chat = ChatOpenAI(base_url=server.base_url, model=server.model, api_key="local", max_tokens=16,
                          temperature=0, timeout=120, max_retries=0)  # fmt: skip
        answer = chat.invoke("Say hello.")
        assert isinstance(answer.content, str) and answer.content.strip()
        assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0
    assert not server.running and _gone(pid)


def test_a_file_that_is_not_gguf_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_text("not a model")
    with pytest.raises(LLMError, match="not a GGUF model"):
        LocalLLMServer(bad).start()
    with pytest.raises(LLMError, match="does not exist"):
        LocalLLMServer(tmp_path / "missing.gguf").start()


def test_a_gguf_that_cannot_load_is_one_clear_error_and_no_process_is_left(need_local_model: Path,
                                                                           tmp_path: Path) -> None:  # fmt: skip
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + os.urandom(2048))
    server = LocalLLMServer(broken, startup_timeout_s=120)
    with pytest.raises(LLMError, match=r"could not serve broken\.gguf"):
        server.start()
    assert not server.running


def test_interrupted_start_up_stops_the_process(need_local_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def interrupted(self: LocalLLMServer, path: Path) -> bool:
        assert self.pid is not None
        seen.append(self.pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalLLMServer, "_wait_ready", interrupted)
    server = LocalLLMServer()
    with pytest.raises(KeyboardInterrupt):
        server.start()
    assert seen and _gone(seen[0]) and not server.running


def test_start_up_timeout_stops_the_process(need_local_model: Path) -> None:
    server = LocalLLMServer(startup_timeout_s=0.0)
    with pytest.raises(LLMError, match="did not answer"):
        server.start()
    assert not server.running


CRASHING_SERVER = """
import http.server, json, os, signal, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"data": [{"id": "m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # a build whose kernels this CPU cannot run dies on its first generation
        os.kill(os.getpid(), signal.SIGSEGV)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_a_server_that_crashes_on_its_first_generation_fails_the_start_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(64))
    monkeypatch.setattr("agents.local_server.llama_server_installed", lambda: True)
    spawned: list[int] = []

    def spawn_crashing(self: LocalLLMServer, path: Path) -> None:
        self._proc = subprocess.Popen([sys.executable, "-c", CRASHING_SERVER, str(self.port)])
        spawned.append(self._proc.pid)

    monkeypatch.setattr(LocalLLMServer, "_spawn", spawn_crashing)
    server = LocalLLMServer(model, startup_timeout_s=30)
    with pytest.raises(LLMError, match=r"died of signal SIGSEGV.*CMAKE_ARGS=-DGGML_NATIVE=OFF"):
        server.start()
    assert spawned and _gone(spawned[0]) and not server.running
