"""PostgreSQL journal store via asyncpg, behind the same JournalStore protocol as the SQLite default.

asyncpg is asynchronous and the graph is synchronous: the store owns a private event loop on a daemon
thread and every call waits for its coroutine there, never longer than ``command_timeout`` (a stalled server
is a clear JournalError, not a hang). Writes are buffered and flushed in one transaction (every
``batch_size`` records, at every decision that carries an order, and on flush/close), so a decision and its
order land together or not at all. A flush writes the decisions with one COPY and every other kind of
statement with one ``executemany``, in a fixed order (decisions before the fills that refer to them).

The v2 schema's derived tables (signals, risk assessments, LLM calls, candles, positions, trades, agent
configs, performance metrics) are written by triggers and functions of the schema in the same transaction
(see ``infra/pg_migrations.py``), so they are consistent with the decisions and fills whoever writes them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import threading
import time
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg

from infra.journal import (
    ACCOUNT_ORDERS_SQL,
    ACCOUNT_POINTS_SQL,
    DecisionRecord,
    PortfolioPoint,
    RunInfo,
    decode_run,
    decode_summary,
)
from infra.pg_migrations import HYPERTABLES, MIGRATIONS, SCHEMA_VERSION
from infra.redact import redact_url
from tools.errors import JournalError
from tools.journal_reader import DecisionQuery
from tools.trade_types import Fill, Order

T = TypeVar("T")

_MIGRATION_LOCK = 7405981
"""With the schema's name hashed as the second key: one migrating process per journal schema."""
_DECISION_COLUMN_LIST = (
    "id", "run_id", "symbol", "timeframe", "candle_time", "as_of", "outcome", "reason", "action", "inputs_hash",
    "window_start", "window_end", "window_length", "body",
)  # fmt: skip
_DECISION_COLUMNS = ", ".join(_DECISION_COLUMN_LIST)
_FILL_COLUMNS = ", ".join(
    f"f.{c}" for c in ("id", "client_order_id", "decision_id", "symbol", "side", "quantity", "price", "fee",
                       "timestamp", "kind", "slippage_bps", "realized_pnl")
)  # fmt: skip
_ORDER_COLUMNS = ", ".join(
    f"o.{c}" for c in ("client_order_id", "decision_id", "symbol", "side", "quantity", "reference_price",
                       "submitted_at", "kind", "status", "filled_quantity", "stop_loss", "take_profit")
)  # fmt: skip
"""The reader's fill and order rows: the same columns from both stores."""
_BODY_FIELDS = {
    "indicators", "signals", "aggregate", "intent", "reasoner", "risk", "proposal", "verdict", "order",
    "portfolio", "node_timings_us", "candle",
}  # fmt: skip
_ACCOUNT = {
    "exchange": "(r.config -> 'execution' ->> 'exchange')",
    "mode": "(r.config -> 'execution' ->> 'mode')",
    "p1": "$1",
    "p2": "$2",
}
_ORDER_UPSERT = (
    "INSERT INTO orders VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT (client_order_id) DO UPDATE SET "
    "status = excluded.status, filled_quantity = excluded.filled_quantity"
)
_FILL_INSERT = (
    "INSERT INTO fills (client_order_id, decision_id, symbol, side, quantity, price, fee, timestamp, kind, "
    "slippage_bps, realized_pnl) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
)
_PORTFOLIO_UPSERT = (
    "INSERT INTO portfolio_snapshots VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (run_id, timestamp) DO UPDATE "
    "SET cash = excluded.cash, equity = excluded.equity, gross_exposure = excluded.gross_exposure, "
    "drawdown = excluded.drawdown, positions = excluded.positions"
)
_FLUSH_ORDER = (_ORDER_UPSERT, _FILL_INSERT, _PORTFOLIO_UPSERT)
"""After the decisions' COPY: fills find their run through their decision (a trigger looks it up)."""

_OPEN: weakref.WeakSet[PostgresJournal] = weakref.WeakSet()


@atexit.register
def _stop_open_loops() -> None:
    """A journal left open must not keep its loop thread busy while the interpreter exits."""
    for journal in list(_OPEN):
        journal._stop()


def _order_args(o: Order) -> tuple[Any, ...]:
    return (o.client_order_id, o.decision_id, o.symbol, o.side.value, o.quantity, o.reference_price, o.submitted_at,
            o.kind, o.status.value, o.filled_quantity, o.stop_loss, o.take_profit)  # fmt: skip


