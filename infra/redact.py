"""Secrets never leave as plain text: passwords in URLs, and key/token query parameters (e.g. ``?api-key=``),
are masked wherever a URL is printed, logged or journaled."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_SECRET_PARAM = re.compile(r"(^|&)((?:api[-_]?)?key|[a-z_-]*token|[a-z_-]*secret|password|sig)=([^&]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable url>"
    query = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}=***", parts.query)
    netloc = parts.netloc
    if password is not None:
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:***@{host}"
    if password is None and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))
