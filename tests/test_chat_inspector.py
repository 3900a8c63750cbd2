"""The chat inspector's journal tools and its deterministic mode, on a journal written by a real paper run."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.answer_check import check_answer
from agents.chat_deterministic import DeterministicChat
from agents.chat_questions import parse_question
from agents.journal_tools import InspectorTools, parse_time_arg
from infra.sqlite_journal import SqliteJournal
from tools.journal_reader import JournalReader
from tools.timeframes import to_iso
from tradegraph.composition import bundled_data_dir, inspector_tools, open_journal_reader

HOUR = 3_600_000
FEB8 = 1707350400000
FEB9 = FEB8 + 24 * HOUR


@pytest.fixture
def reader(inspect_journal: Path) -> Iterator[JournalReader]:
    r = open_journal_reader(str(inspect_journal))
    yield r
    r.close()


@pytest.fixture
def tools(reader: JournalReader) -> InspectorTools:
    return inspector_tools(reader)


@pytest.fixture
def db(inspect_journal: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{inspect_journal}?mode=ro", uri=True)
    yield conn
    conn.close()


def _summary(db: sqlite3.Connection) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(db.execute("SELECT summary FROM runs").fetchone()[0])
    return summary


def _closes(symbol: str) -> dict[int, float]:
    path = bundled_data_dir() / f"binance_{symbol.replace('/', '-')}_1h.csv"
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    return {int(r[0]): float(r[4]) for r in rows}


# --- tools -------------------------------------------------------------------------------------------------


def test_explain_gives_the_evidence_chain_and_the_round_trip(tools: InspectorTools, db: sqlite3.Connection) -> None:
    did, symbol, t = db.execute(
        "SELECT d.id, d.symbol, d.candle_time FROM decisions d JOIN orders o ON o.decision_id = d.id "
        "WHERE d.outcome = 'ordered' AND o.kind = 'entry' ORDER BY d.candle_time LIMIT 1"
    ).fetchone()
    out = tools.explain_decision(did)
    d = out.data
    assert out.error is None and d["id"] == did and d["outcome"] == "ordered"
    assert d["intent"]["action"] == "BUY" and d["intent"]["rationale"].startswith("P(up)=")
    assert d["gate"]["decision"] in ("APPROVE", "SHRINK") and d["risk"]["kelly_fraction"] > 0
    assert d["signals"] and d["indicators"]["close"] > 0
    stored = db.execute(
        "SELECT quantity, price FROM fills WHERE decision_id = ? ORDER BY timestamp, id", (did,)
    ).fetchall()
    assert [(f["quantity"], f["price"]) for f in d["fills"]] == [
        (pytest.approx(q), pytest.approx(p)) for q, p in stored
    ]

    # the round trip, walked independently over the symbol's fills
    fills = db.execute(
        "SELECT client_order_id, decision_id, side, quantity, realized_pnl, kind, timestamp FROM fills "
        "WHERE symbol = ? ORDER BY timestamp, id",
        (symbol,),
    ).fetchall()
    position, trip = 0.0, []
    started = False
    for f in fills:
        if abs(position) < 1e-12:
            trip = []
        trip.append(f)
        position += f[3] if f[2] == "buy" else -f[3]
        started = started or f[0] == f"{did}-o"
        if started and abs(position) < 1e-12:
            break
    trip_out = d["later"]["round_trip"]
    assert trip_out["opened_by"] == trip[0][1] and trip_out["fills"] == len(trip)
    assert trip_out["realized_pnl"] == pytest.approx(sum(f[4] for f in trip), rel=1e-6)
    assert trip_out["closed_by"] == trip[-1][1] and trip_out["closed_with"] == trip[-1][5]
    assert trip_out["closed"] == to_iso(trip[-1][6])

    move = d["later"]["price_move"]
    closes = _closes(symbol)
    assert move["horizon_candles"] == 24 and move["close_at_decision"] == pytest.approx(closes[t], rel=1e-5)
    end = t + move["candles_observed"] * HOUR
    assert move["close_at_end"] == pytest.approx(closes[end], rel=1e-5)
    assert move["change"] == pytest.approx(closes[end] / closes[t] - 1, rel=1e-4)
    assert move["end_decision"] in out.decision_ids and did in out.decision_ids


def test_explain_of_unknown_and_skipped_decisions(tools: InspectorTools, db: sqlite3.Connection) -> None:
    assert tools.explain_decision("d-0000000000000000").error == "no decision 'd-0000000000000000' in the journal"
    skipped = db.execute("SELECT id FROM decisions WHERE outcome = 'skipped' LIMIT 1").fetchone()[0]
    d = tools.explain_decision(skipped).data
    assert d["intent"] is None and d["gate"] is None and d["fills"] == [] and "round_trip" not in d["later"]


def test_find_and_decision_at(tools: InspectorTools, db: sqlite3.Connection) -> None:
    out = tools.find_decisions("eth", FEB9, FEB9 + 24 * HOUR, "buy", "deny")
    expected = db.execute(
        "SELECT id FROM decisions WHERE symbol = 'ETH/USDT' AND outcome = 'denied' AND candle_time >= ? AND "
        "candle_time < ? ORDER BY candle_time",
        (FEB9, FEB9 + 24 * HOUR),
    ).fetchall()
    assert out.decision_ids == [e[0] for e in expected] and out.data["total"] == 4
    assert out.data["filters"] == {"symbol": "ETH/USDT", "from": "2024-02-09T00:00", "before": "2024-02-10T00:00",
                                   "action": "BUY", "gate": "DENY"}  # fmt: skip
    assert tools.find_decisions("DOGE").error == "DOGE is not a symbol of this run (it decided on: BTC/USDT, ETH/USDT)"
    assert "invalid filter" in (tools.find_decisions(action="short").error or "")
    assert tools.find_decisions(limit=500).data["shown"] == 50

    at = tools.decision_at("ETH/USDT", FEB9 + 16 * HOUR, "BUY")
    assert at.data["candle_time"] == "2024-02-09T16:00" and at.data["matched"] == "candle open time"
    half = tools.decision_at("ETH/USDT", FEB9 + 16 * HOUR + 30 * 60_000)  # not a candle time: nothing
    assert half.error and half.data["nearby"]
    closed_at = tools.decision_at("BTC", FEB9 + 16 * HOUR + HOUR * 0)
    assert closed_at.data["symbol"] == "BTC/USDT"
    before_run = tools.decision_at("BTC", FEB8 - 48 * HOUR)
    assert before_run.error == f"no BTC/USDT decision at {to_iso(FEB8 - 48 * HOUR)} in run {tools.run()['run_id']}"  # type: ignore[index]
    assert before_run.data["run_covers"] == "2024-02-08T00:00 .. 2024-02-15T23:00"


def test_positions_at_are_the_portfolio_snapshot_and_add_up(tools: InspectorTools, db: sqlite3.Connection) -> None:
    t = FEB9 + 36 * HOUR
    out = tools.positions_at(t)
    d = out.data
    cash, equity, positions = db.execute(
        "SELECT cash, equity, positions FROM portfolio_snapshots WHERE timestamp = ?", (t,)
    ).fetchone()
    assert d["cash"] == pytest.approx(cash) and d["equity"] == pytest.approx(equity)
    assert {p["symbol"]: p["quantity"] for p in d["positions"]} == pytest.approx(json.loads(positions))
    marked = sum(p["quantity"] * p["mark_close"] for p in d["positions"])
    assert cash + marked == pytest.approx(equity, rel=1e-6)  # the marks are the closes the equity used
    realized = db.execute("SELECT sum(realized_pnl) FROM fills WHERE timestamp <= ?", (t,)).fetchone()[0]
    assert d["realized_pnl_to_date"] == pytest.approx(realized) and d["pnl_since_start"] == pytest.approx(equity - 1e5)
    assert all(pid in out.decision_ids for p in d["positions"] for pid in p.get("opened_by", []))
    latest = tools.positions_at(None).data
    assert latest["snapshot_time"] == "2024-02-15T23:00" and latest["asked"] == "end of the journal"
    assert tools.positions_at(FEB8 - HOUR).error.startswith("no portfolio snapshot at or before")  # type: ignore[union-attr]


def test_denials_and_performance_match_the_run(tools: InspectorTools, db: sqlite3.Connection) -> None:
    summary = _summary(db)
    denials = tools.denied_orders()
    assert denials.data["total"] == sum(summary["gate_denials"].values()) == 7
    assert denials.data["by_reason"] == summary["gate_denials"]
    assert tools.denied_orders("BTC").data["total"] == 0

    perf = tools.performance()
    d = perf.data
    assert d["strategy"]["total_return"] == pytest.approx(summary["return_pct"] / 100, rel=1e-9)
    assert d["strategy"]["max_drawdown"] == pytest.approx(summary["max_drawdown"], rel=1e-9)
    first, last = FEB8, FEB8 + 191 * HOUR
    expected = 0.0
    for symbol in ("BTC/USDT", "ETH/USDT"):  # equal halves bought at the first close with 5 bps slippage, 10 bps fee
        closes = {t: float(f"{c:.6g}") for t, c in _closes(symbol).items()}  # the journal keeps 6 digits
        qty = 50_000 / (closes[first] * 1.0005 * 1.001)
        expected += qty * closes[last]
    assert d["buy_and_hold"]["total_return"] == pytest.approx(expected / 100_000 - 1, rel=1e-7)
    assert d["excess_return"] == pytest.approx(d["strategy"]["total_return"] - d["buy_and_hold"]["total_return"])
    assert len(perf.decision_ids) == 4
    part = tools.performance(FEB9, FEB9 + 24 * HOUR).data
    assert part["from"] == "2024-02-09T00:00" and part["to"] == "2024-02-09T23:00" and part["periods"] == 23
    assert "fewer than two portfolio points" in (tools.performance(FEB8 - 72 * HOUR, FEB8 - 48 * HOUR).error or "")


def test_tools_on_a_journal_without_runs(tmp_path: Path) -> None:
    SqliteJournal(tmp_path / "empty.sqlite").close()
    r = open_journal_reader(str(tmp_path / "empty.sqlite"))
    try:
        t = inspector_tools(r)
        for out in (t.find_decisions(), t.positions_at(), t.denied_orders(), t.performance(), t.run_info()):
            assert out.error == "the journal holds no run yet: nothing to inspect"
        chat = DeterministicChat(t)
        assert chat.answer("why did it buy ETH at 14:00 on March 3?").text.startswith("The journal holds no run yet")
    finally:
        r.close()


def test_time_arguments() -> None:
    assert parse_time_arg("2024-03-03", "t") == 1709424000000
    assert parse_time_arg("2024-03-03 14:00", "t") == parse_time_arg("2024-03-03T14:00Z", "t") == 1709474400000
    with pytest.raises(ValueError, match="is not a time"):
        parse_time_arg("March 3", "start")


# --- understanding questions -------------------------------------------------------------------------------

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
SPAN = (1696118400000, 1735686000000)  # 2023-10-01 .. 2024-12-31: October 3 exists in both years


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("why did it buy ETH at 14:00 on March 3?", {"kind": "why", "symbol": "ETH/USDT", "action": "BUY",
                                                     "at": 1709474400000}),
        ("Why did it sell BTC on 2024-03-03 2pm", {"kind": "why", "symbol": "BTC/USDT", "action": "SELL",
                                                   "at": 1709474400000}),
        ("explain d-0123456789abcdef please", {"kind": "explain", "decision_id": "d-0123456789abcdef"}),
        ("show BTC buys on 2024-03-01", {"kind": "find", "symbol": "BTC/USDT", "action": "BUY",
                                         "start": 1709251200000, "end": 1709337600000}),
        ("list denied orders in March", {"kind": "denials", "verdict": "DENY", "start": 1709251200000,
                                         "end": 1711929600000}),
        ("last 10 ETH decisions", {"kind": "find", "symbol": "ETH/USDT", "limit": 10, "newest_first": True}),
        ("how many sells between 2024-03-01 and 2024-03-10?", {"kind": "count", "action": "SELL",
                                                               "start": 1709251200000, "end": 1710115200000}),
        ("what were the positions at 2024-03-03 14:00?", {"kind": "positions", "at": 1709474400000}),
        ("PnL on March 5", {"kind": "positions", "at": 1709683199999}),
        ("which orders were denied and why?", {"kind": "denials"}),
        ("how did it perform against buy and hold?", {"kind": "performance"}),
        ("performance vs buy-and-hold from 2024-03-01 to 2024-03-15", {"kind": "performance",
                                                                      "start": 1709251200000, "end": 1710547200000}),
        ("show decisions since 2024-12-30", {"kind": "find", "start": 1735516800000, "end": None}),
        ("run summary", {"kind": "run"}),
        ("help", {"kind": "help"}),
        ("will BTC go up tomorrow?", {"kind": "unknown", "symbol": "BTC/USDT"}),
        ("why did it buy DOGE on March 3 at 14:00", {"kind": "why", "unknown_symbol": "DOGE", "symbol": None}),
        ("what happened on October 3", {"start": 1727913600000, "notes": ["year 2024 assumed (the run also covers "
                                                                          "that date in 2023)"]}),
        ("denials for ETH in 2023", {"kind": "denials", "symbol": "ETH/USDT", "start": 1672531200000,
                                     "end": 1704067200000}),
        ("show BTC buys during 2024", {"kind": "find", "action": "BUY", "start": 1704067200000, "end": 1735689600000}),
        ("why at 25:00 on 2024-03-03", {"problem": "'25:00' is not a time of day"}),
        ("show ETH on February 30", {"problem": "'february 30' is not a date"}),
    ],
)  # fmt: skip
def test_question_forms(question: str, expected: dict[str, Any]) -> None:
    q = parse_question(question, SYMBOLS, [2023, 2024], SPAN)
    for key, value in expected.items():
        assert getattr(q, key) == value, (key, q)


# --- deterministic answers ---------------------------------------------------------------------------------

QUESTIONS = [
    "why did it buy ETH at 16:00 on Feb 9?",
    "why did it hold ETH at 16:00 on Feb 9?",
    "why did it buy BTC at 2024-02-09 23:00?",
    "explain the BTC decision at 2024-02-09 04:00",
    "show BTC buys on 2024-02-09",
    "list the last 5 ETH decisions",
    "how many holds between 2024-02-10 and 2024-02-12?",
    "what were the positions at 2024-02-10 12:00?",
    "PnL on February 12",
    "which orders were denied and why?",
    "denials for ETH on Feb 15",
    "how did it perform against buy and hold?",
    "performance vs buy-and-hold from 2024-02-09 to 2024-02-11",
    "run summary",
    "which decisions were approved on 2024-02-12?",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_deterministic_answers_state_only_journal_numbers_and_cite_ids(tools: InspectorTools, question: str) -> None:
    answer, outputs = DeterministicChat(tools).respond(question)
    assert answer.understood and answer.mode == "deterministic" and outputs
    assert all(o.error is None for o in outputs), [o.error for o in outputs]
    check = check_answer(answer.text, outputs, question)  # the same check that guards the LLM's prose
    assert check.ok, (check.reason, answer.text)
    assert set(answer.cited) <= {i for o in outputs for i in o.decision_ids}
    if any(o.decision_ids for o in outputs):
        assert answer.cited


def test_the_why_answer_tells_the_story(tools: InspectorTools) -> None:
    answer = DeterministicChat(tools).answer("why did it buy ETH at 16:00 on Feb 9?")
    text = answer.text
    assert text.startswith("ETH/USDT 1h candle 2024-02-09T16:00 (decided 2024-02-09T17:00): action BUY, outcome denied")
    for part in ("Why: gate DENY COOLDOWN_AFTER_STOP", "Signals: ", "Intent: BUY", "Rationale: P(up)=", "Risk: ",
                 "Gate: DENY (COOLDOWN_AFTER_STOP)", "Price after: close 2,486.77", "Portfolio at the decision"):  # fmt: skip
        assert part in text, part
    assert answer.cited[0] in text and len(answer.cited) == 2


@pytest.mark.parametrize(
    ("question", "says"),
    [
        ("will BTC go up tomorrow?", "I can't answer that from the journal"),
        ("what is the meaning of life", "I can't answer that from the journal"),
        ("why did it buy DOGE on Feb 9 at 14:00", "DOGE is not a symbol of this run"),
        ("why did it buy ETH at 14:00 on 2023-01-05", "no ETH/USDT decision at 2023-01-05T14:00"),
        ("positions on 2020-01-01", "no portfolio snapshot at or before 2020-01-01T23:59"),
        ("explain d-ffffffffffffffff", "no decision 'd-ffffffffffffffff' in the journal"),
        ("performance in January 2019", "fewer than two portfolio points in that range"),
        ("show ETH buys in 2023", "0 decisions in run"),
        ("denials for ETH in 2023", "The gate denied no order in run"),
        ("show ETH on February 30", "I can't read that question: 'february 30' is not a date"),
    ],
)
def test_questions_the_journal_cannot_answer_are_said_so(tools: InspectorTools, question: str, says: str) -> None:
    answer = DeterministicChat(tools).answer(question)
    assert says in answer.text
    assert not answer.cited or "nearest" in answer.text.lower()


def test_positions_after_the_run_say_the_journal_ends_there(tools: InspectorTools) -> None:
    after = DeterministicChat(tools).answer("PnL on March 5").text
    assert after.splitlines()[1] == (
        "Note: the journal holds nothing after 2024-02-15T23:00: the run's last portfolio point is shown."
    )
    assert "Note:" not in DeterministicChat(tools).answer("positions at 2024-02-10 14:30").text
    assert "Note:" not in DeterministicChat(tools).answer("positions now").text


def test_a_why_about_an_action_not_taken_shows_where_it_was(tools: InspectorTools) -> None:
    text = DeterministicChat(tools).answer("why did it buy BTC at 2024-02-09 23:00?").text
    assert text.startswith("Note: the decision's action was HOLD, not BUY.\nBTC/USDT 1h candle 2024-02-09T23:00")
    tail = text.split("BUY decisions of the symbol in the half day before and after it: \n", 1)[1].splitlines()
    # the three nearest BUYs before 23:00 and the only one in the twelve hours after it
    assert [line[2:18] for line in tail] == ["2024-02-09T19:00", "2024-02-09T20:00", "2024-02-09T22:00",
                                             "2024-02-10T01:00"]  # fmt: skip
