"""Reading a trader's question in the deterministic chat mode: what is asked, about which symbol and when.

Times are UTC. A date without a year takes the year of the run that contains it (the latest such year when
several do, with a note). "14:00 on March 3" names the decision on the candle opening at 14:00 (or, failing
that, the one decided at 14:00, i.e. on the 13:00 candle).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from agents.journal_tools import DECISION_ID

Kind = Literal["explain", "why", "find", "count", "positions", "denials", "performance", "run", "help", "unknown"]

DAY_MS = 86_400_000
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name} | {
    name.lower(): i for i, name in enumerate(calendar.month_abbr) if name
}
_MONTHS["sept"] = 9
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"
_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})(?:[ t](\d{1,2}):(\d{2}))?")
_MONTH_DAY = re.compile(_MONTH + r"\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s*(\d{4})\b)?")
_DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH + r"\b(?:,?\s*(\d{4})\b)?")
_MONTH_ONLY = re.compile(r"\b(?:in|during|for|of|over)\s+" + _MONTH + r"\b(?:\s+(\d{4})\b)?")
_YEAR_ONLY = re.compile(r"\b(?:in|during|for|of|over|throughout)\s+(?:the\s+year\s+)?((?:19|20)\d{2})\b")
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_AMPM = re.compile(r"\b(\d{1,2})\s*(am|pm)\b")
_LIMIT = re.compile(r"\b(last|first|latest|top|recent)\s+(\d{1,4})\b")
_PAIR = re.compile(r"\b([a-z]{2,10})[/-](usdt|usdc|usd|busd|eur|btc|eth)\b")
_TICKER = re.compile(r"\b([A-Z]{2,6})\b")
_NOT_TICKERS = {"BUY", "SELL", "HOLD", "UTC", "PNL", "DENY", "API", "LLM", "AND", "THE", "WHY", "ETA", "AM", "PM", "OK",
                "TA", "RSI", "MACD", "EMA", "SMA", "ATR", "VAR", "CVAR", "ID", "IDS", "USD", "USDT", "GMT", "BB"}  # fmt: skip

_WHY = re.compile(r"\b(why|explain|reason|reasons|how come|what made|rationale|evidence)\b")
_HELP = re.compile(r"^\s*(help|\?|what can you (do|answer)|commands|usage)\s*\??\s*$")
_DENIAL = re.compile(r"\b(denied|deny|denies|denial|denials|blocked|refused|rejected)\b")
_PERFORMANCE = re.compile(
    r"\b(perform|performance|performed|buy[- ]and[- ]hold|b&h|benchmark|returns?|beat|versus|vs\.?|compared?)\b"
)
_POSITIONS = re.compile(
    r"\b(positions?|holdings?|pnl|p&l|profit|equity|cash|exposure|portfolio|worth)\b"
    r"|\bwhat (did|was) (it|the bot|we) (hold|holding)\b"
)
_FIND = re.compile(r"\b(list|show|find|which|decisions?|trades?|orders?|buys|sells|when)\b")
_COUNT = re.compile(r"\bhow many\b")
_RUN = re.compile(r"\b(run|summary|overview|status)\b")
_ACTIONS = (
    (re.compile(r"\b(buy|buys|bought|buying)\b"), "BUY"),
    (re.compile(r"\b(sell|sells|sold|selling)\b"), "SELL"),
    (re.compile(r"\b(hold|holds|held)\b"), "HOLD"),
)
_VERDICTS = (
    (re.compile(r"\b(approved|approve|approves)\b"), "APPROVE"),
    (re.compile(r"\b(shrunk|shrink|shrinks|shrank|reduced)\b"), "SHRINK"),
)
_OUTCOMES = (
    (re.compile(r"\bskipped\b"), "skipped"),
    (re.compile(r"\binvalid\b"), "invalid"),
    (re.compile(r"\b(no[_ ]order)\b"), "no_order"),
    (re.compile(r"\b(errors?|failed|failures?)\b"), "error"),
    (re.compile(r"\b(ordered|executed|placed)\b"), "ordered"),
)


@dataclass
class Question:
    text: str
    kind: Kind = "unknown"
    decision_id: str | None = None
    symbol: str | None = None
    unknown_symbol: str | None = None
    action: str | None = None
    verdict: str | None = None
    outcome: str | None = None
    at: int | None = None
    start: int | None = None
    end: int | None = None
    limit: int | None = None
    newest_first: bool = False
    notes: list[str] = field(default_factory=list)
    problem: str | None = None


@dataclass
class _When:
    pos: int
    end_pos: int
    day: date | None
    month: tuple[int, int] | None = None
    minutes: int | None = None
    year: int | None = None


def _ms(day: date, minutes: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000) + minutes * 60_000


def _year_for(month: int, day: int, years: Sequence[int], span: tuple[int, int] | None, q: Question) -> int | None:
    if not years:
        return None
    inside = []
    for y in years:
        try:
            t = _ms(date(y, month, day))
        except ValueError:
            continue
        if span is None or (t + DAY_MS > span[0] and t <= span[1]):
            inside.append(y)
    if len(inside) > 1:
        q.notes.append(
            f"year {inside[-1]} assumed (the run also covers that date in {', '.join(map(str, inside[:-1]))})"
        )
    return inside[-1] if inside else years[-1]


def _make_date(y: int | None, m: int, d: int, text: str, q: Question) -> date | None:
    if y is None:
        q.problem = f"{text!r}: the journal holds no run to take the year from"
        return None
    try:
        return date(y, m, d)
    except ValueError:
        q.problem = f"{text.strip()!r} is not a date"
        return None


def _dates(low: str, years: Sequence[int], span: tuple[int, int] | None, q: Question) -> list[_When]:
    found: list[_When] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= x or a >= y for x, y in taken)

    for m in _ISO.finditer(low):
        day = _make_date(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(0), q)
        minutes = int(m.group(4)) * 60 + int(m.group(5)) if m.group(4) else None
        if day:
            found.append(_When(m.start(), m.end(), day, minutes=minutes))
        taken.append(m.span())
    for pattern, month_group, day_group in ((_MONTH_DAY, 1, 2), (_DAY_MONTH, 2, 1)):
        for m in pattern.finditer(low):
            if not free(*m.span()):
                continue
            month, d = _MONTHS[m.group(month_group)], int(m.group(day_group))
            y = int(m.group(3)) if m.group(3) else _year_for(month, d, years, span, q)
            day = _make_date(y, month, d, m.group(0), q)
            if day:
                found.append(_When(m.start(), m.end(), day))
            taken.append(m.span())
    for m in _MONTH_ONLY.finditer(low):
        if not free(*m.span()):
            continue
        month = _MONTHS[m.group(1)]
        y = int(m.group(2)) if m.group(2) else _year_for(month, 1, years, span, q)
        if y is None:
            q.problem = f"{m.group(0).strip()!r}: the journal holds no run to take the year from"
            continue
        found.append(_When(m.start(), m.end(), None, month=(y, month)))
        taken.append(m.span())
    for m in _YEAR_ONLY.finditer(low):
        if free(*m.span()):
            found.append(_When(m.start(), m.end(), None, year=int(m.group(1))))
            taken.append(m.span())
    clocks: list[tuple[int, int]] = []
    for m in _CLOCK.finditer(low):
        if free(*m.span()):
            h, mi = int(m.group(1)), int(m.group(2))
            if h > 23 or mi > 59:
                q.problem = f"{m.group(0)!r} is not a time of day"
            else:
                clocks.append((m.start(), h * 60 + mi))
    for m in _AMPM.finditer(low):
        h = int(m.group(1))
        if not 1 <= h <= 12:
            q.problem = f"{m.group(0)!r} is not a time of day"
            continue
        clocks.append((m.start(), (h % 12 + (12 if m.group(2) == "pm" else 0)) * 60))
    days = [w for w in found if w.day is not None and w.minutes is None]
    if clocks and days:
        for (_pos, minutes), w in zip(sorted(clocks), sorted(days, key=lambda w: w.pos), strict=False):
            w.minutes = minutes
    elif clocks and not found:
        q.problem = "a time of day needs a date too, e.g. '14:00 on 2024-03-03'"
    return sorted(found, key=lambda w: w.pos)


def _bounds(w: _When) -> tuple[int, int]:
    if w.year is not None:
        return _ms(date(w.year, 1, 1)), _ms(date(w.year + 1, 1, 1))
    if w.month is not None:
        y, m = w.month
        first = date(y, m, 1)
        nxt = date(y + (m == 12), m % 12 + 1, 1)
        return _ms(first), _ms(nxt)
    assert w.day is not None
    if w.minutes is not None:
        t = _ms(w.day, w.minutes)
        return t, t + 1
    return _ms(w.day), _ms(w.day + timedelta(days=1))


def _apply_times(low: str, whens: list[_When], q: Question) -> None:
    if not whens:
        return
    if len(whens) >= 2:
        a, b = whens[0], whens[1]
        q.start = _bounds(a)[0]
        q.end = _bounds(b)[1] if b.minutes is None else _bounds(b)[0] + 1
        if q.end <= q.start:
            q.problem = "the range ends before it starts"
        return
    w = whens[0]
    lo, hi = _bounds(w)
    before = low[: w.pos]
    if re.search(r"\b(since|after|from)\s*$", before):
        q.start = hi if before.rstrip().endswith("after") and w.minutes is None else lo
    elif re.search(r"\b(before)\s*$", before):
        q.end = lo
    elif re.search(r"\b(until|till|through|up to|by)\s*$", before):
        q.end = hi
    elif w.minutes is not None:
        q.at = lo
    else:
        q.start, q.end = lo, hi


def _symbol(text: str, low: str, symbols: Sequence[str], q: Question) -> None:
    for s in symbols:
        base = s.split("/")[0].lower()
        if re.search(rf"\b({re.escape(s.lower())}|{re.escape(base)}|{re.escape(s.replace('/', '').lower())})\b", low):
            q.symbol = s
            return
    pair = _PAIR.search(low)
    if pair:
        q.unknown_symbol = f"{pair.group(1)}/{pair.group(2)}".upper()
        return
    for m in _TICKER.finditer(text):
        if m.group(1) not in _NOT_TICKERS and not re.match(r"^D-", m.group(1)):
            q.unknown_symbol = m.group(1)
            return


def parse_question(
    text: str, symbols: Sequence[str], years: Sequence[int], span: tuple[int, int] | None = None
) -> Question:
    """What ``text`` asks, given the run's symbols, the years it covers and its [first, last] candle times."""
    q = Question(text=text)
    low = text.lower().strip()
    ids = DECISION_ID.findall(low)
    if ids:
        q.kind, q.decision_id = "explain", ids[0]
        return q
    if not low or _HELP.match(low):
        q.kind = "help"
        return q
    _symbol(text, low, symbols, q)
    _apply_times(low, _dates(low, years, span, q), q)
    for pattern, action in _ACTIONS:
        if pattern.search(low):
            q.action = action
            break
    for pattern, verdict in _VERDICTS:
        if pattern.search(low):
            q.verdict = verdict
    if _DENIAL.search(low):
        q.verdict = "DENY"
    for pattern, outcome in _OUTCOMES:
        if pattern.search(low):
            q.outcome = outcome
            break
    limit = _LIMIT.search(low)
    if limit:
        q.limit = int(limit.group(2))
        q.newest_first = limit.group(1) in ("last", "latest", "recent")
    elif re.search(r"\b(last|latest|recent|most recent)\b", low):
        q.newest_first = True
    has_time = q.at is not None or q.start is not None or q.end is not None
    if _WHY.search(low) and (q.at is not None or ((q.symbol or q.unknown_symbol) and has_time)):
        q.kind = "why"
    elif _DENIAL.search(low):
        q.kind = "denials"
    elif _PERFORMANCE.search(low):
        q.kind = "performance"
    elif _POSITIONS.search(low):
        q.kind = "positions"
    elif _COUNT.search(low):
        q.kind = "count"
    elif _FIND.search(low) or q.action or q.verdict or q.outcome or (has_time and (q.symbol or q.unknown_symbol)):
        q.kind = "find"
    elif _RUN.search(low):
        q.kind = "run"
    if q.kind == "positions" and q.at is None and q.end is not None:
        q.at = q.end - 1  # "positions on March 3": at the end of that day
    return q
