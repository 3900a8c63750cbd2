"""The JobStore on PostgreSQL: shared paper accounts, settlement and the locked gate section of workers.

Driver: psycopg (sync) with pipeline mode, called from the worker's own thread. A worker's critical path is
a handful of short statements per job, two of them inside the account lock. Through asyncpg the worker would
hand every step to an event-loop thread and wait for it, and could not pipeline: the gate's lock window would
hold two thread hand-overs and three round trips (lock, insert, commit) instead of one pipelined round trip
for the writes and the COMMIT. ``benchmarks/bench_job_store.py`` replays one job's statements with both,
side by side (README: measured figures). The journal store proper stays on asyncpg (``infra.postgres_journal``).

Durability: a decision's commit is synchronous (it must survive a server crash before the job is acked).
A settlement commits with ``synchronous_commit = off``: the decision that follows it flushes the WAL up to
its own commit, settlement included; if the server crashes first, the job was not acked and is redelivered,
and the settlement marker was lost with the settlement, so it is redone. "Messages confirmed" markers ride
with the worker's next decision (or are written when it is idle): a worker killed right after acking a job
loses that one marker, which only means the job's messages are published again (same ids) should the job
ever be delivered again.

Failures: every statement is bounded (``statement_timeout``, ``lock_timeout``,
``idle_in_transaction_session_timeout``, TCP keepalives). A lost connection (server restart, network) is
discarded and reported as ``StoreUnavailable``; the next call connects again. A transaction cut off that way
is rolled back by the server, or committed if its COMMIT went out: the caller retries the whole job, whose
steps are idempotent (settlement marker per symbol and candle, unique decision key), so either is safe.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from infra.job_store import JobStatus, StoreUnavailable, UnknownRun
from infra.journal import DecisionRecord, PortfolioPoint, RunInfo, decode_run
from infra.logging_setup import redact_text
from infra.postgres_journal import _BODY_FIELDS, _DECISION_COLUMNS
from infra.redact import redact_url
from tools.errors import JournalError
from tools.trade_types import Fill, Order

T = TypeVar("T")
NOTIFY_CHANNEL = "tradegraph_decided"
# psycopg logs what it ignores while cleaning up a lost connection, as plain text; the store reports the loss
# itself (StoreUnavailable, then the worker's structured warning), so those lines are silenced.
logging.getLogger("psycopg").setLevel(logging.CRITICAL + 1)

TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.errors.IdleInTransactionSessionTimeout)

# libpq's own URL parameters; any other query parameter (e.g. search_path) becomes a server setting
_LIBPQ_PARAMS = {
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding", "connect_timeout",
    "client_encoding", "options", "application_name", "fallback_application_name", "keepalives", "keepalives_idle",
    "keepalives_interval", "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode",
    "requiressl", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir",
    "sslsni", "requirepeer", "ssl_min_protocol_version", "ssl_max_protocol_version", "krbsrvname", "gsslib",
    "service", "target_session_attrs", "load_balance_hosts",
}  # fmt: skip

_FILL_RECORD = (
    "client_order_id text, decision_id text, symbol text, side text, quantity float8, price float8, fee float8, "
    '"timestamp" bigint, kind text, slippage_bps float8, realized_pnl float8'
)
_ORDER_COLUMNS = (
    "client_order_id, decision_id, symbol, side, quantity, reference_price, submitted_at, kind, status, "
    "filled_quantity, stop_loss, take_profit"
)
_ORDER_RECORD = (
    "client_order_id text, decision_id text, symbol text, side text, quantity float8, reference_price float8, "
    "submitted_at bigint, kind text, status text, filled_quantity float8, stop_loss float8, take_profit float8"
)
_STATUS = """
SELECT EXISTS (SELECT 1 FROM decisions WHERE id = %(did)s) AS decided,
       EXISTS (SELECT 1 FROM bus_published WHERE decision_id = %(did)s) AS published,
       CASE WHEN %(after)s::bigint IS NULL THEN 0
            ELSE (SELECT count(*) FROM decisions WHERE run_id = %(run)s AND candle_time = %(after)s) END
         AS previous_done
