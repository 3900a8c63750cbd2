"""Checking a model's prose against the tool outputs it was given, before anyone reads it.

An answer passes when
- every number it states is one the tools returned (or the question contained), up to the rounding its own
  digits imply, also as a percentage (0.0208 may be written 2.08%) and ignoring sign words ("fell 0.06%");
  numbers inside tool-returned text (times, ids, rationales) count as returned; so do the lengths of the
  lists the tools returned;
- every decision id it cites is one the tools returned;
- it cites at least one decision id when the tools returned any.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from agents.journal_tools import DECISION_ID, ToolOutput

_NUMBER = re.compile(r"(?<![\d.,])[-+−]?\d+(?:,\d{3})*(?:\.\d+)?")


class CheckResult(BaseModel):
    ok: bool
    problems: list[str] = Field(default_factory=list)
    unsupported_numbers: list[str] = Field(default_factory=list)
    unknown_ids: list[str] = Field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)


def numbers_in(text: str) -> list[str]:
    """The numbers written in ``text`` (decision ids removed first), as written."""
    return _NUMBER.findall(DECISION_ID.sub(" ", text))


def _value(written: str) -> float:
    return float(written.replace(",", "").replace("−", "-"))


def _decimals(written: str) -> int:
    return len(written.split(".", 1)[1]) if "." in written else 0


def _collect(value: Any, out: list[float]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if math.isfinite(float(value)):
            out.append(float(value))
    elif isinstance(value, str):
        out += [_value(n) for n in numbers_in(value)]
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, out)
    elif isinstance(value, list | tuple):
        out.append(float(len(value)))
        for v in value:
            _collect(v, out)


def known_numbers(outputs: Iterable[ToolOutput], question: str = "") -> list[float]:
    found: list[float] = []
    for o in outputs:
        _collect(o.data, found)
    found += [_value(n) for n in numbers_in(question)]
    return found


def supported(written: str, known: list[float]) -> bool:
    p = abs(_value(written))
    tolerance = 0.5 * 10 ** -_decimals(written) + 1e-9
    for v in known:
        for candidate in (abs(v), abs(v) * 100):
            if abs(candidate - p) <= tolerance:
                return True
    return False


def check_answer(text: str, outputs: list[ToolOutput], question: str = "") -> CheckResult:
    problems: list[str] = []
    if not text.strip():
        return CheckResult(ok=False, problems=["the model returned no text"])
    known = known_numbers(outputs, question)
    unsupported = list(dict.fromkeys(n for n in numbers_in(text) if not supported(n, known)))
    if unsupported:
        problems.append(f"it states {', '.join(unsupported[:5])}, which no tool output contains")
    returned = {i for o in outputs for i in o.decision_ids}
    cited = list(dict.fromkeys(DECISION_ID.findall(text)))
    unknown = [i for i in cited if i not in returned]
    if unknown:
        problems.append(f"it cites {', '.join(unknown[:5])}, which no tool returned")
    if returned and not cited:
        problems.append("it cites no decision id although the tools returned some")
    return CheckResult(ok=not problems, problems=problems, unsupported_numbers=unsupported, unknown_ids=unknown)


def tool_json(output: ToolOutput) -> str:
    """What the model reads for one tool call: the data and the ids it may cite."""
    return json.dumps({**output.data, "citable_decision_ids": output.decision_ids}, separators=(",", ":"), default=str)
