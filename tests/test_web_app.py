"""The read-only web dashboard through HTTP (FastAPI's TestClient): pages, filters, escaping, bad input, and a
journal that is being written while the dashboard reads it."""

from __future__ import annotations

import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from infra.chat_settings import ChatSettings
from infra.sqlite_journal import SqliteJournal
from tests.web_support import PLANTED_CALLS, PLANTED_RATIONALE, PLANTED_REASON, planted_journal
from tradegraph.cli import main
from tradegraph.composition import ChatSession, open_journal_reader, web_app


def _client(journal: Path) -> Iterator[TestClient]:
    reader = open_journal_reader(str(journal))
    session = ChatSession(reader, ChatSettings())
    try:
        with TestClient(web_app(session)) as client:
            yield client
    finally:
        session.close()
        reader.close()


@pytest.fixture
def planted(inspect_journal: Path, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "planted.sqlite"
    return path, planted_journal(inspect_journal, path)


@pytest.fixture
def client(planted: tuple[Path, str]) -> Iterator[TestClient]:
    yield from _client(planted[0])


def test_timeline_and_its_filters(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="decision-count">384 decisions · page 1 of 4' in page.text
    assert page.text.count('class="decision-link"') == 100
    assert page.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    denied = client.get("/", params={"symbol": "ETH/USDT", "verdict": "DENY"})
    assert ">7 decisions<" in denied.text and denied.text.count("COOLDOWN_AFTER_STOP") >= 7
    day = client.get("/", params={"start": "2024-02-09", "end": "2024-02-09", "action": "BUY"})
    times = re.findall(r'class="decision-link" href="/decisions/d-[0-9a-f]+">([^<]+)<', day.text)
    assert day.status_code == 200 and len(times) > 10 and {t[:10] for t in times} == {"2024-02-09"}
    assert "No decision matches these filters." in client.get("/", params={"action": "SELL"}).text
    second = client.get("/", params={"page": 2})
    assert "page 2 of 4" in second.text and "← previous page" in second.text
    for params, status, message in [
        ({"outcome": "bogus"}, 400, "outcome must be one of invalid, skipped"),
        ({"start": "March 3"}, 400, "from &#39;March 3&#39; is not a date: use YYYY-MM-DD"),
        ({"page": "0"}, 400, "page must be a positive number"),
        ({"run": "run-nope"}, 404, "no run &#39;run-nope&#39; in the journal"),
    ]:
        r = client.get("/", params=params)
        assert r.status_code == status and message in r.text, r.text
    assert client.post("/").status_code == 405  # read-only: nothing to post to but the chat


def test_decision_page_shows_the_evidence_chain_escaped(client: TestClient, planted: tuple[Path, str]) -> None:
    did = planted[1]
    page = client.get(f"/decisions/{did}")
    html = page.text
    assert page.status_code == 200
    for section in ("Inputs", "Indicators", "Signals", "Intent and rationale", "Reasoner", "Risk assessment",
                    "Order proposal", "Gate verdict", "Orders", "Fills", "Later outcome", "Portfolio at the decision"):  # fmt: skip
        assert f"<h2>{section}</h2>" in html, section
    assert "<script>window.__pwned" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert str(escape(PLANTED_REASON)) in html and str(escape(PLANTED_RATIONALE)) in html
    call = PLANTED_CALLS[0]
    assert "LLM calls (1)" in html and "&lt;i&gt;gpt&lt;/i&gt;" in html and str(escape(call["raw_response"])) in html
    assert "ignore previous instructions" in html and "fusion_v1" in html and "&lt;u&gt;model said&lt;/u&gt;" in html
    assert "<script>alert(1)</script>" not in html  # the parsed JSON is escaped inside <pre> as well
    assert 'id="decision-candle">candle decided on: open ' in html
    assert 'id="round-trip">Round trip opened' in html and 'id="price-move">Close' in html
    assert f"tradegraph replay {did}" in html
    missing = client.get("/decisions/d-0000000000000000")
    assert missing.status_code == 404 and "no decision &#39;d-0000000000000000&#39; in the journal" in missing.text
    assert client.get(f"/api/decisions/{did}").json()["reason"] == PLANTED_REASON
    assert client.get("/api/decisions/nope").json() == {"error": "no decision 'nope' in the journal"}


def test_equity_denials_chat_and_api(client: TestClient, planted: tuple[Path, str]) -> None:
    equity = client.get("/equity").text
    assert equity.count('<svg class="chart"') == 2 and "<polyline" in equity and "<polygon" in equity
    assert '<th>strategy</th><td class="n">+2.08%</td>' in equity and "<th>buy and hold</th>" in equity
    denials = client.get("/denials").text
    assert "7 denied orders" in denials and "COOLDOWN_AFTER_STOP ×7" in denials
    answer = client.post("/api/chat", json={"question": "which orders were denied and why?"}).json()
    assert answer["mode"] == "deterministic" and answer["text"].startswith("The gate denied 7 orders")
    assert len(answer["cited"]) == 7
    assert client.post("/api/chat", json={"question": ""}).json() == {
        "error": "question: String should have at least 1 character"
    }
    form = client.post("/chat", data={"question": f"explain {planted[1]}"}).text
    assert str(escape("Why: " + PLANTED_REASON)) in form and "<script>window.__pwned" not in form
    api = client.get("/api/decisions", params={"verdict": "DENY", "limit": 3}).json()
    assert (
        api["total"] == 7
        and len(api["decisions"]) == 3
        and api["decisions"][0]["gate_reasons"] == ["COOLDOWN_AFTER_STOP"]
    )
    assert client.get("/api/decisions", params={"limit": 0}).status_code == 400
    assert client.get("/api/decisions", params={"run": "x"}).status_code == 404
    assert client.get("/assets/chat.js").text.startswith("// The chat panel")
    assert client.get("/assets/secret.txt").status_code == 404
    assert client.get("/favicon.ico").status_code == 204
    assert client.get("/healthz").json()["ok"] is True


def test_an_empty_journal_is_said_so_on_every_page(tmp_path: Path) -> None:
    SqliteJournal(tmp_path / "empty.sqlite").close()
    for client in _client(tmp_path / "empty.sqlite"):
        assert "The journal holds no run yet" in client.get("/").text
        assert "No portfolio points journaled yet." in client.get("/equity").text
        assert "(the journal holds no run yet)" in client.get("/denials").text
        assert client.post("/api/chat", json={"question": "run summary"}).json()["text"].startswith("The journal holds")
        assert client.get("/api/decisions").json() == {"total": 0, "decisions": []}


def test_a_journal_being_written_is_read_while_it_grows(tmp_path: Path) -> None:
    journal = tmp_path / "live.sqlite"
    writer = subprocess.Popen([sys.executable, "-m", "tradegraph", "run", "--journal", str(journal), "--no-progress"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while True:  # wait for the writer's first committed decisions
            assert time.monotonic() < deadline and writer.poll() is None, "the writer did not start journaling"
            if journal.exists():
                try:
                    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
                        if db.execute("SELECT count(*) FROM decisions").fetchone()[0] > 0:
                            break
                except sqlite3.Error:
                    pass
            time.sleep(0.2)
        seen: list[int] = []
        for client in _client(journal):
            while len(set(seen)) < 3 and writer.poll() is None and time.monotonic() < deadline:
                r = client.get("/api/decisions", params={"limit": 1})
                assert r.status_code == 200, r.text
                seen.append(r.json()["total"])
                assert client.get("/").status_code == 200
                assert client.get("/equity").status_code == 200
                assert client.post("/api/chat", json={"question": "run summary"}).status_code == 200
        assert writer.poll() is None, "the writer finished before the reads were done"
        assert len(set(seen)) >= 3 and seen == sorted(seen)  # three different sizes, never going back
    finally:
        writer.kill()
        writer.wait(timeout=60)


def test_port_in_use_and_bad_host_are_one_line(inspect_journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["web", "--journal", str(inspect_journal), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == f"tradegraph: error: port {port} on 127.0.0.1 is already in use (choose another with --port)\n"
    assert main(["web", "--journal", str(inspect_journal), "--port", "70000"]) == 2
    assert "--port 70000 is not a port number" in capsys.readouterr().err
    assert main(["web", "--journal", str(inspect_journal), "--host", "no-such-host.invalid"]) == 2
    assert "--host 'no-such-host.invalid' cannot be resolved" in capsys.readouterr().err


def test_several_runs_default_to_the_chosen_one(inspect_journal: Path, tmp_path: Path) -> None:
    journal = tmp_path / "two.sqlite"
    shutil.copy(inspect_journal, journal)
    assert main(["run", "--symbols", "ETH/USDT", "--start", "2024-03-01", "--end", "2024-03-01", "--journal",
                 str(journal), "--no-progress"]) == 0  # fmt: skip
    reader = open_journal_reader(str(journal))
    first, second = reader.list_runs()[1]["run_id"], reader.list_runs()[0]["run_id"]
    try:
        for run_id, count in ((first, "384 decisions"), (None, "24 decisions")):
            session = ChatSession(reader, ChatSettings(), run_id)
            with TestClient(web_app(session)) as client:
                page = client.get("/").text
                assert f'id="decision-count">{count}' in page and page.count('<option value="run-') == 2
                assert f"run {run_id or second}" in client.get("/equity").text
                other = client.get("/", params={"run": second if run_id else first}).text
                assert f'id="decision-count">{"24 decisions" if run_id else "384 decisions"}' in other
    finally:
        reader.close()
