"""Timeframe strings (ccxt style: 1m, 5m, 1h, 4h, 1d, 1w) and UTC millisecond helpers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from tools.errors import ConfigError

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^(\d+)([mhdw])$")


def timeframe_ms(timeframe: str) -> int:
    match = _PATTERN.match(timeframe)
    if not match or int(match.group(1)) <= 0:
        raise ConfigError(f"invalid timeframe {timeframe!r}: expected e.g. 5m, 1h, 4h, 1d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def periods_per_year(timeframe: str) -> float:
    return 365.0 * 86_400_000 / timeframe_ms(timeframe)


def to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M")


def parse_day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"invalid {field} {text!r}: expected YYYY-MM-DD") from None


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def utc_day(ms: int) -> int:
    """Index of the UTC calendar day containing ``ms``."""
    return ms // 86_400_000
