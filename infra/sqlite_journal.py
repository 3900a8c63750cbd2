"""SQLite journal store: the embedded default. WAL mode, writes batched in transactions.

A decision and its order are written by one call inside one transaction, so a crash can lose the last
uncommitted batch but never leaves a half-written decision.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from infra.journal import (
    ACCOUNT_ORDERS_SQL,
    ACCOUNT_POINTS_SQL,
    DecisionRecord,
    PortfolioPoint,
    RunInfo,
    decode_run,
    decode_summary,
)
from tools.errors import JournalError
from tools.journal_reader import DecisionQuery
from tools.trade_types import Fill, Order

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, finished_at INTEGER, mode TEXT NOT NULL,
        status TEXT NOT NULL, config TEXT NOT NULL, summary TEXT
    );
    CREATE TABLE decisions (
        id TEXT PRIMARY KEY, run_id TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL,
        candle_time INTEGER NOT NULL, as_of INTEGER NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL,
        action TEXT, inputs_hash TEXT NOT NULL, window_start INTEGER NOT NULL, window_end INTEGER NOT NULL,
        window_length INTEGER NOT NULL, body TEXT NOT NULL,
        UNIQUE (run_id, symbol, timeframe, candle_time)
    );
    CREATE INDEX decisions_symbol_time ON decisions (symbol, candle_time);
    CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY, decision_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
        quantity REAL NOT NULL, reference_price REAL NOT NULL, submitted_at INTEGER NOT NULL, kind TEXT NOT NULL,
        status TEXT NOT NULL, filled_quantity REAL NOT NULL, stop_loss REAL, take_profit REAL
    );
    CREATE INDEX orders_decision ON orders (decision_id);
    CREATE TABLE fills (
        id INTEGER PRIMARY KEY AUTOINCREMENT, client_order_id TEXT NOT NULL, decision_id TEXT NOT NULL,
        symbol TEXT NOT NULL, side TEXT NOT NULL, quantity REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL,
        timestamp INTEGER NOT NULL, kind TEXT NOT NULL, slippage_bps REAL NOT NULL, realized_pnl REAL NOT NULL
    );
    CREATE INDEX fills_decision ON fills (decision_id);
    CREATE TABLE portfolio_snapshots (
        run_id TEXT NOT NULL, timestamp INTEGER NOT NULL, cash REAL NOT NULL, equity REAL NOT NULL,
        gross_exposure REAL NOT NULL, drawdown REAL NOT NULL, positions TEXT NOT NULL,
        PRIMARY KEY (run_id, timestamp)
    );
    """,
}
SCHEMA_VERSION = max(MIGRATIONS)

_DECISION_COLUMNS = (
    "id, run_id, symbol, timeframe, candle_time, as_of, outcome, reason, action, inputs_hash, "
    "window_start, window_end, window_length, body"
)
_FILL_COLUMNS = ", ".join(
    f"f.{c}" for c in ("id", "client_order_id", "decision_id", "symbol", "side", "quantity", "price", "fee",
                       "timestamp", "kind", "slippage_bps", "realized_pnl")
)  # fmt: skip
_ORDER_COLUMNS = ", ".join(
    f"o.{c}" for c in ("client_order_id", "decision_id", "symbol", "side", "quantity", "reference_price",
                       "submitted_at", "kind", "status", "filled_quantity", "stop_loss", "take_profit")
)  # fmt: skip
"""The reader's fill and order rows: the same columns from both stores."""
_BODY_FIELDS = (
    "indicators", "signals", "aggregate", "intent", "reasoner", "risk", "proposal", "verdict", "order",
    "portfolio", "node_timings_us", "candle",
)  # fmt: skip

_ACCOUNT = {
    "exchange": "json_extract(r.config, '$.execution.exchange')",
    "mode": "json_extract(r.config, '$.execution.mode')",
    "p1": "?",
    "p2": "?",
}
_ORDER_UPSERT = (
    "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (client_order_id) DO UPDATE SET "
    "status = excluded.status, filled_quantity = excluded.filled_quantity"
)


def _order_params(order: Order) -> tuple[Any, ...]:
    return (
        order.client_order_id, order.decision_id, order.symbol, order.side.value, order.quantity,
        order.reference_price, order.submitted_at, order.kind, order.status.value, order.filled_quantity,
        order.stop_loss, order.take_profit,
    )  # fmt: skip


