"""Where orders go: the execution flags, the opt-in rules for exchange orders, and the mode banner.

Paper is the default everywhere. Orders reach an exchange only with an explicit mode flag:

- ``--sandbox`` (the exchange's testnet, ccxt's ``set_sandbox_mode``) or ``--demo`` (its demo trading):
  API keys from the environment;
- ``--live`` (real funds): the setting ``live.enabled = true`` (``TRADEGRAPH_LIVE__ENABLED=1``) AND the flag
  AND API keys from the environment. Missing any of them is one error line naming what is missing.

Keys are read from the process environment only (``TRADEGRAPH_EXCHANGE_API_KEY``, ``..._SECRET``, and
``..._PASSWORD`` for exchanges that need one), never from a file (the settings refuse them in .env or a
config file), and are never printed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from infra.settings import Settings
from tools.ccxt_broker_config import ExchangeCredentials
from tools.errors import ConfigError

Mode = Literal["paper", "sandbox", "demo", "live"]
KEY_VARS = ("TRADEGRAPH_EXCHANGE_API_KEY", "TRADEGRAPH_EXCHANGE_API_SECRET", "TRADEGRAPH_EXCHANGE_API_PASSWORD")


@dataclass(frozen=True)
class Execution:
    mode: Mode = "paper"
    credentials: ExchangeCredentials | None = None

    @property
    def broker(self) -> str:
        return "paper" if self.mode == "paper" else "ccxt"


def add_execution_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution (paper trading unless a mode flag says otherwise)")
    g.add_argument("--broker", choices=["paper", "ccxt"], help="paper (default) or orders through ccxt")
    g.add_argument("--sandbox", action="store_true", help="orders on the exchange's sandbox/testnet (no real funds)")
    g.add_argument("--demo", action="store_true", help="orders on the exchange's demo trading (no real funds)")
    g.add_argument(
        "--live", action="store_true", help="REAL orders with real funds (also needs live.enabled and API keys)"
    )


def resolve_execution(
    args: argparse.Namespace,
    settings: Settings,
    environ: Mapping[str, str] | None = None,
) -> Execution:
    """The execution mode the flags, settings and environment allow; ConfigError names what is missing."""
    env = os.environ if environ is None else environ
    modes = [m for m in ("sandbox", "demo", "live") if getattr(args, m, False)]
    broker = getattr(args, "broker", None)
    if len(modes) > 1:
        raise ConfigError(f"choose one of {', '.join('--' + m for m in modes)}")
    if not modes:
        if broker == "ccxt":
            raise ConfigError(
                "--broker ccxt sends orders to an exchange: add --sandbox or --demo (no real funds) or --live"
            )
        return Execution()
    mode: Mode = modes[0]  # type: ignore[assignment]
    if broker == "paper":
        raise ConfigError(f"--{mode} sends orders to the exchange: it does not go with --broker paper")
    from tools.ccxt_broker import check_mode, needs_password

    if mode != "live":
        check_mode(settings.exchange, mode)
    missing = []
    if mode == "live" and not settings.live.enabled:
        missing.append("the setting live.enabled = true (TRADEGRAPH_LIVE__ENABLED=1)")
    key, secret, password = (env.get(v, "").strip() for v in KEY_VARS)
    if not key:
        missing.append(f"{KEY_VARS[0]} in the environment")
    if not secret:
        missing.append(f"{KEY_VARS[1]} in the environment")
    if not password and needs_password(settings.exchange):
        missing.append(f"{KEY_VARS[2]} in the environment ({settings.exchange} keys have a password)")
    if missing:
        what = {"live": "live trading (real orders)", "sandbox": "sandbox trading", "demo": "demo trading"}[mode]
        needs = " and ".join(missing) if len(missing) < 3 else ", ".join(missing[:-1]) + " and " + missing[-1]
        raise ConfigError(f"{what} on {settings.exchange} needs {needs}")
    credentials = ExchangeCredentials(
        api_key=SecretStr(key), secret=SecretStr(secret), password=SecretStr(password) if password else None
    )
    return Execution(mode, credentials)


def banner(mode: Mode, exchange: str) -> str:
    """The loud line a session starts with (rich markup)."""
    if mode == "live":
        return f"[bold white on red] LIVE TRADING [/] [bold red]REAL ORDERS WITH REAL FUNDS on {exchange}[/]"
    if mode == "sandbox":
        return f"[bold black on cyan] SANDBOX [/] [cyan]orders on {exchange}'s testnet · no real funds[/]"
    if mode == "demo":
        return f"[bold black on cyan] DEMO [/] [cyan]orders on {exchange}'s demo trading · no real funds[/]"
    return "[bold black on yellow] PAPER TRADING [/] [yellow]no real orders[/]"


def mode_line(mode: Mode, exchange: str) -> str:
    """The mode as plain text, for the summary."""
    return {
        "paper": "PAPER (no real orders)",
        "sandbox": f"SANDBOX ({exchange} testnet, no real funds)",
        "demo": f"DEMO ({exchange} demo trading, no real funds)",
        "live": f"LIVE ({exchange}, real orders with real funds)",
    }[mode]
