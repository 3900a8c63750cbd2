"""Versioned prompt templates. A template's id is its file name without ``.txt`` (``trade_intent.v1``); its
hash is the sha256 of the file's bytes, journaled with every call. Never edit a released template: add a
new version.

A template is split into named sections by lines ``[name]``; ``{{PLACEHOLDER}}`` marks are filled by
``render`` (plain replacement, so JSON braces in data need no escaping).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

_SECTION = re.compile(r"^\[([a-z_]+)\]\s*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


class PromptError(ValueError):
    """A template is missing or malformed."""


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    text: str
    hash: str
    sections: dict[str, str]

    def section(self, name: str) -> str:
        try:
            return self.sections[name]
        except KeyError:
            raise PromptError(f"prompt {self.id} has no [{name}] section") from None

    def render(self, name: str, values: dict[str, str]) -> str:
        text = self.section(name)
        missing = set(_PLACEHOLDER.findall(text)) - set(values)
        if missing:
            raise PromptError(f"prompt {self.id} [{name}] needs {', '.join(sorted(missing))}")
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def available() -> list[str]:
    return sorted(p.name.removesuffix(".txt") for p in resources.files(__name__).iterdir() if p.name.endswith(".txt"))


def load_prompt(prompt_id: str) -> PromptTemplate:
    if not re.fullmatch(r"[a-z0-9_]+\.v[0-9]+", prompt_id):
        raise PromptError(f"prompt id {prompt_id!r} is not NAME.vN")
    resource = resources.files(__name__) / f"{prompt_id}.txt"
    if not resource.is_file():
        raise PromptError(f"no prompt template {prompt_id!r} (available: {', '.join(available())})")
    data = resource.read_bytes()
    text = data.decode("utf-8")
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    if not sections:
        raise PromptError(f"prompt {prompt_id} has no [section]")
    return PromptTemplate(id=prompt_id, text=text, hash=hashlib.sha256(data).hexdigest(), sections=sections)
