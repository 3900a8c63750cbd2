"""Private PostgreSQL clusters and RabbitMQ nodes for the fault tests, which restart them.

The machine's shared servers are never restarted (other work uses them). Each private instance lives in its
own temporary directory on free ports and is always torn down. Starting is bounded: if an instance is not up
within ``START_S`` seconds the test fails with the instance's own log; missing server binaries skip locally
and fail under TRADEGRAPH_REQUIRE_SERVICES=1 (tests.services.unavailable).

PostgreSQL runs as the ``postgres`` OS user when the tests run as root (initdb refuses root). RabbitMQ gets
its own node name, AMQP and distribution ports, Mnesia and log directories, an Erlang cookie in its directory,
an empty plugin list (no management plugin) and no busy-waiting schedulers; the machine's epmd is shared.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import aio_pika
import pytest

from tests.services import unavailable

START_S = 180.0
PG_BIN = Path(os.environ.get("TRADEGRAPH_PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBIT_SERVER = Path(os.environ.get("TRADEGRAPH_RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


class PrivatePostgres:
    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            unavailable(f"PostgreSQL server binaries in {PG_BIN} (for a private cluster)")
        self.dir = Path(tempfile.mkdtemp(prefix="tg-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                   "-E", "UTF8"], "initdb")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str], what: str) -> None:
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=START_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"private PostgreSQL: {what} did not finish within {START_S:.0f} s: {_tail(self.log)}")
        if done.returncode != 0:
            pytest.fail(f"private PostgreSQL: {what} failed ({done.returncode}): {done.stderr[-2000:]} "
                        f"{_tail(self.log)}")  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(START_S)),
                   "-o", options, "start"], "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", str(int(START_S)), "-m", mode, "stop"],
                  f"stop ({mode})")  # fmt: skip

    def crash_restart(self) -> None:
        """Stop as a crash would (immediate: no checkpoint, unflushed WAL lost) and start again."""
        self.stop("immediate")
        self.start()

    def cleanup(self) -> None:
        if (self.data / "postmaster.pid").exists():
            cmd = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            if self._as_postgres:
                cmd = ["runuser", "-u", "postgres", "--", *cmd]
            subprocess.run(cmd, capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRabbit:
    def __init__(self) -> None:
        if not RABBIT_SERVER.exists():
            unavailable(f"RabbitMQ server at {RABBIT_SERVER} (for a private node)")
        self.dir = Path(tempfile.mkdtemp(prefix="tg-rmq-"))
        self.port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self.port:
            self.dist_port = free_port()
        self.node = f"tgtest{os.getpid()}x{self.port}@localhost"
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        self.log = self.dir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.dir),  # the Erlang cookie is created here
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+sbwt none +sbwtdcpu none +sbwtdio none "
            "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _answers(self) -> bool:
        logging.getLogger("aiormq").setLevel(logging.CRITICAL + 1)  # a refused probe is expected while starting

        async def probe() -> None:
            conn = await aio_pika.connect(self.url, timeout=5)
            await conn.close()

        try:
            asyncio.run(probe())
        except Exception:  # not up yet
            return False
        return True

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([str(RABBIT_SERVER)], env=self._env(), cwd=self.dir, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + START_S
        while not self._answers():
            if self.proc.poll() is not None:
                pytest.fail(f"private RabbitMQ exited with {self.proc.returncode} while starting: {_tail(self.log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"private RabbitMQ did not answer within {START_S:.0f} s: {_tail(self.log)}")
            time.sleep(0.25)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # the node's own process group (started with a new session)
        try:
            proc.wait(timeout=START_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        deadline = time.monotonic() + 60  # the node's children leave the group with it
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
