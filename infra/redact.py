"""Secrets never leave as plain text: passwords in URLs are masked wherever a URL is printed or logged."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_SECRET_WORDS = ("password", "passwd", "token", "secret", "key")


def redact_url(url: str) -> str:
    """The URL with its password and any secret-named query parameter (``token=``, ``password=``) masked."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if port is not None:
            host = f"{host}:{port}"
        netloc = f"{parts.username or ''}:***@{host}"
    query = "&".join(_redact_param(p) for p in parts.query.split("&")) if parts.query else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_param(param: str) -> str:
    name, sep, value = param.partition("=")
    return f"{name}=***" if sep and value and any(w in name.lower() for w in _SECRET_WORDS) else param


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))
