"""A private victoria-metrics server for a test: the InfluxDB v2 write API (/api/v2/write) on loopback.

Each test gets its own process on a free port with its own storage dir (retention 100 years, since the
recorded candles are from 2023-2024), so parallel test runs never share data.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.services import unavailable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VictoriaMetrics:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> VictoriaMetrics:
        binary = shutil.which("victoria-metrics")
        if binary is None:
            unavailable("victoria-metrics (apt-get install victoria-metrics)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # a free port can be taken between probing and binding: try another
            self.port = free_port()
            log = (self.data_dir / f"vm-{self.port}.log").open("wb")
            self.proc = subprocess.Popen(
                [binary, f"-storageDataPath={self.data_dir / 'storage'}", f"-httpListenAddr=127.0.0.1:{self.port}",
                 "-retentionPeriod=100y", "-loggerLevel=ERROR"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            log.close()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                        if r.status == 200:
                            return self
                except OSError:
                    time.sleep(0.1)
            self.stop()
        raise RuntimeError(f"victoria-metrics did not start; see {self.data_dir}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching a selector, all of its samples (flushed first so recent writes are visible)."""
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=30).read()
        body = urllib.parse.urlencode({"match[]": match, "start": "0"}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/export", data=body, timeout=30) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]

    def series(self, match: str) -> dict[int, float]:
        """The samples of the one series a selector matches, as {timestamp_ms: value}."""
        found = self.export(match)
        assert len(found) == 1, f"{match} matched {len(found)} series"
        return dict(zip(found[0]["timestamps"], found[0]["values"], strict=True))
