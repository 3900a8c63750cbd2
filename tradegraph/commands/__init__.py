"""One module per command group; each has ``register(subparsers)`` and sets ``handler`` on its parsers."""

from __future__ import annotations

from tradegraph.cli_common import SubParsers
from tradegraph.commands import db_cmd, download_cmd, eval_cmd, journal_cmds, run_cmd

MODULES = [run_cmd, eval_cmd, journal_cmds, db_cmd, download_cmd]


def register_all(sub: SubParsers) -> None:
    for module in MODULES:
        module.register(sub)
