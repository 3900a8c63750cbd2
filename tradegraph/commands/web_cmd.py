"""`tradegraph web`: the read-only dashboard over the journal."""

from __future__ import annotations

from tradegraph.cli_common import SubParsers


def register(sub: SubParsers) -> None:
    del sub
