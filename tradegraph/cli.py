"""The `tradegraph` command line. User-facing errors are one line on stderr and a non-zero exit.

Each command lives in its own module under ``tradegraph.commands``; this module only assembles the parser
and turns errors into exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from infra.logging_setup import configure_logging
from tools.errors import TradegraphError
from tradegraph import __version__
from tradegraph.cli_common import EXIT_USER_ERROR, Parser
from tradegraph.commands import register_all


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tradegraph", description="LLM-orchestrated trading on one LangGraph state machine.")
    parser.add_argument("--version", action="version", version=f"tradegraph {__version__}")
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="log lines on stderr")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="warning")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        configure_logging(args.log_format, args.log_level)
        return int(args.handler(args))
    except TradegraphError as exc:
        print(f"tradegraph: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_USER_ERROR))
    except KeyboardInterrupt:
        print("tradegraph: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line unless TRADEGRAPH_DEBUG asks for the traceback
        if os.environ.get("TRADEGRAPH_DEBUG"):
            traceback.print_exc()
        print(
            f"tradegraph: internal error: {type(exc).__name__}: {exc} (set TRADEGRAPH_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1
