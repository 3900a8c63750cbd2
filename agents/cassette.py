"""Cassettes: LLM answers recorded under (node, model, prompt hash, input hash) and replayed without a call.

A cassette is a folder: ``manifest.json`` (which reasoner, model and LLM settings recorded it) and one file
per answer under ``entries/``. Entries are written atomically and never overwritten, so several processes
(eval --jobs) can record into one cassette. Failures and budget refusals are recorded too, so a replay takes
exactly the recorded path. Any malformed file is one CassetteError naming it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agents.llm_answer import Answer, CallKey
from tools.errors import CassetteError

FORMAT = "tradegraph-cassette"
VERSION = 1
_IDENTITY = ("reasoner", "model", "prompt_id", "prompt_hash")


def _write_exclusive(path: Path, text: str) -> bool:
    """Write ``path`` atomically unless it exists; False when another writer got there first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"cannot read {what} {path}: {exc}") from None
    except ValueError as exc:
        raise CassetteError(f"{what} {path} is not valid JSON ({exc.args[0]})") from None
    if not isinstance(data, dict):
        raise CassetteError(f"{what} {path} is not a JSON object")
    return data


class Cassette:
    def __init__(self, root: Path, manifest: dict[str, Any], entries: dict[str, Answer] | None = None) -> None:
        self.root = root
        self.manifest = manifest
        self._loaded = entries
        """Replay: every entry, read and checked when the cassette is opened (None: read on demand)."""

    @classmethod
    def open_for_replay(cls, root: Path) -> Cassette:
        if not root.is_dir():
            raise CassetteError(f"cassette {root} does not exist (record one with --record-cassette)")
        path = root / "manifest.json"
        if not path.is_file():
            raise CassetteError(f"{root} is not a cassette: no manifest.json")
        manifest = _read_json(path, "cassette manifest")
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise CassetteError(f"{path} is not a version {VERSION} {FORMAT} manifest")
        missing = [k for k in (*_IDENTITY, "llm") if k not in manifest]
        if missing:
            raise CassetteError(f"cassette manifest {path} lacks {', '.join(missing)}")
        cassette = cls(root, manifest)
        entries = {}
        for entry in sorted((root / "entries").glob("*/*.json")):
            entries[entry.stem] = cassette._read_entry(entry, None)
        cassette._loaded = entries
        return cassette

    @classmethod
    def open_for_recording(cls, root: Path, identity: dict[str, Any]) -> Cassette:
        """Create the cassette, or reuse one recorded by the same reasoner, model and prompt."""
        manifest = {"format": FORMAT, "version": VERSION, **identity}
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CassetteError(f"cannot create cassette {root}: {exc.strerror or exc}") from None
        path = root / "manifest.json"
        try:
            created = _write_exclusive(path, json.dumps(manifest, indent=1, sort_keys=True))
        except OSError as exc:
            raise CassetteError(f"cannot write cassette {root}: {exc.strerror or exc}") from None
        if created:
            return cls(root, manifest)
        existing = cls.open_for_replay(root)
        for k in _IDENTITY:
            if existing.manifest.get(k) != manifest.get(k):
                raise CassetteError(
                    f"cassette {root} was recorded with {k} {existing.manifest.get(k)!r}, this run uses "
                    f"{manifest.get(k)!r}: "
                    "record into a new folder"
                )
        return cls(root, existing.manifest)

    def _path(self, key: CallKey) -> Path:
        digest = key.digest()
        return self.root / "entries" / digest[:2] / f"{digest}.json"

    def get(self, key: CallKey) -> Answer | None:
        if self._loaded is not None:
            return self._loaded.get(key.digest())
        path = self._path(key)
        return self._read_entry(path, key) if path.is_file() else None

    def _read_entry(self, path: Path, key: CallKey | None) -> Answer:
        entry = _read_json(path, "cassette entry")
        stored = entry.get("key")
        named = (CallKey(**stored).digest() if isinstance(stored, dict) and set(stored) == set(CallKey.__annotations__)
                 else None)  # fmt: skip
        if named != path.stem or (key is not None and stored != key.as_dict()):
            raise CassetteError(f"cassette entry {path} holds another key than its name says")
        try:
            return Answer.model_validate(entry.get("answer"))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "answer"
            raise CassetteError(f"cassette entry {path} is malformed: {where}: {first['msg']}") from None

    def put(self, key: CallKey, answer: Answer) -> bool:
        """Record ``answer``; False (and nothing written) when the key is already recorded."""
        entry = {"key": key.as_dict(), "answer": answer.model_dump(mode="json")}
        try:
            return _write_exclusive(self._path(key), json.dumps(entry, indent=1, sort_keys=True))
        except OSError as exc:
            raise CassetteError(f"cannot write to cassette {self.root}: {exc.strerror or exc}") from None

    def missing(self, key: CallKey) -> CassetteError:
        return CassetteError(
            f"cassette {self.root} has no answer for node {key.node}, model {key.model}, prompt "
            f"{key.prompt_hash[:12]}, input {key.input_hash[:12]}: this run differs from the recorded one "
            "(settings, data or code); re-record it"
        )