"""
# the account row is locked only when the job is to be decided now (not decided, previous candle done)
_LOCK_IF_READY = """
SELECT state FROM paper_accounts
 WHERE account = %(run)s AND NOT EXISTS (SELECT 1 FROM decisions WHERE id = %(did)s)
   AND (%(after)s::bigint IS NULL
        OR (SELECT count(*) FROM decisions WHERE run_id = %(run)s AND candle_time = %(after)s) >= %(expect)s)
   FOR UPDATE
"""
_LOCK = "SELECT state FROM paper_accounts WHERE account = %s FOR UPDATE"
_SETTLE = f"""
WITH a AS (UPDATE paper_accounts SET state = %(state)s, version = version + 1, updated_at = %(now)s
           WHERE account = %(run)s),
f AS (INSERT INTO fills (client_order_id, decision_id, symbol, side, quantity, price, fee, timestamp, kind,
                         slippage_bps, realized_pnl)
      SELECT * FROM jsonb_to_recordset(%(fills)s::jsonb) AS x({_FILL_RECORD})),
o AS (INSERT INTO orders ({_ORDER_COLUMNS}) SELECT * FROM jsonb_to_recordset(%(orders)s::jsonb) AS x({_ORDER_RECORD})
      ON CONFLICT (client_order_id) DO UPDATE SET status = excluded.status, filled_quantity = excluded.filled_quantity),
p AS (INSERT INTO portfolio_snapshots (run_id, timestamp, cash, equity, gross_exposure, drawdown, positions)
      SELECT * FROM jsonb_to_recordset(%(points)s::jsonb) AS x(run_id text, "timestamp" bigint, cash float8,
                                                              equity float8, gross_exposure float8, drawdown float8,
                                                              positions jsonb)
      ON CONFLICT (run_id, timestamp) DO UPDATE SET cash = excluded.cash, equity = excluded.equity,
         gross_exposure = excluded.gross_exposure, drawdown = excluded.drawdown, positions = excluded.positions)
SELECT 1
"""
_DECIDE = f"""
WITH d AS (INSERT INTO decisions ({_DECISION_COLUMNS})
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING RETURNING id),
o AS (INSERT INTO orders ({_ORDER_COLUMNS})
      SELECT x.* FROM jsonb_to_recordset(%s::jsonb) AS x({_ORDER_RECORD}) WHERE EXISTS (SELECT 1 FROM d)),
a AS (UPDATE paper_accounts SET state = %s, version = version + 1, updated_at = %s
      WHERE account = %s AND %s AND EXISTS (SELECT 1 FROM d)),
