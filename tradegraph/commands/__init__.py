"""One module per command group; each has ``register(subparsers)`` and sets ``handler`` on its parsers."""

from __future__ import annotations

from tradegraph.cli_common import SubParsers
from tradegraph.commands import (
    chat_cmd,
    db_cmd,
    download_cmd,
    eval_cmd,
    journal_cmds,
    replay_cmd,
    run_cmd,
    schedule_cmd,
    web_cmd,
    worker_cmd,
)

MODULES = [
    run_cmd,
    eval_cmd,
    journal_cmds,
    db_cmd,
    download_cmd,
    replay_cmd,
    chat_cmd,
    web_cmd,
    schedule_cmd,
    worker_cmd,
]


def register_all(sub: SubParsers) -> None:
    for module in MODULES:
        module.register(sub)
