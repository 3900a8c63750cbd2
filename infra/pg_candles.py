"""Downloaded candles into a PostgreSQL journal's ``candles`` table (exchange, symbol, timeframe, open time).

The table comes with the journal schema (``infra/pg_migrations.py``); opening the sink migrates the journal
first, as every journal use does. Rows are upserted (a candle downloaded again replaces the stored one), in
one transaction per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from infra.redact import redact_url
from tools.errors import JournalError

UPSERT = """
INSERT INTO candles (exchange, symbol, timeframe, open_time, open, high, low, close, volume)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume
"""


class PgCandleSink:
    def __init__(self, url: str, connect_timeout: float = 10.0) -> None:
        from infra.postgres_journal import PostgresJournal

        self.url = url
        self.path = redact_url(url)
        self.connect_timeout = connect_timeout
        PostgresJournal(url).close()  # creates or migrates the journal schema
        if not self._run(self._has_table()):
            raise JournalError(f"the journal at {self.path} has no candles table (its schema predates it)")

    def bounds(self, exchange: str, symbol: str, timeframe: str) -> tuple[int, int] | None:
        """The first and last stored open time of a series, or None when it has none."""
        row = self._run(self._fetchrow(
            "SELECT min(open_time), max(open_time) FROM candles WHERE exchange = $1 AND symbol = $2 AND timeframe = $3",
            exchange, symbol, timeframe,
        ))  # fmt: skip
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def upsert(self, exchange: str, symbol: str, timeframe: str, rows: Sequence[Sequence[float]]) -> int:
        args = [(exchange, symbol, timeframe, int(r[0]), *map(float, r[1:6])) for r in rows]
        if args:
            self._run(self._executemany(UPSERT, args))
        return len(args)

    # --- plumbing -----------------------------------------------------------------------------------
    def _run(self, coro: Any) -> Any:
        try:
            return asyncio.run(coro)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise JournalError(f"candles at {self.path}: {type(exc).__name__}: {exc}") from None

    async def _connect(self) -> Any:
        return await asyncpg.connect(self.url, timeout=self.connect_timeout)

    async def _has_table(self) -> bool:
        conn = await self._connect()
        try:
            return bool(await conn.fetchval("SELECT to_regclass('candles') IS NOT NULL"))
        finally:
            await conn.close()

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        conn = await self._connect()
        try:
            return await conn.fetchrow(sql, *args)
        finally:
            await conn.close()

    async def _executemany(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        conn = await self._connect()
        try:
            async with conn.transaction():
                await conn.executemany(sql, args)
        finally:
            await conn.close()
