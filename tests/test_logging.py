from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from infra.logging_setup import configure_logging, redact_text
from tradegraph.cli import main


def test_json_logs_carry_decision_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "j.sqlite"
    code = main(["--log-format", "json", "--log-level", "info", "run", "--start", "2024-01-01", "--end", "2024-01-02",
                 "--journal", str(journal), "--no-progress"])  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert records[0]["message"] == "run started" and records[-1]["message"] == "run completed"
    orders = [r for r in records if r["message"].startswith("order ")]
    assert orders
    db = sqlite3.connect(journal)
    for r in orders:
        assert r["level"] == "info" and r["client_order_id"] == f"{r['decision_id']}-o"
        assert db.execute("SELECT outcome FROM decisions WHERE id = ?", (r["decision_id"],)).fetchone() == ("ordered",)
    configure_logging("text", "warning")


def test_passwords_are_redacted_in_messages_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert redact_text("amqp://guest:s3cret@127.0.0.1:5672/") == "amqp://guest:***@127.0.0.1:5672/"
    assert redact_text("no url here") == "no url here"
    configure_logging("json", "info")
    logging.getLogger("tradegraph.test").warning(
        "cannot reach postgresql://trader:hunter2@db:5432/x", extra={"fields": {"url": "redis://:pw@cache:6379"}}
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "cannot reach postgresql://trader:***@db:5432/x"
    assert line["url"] == "redis://:***@cache:6379"
    configure_logging("text", "warning")
