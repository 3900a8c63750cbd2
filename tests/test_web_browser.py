"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright), served by
`tradegraph web` itself: load the timeline, filter it, open a decision, ask the chat panel, check the answer,
and check that script planted in stored text never runs. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import unavailable
from tests.web_support import PLANTED_RATIONALE, PLANTED_REASON, planted_journal

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
def served(inspect_journal: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, planted decision id) of `tradegraph web --port 0` over a journal with script planted in it."""
    journal = tmp_path / "planted.sqlite"
    planted = planted_journal(inspect_journal, journal)
    proc = subprocess.Popen([sys.executable, "-m", "tradegraph", "web", "--journal", str(journal), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    try:
        try:
            first = lines.get(timeout=180)
        except queue.Empty:
            pytest.fail("tradegraph web printed nothing within 180 s")
        match = re.match(r"tradegraph web: (http://127\.0\.0\.1:\d+)/ ", first)
        assert match, first
        yield match.group(1), planted
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_timeline_decision_and_chat_in_chromium(served: tuple[str, str], tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        unavailable("Debian's chromium at /usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright (dev extra)")
    base, planted = served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )  # fmt: skip
        try:
            page = context.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.set_default_timeout(60_000)

            page.goto(base + "/")
            assert page.locator("#decision-count").inner_text().startswith("384 decisions")
            assert page.locator("#timeline tbody tr").count() == 100
            page.screenshot(path=str(ARTIFACTS / "web_timeline.png"))

            page.select_option("select[name=verdict]", "DENY")
            page.click("#filters button[type=submit]")
            page.wait_for_url(re.compile(r"verdict=DENY"))
            assert page.locator("#decision-count").inner_text() == "7 decisions"

            page.locator("a.decision-link").nth(1).click()
            page.wait_for_url(re.compile(r"/decisions/d-[0-9a-f]{16}$"))
            assert "DENY" in page.locator("#gate-verdict").inner_text()
            assert "COOLDOWN_AFTER_STOP" in page.locator("#decision-reason").inner_text()

            page.fill("#chat-input", "why did it buy ETH at 16:00 on Feb 9?")
            page.click("#chat-send")
            answer = page.locator("#chat-log pre.answer[data-mode]")
            answer.wait_for()
            text = answer.inner_text()
            assert answer.get_attribute("data-mode") == "deterministic"
            assert "ETH/USDT 1h candle 2024-02-09T16:00" in text and "outcome denied" in text
            assert "Gate: DENY (COOLDOWN_AFTER_STOP)" in text
            cited = page.locator("#chat-log p.cited a")
            assert cited.count() == 2 and cited.first.inner_text() in text
            page.screenshot(path=str(ARTIFACTS / "web_decision_chat.png"))

            page.goto(f"{base}/decisions/{planted}")
            assert page.locator("#decision-reason").inner_text() == PLANTED_REASON
            assert page.locator("#rationale").inner_text() == PLANTED_RATIONALE
            assert page.locator("#rationale img, #rationale b").count() == 0
            assert page.locator(".llm-call pre.raw").inner_text().startswith("<script>alert('raw')</script>")
            page.fill("#chat-input", f"explain {planted}")
            page.click("#chat-send")
            page.locator("#chat-log pre.answer[data-mode]").wait_for()
            assert PLANTED_REASON in page.locator("#chat-log pre.answer").inner_text()
            assert page.evaluate("window.__pwned === undefined") and dialogs == []
            page.screenshot(path=str(ARTIFACTS / "web_planted_script.png"), full_page=True)

            page.goto(base + "/equity")
            assert page.locator("#equity-chart svg polyline").count() == 1
            assert page.locator("#comparison tbody tr").count() == 2
            page.screenshot(path=str(ARTIFACTS / "web_equity.png"), full_page=True)
        finally:
            context.close()
    assert (ARTIFACTS / "web_decision_chat.png").stat().st_size > 10_000
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
