"""`tradegraph db upgrade`: create or migrate the journal schema."""

from __future__ import annotations

import argparse

from infra.redact import redact_url
from infra.settings import load_settings
from tradegraph.cli_common import SubParsers


def register(sub: SubParsers) -> None:
    db = sub.add_parser("db", help="journal database administration")
    db.add_argument("action", choices=["upgrade"], help="create or migrate the journal schema")
    db.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default: the settings' journal)")
    db.set_defaults(handler=cmd_db)


def cmd_db(args: argparse.Namespace) -> int:
    from tradegraph.composition import open_journal

    target = args.journal if args.journal is not None else load_settings().journal
    store = open_journal(target)
    try:
        timescale = getattr(store, "timescaledb", None)
        hypertables = getattr(store, "hypertables", [])
        version = store.schema_version
    finally:
        store.close()
    if timescale is None:
        extension = ""
    elif timescale:
        extension = f", TimescaleDB loaded (hypertables: {', '.join(hypertables) or 'none'})"
    else:
        extension = ", plain PostgreSQL (no TimescaleDB: candles, equity and metrics are plain tables)"
    print(f"journal {redact_url(str(target))} is at schema v{version}{extension}")
    return 0
