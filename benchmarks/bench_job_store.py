"""Why the workers' account store uses psycopg (sync, pipelined) rather than asyncpg on an event-loop thread.

One worker job does, against PostgreSQL: the status check with the account row locked, the settlement's writes
and commit (asynchronous commit), then the decision's insert (synchronous commit). This replays that pattern
on a scratch table with both drivers, alternating blocks so that both see the same machine load, and prints
milliseconds per job and the ratio:

- asyncpg as the journal store drives it: a private event loop on a thread, each step one coroutine handed
  over and waited for (2 hand-overs and 6 round trips a job: asyncpg cannot pipeline);
- psycopg called directly, BEGIN + status + lock in one pipeline and the writes + COMMIT in another
  (3 round trips a job, no thread hand-over).

Usage: python benchmarks/bench_job_store.py [--jobs 400] [--rounds 5]; TRADEGRAPH_TEST_PG picks the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.async_thread import AsyncThread

PG = os.environ.get("TRADEGRAPH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
STATE = "x" * 1500  # about the size of a paper account's JSON state


def setup(table: str) -> None:
    with psycopg.connect(PG, autocommit=True) as c:
        c.execute(f"CREATE TABLE {table}_acct (account text PRIMARY KEY, state text)")
        c.execute(f"CREATE TABLE {table}_dec (id text PRIMARY KEY, candle bigint, body text)")
        c.execute(f"INSERT INTO {table}_acct VALUES ('a', %s)", (STATE,))


def asyncpg_jobs(table: str, n: int, start: int) -> float:
    io = AsyncThread("bench-asyncpg")
    conn: asyncpg.Connection = io.call(asyncpg.connect(PG))

    async def begin(i: int) -> None:
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.fetchval(f"SELECT count(*) FROM {table}_dec WHERE id = $1", f"d{i}")
            state = await conn.fetchval(f"SELECT state FROM {table}_acct WHERE account = 'a' FOR UPDATE")
            await conn.execute(f"UPDATE {table}_acct SET state = $1 WHERE account = 'a'", state)

    async def decide(i: int) -> None:
        await conn.execute(f"INSERT INTO {table}_dec VALUES ($1, $2, $3)", f"d{i}", i, STATE)

    try:
        started = time.perf_counter()
        for i in range(start, start + n):
            io.call(begin(i))
            io.call(decide(i))
        return (time.perf_counter() - started) / n
    finally:
        io.call(conn.close())
        io.close()


def psycopg_jobs(table: str, n: int, start: int) -> float:
    with psycopg.connect(PG, autocommit=True) as c:
        started = time.perf_counter()
        for i in range(start, start + n):
            with c.pipeline():
                c.execute("BEGIN")
                c.execute("SET LOCAL synchronous_commit = off")
                c.execute(f"SELECT count(*) FROM {table}_dec WHERE id = %s", (f"d{i}",))
                cur = c.execute(f"SELECT state FROM {table}_acct WHERE account = 'a' FOR UPDATE")
                row: Any = cur.fetchone()
            with c.pipeline():
                c.execute(f"UPDATE {table}_acct SET state = %s WHERE account = 'a'", (row[0],))
                c.execute("COMMIT")
            c.execute(f"INSERT INTO {table}_dec VALUES (%s, %s, %s)", (f"d{i}", i, STATE))
        return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400, help="jobs per block (default 400)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating blocks per driver (default 5)")
    args = parser.parse_args()
    table = f"tg_bench_store_{secrets.token_hex(3)}"
    setup(table)
    a: list[float] = []
    p: list[float] = []
    try:
        for r in range(args.rounds):
            a.append(asyncpg_jobs(table, args.jobs, 2 * r * args.jobs))
            p.append(psycopg_jobs(table, args.jobs, (2 * r + 1) * args.jobs))
    finally:
        with psycopg.connect(PG, autocommit=True) as c:
            c.execute(f"DROP TABLE {table}_acct, {table}_dec")
    ma, mp = statistics.median(a) * 1e3, statistics.median(p) * 1e3
    print(f"store round trips of one worker job, median of {args.rounds} alternating blocks of {args.jobs} jobs:")
    print(f"  asyncpg on a loop thread : {ma:6.2f} ms/job  (blocks: {', '.join(f'{x * 1e3:.2f}' for x in a)})")
    print(f"  psycopg, pipelined       : {mp:6.2f} ms/job  (blocks: {', '.join(f'{x * 1e3:.2f}' for x in p)})")
    print(f"  ratio                    : {ma / mp:.2f}x")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