class PostgresJournal:
    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        batch_size: int = 500,
        connect_timeout: float = 10.0,
        command_timeout: float = 120.0,
    ) -> None:
        self.url = url
        self.path = redact_url(url)
        self.batch_size = batch_size
        self.command_timeout = command_timeout
        self.hypertables: list[str] = []
        self._decisions: list[tuple[Any, ...]] = []
        self._statements: dict[str, list[tuple[Any, ...]]] = {sql: [] for sql in _FLUSH_ORDER}
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tradegraph-pg", daemon=True)
        self._thread.start()
        _OPEN.add(self)
        settings = {"lock_timeout": f"{int(command_timeout * 1000)}ms", "application_name": "tradegraph"}
        try:
            self._conn: asyncpg.Connection = self._call(
                asyncpg.connect(url, timeout=connect_timeout, command_timeout=command_timeout,
                                server_settings=settings),
                timeout=connect_timeout + 5,
            )  # fmt: skip
        except (TimeoutError, OSError, asyncpg.PostgresError, ValueError, JournalError) as exc:
            self._closed = True
            self._stop()
            raise JournalError(f"cannot connect to the journal at {self.path}: {type(exc).__name__}: {exc}") from None
        try:
            self.timescaledb = bool(self._call(self._conn.fetchval(
                "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")))  # fmt: skip
            self.schema_version = self._call(self._migrate(read_only))
            self.hypertables = self._call(self._hypertable_names())
            if read_only:  # readers (explain, chat, replay, web) cannot write, whatever they run
                self._call(self._conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"))
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self.close()
            raise JournalError(f"cannot prepare the journal at {self.path}: {type(exc).__name__}: {exc}") from None
        except BaseException:
            self.close()
            raise

    # --- the loop thread ------------------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the store's loop and wait for it, at most ``timeout`` (default: the command timeout)."""
        if self._loop.is_closed() or not self._thread.is_alive():
            coro.close()
            raise JournalError(f"the journal at {self.path} is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        limit = self.command_timeout + 10 if timeout is None else timeout
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise JournalError(f"the journal at {self.path} did not answer within {limit:.0f} s") from None

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
        _OPEN.discard(self)

    # --- schema ---------------------------------------------------------------------------------------
    async def _version(self) -> int:
        c = self._conn
        if not await c.fetchval("SELECT to_regclass('tradegraph_schema_version') IS NOT NULL"):
            return 0
        return int(await c.fetchval("SELECT version FROM tradegraph_schema_version"))

    async def _migrate(self, read_only: bool) -> int:
        c = self._conn
        version = await self._version()
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path} has journal schema v{version}; this tradegraph reads up to v{SCHEMA_VERSION}"
            )
        if version == SCHEMA_VERSION and (read_only or not await self._missing_hypertables()):
            return version
        if read_only:
            raise JournalError(f"{self.path} has journal schema v{version}; run `tradegraph db upgrade` first")
        async with c.transaction():
            try:  # one migrating process at a time; the others wait here, then find the schema up to date
                await c.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK}, hashtext(current_schema()))")
            except asyncpg.LockNotAvailableError:
                raise JournalError(
                    f"timed out after {self.command_timeout:.0f} s waiting for another process migrating {self.path}"
                ) from None
            if not await c.fetchval("SELECT to_regclass('tradegraph_schema_version') IS NOT NULL"):
                await c.execute("CREATE TABLE tradegraph_schema_version (version INTEGER NOT NULL)")
                await c.execute("INSERT INTO tradegraph_schema_version VALUES (0)")
            version = int(await c.fetchval("SELECT version FROM tradegraph_schema_version"))
            for v in range(version + 1, SCHEMA_VERSION + 1):
                await c.execute(MIGRATIONS[v])
                await c.execute("UPDATE tradegraph_schema_version SET version = $1", v)
            await self._create_hypertables()
        return SCHEMA_VERSION

    async def _timescaledb_schema(self) -> str | None:
        schema: str | None = await self._conn.fetchval(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'timescaledb'"
        )
        return schema

    async def _hypertable_names(self) -> list[str]:
        if await self._timescaledb_schema() is None:
            return []
        rows = await self._conn.fetch(
            "SELECT hypertable_name FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = current_schema() ORDER BY hypertable_name"
        )
        return [r[0] for r in rows]

    async def _missing_hypertables(self) -> list[str]:
        if await self._timescaledb_schema() is None or await self._version() < 2:
            return []
        present = set(await self._hypertable_names())
        return [table for table, _, _ in HYPERTABLES if table not in present]

    async def _create_hypertables(self) -> None:
        ext = await self._timescaledb_schema()
        if ext is None:
            return
        for table, column, interval in HYPERTABLES:
            if table in await self._missing_hypertables():
                await self._conn.execute(
                    f"SELECT {ext}.create_hypertable('{table}'::regclass, {ext}.by_range('{column}', {interval}::bigint), "
                    "migrate_data => true)"
                )

    # --- writing ------------------------------------------------------------------------------------
    def _pending_count(self) -> int:
        return len(self._decisions) + sum(len(rows) for rows in self._statements.values())

    def _after_queue(self, flush_now: bool = False) -> None:
        if flush_now or self._pending_count() >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self._closed or not self._pending_count():
            return
        decisions, self._decisions = self._decisions, []
        statements, self._statements = self._statements, {sql: [] for sql in _FLUSH_ORDER}

        async def write() -> None:
            async with self._conn.transaction():
                if decisions:
                    await self._conn.copy_records_to_table("decisions", records=decisions,
                                                           columns=_DECISION_COLUMN_LIST)  # fmt: skip
                for sql in _FLUSH_ORDER:
                    if statements[sql]:
                        await self._conn.executemany(sql, statements[sql])

        try:
            self._call(write())
        except asyncpg.UniqueViolationError as exc:
            raise JournalError(f"journal refused a duplicate record: {exc}") from None
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, JournalError) as exc:
            # nothing is lost: the batch is retried at the next flush
            self._decisions = decisions + self._decisions
            for sql in _FLUSH_ORDER:
                self._statements[sql] = statements[sql] + self._statements[sql]
            if isinstance(exc, JournalError):
                raise
            raise JournalError(f"journal write to {self.path} failed: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            with contextlib.suppress(Exception):  # closing a broken connection must not hide the original error
                self._call(self._conn.close(timeout=5), timeout=10)
            self._stop()

    def _execute_now(self, sql: str, *args: Any) -> str:
        """One statement in its own transaction, after what is pending."""
        self.flush()
        try:
            result: str = self._call(self._conn.execute(sql, *args))
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise JournalError(f"journal write to {self.path} failed: {type(exc).__name__}: {exc}") from None
        return result

    def start_run(self, run: RunInfo) -> None:
        self._execute_now("INSERT INTO runs (run_id, started_at, mode, status, config) VALUES ($1, $2, $3, 'running', $4)",
                          run.run_id, run.started_at, run.mode, json.dumps(run.config))  # fmt: skip

    def reopen_run(self, run_id: str) -> None:
        if self._execute_now("UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = $1",
                             run_id) == "UPDATE 0":  # fmt: skip
            raise JournalError(f"no run {run_id!r} in {self.path}")

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        self.flush()
        now = int(time.time() * 1000)

        async def finish() -> None:
            async with self._conn.transaction():
                await self._conn.execute("UPDATE runs SET status = $1, finished_at = $2, summary = $3 WHERE run_id = $4",
                                         status, now, json.dumps(summary), run_id)  # fmt: skip
                await self._conn.execute("SELECT tradegraph_finish_metrics($1, $2)", run_id, now)

        try:
            self._call(finish())
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise JournalError(f"journal write to {self.path} failed: {type(exc).__name__}: {exc}") from None

    def record_decision(self, record: DecisionRecord, order: Order | None = None) -> None:
        body = json.dumps(record.model_dump(include=_BODY_FIELDS, mode="json"), separators=(",", ":"))
        self._decisions.append(
            (record.id, record.run_id, record.symbol, record.timeframe, record.candle_time, record.as_of,
             record.outcome, record.reason, record.action, record.inputs_hash, record.window_start, record.window_end,
             record.window_length, body)
        )  # fmt: skip
        if order is not None:
            self._statements[_ORDER_UPSERT].append(_order_args(order))
        self._after_queue(flush_now=order is not None)

    def record_order(self, order: Order) -> None:
        self._statements[_ORDER_UPSERT].append(_order_args(order))
        self._after_queue()

    def record_fills(self, fills: list[Fill]) -> None:
        self._statements[_FILL_INSERT].extend(
            (f.client_order_id, f.decision_id, f.symbol, f.side.value, f.quantity, f.price, f.fee, f.timestamp, f.kind,
             f.slippage_bps, f.realized_pnl)
            for f in fills
        )  # fmt: skip
        self._after_queue()

    def record_portfolio(self, point: PortfolioPoint) -> None:
        self._statements[_PORTFOLIO_UPSERT].append(
            (point.run_id, point.timestamp, point.cash, point.equity, point.gross_exposure, point.drawdown,
             json.dumps(point.positions))
        )  # fmt: skip
        self._after_queue()

    # --- reading ------------------------------------------------------------------------------------
    def _rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        try:
            records = self._call(self._conn.fetch(sql, *args))
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise JournalError(f"journal read from {self.path} failed: {exc}") from None
        return [dict(r) for r in records]

    def latest_run(self) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1")
        return decode_run(rows[0]) if rows else None

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id = $1", run_id)
        return decode_run(rows[0]) if rows else None

    def list_decisions(
        self, last: int | None = None, symbol: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, run_id, symbol, timeframe, candle_time, outcome, reason, action FROM decisions "
            "WHERE ($1::text IS NULL OR symbol = $1) AND ($2::text IS NULL OR run_id = $2) "
            "ORDER BY candle_time DESC, symbol DESC, seq DESC"
        )
        if last is not None:
            sql += f" LIMIT {int(last)}"
        return list(reversed(self._rows(sql, symbol, run_id)))

    def _with_body(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for row in rows:
            row.update(json.loads(row.pop("body")))
        return rows

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        rows = self._with_body(self._rows(f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE id = $1", decision_id))
        if not rows:
            return None
        record = rows[0]
        record["orders"] = self._rows("SELECT * FROM orders WHERE decision_id = $1 ORDER BY submitted_at", decision_id)
        record["fills"] = self._rows(
            "SELECT client_order_id, decision_id, symbol, side, quantity, price, fee, timestamp, kind, slippage_bps, "
            "realized_pnl FROM fills WHERE decision_id = $1 ORDER BY timestamp, id",
            decision_id,
        )
        return record

    def portfolio_points(self, run_id: str, start: int | None = None, end: int | None = None) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT * FROM portfolio_snapshots WHERE run_id = $1 AND ($2::bigint IS NULL OR timestamp >= $2) "
            "AND ($3::bigint IS NULL OR timestamp < $3) ORDER BY timestamp",
            run_id, start, end,
        )  # fmt: skip
        for row in rows:
            row["positions"] = json.loads(row["positions"])
        return rows

    def account_orders(self, exchange: str, mode: str) -> list[dict[str, Any]]:
        return self._rows(ACCOUNT_ORDERS_SQL.format(**_ACCOUNT), exchange, mode)

    def account_portfolio(self, exchange: str, mode: str) -> dict[str, Any] | None:
        rows = self._rows(ACCOUNT_POINTS_SQL.format(**_ACCOUNT), exchange, mode)
        if not rows:
            return None
        rows[0]["positions"] = json.loads(rows[0]["positions"])
        return rows[0]

    def run_fills(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT id, client_order_id, decision_id, symbol, side, quantity, price, fee, timestamp, kind, "
            "slippage_bps, realized_pnl FROM fills WHERE run_id = $1 ORDER BY timestamp, id",
            run_id,
        )

    def run_decisions(self, run_id: str) -> list[dict[str, Any]]:
        return self._with_body(
            self._rows(f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE run_id = $1 ORDER BY candle_time, seq", run_id)
        )

    def llm_usage_since(self, since_ms: int) -> dict[str, float]:
        self.flush()  # this store buffers writes: count them too
        rows = self._rows(
            "SELECT COUNT(*) AS calls, "
            "COALESCE(SUM((c->>'input_tokens')::bigint + (c->>'output_tokens')::bigint), 0) AS tokens, "
            "COALESCE(SUM((c->>'cost_usd')::double precision), 0) AS cost_usd "
            "FROM decisions d, jsonb_array_elements(CASE jsonb_typeof(d.body->'reasoner'->'calls') "
            "WHEN 'array' THEN d.body->'reasoner'->'calls' ELSE '[]'::jsonb END) c "
            "WHERE (c->>'called_at')::bigint >= $1 AND c->>'source' <> 'replayed' "
            "AND c->>'outcome' <> 'budget_exhausted'",
            since_ms,
        )
        row = rows[0]
        return {"calls": float(row["calls"]), "tokens": float(row["tokens"]), "cost_usd": float(row["cost_usd"])}

    # --- the read-only queries of tools.journal_reader.JournalReader ---------------------------------
    def list_runs(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT run_id, started_at, finished_at, mode, status FROM runs ORDER BY started_at DESC, run_id DESC"
        )

    @staticmethod
    def _where(q: DecisionQuery) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        for column, value in (("run_id", q.run_id), ("symbol", q.symbol), ("action", q.action)):
            if value is not None:
                where.append(f"{column} = {arg(value)}")
        if q.start is not None:
            where.append(f"candle_time >= {arg(q.start)}")
        if q.end is not None:
            where.append(f"candle_time < {arg(q.end)}")
        if q.verdict is not None:
            where.append(f"body->'verdict'->>'decision' = {arg(q.verdict)}")
        if q.outcomes is not None:
            where.append(f"outcome = ANY({arg(list(q.outcomes))}::text[])")
        return (" WHERE " + " AND ".join(where)) if where else "", args

    def find_decisions(self, query: DecisionQuery) -> list[dict[str, Any]]:
        where, args = self._where(query)
        direction = "DESC" if query.newest_first else "ASC"
        n = len(args)
        sql = (
            "SELECT id, run_id, symbol, timeframe, candle_time, as_of, outcome, reason, action, "
            "body->'verdict'->>'decision' AS verdict, (body->'verdict'->'reasons')::text AS gate_reasons, "
            f"(body->'indicators'->>'close')::float8 AS close FROM decisions{where} "
            f"ORDER BY candle_time {direction}, seq {direction} LIMIT ${n + 1} OFFSET ${n + 2}"
        )
        return [decode_summary(r) for r in self._rows(sql, *args, query.limit, query.offset)]

    def count_decisions(self, query: DecisionQuery) -> int:
        where, args = self._where(query)
        return int(self._rows(f"SELECT count(*) AS n FROM decisions{where}", *args)[0]["n"])

    def portfolio_at(self, run_id: str, at: int) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT * FROM portfolio_snapshots WHERE run_id = $1 AND timestamp <= $2 ORDER BY timestamp DESC LIMIT 1",
            run_id, at,
        )  # fmt: skip
        if not rows:
            return None
        rows[0]["positions"] = json.loads(rows[0]["positions"])
        return rows[0]

    def fills_between(
        self, run_id: str, start: int | None = None, end: int | None = None, symbol: str | None = None
    ) -> list[dict[str, Any]]:
        return self._rows(
            f"SELECT {_FILL_COLUMNS} FROM fills f JOIN decisions d ON d.id = f.decision_id WHERE d.run_id = $1 "
            "AND ($2::bigint IS NULL OR f.timestamp >= $2) AND ($3::bigint IS NULL OR f.timestamp < $3) "
            "AND ($4::text IS NULL OR f.symbol = $4) ORDER BY f.timestamp, f.id",
            run_id, start, end, symbol,
        )  # fmt: skip

    def closes(
        self, run_id: str, symbol: str, start: int | None = None, end: int | None = None
    ) -> list[tuple[int, float, str]]:
        rows = self._rows(
            "SELECT candle_time, (body->'indicators'->>'close')::float8 AS close, id FROM decisions "
            "WHERE run_id = $1 AND symbol = $2 AND ($3::bigint IS NULL OR candle_time >= $3) "
            "AND ($4::bigint IS NULL OR candle_time < $4) AND body->'indicators' ? 'close' ORDER BY candle_time, seq",
            run_id, symbol, start, end,
        )  # fmt: skip
        return [(int(r["candle_time"]), float(r["close"]), str(r["id"])) for r in rows]

    def placed_orders(self, run_id: str, end: int | None = None) -> list[dict[str, Any]]:
        return self._rows(
            f"SELECT {_ORDER_COLUMNS}, d.candle_time FROM orders o JOIN decisions d ON o.client_order_id = d.id || '-o' "
            "WHERE d.run_id = $1 AND ($2::bigint IS NULL OR d.candle_time < $2) ORDER BY d.candle_time, d.seq",
            run_id, end,
        )  # fmt: skip

    def run_symbols(self, run_id: str) -> list[str]:
        rows = self._rows("SELECT DISTINCT symbol FROM decisions WHERE run_id = $1 ORDER BY symbol", run_id)
        return [r["symbol"] for r in rows]

    def time_span(self, run_id: str) -> tuple[int, int] | None:
        row = self._rows("SELECT min(candle_time) AS lo, max(candle_time) AS hi FROM decisions WHERE run_id = $1",
                         run_id)[0]  # fmt: skip
        return None if row["lo"] is None else (int(row["lo"]), int(row["hi"]))
