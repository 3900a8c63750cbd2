"""What an LLM is shown: the tool outputs as one JSON object (DATA) and the untrusted news as a JSON-encoded
block that cannot close its own markers.

Numbers are rounded to 6 significant digits (stable hashes, fewer tokens); times are ISO strings in UTC.
The cassette key's input hash is the sha256 of the rendered user message, so it covers both.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agents.reasoner import ReasonerInput
from tools.news import NewsItem
from tools.signals import Action, Direction
from tools.timeframes import to_iso

_NOISE = {"talib_value"}
"""Signal values that mean nothing to a reader (TA-Lib's +-100 pattern codes: direction and strength say it)."""


def _r(x: float | None) -> float | None:
    if x is None:
        return None
    return float(f"{x:.6g}")


def iso(ms: int) -> str:
    return to_iso(ms) + "Z"


def build_data(inp: ReasonerInput, probability_up: float | None, rules_action: Action | None) -> dict[str, Any]:
    signals = [
        {"name": s.name, "direction": s.direction.value, "strength": _r(s.strength),
         "values": {k: _r(v) for k, v in s.values.items() if k not in _NOISE}}
        for s in inp.signals
        if s.direction is not Direction.NEUTRAL and s.strength > 0
    ]  # fmt: skip
    data: dict[str, Any] = {
        "symbol": inp.symbol,
        "timeframe": inp.timeframe,
        "candle_time": iso(inp.candle_time),
        "price": _r(inp.price),
        "indicators": {k: _r(v) for k, v in inp.indicators.items()},
        "signals": signals,
        "aggregate": {"action": inp.aggregate.value, "confidence": _r(inp.aggregate_confidence)},
        "position": {"quantity": _r(inp.position_quantity), "average_price": _r(inp.position_average_price)},
        "risk_budget": {k: _r(v) for k, v in inp.risk_budget.items()},
        "recent_candles": [
            {"time": iso(c.time), "open": _r(c.open), "high": _r(c.high), "low": _r(c.low), "close": _r(c.close),
             "volume": _r(c.volume)}
            for c in inp.recent_candles
        ],
    }  # fmt: skip
    if probability_up is not None:
        data["rules"] = {"probability_up": _r(probability_up), "action": rules_action.value if rules_action else None}
    return data


def encode_data(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def encode_news(items: list[NewsItem]) -> str:
    """JSON with every ``<`` and ``>`` escaped: the text cannot write the ``>>>`` of an end marker."""
    rows = [{"time": iso(i.time), "source": i.source, "text": i.text} for i in items]
    text = json.dumps(rows, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
