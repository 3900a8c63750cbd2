"""`tradegraph chat`: ask the journal questions, from a terminal or from standard input."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from tools.errors import JournalError
from tradegraph.cli_common import SubParsers

if TYPE_CHECKING:
    from tradegraph.composition import ChatSession

QUIT = {"quit", "exit", ":q", "bye"}


def add_chat_flags(p: argparse.ArgumentParser) -> None:
    """The flags shared by `chat` and `web`: journal, run and the optional LLM."""
    p.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default tradegraph.sqlite)")
    p.add_argument("--run", dest="run_id", help="run id to inspect (default: the latest run)")
    p.add_argument("--llm", help="'local' (bundled SmolLM2), an OpenAI-compatible base URL, or 'none' (default)")
    p.add_argument("--model", help="model name at the --llm endpoint")
    p.add_argument("--config", help="TOML or JSON settings file")


def register(sub: SubParsers) -> None:
    p = sub.add_parser("chat", help="ask questions about journaled decisions (TTY or standard input)")
    add_chat_flags(p)
    p.add_argument("-q", "--question", action="append", help="answer this question and exit (repeatable)")
    p.set_defaults(handler=cmd_chat)


def open_chat(args: argparse.Namespace) -> ChatSession:
    from pathlib import Path

    from infra.settings import load_settings
    from tradegraph.composition import ChatSession, open_journal_reader

    overrides: dict[str, Any] = {}
    if args.llm is not None or args.model is not None:
        base = load_settings(Path(args.config) if args.config else None).chat
        overrides["chat"] = base.model_copy(
            update={k: v for k, v in {"llm": args.llm, "model": args.model}.items() if v is not None}
        )
    settings = load_settings(Path(args.config) if args.config else None, journal=args.journal, **overrides)
    reader = open_journal_reader(settings.journal)
    try:
        return ChatSession(reader, settings.chat, args.run_id)
    except BaseException:
        reader.close()
        raise


def _ask(session: ChatSession, question: str) -> str:
    try:
        return session.answer(question).text
    except JournalError as exc:  # e.g. the journal vanished or is locked: say so and keep the session
        return f"The journal could not be read: {exc}"


def cmd_chat(args: argparse.Namespace) -> int:
    session = open_chat(args)
    try:
        interactive = sys.stdin.isatty() and not args.question
        if session.uses_llm and not interactive:  # what answers, on stderr: standard output keeps the answers only
            print(f"tradegraph chat: {session.description}", file=sys.stderr)
        if args.question:
            for i, q in enumerate(args.question):
                print(("\n" if i else "") + _ask(session, q))
            return 0
        if interactive:
            run = session.tools.run()
            where = f"run {run['run_id']}" if run else "no run yet"
            print(f"tradegraph chat · journal {session.reader.path} · {where} · {session.description}")
            print("Ask about decisions, positions, denials or performance; 'help' lists the forms; 'quit' ends.")
        first = True
        while True:
            if interactive:
                try:
                    line = input("> ")
                except EOFError:
                    print()
                    break
            else:
                raw = sys.stdin.readline()
                if not raw:
                    break
                line = raw
            question = line.strip()
            if not question:
                continue
            if question.lower() in QUIT:
                break
            if not interactive:
                print(("" if first else "\n") + f"> {question}")
            print(_ask(session, question))
            first = False
        return 0
    finally:
        session.close()
        session.reader.close()
