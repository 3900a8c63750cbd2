"""Durable runs: real `tradegraph run --checkpoint` processes SIGKILLed at exact points (the crash-point hook,
``TRADEGRAPH_CRASH_AT``), then `tradegraph run --resume`; the resumed run must end exactly like an
uninterrupted run of the same range (decisions, orders, fills, portfolio points, equity), with SQLite and with
PostgreSQL for both the journal and the checkpoint store.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from evals.engine import decision_signature
from infra.journal import decision_id
from infra.settings import load_settings
from tools.errors import ConfigError
from tradegraph.cli import main
from tradegraph.composition import build_replay, open_journal, resume_replay

ROOT = Path(__file__).resolve().parents[1]
START, END = "2024-01-01", "2024-01-07"
KILLED = -signal.SIGKILL


@dataclass
class Journal:
    """What a run left in its journal, with run-specific ids replaced by the decision key."""

    run_id: str
    status: str
    final_equity: float
    decisions: dict[tuple[str, int], str]
    orders: list[tuple[Any, ...]]
    fills: list[tuple[Any, ...]]
    points: list[tuple[Any, ...]]


def _normalize(run: dict[str, Any], decisions: list[dict[str, Any]], orders: list[dict[str, Any]],
               fills: list[dict[str, Any]], points: list[dict[str, Any]]) -> Journal:  # fmt: skip
    key = {d["id"]: (d["symbol"], int(d["candle_time"])) for d in decisions}

    def oid(client_order_id: str, decision: str) -> tuple[Any, ...]:
        return (*key[decision], client_order_id.removeprefix(decision))

    summary = run["summary"] if isinstance(run["summary"], dict) else json.loads(run["summary"] or "{}")
    order_cols = ("side", "quantity", "reference_price", "submitted_at", "kind", "status", "filled_quantity",
                  "stop_loss", "take_profit")  # fmt: skip
    fill_cols = ("side", "quantity", "price", "fee", "timestamp", "kind", "slippage_bps", "realized_pnl")
    point_cols = ("timestamp", "cash", "equity", "gross_exposure", "drawdown")

    def positions(p: dict[str, Any]) -> str:
        value = p["positions"] if isinstance(p["positions"], dict) else json.loads(p["positions"])
        return json.dumps(value, sort_keys=True)

    return Journal(
        run_id=run["run_id"],
        status=run["status"],
        final_equity=summary.get("final_equity", float("nan")),
        decisions={key[d["id"]]: decision_signature(d) for d in decisions},
        orders=sorted((*oid(o["client_order_id"], o["decision_id"]), *(o[c] for c in order_cols)) for o in orders),
        fills=[(*oid(f["client_order_id"], f["decision_id"]), *(f[c] for c in fill_cols)) for f in fills],
        points=[(*(p[c] for c in point_cols), positions(p)) for p in points],
    )


def read_sqlite(path: Path) -> Journal:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        (run,) = [dict(r) for r in db.execute("SELECT * FROM runs")]
        decisions = []
        for r in db.execute("SELECT * FROM decisions ORDER BY candle_time, rowid"):
            d = dict(r)
            d.update(json.loads(d.pop("body")))
            decisions.append(d)
        orders = [dict(r) for r in db.execute("SELECT * FROM orders")]
        fills = [dict(r) for r in db.execute("SELECT * FROM fills ORDER BY id")]
        points = [dict(r) for r in db.execute("SELECT * FROM portfolio_snapshots ORDER BY timestamp")]
    finally:
        db.close()
    return _normalize(run, decisions, orders, fills, points)


def read_postgres(url: str, run_id: str) -> Journal:
    async def read() -> Journal:
        conn = await asyncpg.connect(url, timeout=10, command_timeout=60)
        try:
            run = dict(await conn.fetchrow("SELECT * FROM runs WHERE run_id = $1", run_id))
            decisions = []
            for r in await conn.fetch("SELECT * FROM decisions WHERE run_id = $1 ORDER BY candle_time, seq", run_id):
                d = dict(r)
                d.update(json.loads(d.pop("body")))
                decisions.append(d)
            ids = [d["id"] for d in decisions]
            orders = [dict(r) for r in await conn.fetch("SELECT * FROM orders WHERE decision_id = ANY($1)", ids)]
            fills = [dict(r) for r in await conn.fetch("SELECT * FROM fills WHERE run_id = $1 ORDER BY id", run_id)]
            points = [dict(r) for r in await conn.fetch(
                "SELECT * FROM portfolio_snapshots WHERE run_id = $1 ORDER BY timestamp", run_id)]  # fmt: skip
        finally:
            await conn.close(timeout=5)
        return _normalize(run, decisions, orders, fills, points)

    return asyncio.run(read())


def tradegraph(args: list[str], cwd: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRADEGRAPH_CRASH_AT"}
    env["PYTHONPATH"] = str(ROOT)
    if crash_at is not None:
        env["TRADEGRAPH_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "tradegraph", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Journal:
    """The same range run once without interruption (and without checkpoints)."""
    path = tmp_path_factory.mktemp("reference") / "journal.sqlite"
    settings = load_settings(journal=str(path), start=date.fromisoformat(START), end=date.fromisoformat(END))
    job = build_replay(settings)
    try:
        job.session.run(job.snapshots(), job.config)
    finally:
        job.close()
    ref = read_sqlite(path)
    assert len(ref.orders) >= 8 and len(ref.fills) >= 8, "the range must trade"
    return ref


def ordered_ordinals(ref: Journal) -> list[int]:
    """1-based positions (in decision order, i.e. journal-node entries) of the decisions that placed an order."""
    keys = list(ref.decisions)
    entries = {(o[0], o[1]) for o in ref.orders if o[2] == "-o"}
    return [i + 1 for i, k in enumerate(keys) if k in entries]


def assert_same_run(resumed: Journal, ref: Journal) -> None:
    assert resumed.status == "completed"
    assert resumed.decisions == ref.decisions
    assert resumed.orders == ref.orders
    assert len({o[:3] for o in resumed.orders}) == len(resumed.orders)  # no client order id twice
    assert resumed.fills == ref.fills
    assert resumed.points == ref.points
    assert resumed.final_equity == ref.final_equity


KILL_POINTS: dict[str, Callable[[Journal], str]] = {
    "after_execute": lambda ref: f"enter:journal@{ordered_ordinals(ref)[1]}",
    "inside_execute": lambda ref: "leave:execute@2",
    "inside_a_node": lambda ref: "leave:risk_assessment@5",
    "between_decisions": lambda ref: f"step@{len(ref.decisions) // 2}",
    "after_a_committed_batch": lambda ref: f"committed@{len(ref.decisions) // 3}",
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_sqlite_run_resumes_to_the_same_end(point: str, reference: Journal, tmp_path: Path) -> None:
    crash_at = KILL_POINTS[point](reference)
    run = ["run", "--start", START, "--end", END, "--journal", "j.sqlite", "--checkpoint", "cp.sqlite", "--no-progress"]
    killed = tradegraph(run, tmp_path, crash_at)
    assert killed.returncode == KILLED, killed.stderr
    partial = read_sqlite(tmp_path / "j.sqlite")
    assert partial.status == "running" and 0 < len(partial.decisions) < len(reference.decisions)
    if point == "after_execute":  # the order is in the checkpoint, the decision not yet in the journal
        job = resume_replay(partial.run_id, str(tmp_path / "j.sqlite"), str(tmp_path / "cp.sqlite"))
        try:
            keys = list(reference.decisions)
            symbol, t = keys[ordered_ordinals(reference)[1] - 1]
            saved = job.session.graph.get_state({"configurable": {"thread_id": decision_id(partial.run_id, symbol,
                                                                                           "1h", t)}})  # fmt: skip
            assert saved.next == ("journal",) and saved.values["order"].status.value == "pending"
            assert (symbol, t) not in partial.decisions
        finally:
            job.close()
    resumed = tradegraph(["run", "--resume", partial.run_id, "--journal", "j.sqlite", "--no-progress"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(partial.decisions)} decisions replayed from the journal" in resumed.stdout
    assert_same_run(read_sqlite(tmp_path / "j.sqlite"), reference)
    cp = sqlite3.connect(tmp_path / "cp.sqlite")
    try:
        assert cp.execute("SELECT count(DISTINCT thread_id) FROM checkpoints").fetchone()[0] == 0
    finally:
        cp.close()


def test_a_second_kill_during_the_resume_and_a_third_process_finish_it(reference: Journal, tmp_path: Path) -> None:
    run = ["run", "--start", START, "--end", END, "--journal", "j.sqlite", "--checkpoint", "cp.sqlite", "--no-progress"]
    first = tradegraph(run, tmp_path, f"enter:journal@{ordered_ordinals(reference)[3]}")
    assert first.returncode == KILLED, first.stderr
    run_id = read_sqlite(tmp_path / "j.sqlite").run_id
    resume = ["run", "--resume", run_id, "--journal", "j.sqlite", "--no-progress"]
    second = tradegraph(resume, tmp_path, "replayed@20")  # killed while replaying the journal
    assert second.returncode == KILLED, second.stderr
    third = tradegraph(resume, tmp_path, "leave:strategy_fusion@3")  # and again while deciding
    assert third.returncode == KILLED, third.stderr
    last = tradegraph(resume, tmp_path)
    assert last.returncode == 0, last.stderr
    assert_same_run(read_sqlite(tmp_path / "j.sqlite"), reference)


@pytest.mark.parametrize("point", ["after_execute", "after_a_committed_batch"])
def test_a_killed_postgres_run_resumes_to_the_same_end(
    point: str, reference: Journal, pg_url: str, tmp_path: Path
) -> None:
    run = ["run", "--start", START, "--end", END, "--journal", pg_url, "--checkpoint", pg_url, "--no-progress"]
    killed = tradegraph(run, tmp_path, KILL_POINTS[point](reference))
    assert killed.returncode == KILLED, killed.stderr
    store = open_journal(pg_url, read_only=True)
    try:
        run_id = store.latest_run()["run_id"]  # type: ignore[index]
    finally:
        store.close()
    resumed = tradegraph(["run", "--resume", run_id, "--journal", pg_url, "--no-progress"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(read_postgres(pg_url, run_id), reference)


def test_resume_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = str(tmp_path / "j.sqlite")
    assert main(["run", "--start", START, "--end", "2024-01-01", "--journal", journal, "--no-progress"]) == 0
    capsys.readouterr()
    plain_run = read_sqlite(tmp_path / "j.sqlite").run_id
    cases = [
        (["--resume", "run-nope", "--journal", journal], "no run 'run-nope' in"),
        (["--resume", plain_run, "--journal", journal], "already completed: nothing to resume"),
        (["--resume", plain_run, "--journal", journal, "--symbols", "BTC/USDT"], "drop --symbols"),
        (["--start", START, "--end", START, "--journal", journal, "--checkpoint", journal], "not be the journal"),
        (["--start", START, "--end", START, "--journal", journal, "--checkpoint", str(tmp_path)], "is a directory"),
        (["--feed", "ccxt", "--journal", journal, "--checkpoint", "cp.sqlite"], "live runs (--feed ccxt) are not"),
        (["--resume", plain_run, "--journal", journal, "--feed", "ccxt"], "drop --feed"),
    ]
    for args, message in cases:
        assert main(["run", *args, "--no-progress"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    # a stopped run that was not durable cannot be resumed
    db = sqlite3.connect(tmp_path / "j.sqlite")
    db.execute("UPDATE runs SET status = 'interrupted'")
    db.commit()
    db.close()
    assert main(["run", "--resume", plain_run, "--journal", journal]) == 2
    assert "was not started with --checkpoint" in capsys.readouterr().err
    # a checkpoint URL journaled with its password masked needs the password again
    db = sqlite3.connect(tmp_path / "j.sqlite")
    db.execute("UPDATE runs SET config = json_set(config, '$.checkpoint', 'postgresql://u:***@127.0.0.1/db')")
    db.commit()
    db.close()
    assert main(["run", "--resume", plain_run, "--journal", journal]) == 2
    err = capsys.readouterr().err
    assert "used the checkpoint store postgresql://u:***@127.0.0.1/db: pass --checkpoint with its password" in err


def test_an_unreachable_checkpoint_server_is_one_line_with_the_password_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--start", START, "--end", START, "--journal", str(tmp_path / "j.sqlite"), "--checkpoint",
                 "postgresql://trader:hunter2@127.0.0.1:1/nowhere", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "hunter2" not in err
    assert "cannot connect to the checkpoint store at postgresql://trader:***@127.0.0.1:1/nowhere" in err


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_an_interrupted_durable_run_resumes_in_process(
    store: str, reference: Journal, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "j.sqlite"
    monkeypatch.chdir(tmp_path)
    checkpoints = "cp.sqlite" if store == "sqlite" else request.getfixturevalue("pg_url")
    settings = load_settings(journal=str(journal), start=date.fromisoformat(START), end=date.fromisoformat(END))
    job = build_replay(settings, checkpoint=checkpoints)
    steps = 0

    def ctrl_c_after_100(_snap: Any) -> None:
        nonlocal steps
        steps += 1
        if steps == 100:
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            job.session.run(job.snapshots(), job.config, on_step=ctrl_c_after_100)
    finally:
        job.close()
    stopped = read_sqlite(journal)
    assert stopped.status == "interrupted" and len(stopped.decisions) == 100
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the journaled checkpoint location does not depend on the working directory
    job = resume_replay(stopped.run_id, str(journal))
    assert job.checkpoints is not None
    assert store != "sqlite" or job.checkpoints.location == str((tmp_path / "cp.sqlite").resolve())
    try:
        summary = job.session.run(job.snapshots(), job.config)
    finally:
        job.close()
    assert getattr(job.session, "replayed", None) == 100 and summary.snapshots == len(reference.decisions)
    assert_same_run(read_sqlite(journal), reference)


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_run_is_decided_by_one_process_at_a_time(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    checkpoints = str(tmp_path / "cp.sqlite") if store == "sqlite" else request.getfixturevalue("pg_url")
    settings = load_settings(journal=str(tmp_path / "j.sqlite"), start=date.fromisoformat(START),
                             end=date.fromisoformat(START))  # fmt: skip
    first = build_replay(settings, run_id="run-one", checkpoint=checkpoints)
    try:
        with pytest.raises(ConfigError, match="run run-one is already running in another process"):
            build_replay(settings, run_id="run-one", checkpoint=checkpoints)
        build_replay(settings, run_id="run-two", checkpoint=checkpoints).close()  # another run is fine
    finally:
        first.close()
    build_replay(settings, run_id="run-one", checkpoint=checkpoints).close()  # released with the store
