"""Reaching the machine's real services from tests.

Locally a test that needs a service skips when it does not answer; with TRADEGRAPH_REQUIRE_SERVICES=1
(set by .ci/run) it fails instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
from typing import NoReturn

import asyncpg
import pytest

PG_BASE = os.environ.get("TRADEGRAPH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("TRADEGRAPH_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


def services_required() -> bool:
    return os.environ.get("TRADEGRAPH_REQUIRE_SERVICES") == "1"


def unavailable(what: str) -> NoReturn:
    """Skip (locally) or fail (in CI) a test whose service or optional dependency is missing."""
    if services_required():
        pytest.fail(f"required but unavailable: {what}")
    pytest.skip(f"unavailable: {what}")


async def _pg_execute(sql: str) -> None:
    # bounded: a lock held by a leaked connection fails the statement after a minute instead of stalling the suite
    conn = await asyncpg.connect(PG_BASE, timeout=10, command_timeout=120, server_settings={"lock_timeout": "60s"})
    try:
        await conn.execute(sql)
    finally:
        await conn.close(timeout=10)


def pg_admin(sql: str) -> None:
    """Run one statement on the test database (outside any journal)."""
    asyncio.run(_pg_execute(sql))
