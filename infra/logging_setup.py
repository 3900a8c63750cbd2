"""Logging: readable lines in a terminal, one JSON object per line for services; secrets are redacted.

Records may carry structured fields through ``extra={"fields": {...}}`` (e.g. decision_id, symbol); the JSON
formatter puts them at the top level. Every message and field passes through the URL-password redaction.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
_QUERY_SECRET = re.compile(r"([?&][^=&\s]*(?:password|passwd|token|secret|key)[^=&\s]*=)[^&#\s]+", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Masks URL passwords (``scheme://user:***@host``) and secret-named query parameters (``?token=***``)."""
    return _QUERY_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    raw = getattr(record, "fields", None)
    if not isinstance(raw, dict):
        return {}
    return {k: redact_text(v) if isinstance(v, str) else v for k, v in raw.items()}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
            **_fields(record),
        }
        if record.exc_info:
            out["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{record.levelname.lower():<7} {redact_text(record.getMessage())}"
        return f"{line}  {fields}" if fields else line


def configure_logging(fmt: str = "text", level: str = "warning") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("tradegraph")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
