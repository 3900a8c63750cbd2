"""The evidence check: every number an answer cites must exist in the DATA the model was shown.

Rules (a cited number is compared by absolute value with every number in DATA):

- Within rounding: a number written with d decimals matches a value within 0.5 * 10^-d ("71.2" matches
  71.2417). Trailing zeros of an integer with at least two significant digits count as rounding too
  ("65,100" matches 65,123.4; "100" matches only 99.5..100.5). "65k", "1.2M", "3bn" scale the number and
  its rounding ("65k" matches 64,500..65,500). "2.1%" matches 2.1 or 0.021 within rounding.
- Dates and times ("2024-01-05", "2024-01-05 13:00", "13:00") are values too: they must be times shown in
  DATA (candle times), to the precision written. Their digits are never numbers in their own right.
- Digits glued to letters count ("RSI71", "71000USDT" cite 71 and 71000), except inside DATA's own
  identifiers (field names, symbol, timeframe such as "1h").
- Only DATA counts: numbers from the untrusted news, from the answer's own fields (conviction, size,
  horizon, other evidence) or computed by the model are not evidence.
- Evidence items must name a DATA field and carry that field's value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents.llm_schema import LLMTradeIntent

_DATE = re.compile(
    r"(?<!\d)(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:(?:[T ]|\s+at\s+)(\d{1,2}):(\d{2})(?::(\d{2}))?)?(?:\s*(?:Z|UTC)\b)?",
    re.IGNORECASE,
)
_TIME = re.compile(r"(?<![\d:.])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d:])")
_NUMBER = re.compile(
    r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:(bn|[kmb])(?![a-z]))?(\s?%)?", re.IGNORECASE
)
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9, "bn": 1e9}


@dataclass(frozen=True)
class Cited:
    text: str
    value: float
    tolerance: float


@dataclass(frozen=True)
class EvidenceBase:
    """What DATA holds: its numbers, its fields (path -> value), its identifiers with digits, its times."""

    numbers: tuple[float, ...]
    fields: dict[str, tuple[float, ...]]
    identifiers: tuple[str, ...]
    times: tuple[datetime, ...]


def _norm_field(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _parse_time(text: str) -> datetime | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z?", text):
        return None
    return datetime.strptime(text.rstrip("Z"), "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)


def build_base(data: dict[str, Any]) -> EvidenceBase:
    numbers: list[float] = []
    fields: dict[str, list[float]] = {}
    identifiers: set[str] = set()
    times: list[datetime] = []

    def add_identifier(text: str) -> None:
        if any(ch.isdigit() for ch in text):
            identifiers.add(text.lower())
            for variant in (text.replace("_", " "), text.replace("_", ""), text.replace("_", "-")):
                identifiers.add(variant.lower())

    def walk(value: Any, path: list[str]) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float):
            if math.isfinite(value):
                numbers.append(float(value))
                short = [p for p in path if p != "values"]
                names = {_norm_field(".".join(parts[i:])) for parts in (path, short) for i in range(len(parts))}
                for name in names:
                    fields.setdefault(name, []).append(float(value))
            return
        if isinstance(value, str):
            when = _parse_time(value)
            if when is not None:
                times.append(when)
            else:
                add_identifier(value)
            return
        if isinstance(value, dict):
            for k, v in value.items():
                add_identifier(str(k))
                walk(v, [*path, str(k)])
            return
        if isinstance(value, list):
            for item in value:
                named = isinstance(item, dict) and isinstance(item.get("name"), str)
                walk(item, [*path, str(item["name"])] if named else path)

    walk(data, [])
    return EvidenceBase(
        numbers=tuple(numbers),
        fields={k: tuple(v) for k, v in fields.items()},
        identifiers=tuple(sorted(identifiers, key=len, reverse=True)),
        times=tuple(times),
    )


def _matches(cited: Cited, values: tuple[float, ...]) -> bool:
    target = abs(cited.value)
    return any(abs(abs(v) - target) <= cited.tolerance + 1e-9 * max(1.0, abs(v)) for v in values)


def _cited_numbers(token: str, suffix: str | None, percent: bool) -> list[Cited]:
    digits = token.replace(",", "")
    value = float(digits)
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    tolerance = 0.5 * 10.0**-decimals
    if decimals == 0 and suffix is None:
        whole = digits.lstrip("0") or "0"
        zeros = len(whole) - len(whole.rstrip("0"))
        if zeros and len(whole.rstrip("0")) >= 2:
            tolerance = 0.5 * 10.0**zeros
    if suffix:
        scale = _SCALE[suffix.lower()]
        value, tolerance = value * scale, tolerance * scale
    out = [Cited(token + (suffix or ""), value, tolerance)]
    if percent:
        out.append(Cited(token + "%", value / 100, tolerance / 100))
    return out


def _time_problem(match: re.Match[str], base: EvidenceBase, kind: str) -> str | None:
    groups = match.groups()
    try:
        if kind == "date":
            y, mo, d, h, mi = (int(g) if g is not None else None for g in groups[:5])
            ok = any(
                t.year == y and t.month == mo and t.day == d and (h is None or (t.hour == h and t.minute == mi))
                for t in base.times
            )
        else:
            h, mi = int(groups[0]), int(groups[1])
            ok = any(t.hour == h and t.minute == mi for t in base.times)
    except ValueError:
        ok = False
    return None if ok else f"time {match.group(0).strip()!r} is not in DATA"


def cited_in_text(text: str, base: EvidenceBase) -> tuple[list[Cited], list[str]]:
    """The numbers a text cites, and problems with the dates/times it cites."""
    problems: list[str] = []
    lowered = text.lower()

    def blank(m: re.Match[str]) -> str:
        return " " * len(m.group(0))

    for pattern, kind in ((_DATE, "date"), (_TIME, "time")):
        for m in pattern.finditer(lowered):
            problem = _time_problem(m, base, kind)
            if problem:
                problems.append(problem)
        lowered = pattern.sub(blank, lowered)
    for ident in base.identifiers:
        lowered = re.sub(rf"(?<![a-z0-9]){re.escape(ident)}(?![a-z0-9])", lambda m: " " * len(m.group(0)), lowered)
    cited: list[Cited] = []
    for m in _NUMBER.finditer(lowered):
        cited += _cited_numbers(m.group(1), m.group(2), bool(m.group(3)))
    return cited, problems


def check_answer(answer: LLMTradeIntent, base: EvidenceBase) -> list[str]:
    """Problems with the answer's citations (empty: every number is backed by DATA)."""
    problems: list[str] = []
    cited, time_problems = cited_in_text(answer.rationale, base)
    problems += [f"rationale: {p}" for p in time_problems]
    groups: dict[str, list[Cited]] = {}
    for c in cited:
        groups.setdefault(c.text.rstrip("%"), []).append(c)
    for text, alternatives in groups.items():
        if not any(_matches(c, base.numbers) for c in alternatives):
            problems.append(f"rationale cites {text} which is not in DATA")
    for item in answer.evidence:
        name = _norm_field(item.field)
        values = base.fields.get(name)
        written = repr(float(item.value))
        [c] = _cited_numbers(written.removesuffix(".0") if "e" not in written else f"{item.value:.6f}", None, False)
        if values is None:
            problems.append(f"evidence field {item.field!r} is not in DATA")
        elif not _matches(c, values):
            shown = ", ".join(f"{v:g}" for v in values[:3])
            problems.append(f"evidence {item.field}={item.value:g} but DATA has {shown}")
    return problems
