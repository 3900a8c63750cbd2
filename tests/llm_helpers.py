"""Helpers for the LLM reasoner tests: settings against an endpoint, short runs, valid answers built from DATA."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

from agents.llm_client import Endpoint
from graph.runner import RunSummary
from infra.settings import Settings, load_settings
from tests.openai_stub import Reply
from tradegraph.composition import build_replay


def llm_settings(base_url: str, model: str, tmp_path: Path, reasoner: str = "llm", **llm: Any) -> Settings:
    """BTC/USDT 1h from 2024-01-01, an SQLite journal in tmp_path, the llm section pointed at ``base_url``."""
    section: dict[str, Any] = {"base_url": base_url, "model": model, "max_retries": 0, "timeout_s": 10}
    for k, v in llm.items():
        section[k] = v
    extra: dict[str, Any] = {}
    if "data_dir" in section:
        extra["data_dir"] = section.pop("data_dir")
    return load_settings(reasoner=reasoner, symbols="BTC/USDT", start=date(2024, 1, 1), end=date(2024, 1, 3),
                         journal=str(tmp_path / "journal.sqlite"), progress=False, llm=section, **extra)  # fmt: skip


def run_snapshots(
    settings: Settings, n: int | None, endpoint: Endpoint | None = None, skip: int = 0
) -> tuple[RunSummary, list[dict[str, Any]]]:
    """Replay ``n`` snapshots of the settings' range after the first ``skip``; the summary and the decisions."""
    job = build_replay(settings, endpoint=endpoint)
    try:
        snaps = islice(job.snapshots(), skip, None if n is None else skip + n)
        summary = job.session.run(snaps, job.config)
        decisions = job.journal.run_decisions(job.session.run_id)
    finally:
        job.journal.close()
    return summary, decisions


def prompt_data(request: dict[str, Any]) -> dict[str, Any]:
    """The DATA object of a request's user message."""
    user = request["messages"][-1]["content"]
    start = user.index("DATA:\n") + len("DATA:\n")
    return dict(json.loads(user[start : user.index("\n<<<UNTRUSTED_NEWS>>>")]))


def valid_answer(data: dict[str, Any], action: str = "BUY", **override: Any) -> dict[str, Any]:
    rsi, price = data["indicators"]["rsi"], data["price"]
    answer: dict[str, Any] = {
        "symbol": data["symbol"], "action": action, "conviction": 0.8, "size_fraction": 0.5, "horizon": 12,
        "rationale": f"RSI is {rsi} and the price is {price}.",
        "evidence": [{"field": "rsi", "value": rsi}, {"field": "price", "value": price}],
    }  # fmt: skip
    answer.update(override)
    return answer


def answering(action: str = "BUY", **override: Any) -> Callable[[dict[str, Any]], Reply]:
    """A stub handler giving a valid answer (citing only DATA) to every request."""
    return lambda request: Reply.tool_call(valid_answer(prompt_data(request), action, **override))
