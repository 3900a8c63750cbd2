"""Shared by the web tests: a journal copy with HTML and script planted in its stored text."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

PLANTED_REASON = '<script>window.__pwned = "reason"; alert("reason")</script>gate APPROVE'
PLANTED_RATIONALE = '<img src=x onerror="window.__pwned=1">P(up) & <b>bold</b> claims'
PLANTED_CALLS = [
    {
        "node": "strategy_fusion", "provider": "openai", "base_url": "http://127.0.0.1:1/v1",
        "model": "<i>gpt</i>", "prompt_id": "fusion_v1", "prompt_hash": "abc123", "input_hash": "def456",
        "params": {"temperature": 0}, "raw_response": "<script>alert('raw')</script>{\"action\": \"BUY\"}",
        "parsed": {"action": "BUY", "note": "</pre><script>alert(1)</script>"}, "outcome": "ok", "error": None,
        "input_tokens": 812, "output_tokens": 64, "cost_usd": 0.00021, "latency_ms": 431.5, "called_at": 1707462000000,
        "source": "live", "gating": "called", "injection_flags": ["ignore previous instructions"],
    }
]  # fmt: skip


def planted_journal(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` and plant HTML/script in one ordered decision; returns its id."""
    shutil.copy(source, target)
    db = sqlite3.connect(target)
    try:
        did = db.execute("SELECT id FROM decisions WHERE outcome = 'ordered' ORDER BY candle_time LIMIT 1 OFFSET 2")
        decision_id: str = did.fetchone()[0]
        db.execute(
            "UPDATE decisions SET reason = ?, body = json_set(body, '$.intent.rationale', ?, '$.reasoner.calls', "
            "json(?), '$.reasoner.reason', ?, '$.reasoner.fallback', ?) WHERE id = ?",
            (PLANTED_REASON, PLANTED_RATIONALE, json.dumps(PLANTED_CALLS), "<u>model said</u>", "rules", decision_id),
        )
        db.commit()
    finally:
        db.close()
    return decision_id
