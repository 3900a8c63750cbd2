"""No password or token given in a URL or a setting ever shows: not on stdout, stderr, in JSON logs, or in
the journaled run config. Real commands against the real PostgreSQL and a private victoria-metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.logging_setup import configure_logging
from infra.postgres_journal import PostgresJournal
from tests.victoria import VictoriaMetrics
from tradegraph.cli import main

PG_PASSWORD = "pg-secret-41d7"
INFLUX_PASSWORD = "influx-pass-90ab"
INFLUX_TOKEN = "influx-token-5e2c"
SECRETS = (PG_PASSWORD, INFLUX_PASSWORD, INFLUX_TOKEN)


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path / "vm").start()
    try:
        yield server
    finally:
        server.stop()


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def test_no_secret_leaves_a_run_with_password_urls(
    pg_url: str, vm: VictoriaMetrics, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = _with_password(pg_url, PG_PASSWORD)  # the server trusts loopback, so the password is unused
    influx = f"http://trader:{INFLUX_PASSWORD}@127.0.0.1:{vm.port}/?token={INFLUX_TOKEN}"
    monkeypatch.setenv("TRADEGRAPH_INFLUX_TOKEN", INFLUX_TOKEN)
    log = ["--log-format", "json", "--log-level", "debug"]
    try:
        assert main([*log, "db", "upgrade", "--journal", journal]) == 0
        assert main([*log, "run", "--start", "2024-01-01", "--end", "2024-01-01", "--journal", journal,
                     "--influx", influx, "--no-progress"]) == 0  # fmt: skip
        assert main([*log, "decisions", "--journal", journal, "--last", "3"]) == 0
        out, err = capsys.readouterr()
    finally:
        configure_logging("text", "warning")
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {r["message"] for r in records} >= {"run started", "influx sink started", "run completed"}
    redacted_pg = _with_password(pg_url, "***")
    assert f"journal {redacted_pg} is at schema" in out and f"journal        {redacted_pg}" in out
    assert f"http://trader:***@127.0.0.1:{vm.port}/?token=***" in out
    for secret in SECRETS:
        assert secret not in out and secret not in err, secret

    store = PostgresJournal(pg_url, read_only=True)
    try:
        run = store.latest_run()
    finally:
        store.close()
    assert run is not None
    stored = json.dumps(run)
    for secret in SECRETS:
        assert secret not in stored, secret
    assert run["config"]["journal"] == redacted_pg
    assert run["config"]["influx"]["url"] == f"http://trader:***@127.0.0.1:{vm.port}/?token=***"
    assert run["config"]["influx"]["token"] == "***"


def test_no_secret_leaves_a_failing_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = f"postgresql://trader:{PG_PASSWORD}@127.0.0.1:1/nowhere"
    influx = f"http://trader:{INFLUX_PASSWORD}@127.0.0.1:1/?token={INFLUX_TOKEN}"
    log = ["--log-format", "json", "--log-level", "debug"]
    lite = str(tmp_path / "j.sqlite")
    try:
        codes = [
            main([*log, "db", "upgrade", "--journal", journal]),
            main([*log, "run", "--journal", journal, "--no-progress"]),
            main([*log, "run", "--influx", influx, "--no-progress", "--journal", lite]),
        ]
        out, err = capsys.readouterr()
    finally:
        configure_logging("text", "warning")
    assert codes == [2, 2, 2] and out == ""
    assert err.count("tradegraph: error: ") == 3
    assert "postgresql://trader:***@127.0.0.1:1/nowhere" in err and "http://trader:***@127.0.0.1:1/?token=***" in err
    for secret in SECRETS:
        assert secret not in err, secret
