"""Instruction-like text in untrusted inputs. Such text is never obeyed (it reaches the model only as JSON data
between markers, and the gate checks every order); it is flagged so the journal shows the attempt."""

from __future__ import annotations

import re

from tools.news import NewsItem

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("instruction_override", re.compile(
        r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}?\b(instructions?|rules|limits?|prompts?|guidelines|"
        r"constraints|risk|previous|above)\b", re.IGNORECASE | re.DOTALL)),
    ("role_change", re.compile(
        r"\b(you are now|act as|pretend to be|new instructions?|system prompt|developer mode|jailbreak)\b",
        re.IGNORECASE)),
    ("role_marker", re.compile(r"(<\|im_(start|end)\|>|\[/?INST\]|<<<|>>>|^\s*(system|assistant|user)\s*:)",
                               re.IGNORECASE | re.MULTILINE)),
    ("trade_command", re.compile(
        r"\b(buy|sell|short|long)\b\s+(all|everything|max(imum)?|\d[\d,.]*\s*[kmb]?)\b", re.IGNORECASE)),
    ("tool_forgery", re.compile(r"(LLMTradeIntent|\"action\"\s*:|\bfunction[_ ]call\b|\btool[_ ]call\b)",
                                re.IGNORECASE)),
]  # fmt: skip


def scan_text(text: str, where: str) -> list[str]:
    flags = []
    for kind, pattern in _PATTERNS:
        match = pattern.search(text)
        if match:
            flags.append(f"{where} {kind}: {match.group(0)[:60]!r}")
    return flags


def scan_news(items: list[NewsItem]) -> list[str]:
    flags: list[str] = []
    for n, item in enumerate(items):
        flags += scan_text(item.text, f"news[{n}]")
        flags += scan_text(item.source, f"news[{n}].source")
    return flags
