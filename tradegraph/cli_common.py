"""What the command modules share: the argument parser class, day parsing, settings from flags, journals."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from infra.journal import JournalStore
from infra.settings import Settings, load_settings
from tools.errors import ConfigError
from tools.timeframes import parse_day

EXIT_USER_ERROR = 2
SubParsers: TypeAlias = "argparse._SubParsersAction[Any]"
"""What ``register(sub)`` of a command module receives."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def day(field: str) -> Any:
    return lambda text: parse_day(text, field)


def add_market_flags(p: argparse.ArgumentParser) -> None:
    """The flags shared by `run` and `eval` that select a market and a reasoner."""
    p.add_argument("--exchange", help="ccxt exchange id of the data (default binance)")
    p.add_argument("--symbols", help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    p.add_argument("--timeframe", help="e.g. 1h")
    p.add_argument("--start", type=day("--start"), help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--end", type=day("--end"), help="last day, YYYY-MM-DD (UTC, inclusive)")
    p.add_argument("--data", type=Path, dest="data_dir", help="directory of recorded candle files")
    p.add_argument("--config", type=Path, help="TOML or JSON settings file")
    p.add_argument("--reasoner", choices=["rules", "llm", "local", "crew", "replay"],
                   help="strategy_fusion reasoner: rules (default), llm (an OpenAI-compatible endpoint), local (the "
                        "bundled SmolLM2 via llama.cpp), crew (CrewAI), replay (answers from --cassette)")  # fmt: skip
    cassette = p.add_mutually_exclusive_group()
    cassette.add_argument("--record-cassette", type=Path, metavar="DIR", help="record every LLM answer into DIR")
    cassette.add_argument(
        "--cassette", type=Path, metavar="DIR", help="replay LLM answers from DIR (--reasoner replay)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def market_settings(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings with the market flags shared by `run` and `eval` (flags that were not given are left out)."""
    llm: dict[str, Any] = {}
    if args.record_cassette is not None:
        llm["record_cassette"] = args.record_cassette
    if args.cassette is not None:
        llm["cassette"] = args.cassette
    settings = load_settings(
        args.config,
        exchange=args.exchange,
        symbols=args.symbols,
        timeframe=args.timeframe,
        start=args.start,
        end=args.end,
        data_dir=args.data_dir,
        reasoner=args.reasoner,
        progress=False if args.no_progress else None,
        llm=llm or None,
        **extra,
    )
    check_reasoner_flags(settings)
    return settings


def check_reasoner_flags(settings: Settings) -> None:
    """Cassette flags that cannot do what they say are one clear error, before anything runs."""
    llm = settings.llm
    if settings.reasoner == "replay" and llm.cassette is None:
        raise ConfigError("--reasoner replay needs --cassette DIR (a folder recorded with --record-cassette)")
    if llm.cassette is not None and settings.reasoner != "replay":
        raise ConfigError(
            f"--cassette replays recorded answers: use it with --reasoner replay (not {settings.reasoner})"
        )
    if llm.record_cassette is not None and settings.reasoner not in ("llm", "local", "crew"):
        raise ConfigError(f"--record-cassette records LLM answers: reasoner {settings.reasoner} makes none "
                          "(use --reasoner llm, local or crew)")  # fmt: skip


def open_journal_arg(arg: str | None, read_only: bool = True) -> JournalStore:
    """The journal a --journal flag names, or else the settings' journal."""
    from tradegraph.composition import open_journal

    return open_journal(arg if arg is not None else load_settings().journal, read_only=read_only)
