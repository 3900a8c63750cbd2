"""Recorded news / sentiment items: free text written by third parties, given to LLM reasoners as untrusted data.

``news.jsonl`` next to the candle files holds one JSON object a line:

    {"time": "2024-01-05T13:20:00Z" | 1704460800000, "symbol": "BTC/USDT" | null, "source": "...", "text": "..."}

``symbol`` null (or absent) means the item concerns every symbol. A decision at ``as_of`` sees only items
published at or before it (never the future), at most ``limit`` of the latest within the lookback.
"""

from __future__ import annotations

import bisect
import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import DataError

NEWS_FILE = "news.jsonl"
MAX_TEXT = 1000


class NewsItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    time: int
    """Publication time, UTC ms."""
    symbol: str | None = None
    source: str = ""
    text: str = Field(max_length=MAX_TEXT)


def _parse_time(value: object, where: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: 'time' must be UTC milliseconds or an ISO time")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise DataError(f"{where}: 'time' {value!r} is not an ISO time") from None
        if parsed.tzinfo is None:
            raise DataError(f"{where}: 'time' {value!r} has no time zone (use Z for UTC)")
        return int(parsed.timestamp() * 1000)
    raise DataError(f"{where}: 'time' must be UTC milliseconds or an ISO time")


def load_news(path: Path) -> list[NewsItem]:
    """Items of a news.jsonl file, oldest first; a bad line is one DataError naming the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read news file {path}: {exc}") from None
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{where}: not a JSON object ({exc.args[0]})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
            raise DataError(f"{where}: expected an object with a non-empty 'text'")
        symbol, source = obj.get("symbol"), obj.get("source", "")
        if symbol is not None and not isinstance(symbol, str):
            raise DataError(f"{where}: 'symbol' must be a string or null")
        if not isinstance(source, str):
            raise DataError(f"{where}: 'source' must be a string")
        items.append(
            NewsItem(
                time=_parse_time(obj.get("time"), where),
                symbol=symbol.upper() if symbol else None,
                source=source[:100],
                text=obj["text"][:MAX_TEXT],
            )
        )
    items.sort(key=lambda i: i.time)
    return items


class NewsFeed:
    def __init__(self, items: list[NewsItem]) -> None:
        self.items = sorted(items, key=lambda i: i.time)
        self._times = [i.time for i in self.items]

    @classmethod
    def from_dir(cls, data_dir: Path) -> NewsFeed | None:
        path = data_dir / NEWS_FILE
        return cls(load_news(path)) if path.is_file() else None

    def items_for(self, symbol: str, as_of: int, lookback_ms: int, limit: int) -> list[NewsItem]:
        """The latest ``limit`` items about ``symbol`` (or all symbols) published in [as_of - lookback, as_of]."""
        if limit <= 0:
            return []
        hi = bisect.bisect_right(self._times, as_of)
        lo = bisect.bisect_left(self._times, as_of - lookback_ms)
        chosen = [i for i in self.items[lo:hi] if i.symbol is None or i.symbol == symbol]
        return chosen[-limit:]
