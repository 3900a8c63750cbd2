"""LangGraph checkpoint stores for durable runs: ``langgraph-checkpoint-sqlite`` for a file path,
``langgraph-checkpoint-postgres`` (psycopg 3) for a ``postgresql://`` URL.

The savers deserialize only the types the caller allows (the decision state's own models), never arbitrary
classes. Both are tuned to survive the process being killed, not the machine losing power, because a
checkpoint is written at every node of a decision: SQLite runs in WAL mode with ``synchronous=NORMAL`` and
the PostgreSQL connection with ``synchronous_commit=off`` (no fsync per checkpoint; a server crash may lose
the last few hundred milliseconds of checkpoints, and a decision in flight then redoes the nodes since its
last surviving checkpoint: its order is the same client order id, which a broker takes once). The journal
itself keeps synchronous commits. Every PostgreSQL wait is bounded (connect, lock and statement timeouts).
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg.rows import dict_row

from infra.redact import is_postgres_url, redact_url
from tools.errors import ConfigError, JournalError

_SETUP_LOCK = 7405982
_RUN_LOCK = 7405983
_LIBPQ_KEYWORDS = {o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults()}


@dataclass
class CheckpointStore:
    """An open saver and what closes it."""

    saver: BaseCheckpointSaver[Any]
    location: str
    """Where it is, password redacted."""
    _conn: sqlite3.Connection | psycopg.Connection[Any] = field(repr=False)

    _claim: IO[bytes] | None = field(default=None, repr=False)

    def claim(self, run_id: str) -> None:
        """Hold ``run_id`` for this process until the store is closed or the process dies: a second process
        starting or resuming the same run is refused instead of deciding alongside."""
        taken = f"run {run_id} is already running in another process (checkpoint store {self.location})"
        if isinstance(self._conn, sqlite3.Connection):
            path = Path(self.location)
            handle = path.with_name(f"{path.name}.{run_id}.lock").open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise ConfigError(taken) from None
            self._claim = handle
            return
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS ok", (_RUN_LOCK, run_id)).fetchone()
        if not row or not row["ok"]:
            raise ConfigError(taken)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()
        if self._claim is not None:
            with contextlib.suppress(OSError):
                Path(self._claim.name).unlink()
            self._claim.close()


def libpq_url(url: str, statement_timeout_ms: int = 120_000) -> str:
    """``url`` for psycopg: what libpq does not know (e.g. ``search_path``, which asyncpg takes as a server
    setting) moved into ``options`` as ``-c name=value``, plus bounded lock and statement waits and
    asynchronous commit (see the module docstring)."""
    parts = urlsplit(url)
    query: list[tuple[str, str]] = []
    options = [
        f"-c statement_timeout={statement_timeout_ms}",
        f"-c lock_timeout={statement_timeout_ms}",
        "-c synchronous_commit=off",
    ]
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "options":
            options.insert(0, value)
        elif key in _LIBPQ_KEYWORDS:
            query.append((key, value))
        else:
            options.append(f"-c {key}={value}")
    query.append(("options", " ".join(options)))
    if not any(k == "connect_timeout" for k, _ in query):
        query.append(("connect_timeout", "10"))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


def open_checkpoints(target: str, allowed_types: Iterable[type]) -> CheckpointStore:
    """The checkpoint store at ``target`` (SQLite path or postgresql:// URL), created if needed."""
    serde = JsonPlusSerializer(allowed_msgpack_modules=sorted({(t.__module__, t.__name__) for t in allowed_types}))
    if is_postgres_url(target):
        return _open_postgres(target, serde)
    return _open_sqlite(Path(target), serde)


def _open_sqlite(path: Path, serde: JsonPlusSerializer) -> CheckpointStore:
    if path.is_dir():
        raise ConfigError(f"checkpoint store {path} is a directory, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open checkpoint store {path}: {exc}") from None
    try:
        saver = SqliteSaver(conn, serde=serde)
        saver.setup()
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(f"{path} is not a usable checkpoint store ({exc})") from None
    return CheckpointStore(saver, str(path), conn)


def _open_postgres(url: str, serde: JsonPlusSerializer) -> CheckpointStore:
    where = redact_url(url)
    try:
        conn: psycopg.Connection[Any] = psycopg.Connection.connect(
            libpq_url(url), autocommit=True, prepare_threshold=0, row_factory=dict_row
        )
    except (psycopg.Error, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JournalError(f"cannot connect to the checkpoint store at {where}: {message}") from None
    try:
        saver = PostgresSaver(conn, serde=serde)
        # one process sets the tables up at a time (PostgresSaver.setup is not safe to run concurrently)
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(current_schema()))", (_SETUP_LOCK,))
        try:
            saver.setup()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(current_schema()))", (_SETUP_LOCK,))
    except psycopg.Error as exc:
        conn.close()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JournalError(f"cannot prepare the checkpoint store at {where}: {message}") from None
    return CheckpointStore(saver, where, conn)


def drop_threads(saver: BaseCheckpointSaver[Any], thread_ids: list[str]) -> None:
    """Delete finished threads: in one transaction where the saver can (Postgres), else one by one."""
    if not thread_ids:
        return
    try:
        saver.prune(thread_ids, strategy="delete")
    except NotImplementedError:
        for thread_id in thread_ids:
            saver.delete_thread(thread_id)
