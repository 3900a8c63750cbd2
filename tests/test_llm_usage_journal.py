"""The daily LLM budget reads earlier runs' usage from the journal: both stores answer llm_usage_since alike,
and a PostgreSQL-journaled run's daily budget counts the runs before it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.journal import DecisionRecord, JournalStore, decision_id
from infra.postgres_journal import PostgresJournal
from infra.sqlite_journal import SqliteJournal
from tests.llm_helpers import llm_settings, prompt_data, run_snapshots, valid_answer
from tests.openai_stub import OpenAIStub, Reply


def _call(called_at: int, tokens: int, source: str = "live", outcome: str = "ok", cost: float = 0.5) -> dict[str, Any]:
    return {"called_at": called_at, "input_tokens": tokens, "output_tokens": 10, "cost_usd": cost, "source": source,
            "outcome": outcome}  # fmt: skip


def _record(run: str, t: int, calls: list[dict[str, Any]] | None) -> DecisionRecord:
    reasoner = None if calls is None else {"reasoner": "llm", "outcome": "ok", "calls": calls}
    return DecisionRecord(id=decision_id(run, "BTC/USDT", "1h", t), run_id=run, symbol="BTC/USDT", timeframe="1h",
                          candle_time=t, as_of=t, outcome="hold", reason="r", action="HOLD", inputs_hash="h",
                          window_start=0, window_end=t, window_length=1, reasoner=reasoner)  # fmt: skip


def _fill(store: JournalStore) -> None:
    day = 1_704_067_200_000
    store.record_decision(_record("a", 1, [_call(day - 1, 1000)]))  # the day before
    store.record_decision(_record("a", 2, [_call(day + 5, 100), _call(day + 6, 200, cost=0.25)]))
    store.record_decision(_record("b", 3, [_call(day + 7, 400, source="replayed")]))  # cost nothing
    store.record_decision(_record("b", 4, [_call(day + 8, 0, outcome="budget_exhausted")]))  # no request
    store.record_decision(_record("b", 5, None))  # rules
    store.record_decision(_record("b", 6, []))
    store.flush()
    assert store.llm_usage_since(day) == {"calls": 2.0, "tokens": 320.0, "cost_usd": 0.75}
    assert store.llm_usage_since(day - 10)["calls"] == 3.0
    assert store.llm_usage_since(day + 100) == {"calls": 0.0, "tokens": 0.0, "cost_usd": 0.0}


def test_sqlite_usage(tmp_path: Path) -> None:
    store = SqliteJournal(tmp_path / "j.sqlite")
    try:
        _fill(store)
    finally:
        store.close()


def test_postgres_usage(pg_url: str) -> None:
    store = PostgresJournal(pg_url)
    try:
        _fill(store)
    finally:
        store.close()


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(model="stub-gpt") as s:
        yield s


def test_daily_budget_on_postgres(pg_url: str, tmp_path: Path, stub: OpenAIStub) -> None:
    stub.respond_with(lambda r: Reply.tool_call(valid_answer(prompt_data(r), "HOLD")))
    first = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False})
    first = first.model_copy(update={"journal": pg_url})
    summary, _ = run_snapshots(first, 2)
    second = llm_settings(stub.base_url, stub.model, tmp_path, gating={"enabled": False},
                          budget={"max_tokens_per_day": summary.llm_tokens + 50})  # fmt: skip
    _, decisions = run_snapshots(second.model_copy(update={"journal": pg_url}), 1)
    assert decisions[0]["outcome"] == "budget_exhausted" and len(stub.requests) == 2
    assert f"{summary.llm_tokens} tokens used today" in decisions[0]["reason"]
