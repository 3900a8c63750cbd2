from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.services import PG_BASE, pg_admin, unavailable
from tradegraph.composition import bundled_data_dir

HEADER = "timestamp,open,high,low,close,volume\n"
HOUR = 3_600_000


@pytest.fixture
def sample_dir() -> Path:
    return bundled_data_dir()


@pytest.fixture
def data_copy(tmp_path: Path, sample_dir: Path) -> Path:
    """A writable copy of the bundled sample, for tests that damage a file."""
    out = tmp_path / "data"
    out.mkdir()
    for f in sample_dir.glob("*.csv"):
        shutil.copy(f, out / f.name)
    return out


def read_rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()[1:]]


def write_rows(path: Path, rows: list[list[str]]) -> None:
    path.write_text(HEADER + "\n".join(",".join(r) for r in rows) + "\n")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A postgresql:// URL on the real server whose search_path is a fresh schema, dropped afterwards."""
    schema = f"tg_test_{secrets.token_hex(4)}"
    try:
        pg_admin(f"CREATE SCHEMA {schema}")
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {PG_BASE} ({exc})")
    yield f"{PG_BASE}?search_path={schema}"
    pg_admin(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="session")
def inspect_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal written by a real paper run (BTC/USDT + ETH/USDT 1h, 2024-02-08 .. 2024-02-15): orders, fills,
    stop-outs, gate denials (COOLDOWN_AFTER_STOP) and a shrink. Read it; copy it before changing anything."""
    from tradegraph.cli import main

    path = tmp_path_factory.mktemp("inspect") / "journal.sqlite"
    code = main(["run", "--start", "2024-02-08", "--end", "2024-02-15", "--journal", str(path), "--no-progress"])
    assert code == 0
    return path