m AS (INSERT INTO bus_published SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING)
SELECT count(*) FROM d
"""


def encode_state(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), allow_nan=False)


def decode_state(text: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(text)
    return state


def _now_ms() -> int:
    return int(time.time() * 1000)


def _describe(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}".replace("\n", " "))[:300]


def libpq_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL without the query parameters libpq does not know, and those as server settings."""
    parts = urlsplit(url)
    known, settings = [], {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in _LIBPQ_PARAMS:
            known.append((k, v))
        else:
            settings[k] = v
    return urlunsplit(parts._replace(query=urlencode(known))), settings


def _decision_args(record: DecisionRecord) -> tuple[Any, ...]:
    body = json.dumps(record.model_dump(include=_BODY_FIELDS, mode="json"), separators=(",", ":"))
    r = record
    return (r.id, r.run_id, r.symbol, r.timeframe, r.candle_time, r.as_of, r.outcome, r.reason, r.action,
            r.inputs_hash, r.window_start, r.window_end, r.window_length, body)  # fmt: skip


def _order_row(o: Order) -> dict[str, Any]:
    return {"client_order_id": o.client_order_id, "decision_id": o.decision_id, "symbol": o.symbol,
            "side": o.side.value, "quantity": o.quantity, "reference_price": o.reference_price,
            "submitted_at": o.submitted_at, "kind": o.kind, "status": o.status.value,
            "filled_quantity": o.filled_quantity, "stop_loss": o.stop_loss, "take_profit": o.take_profit}  # fmt: skip


class PgJobStore:
    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 10.0,
        op_timeout: float = 30.0,
        application_name: str = "tradegraph",
    ) -> None:
        self.url = url
        self.display_url = redact_url(url)
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self.application_name = application_name
        self._conninfo, settings = libpq_url(url)
        settings |= {
            "statement_timeout": str(int(op_timeout * 1000)),
            "lock_timeout": str(int(op_timeout * 1000)),
            "idle_in_transaction_session_timeout": str(int(op_timeout * 2000)),
        }
        self._options = " ".join(f"-c {k}={v}" for k, v in settings.items())
        self._conn: psycopg.Connection[Any] | None = None
        self._in_tx = False
        self._locked = False
        self._published: list[str] = []
        self._connected_once = False
        self._listening = False
        self.reconnects = 0
        try:
            self._connection()
        except StoreUnavailable as exc:
            raise JournalError(f"cannot connect to the journal at {self.display_url}: {exc.__cause__ or exc}") from None

    # --- plumbing -----------------------------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)),
                application_name=self.application_name, options=self._options, keepalives=1, keepalives_idle=10,
                keepalives_interval=3, keepalives_count=3, tcp_user_timeout=int(self.op_timeout * 1000),
            )  # fmt: skip
        except TRANSIENT as exc:
            self._conn = None
            raise StoreUnavailable(f"journal at {self.display_url} unavailable: {_describe(exc)}") from exc
        if self._connected_once:
            self.reconnects += 1
        self._connected_once = True
        self._listening = False
        return self._conn

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        conn = self._connection()
        try:
            return fn(conn)
        except TRANSIENT as exc:
            self._discard()
            raise StoreUnavailable(f"journal at {self.display_url} unavailable: {_describe(exc)}") from exc
        except BaseException:
            if self._in_tx:  # a bug or an unexpected database error: never leave a transaction open
                self._abort()
            raise

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        self._in_tx = self._locked = False
        if conn is not None:
            with contextlib.suppress(*TRANSIENT):
                conn.close()

    def _abort(self) -> None:
        self._in_tx = self._locked = False
        conn = self._conn
        if conn is None or conn.closed:
            return
        try:
            conn.execute("ROLLBACK")
        except TRANSIENT:
            self._discard()

    def close(self) -> None:
        try:
            with contextlib.suppress(StoreUnavailable):
                self.flush()
        finally:
            self._discard()

    def _flush_published(self, c: psycopg.Connection[Any]) -> None:
        ids = list(self._published)
        c.execute("INSERT INTO bus_published SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING", (ids, _now_ms()))
        del self._published[: len(ids)]

    # --- jobs ---------------------------------------------------------------------------------------------
    def run_config(self, run_id: str) -> dict[str, Any] | None:
        row = self._run(lambda c: c.execute("SELECT config FROM runs WHERE run_id = %s", (run_id,)).fetchone())
        if row is None:
            return None
        config = row[0]
        return config if isinstance(config, dict) else dict(json.loads(config))

    def job_status(self, run_id: str, decision_id: str, after: int | None) -> JobStatus:
        params = {"did": decision_id, "run": run_id, "after": after}
        row = self._run(lambda c: c.execute(_STATUS, params).fetchone())
        assert row is not None
        return JobStatus(bool(row[0]), bool(row[1]), int(row[2]))

    def wait_for_decisions(self, run_id: str, candle_time: int, count: int, timeout: float) -> bool:
        """Wait until ``count`` decisions of ``candle_time`` are journaled (True) or ``timeout`` passes (False).

        Woken by the NOTIFY every decision commit sends, so a waiting worker starts the moment the previous
        candle is complete; a re-check every half second bounds the wait should a notification be missed."""
        deadline = time.monotonic() + timeout
        sql = "SELECT count(*) FROM decisions WHERE run_id = %s AND candle_time = %s"

        def run(c: psycopg.Connection[Any]) -> bool:
            if not self._listening:
                c.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self._listening = True
            for _stale in c.notifies(timeout=0):  # what arrived while not waiting
                pass
            while True:
                row = c.execute(sql, (run_id, candle_time)).fetchone()
                if row is not None and row[0] >= count:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                for _notice in c.notifies(timeout=min(left, 0.5), stop_after=1):
                    break

        return self._run(run)

    def begin_job(
        self, run_id: str, decision_id: str, after: int | None, expect: int, lock: bool
    ) -> tuple[JobStatus, dict[str, Any] | None]:
        """The job's status and, with ``lock`` when it is ready (not decided, ``after`` fully decided), the
        account state with its row locked: one round trip. The caller ends the transaction with
        ``finish_settlement`` (asynchronous commit) or ``rollback``."""
        params = {"did": decision_id, "run": run_id, "after": after, "expect": expect}

        def run(c: psycopg.Connection[Any]) -> tuple[JobStatus, dict[str, Any] | None]:
            with c.pipeline():
                c.execute("BEGIN")
                self._in_tx = True
                c.execute("SET LOCAL synchronous_commit = off")
                status_cur = c.execute(_STATUS, params)
                lock_cur = c.execute(_LOCK_IF_READY, params) if lock else None
                status_row = status_cur.fetchone()
                locked = lock_cur.fetchone() if lock_cur is not None else None
            assert status_row is not None
            status = JobStatus(bool(status_row[0]), bool(status_row[1]), int(status_row[2]))
            if locked is not None:
                self._locked = True
                return status, decode_state(locked[0])
            c.execute("ROLLBACK")
            self._in_tx = False
            if lock and not status.decided and status.previous_done >= expect:
                # ready by the status, yet not locked: no account, or decided in between (fresh status)
                if not c.execute("SELECT 1 FROM paper_accounts WHERE account = %s", (run_id,)).fetchone():
                    raise UnknownRun(f"no paper account for run {run_id!r} in {self.display_url}")
                row = c.execute(_STATUS, params).fetchone()
                assert row is not None
                status = JobStatus(bool(row[0]), bool(row[1]), int(row[2]))
            return status, None

        return self._run(run)

    def finish_settlement(
        self,
        run_id: str,
        state: dict[str, Any],
        fills: Sequence[Fill],
        updates: Sequence[Order],
        points: Sequence[PortfolioPoint],
    ) -> None:
        """Write the settled state, its fills, order updates and portfolio points, and commit (one round trip)."""
        if not self._locked:
            raise JournalError("finish_settlement without the account lock")
        params = {
            "run": run_id, "state": encode_state(state), "now": _now_ms(),
            "fills": json.dumps([f.model_dump(mode="json") for f in fills]),
            "orders": json.dumps([_order_row(o) for o in updates]),
            "points": json.dumps([p.model_dump(mode="json") for p in points]),
        }  # fmt: skip

        def run(c: psycopg.Connection[Any]) -> None:
            with c.pipeline():
                c.execute(_SETTLE, params)
                c.execute("COMMIT")
            self._in_tx = self._locked = False

        self._run(run)

    def lock_account(self, run_id: str) -> dict[str, Any]:
        if self._locked:
            raise JournalError("the account is already locked by this worker")

        def run(c: psycopg.Connection[Any]) -> dict[str, Any]:
            with c.pipeline():
                c.execute("BEGIN")
                self._in_tx = True
                row = c.execute(_LOCK, (run_id,)).fetchone()
            if row is None:
                self._abort()
                raise UnknownRun(f"no paper account for run {run_id!r} in {self.display_url}")
            self._locked = True
            return decode_state(row[0])

        return self._run(run)

    @property
    def locked(self) -> bool:
        return self._locked

    def commit_decision(self, record: DecisionRecord, order: Order | None, state: dict[str, Any] | None) -> bool:
        locked = self._locked
        encoded = encode_state(state) if state is not None and locked else None
        orders = json.dumps([_order_row(order)] if order is not None else [])
        published = list(self._published)
        now = _now_ms()
        args = (*_decision_args(record), orders, encoded, now, record.run_id, encoded is not None, published, now)

        def run(c: psycopg.Connection[Any]) -> bool:
            with c.pipeline():
                cur = c.execute(_DECIDE, args)
                c.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, record.run_id))  # wakes waiting workers
                if locked:
                    c.execute("COMMIT")  # a duplicate wrote nothing (every write depends on the decision's insert)
            row = cur.fetchone()
            self._in_tx = self._locked = False
            del self._published[: len(published)]
            return bool(row and row[0])

        return self._run(run)

    def rollback(self) -> None:
        if self._in_tx:
            self._abort()

    def mark_published(self, decision_id: str) -> None:
        self._published.append(decision_id)
        if len(self._published) >= 500:
            self._run(self._flush_published)

    def flush(self) -> None:
        """Write pending markers now (a worker calls it when idle)."""
        if self._published and not self._in_tx:
            self._run(self._flush_published)

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        def run(c: psycopg.Connection[Any]) -> dict[str, Any] | None:
            cur = c.execute(f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE id = %s", (decision_id,))
            row = cur.fetchone()
            if row is None:
                return None
            names = [d.name for d in cur.description or []]
            record = dict(zip(names, row, strict=True))
            body = record.pop("body")
            record.update(body if isinstance(body, dict) else json.loads(body))
            return record

        return self._run(run)

    def _settlement_fills(self, c: psycopg.Connection[Any], run_id: str, symbol: str, t: int) -> list[Fill]:
        cur = c.execute(
            "SELECT f.client_order_id, f.decision_id, f.symbol, f.side, f.quantity, f.price, f.fee, f.timestamp, "
            "f.kind, f.slippage_bps, f.realized_pnl FROM fills f JOIN decisions d ON d.id = f.decision_id "
            "WHERE d.run_id = %s AND f.symbol = %s AND f.timestamp = %s ORDER BY f.id", (run_id, symbol, t))  # fmt: skip
        names = [d.name for d in cur.description or []]
        return [Fill.model_validate(dict(zip(names, r, strict=True))) for r in cur.fetchall()]

    def settlement_fills(self, run_id: str, symbol: str, candle_time: int) -> list[Fill]:
        return self._run(lambda c: self._settlement_fills(c, run_id, symbol, candle_time))

    # --- scheduler ----------------------------------------------------------------------------------------
    def create_run(self, run: RunInfo, state: dict[str, Any]) -> dict[str, Any]:
        def go(c: psycopg.Connection[Any]) -> dict[str, Any]:
            with c.transaction():
                c.execute(
                    "INSERT INTO runs (run_id, started_at, mode, status, config) VALUES (%s, %s, %s, 'running', %s) "
                    "ON CONFLICT (run_id) DO NOTHING", (run.run_id, run.started_at, run.mode, json.dumps(run.config)))  # fmt: skip
                c.execute(
                    "INSERT INTO paper_accounts (account, state, updated_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (account) DO NOTHING", (run.run_id, encode_state(state), _now_ms()))  # fmt: skip
                cur = c.execute(
                    "SELECT run_id, started_at, finished_at, mode, status, config::text, summary::text FROM runs "
                    "WHERE run_id = %s", (run.run_id,))  # fmt: skip
                row = cur.fetchone()
            assert row is not None
            names = ["run_id", "started_at", "finished_at", "mode", "status", "config", "summary"]
            return decode_run(dict(zip(names, row, strict=True)))

        return self._run(go)

    def watermark(self, run_id: str, timeframe: str) -> int | None:
        row = self._run(lambda c: c.execute(
            "SELECT candle_time FROM schedule_watermarks WHERE run_id = %s AND timeframe = %s", (run_id, timeframe)
        ).fetchone())  # fmt: skip
        return int(row[0]) if row else None

    def set_watermark(self, run_id: str, timeframe: str, candle_time: int) -> None:
        self._run(lambda c: c.execute(
            "INSERT INTO schedule_watermarks VALUES (%s, %s, %s, %s) ON CONFLICT (run_id, timeframe) DO UPDATE "
            "SET candle_time = GREATEST(schedule_watermarks.candle_time, excluded.candle_time), "
            "updated_at = excluded.updated_at", (run_id, timeframe, candle_time, _now_ms())))  # fmt: skip

    def count_decisions(self, run_id: str) -> int:
        row = self._run(lambda c: c.execute("SELECT count(*) FROM decisions WHERE run_id = %s", (run_id,)).fetchone())
        assert row is not None
        return int(row[0])

    def account_state(self, run_id: str) -> dict[str, Any] | None:
        row = self._run(lambda c: c.execute(
            "SELECT state FROM paper_accounts WHERE account = %s", (run_id,)).fetchone())  # fmt: skip
        return decode_state(row[0]) if row else None

    def run_tallies(self, run_id: str) -> dict[str, Any]:
        """Outcomes, actions, gate reasons, orders, fills and drawdown of a run, for its summary."""

        def run(c: psycopg.Connection[Any]) -> dict[str, Any]:
            p = (run_id,)
            outcomes = c.execute("SELECT outcome, count(*) FROM decisions WHERE run_id = %s GROUP BY 1", p).fetchall()
            actions = c.execute(
                "SELECT action, count(*) FROM decisions WHERE run_id = %s AND action IS NOT NULL GROUP BY 1", p
            ).fetchall()
            verdicts = c.execute(
                "SELECT body->'verdict'->>'decision', r, count(*) FROM decisions, "
                "jsonb_array_elements_text(body->'verdict'->'reasons') AS r WHERE run_id = %s "
                "AND jsonb_typeof(body->'verdict') = 'object' GROUP BY 1, 2", p).fetchall()  # fmt: skip
            orders = c.execute(
                "SELECT count(*) FROM orders o JOIN decisions d ON d.id = o.decision_id WHERE d.run_id = %s "
                "AND o.kind IN ('entry', 'exit')", p).fetchone()  # fmt: skip
            fills = c.execute(
                "SELECT count(*) FROM fills f JOIN decisions d ON d.id = f.decision_id WHERE d.run_id = %s", p
            ).fetchone()
            span = c.execute(
                "SELECT min(candle_time), max(candle_time), count(*) FROM decisions WHERE run_id = %s", p).fetchone()  # fmt: skip
            drawdown = c.execute("SELECT max(drawdown) FROM portfolio_snapshots WHERE run_id = %s", p).fetchone()
            assert span is not None and orders is not None and fills is not None and drawdown is not None
            return {
                "outcomes": dict(outcomes), "actions": dict(actions),
                "gate_denials": {r: n for d, r, n in verdicts if d == "DENY"},
                "gate_shrinks": {r: n for d, r, n in verdicts if d != "DENY"},
                "orders": int(orders[0]), "fills": int(fills[0]), "snapshots": int(span[2]),
                "first_candle": span[0], "last_candle": span[1], "max_drawdown": float(drawdown[0] or 0.0),
            }  # fmt: skip

        return self._run(run)

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        """Close the run and compute its performance metrics (as the journal store does at a run's end)."""
        now = _now_ms()

        def run(c: psycopg.Connection[Any]) -> None:
            with c.transaction():
                c.execute("UPDATE runs SET status = %s, finished_at = %s, summary = %s WHERE run_id = %s",
                          (status, now, json.dumps(summary), run_id))  # fmt: skip
                c.execute("SELECT tradegraph_finish_metrics(%s, %s)", (run_id, now))

        self._run(run)