class SqliteJournal:
    def __init__(self, path: Path, *, read_only: bool = False, batch_size: int = 500) -> None:
        self.path = path
        self.batch_size = batch_size
        self._uncommitted = 0
        try:
            if read_only:
                if path.is_dir():
                    raise JournalError(f"journal {path} is a directory, not a journal file")
                if not path.is_file():
                    raise JournalError(f"journal {path} does not exist (run `tradegraph run` first)")
                if path.stat().st_size == 0:
                    raise JournalError(f"journal {path} is an empty file, not a tradegraph journal")
                # one read-only connection may serve several threads (the web app), each call under its lock
                self._db = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self.schema_version = self._migrate(read_only)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{path} is not a usable tradegraph journal ({exc})") from None
        except OSError as exc:
            raise JournalError(f"cannot open journal {path}: {exc}") from None

    def _migrate(self, read_only: bool) -> int:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = 0
        if "schema_version" in tables:
            version = int(self._db.execute("SELECT version FROM schema_version").fetchone()[0])
        elif tables:
            raise JournalError(f"{self.path} is an SQLite file but not a tradegraph journal")
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path} has journal schema v{version}; this tradegraph reads up to v{SCHEMA_VERSION}"
            )
        if version == SCHEMA_VERSION:
            return version
        if read_only:
            raise JournalError(f"{self.path} has journal schema v{version}; open it once for writing to upgrade")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if version == 0:
                self._db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                self._db.execute("INSERT INTO schema_version VALUES (0)")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("UPDATE schema_version SET version = ?", (v,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return SCHEMA_VERSION

    # --- writing ------------------------------------------------------------------------------------
    def _write(self, sql: str, params: tuple[Any, ...] | list[tuple[Any, ...]], many: bool = False) -> None:
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            if many:
                self._db.executemany(sql, params)
            else:
                self._db.execute(sql, params)
            self._uncommitted += 1
            if self._uncommitted >= self.batch_size:
                self.flush()
        except sqlite3.IntegrityError as exc:
            raise JournalError(f"journal refused a duplicate record: {exc}") from None
        except sqlite3.Error as exc:
            raise JournalError(f"journal write failed: {exc}") from None

    def flush(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._uncommitted = 0

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._db.close()

    def start_run(self, run: RunInfo) -> None:
        self._write(
            "INSERT INTO runs (run_id, started_at, mode, status, config) VALUES (?, ?, ?, 'running', ?)",
            (run.run_id, run.started_at, run.mode, json.dumps(run.config)),
        )
        self.flush()

    def reopen_run(self, run_id: str) -> None:
        self.flush()
        cur = self._db.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = ?", (run_id,))
        if cur.rowcount == 0:
            raise JournalError(f"no run {run_id!r} in {self.path}")

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        self._write(
            "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE run_id = ?",
            (status, int(time.time() * 1000), json.dumps(summary), run_id),
        )
        self.flush()

    def record_decision(self, record: DecisionRecord, order: Order | None = None) -> None:
        body = record.model_dump(include=set(_BODY_FIELDS), mode="json")
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.id, record.run_id, record.symbol, record.timeframe, record.candle_time, record.as_of,
                    record.outcome, record.reason, record.action, record.inputs_hash, record.window_start,
                    record.window_end, record.window_length, json.dumps(body, separators=(",", ":")),
                ),
            )
        ]  # fmt: skip
        if order is not None:
            statements.append((_ORDER_UPSERT, _order_params(order)))
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            self._db.execute("SAVEPOINT decision")
            for sql, params in statements:
                self._db.execute(sql, params)
            self._db.execute("RELEASE decision")
        except sqlite3.IntegrityError as exc:
            self._db.execute("ROLLBACK TO decision")
            self._db.execute("RELEASE decision")
            raise JournalError(f"decision {record.id} is already journaled ({exc})") from None
        self._uncommitted += 1
        if self._uncommitted >= self.batch_size:
            self.flush()

    def record_order(self, order: Order) -> None:
        self._write(_ORDER_UPSERT, _order_params(order))

    def record_fills(self, fills: list[Fill]) -> None:
        if not fills:
            return
        self._write(
            "INSERT INTO fills (client_order_id, decision_id, symbol, side, quantity, price, fee, timestamp, kind, "
            "slippage_bps, realized_pnl) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    f.client_order_id, f.decision_id, f.symbol, f.side.value, f.quantity, f.price, f.fee,
                    f.timestamp, f.kind, f.slippage_bps, f.realized_pnl,
                )
                for f in fills
            ],
            many=True,
        )  # fmt: skip

    def record_portfolio(self, point: PortfolioPoint) -> None:
        self._write(
            "INSERT OR REPLACE INTO portfolio_snapshots VALUES (?,?,?,?,?,?,?)",
            (
                point.run_id, point.timestamp, point.cash, point.equity, point.gross_exposure, point.drawdown,
                json.dumps(point.positions),
            ),
        )  # fmt: skip

    # --- reading ------------------------------------------------------------------------------------
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        try:
            cur = self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise JournalError(f"journal read failed: {exc}") from None
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def latest_run(self) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1")
        return decode_run(rows[0]) if rows else None

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return decode_run(rows[0]) if rows else None

    def list_decisions(
        self, last: int | None = None, symbol: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if symbol:
            where.append("symbol = ?")
            params.append(symbol)
        if run_id:
            where.append("run_id = ?")
            params.append(run_id)
        sql = "SELECT id, run_id, symbol, timeframe, candle_time, outcome, reason, action FROM decisions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY candle_time DESC, symbol DESC, rowid DESC"
        if last is not None:
            sql += f" LIMIT {int(last)}"
        return list(reversed(self._rows(sql, tuple(params))))

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE id = ?", (decision_id,))
        if not rows:
            return None
        record = rows[0]
        record.update(json.loads(record.pop("body")))
        record["orders"] = self._rows(
            "SELECT * FROM orders WHERE decision_id = ? ORDER BY submitted_at", (decision_id,)
        )
        record["fills"] = self._rows("SELECT * FROM fills WHERE decision_id = ? ORDER BY timestamp, id", (decision_id,))
        return record

    def portfolio_points(self, run_id: str, start: int | None = None, end: int | None = None) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT * FROM portfolio_snapshots WHERE run_id = ? AND (? IS NULL OR timestamp >= ?) "
            "AND (? IS NULL OR timestamp < ?) ORDER BY timestamp",
            (run_id, start, start, end, end),
        )
        for row in rows:
            row["positions"] = json.loads(row["positions"])
        return rows

    def account_orders(self, exchange: str, mode: str) -> list[dict[str, Any]]:
        return self._rows(ACCOUNT_ORDERS_SQL.format(**_ACCOUNT), (exchange, mode))

    def account_portfolio(self, exchange: str, mode: str) -> dict[str, Any] | None:
        rows = self._rows(ACCOUNT_POINTS_SQL.format(**_ACCOUNT), (exchange, mode))
        if not rows:
            return None
        rows[0]["positions"] = json.loads(rows[0]["positions"])
        return rows[0]

    def run_fills(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT f.* FROM fills f JOIN decisions d ON d.id = f.decision_id WHERE d.run_id = ? "
            "ORDER BY f.timestamp, f.id",
            (run_id,),
        )

    def run_decisions(self, run_id: str) -> list[dict[str, Any]]:
        """Every decision of a run with its full body, in journal order."""
        rows = self._rows(
            f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE run_id = ? ORDER BY candle_time, rowid", (run_id,)
        )
        for row in rows:
            row.update(json.loads(row.pop("body")))
        return rows

    def llm_usage_since(self, since_ms: int) -> dict[str, float]:
        rows = self._rows(
            "SELECT COUNT(*) AS calls, "
            "COALESCE(SUM(json_extract(c.value, '$.input_tokens') + json_extract(c.value, '$.output_tokens')), 0) "
            "AS tokens, COALESCE(SUM(json_extract(c.value, '$.cost_usd')), 0) AS cost_usd "
            "FROM decisions d, json_each(d.body, '$.reasoner.calls') c "
            "WHERE json_extract(d.body, '$.reasoner.calls') IS NOT NULL "
            "AND json_extract(c.value, '$.called_at') >= ? AND json_extract(c.value, '$.source') != 'replayed' "
            "AND json_extract(c.value, '$.outcome') != 'budget_exhausted'",
            (since_ms,),
        )
        row = rows[0]
        return {"calls": float(row["calls"]), "tokens": float(row["tokens"]), "cost_usd": float(row["cost_usd"])}

    # --- the read-only queries of tools.journal_reader.JournalReader ---------------------------------
    def list_runs(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT run_id, started_at, finished_at, mode, status FROM runs ORDER BY started_at DESC, rowid DESC"
        )

    def _where(self, q: DecisionQuery) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("run_id", q.run_id), ("symbol", q.symbol), ("action", q.action)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if q.start is not None:
            where.append("candle_time >= ?")
            params.append(q.start)
        if q.end is not None:
            where.append("candle_time < ?")
            params.append(q.end)
        if q.verdict is not None:
            where.append("json_extract(body, '$.verdict.decision') = ?")
            params.append(q.verdict)
        if q.outcomes is not None:
            where.append(f"outcome IN ({','.join('?' * len(q.outcomes))})" if q.outcomes else "0")
            params.extend(q.outcomes)
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def find_decisions(self, query: DecisionQuery) -> list[dict[str, Any]]:
        where, params = self._where(query)
        direction = "DESC" if query.newest_first else "ASC"
        sql = (
            "SELECT id, run_id, symbol, timeframe, candle_time, as_of, outcome, reason, action, "
            "json_extract(body, '$.verdict.decision') AS verdict, json_extract(body, '$.verdict.reasons') AS "
            f"gate_reasons, json_extract(body, '$.indicators.close') AS close FROM decisions{where} "
            f"ORDER BY candle_time {direction}, rowid {direction} LIMIT ? OFFSET ?"
        )
        limit = query.limit if query.limit is not None else -1
        return [decode_summary(r) for r in self._rows(sql, (*params, limit, query.offset))]

    def count_decisions(self, query: DecisionQuery) -> int:
        where, params = self._where(query)
        return int(self._rows(f"SELECT count(*) AS n FROM decisions{where}", tuple(params))[0]["n"])

    def portfolio_at(self, run_id: str, at: int) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT * FROM portfolio_snapshots WHERE run_id = ? AND timestamp <= ? ORDER BY timestamp DESC LIMIT 1",
            (run_id, at),
        )
        if not rows:
            return None
        rows[0]["positions"] = json.loads(rows[0]["positions"])
        return rows[0]

    def fills_between(
        self, run_id: str, start: int | None = None, end: int | None = None, symbol: str | None = None
    ) -> list[dict[str, Any]]:
        return self._rows(
            f"SELECT {_FILL_COLUMNS} FROM fills f JOIN decisions d ON d.id = f.decision_id WHERE d.run_id = ? "
            "AND (? IS NULL OR f.timestamp >= ?) AND (? IS NULL OR f.timestamp < ?) AND (? IS NULL OR f.symbol = ?) "
            "ORDER BY f.timestamp, f.id",
            (run_id, start, start, end, end, symbol, symbol),
        )

    def closes(
        self, run_id: str, symbol: str, start: int | None = None, end: int | None = None
    ) -> list[tuple[int, float, str]]:
        rows = self._rows(
            "SELECT candle_time, json_extract(body, '$.indicators.close') AS close, id FROM decisions "
            "WHERE run_id = ? AND symbol = ? AND (? IS NULL OR candle_time >= ?) AND (? IS NULL OR candle_time < ?) "
            "AND json_extract(body, '$.indicators.close') IS NOT NULL ORDER BY candle_time, rowid",
            (run_id, symbol, start, start, end, end),
        )
        return [(int(r["candle_time"]), float(r["close"]), str(r["id"])) for r in rows]

    def placed_orders(self, run_id: str, end: int | None = None) -> list[dict[str, Any]]:
        return self._rows(
            f"SELECT {_ORDER_COLUMNS}, d.candle_time FROM orders o JOIN decisions d ON o.client_order_id = d.id || '-o' "
            "WHERE d.run_id = ? AND (? IS NULL OR d.candle_time < ?) ORDER BY d.candle_time, d.rowid",
            (run_id, end, end),
        )

    def run_symbols(self, run_id: str) -> list[str]:
        return [r["symbol"] for r in self._rows(
            "SELECT DISTINCT symbol FROM decisions WHERE run_id = ? ORDER BY symbol", (run_id,))]  # fmt: skip

    def time_span(self, run_id: str) -> tuple[int, int] | None:
        row = self._rows("SELECT min(candle_time) AS lo, max(candle_time) AS hi FROM decisions WHERE run_id = ?",
                         (run_id,))[0]  # fmt: skip
        return None if row["lo"] is None else (int(row["lo"]), int(row["hi"]))
