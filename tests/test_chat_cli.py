"""`tradegraph chat` as a user meets it: questions from a terminal, from standard input, or with -q."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.sqlite_journal import SqliteJournal
from tradegraph.cli import main

TG = [sys.executable, "-m", "tradegraph"]


def test_questions_from_standard_input(inspect_journal: Path) -> None:
    questions = "which orders were denied and why?\n\n   \nrun summary\nexplain d-0000000000000000\nquit\nrun summary\n"
    proc = subprocess.run([*TG, "chat", "--journal", str(inspect_journal)], input=questions, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.split("\n\n> ")
    assert len(blocks) == 3  # blank lines skipped, nothing read after "quit"
    assert blocks[0].startswith("> which orders were denied and why?\nThe gate denied 7 orders in run run-")
    assert blocks[1].startswith("run summary\nRun run-") and "denied 7, ordered 22" in blocks[1]
    assert (
        blocks[2]
        == "explain d-0000000000000000\nThe journal has no answer: no decision 'd-0000000000000000' in the journal.\n"
    )
    assert proc.stderr == ""


def _read_until(fd: int, marker: bytes, deadline_s: float = 240.0) -> bytes:
    out = b""
    deadline = time.monotonic() + deadline_s
    while marker not in out:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} in {out[-400:]!r}")
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            out += chunk
    return out


def test_questions_from_a_terminal(inspect_journal: Path) -> None:
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*TG, "chat", "--journal", str(inspect_journal)], stdin=follower, stdout=follower,
                            stderr=follower, close_fds=True)  # fmt: skip
    os.close(follower)
    try:
        banner = _read_until(leader, b"> ")
        assert b"tradegraph chat \xc2\xb7 journal" in banner and b"deterministic (no LLM configured)" in banner
        os.write(leader, b"why did it buy ETH at 16:00 on Feb 9?\n")
        answer = _read_until(leader, b"\n> ")
        assert b"outcome denied [d-" in answer and b"Gate: DENY (COOLDOWN_AFTER_STOP)" in answer
        os.write(leader, b"quit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        os.close(leader)


def test_one_shot_questions_and_bad_input(
    inspect_journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "--journal", str(inspect_journal), "-q", "help", "-q", "how many denials?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("I answer from the journal only.") and "The gate denied 7 orders" in out

    assert main(["chat", "--journal", str(tmp_path / "none.sqlite"), "-q", "hi"]) == 2
    assert "does not exist (run `tradegraph run` first)" in capsys.readouterr().err
    assert main(["chat", "--journal", str(inspect_journal), "--run", "run-nope", "-q", "hi"]) == 2
    assert capsys.readouterr().err.strip() == f"tradegraph: error: no run 'run-nope' in journal {inspect_journal}"
    assert main(["chat", "--journal", str(inspect_journal), "--llm", "gpt4", "-q", "hi"]) == 2
    assert "--llm 'gpt4' is neither 'local', 'none' nor an http(s):// base URL" in capsys.readouterr().err

    SqliteJournal(tmp_path / "empty.sqlite").close()
    assert main(["chat", "--journal", str(tmp_path / "empty.sqlite"), "-q", "run summary", "--llm", "none"]) == 0
    assert capsys.readouterr().out.strip() == "The journal holds no run yet: there is nothing to answer from."
