"""`tradegraph run --feed ccxt --schedule --sandbox | --live`: the live feed and the ccxt broker together,
end to end through the CLI, against ccxt's real classes behind the wire-level fakes (public and private
endpoints on one fake exchange) and one manual clock."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest

import tradegraph.composition as composition
from tests.ccxt_rig import sleeper
from tests.exchange_wire import FakeExchange, ManualClock
from tests.exchange_wire.orders import CREATE_PATH, MatchingEngine, attach_orders, credentials_for
from tradegraph.cli import main

T_CLOSE = 1723161600000  # 2024-08-09T00:00


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """One fake exchange behind the feed (async ccxt) and the broker (sync ccxt), keys in the environment."""
    made: list[FakeExchange] = []

    def install(exchange_id: str, funds: dict[str, float]) -> tuple[FakeExchange, MatchingEngine]:
        clock = ManualClock(T_CLOSE + 2500)
        fake = FakeExchange(exchange_id, clock)
        engine = attach_orders(fake, funds)
        made.append(fake)
        creds = credentials_for(exchange_id)
        monkeypatch.setenv("TRADEGRAPH_EXCHANGE_API_KEY", creds["apiKey"])
        monkeypatch.setenv("TRADEGRAPH_EXCHANGE_API_SECRET", creds["secret"])
        monkeypatch.setattr(composition, "live_clock", lambda: clock)
        monkeypatch.setattr(composition, "exchange_factory", lambda: fake.factory)
        monkeypatch.setattr(composition, "exchange_client_factory",
                            lambda: lambda i, config: fake.install(getattr(ccxt, i)(dict(config))))  # fmt: skip
        monkeypatch.setattr(composition, "broker_clock", lambda: (clock.now_ms, sleeper(clock)))
        return fake, engine

    monkeypatch.setenv("TRADEGRAPH_FEED__CCXT__RETRY_BASE_DELAY_S", "0")
    for var in ("TRADEGRAPH_LIVE__ENABLED", "TRADEGRAPH_EXCHANGE_API_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    yield install
    for fake in made:
        fake.close()


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_sandbox_session_trades_the_exchange_account_and_says_so(
    wired: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, engine = wired("binance", {"USDT": 5_000.0, "BTC": 0.05})
    journal = tmp_path / "live.sqlite"
    args = ["run", "--feed", "ccxt", "--exchange", "binance", "--symbols", "BTC/USDT", "--schedule", "--iterations",
            "3", "--no-websocket", "--journal", str(journal), "--sandbox"]  # fmt: skip
    code, out, err = cli(args, capsys)
    assert code == 0, err
    assert "SANDBOX" in err and "no real funds" in err and "PAPER" not in err
    assert "reconciliation with binance (sandbox): orders checked 0" in err
    assert "mode           SANDBOX (binance testnet, no real funds)" in out
    equity = 5_000.0 + 0.05 * float(engine.last_price(engine.rules["BTCUSDT"]))
    start = re.search(r"\(start ([\d,.]+)\)", out)
    assert start is not None  # the account's balances at start, not the paper broker's 100,000:
    assert float(start.group(1).replace(",", "")) == pytest.approx(equity, rel=0.01)
    db = sqlite3.connect(journal)
    mode, config = db.execute("SELECT mode, config FROM runs").fetchone()
    execution = json.loads(config)["execution"]
    assert mode == "sandbox" and execution["mode"] == "sandbox" and execution["exchange"] == "binance"
    assert credentials_for("binance")["secret"] not in config + out + err
    signed = [r for r in fake.responder.requests if "signature=" in r.url or r.method == "POST"]
    assert signed and {r.host for r in signed} == {"testnet.binance.vision"}
    code, out, err = cli(args, capsys)  # a restart: reconciled again, nothing duplicated
    assert code == 0, err
    assert "reconciliation with binance (sandbox)" in err
    client_ids = [o.client_id for o in engine.orders]
    assert len(client_ids) == len(set(client_ids)) == fake.responder.count(CREATE_PATH["binance"], "POST")


def test_live_on_kraken_needs_the_switch_then_says_live_loudly(
    wired: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wired("kraken", {"USD": 2_000.0})
    args = ["run", "--feed", "ccxt", "--exchange", "kraken", "--symbols", "BTC/USD", "--journal",
            str(tmp_path / "j.sqlite"), "--live"]  # fmt: skip
    code, _, err = cli(args, capsys)
    assert code == 2 and "needs the setting live.enabled = true" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("TRADEGRAPH_LIVE__ENABLED", "1")
    code, out, err = cli(args, capsys)
    assert code == 0, err
    assert "LIVE TRADING" in err and "REAL ORDERS WITH REAL FUNDS on kraken" in err
    assert "mode           LIVE (kraken, real orders with real funds)" in out


def test_a_mode_the_exchange_lacks_fails_before_connecting(
    wired: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, _ = wired("coinbase", {"USDT": 1_000.0})
    code, _, err = cli(["run", "--feed", "ccxt", "--exchange", "coinbase", "--symbols", "BTC/USDT", "--journal",
                        str(tmp_path / "j.sqlite"), "--sandbox"], capsys)  # fmt: skip
    assert code == 2 and "coinbase has no sandbox/testnet in ccxt" in err
    assert fake.responder.requests == [] and not (tmp_path / "j.sqlite").exists()


def test_exchange_orders_need_live_data(wired: Any, capsys: pytest.CaptureFixture[str]) -> None:
    wired("binance", {"USDT": 1_000.0})
    code, _, err = cli(["run", "--sandbox", "--no-progress"], capsys)
    assert code == 2 and "it needs live data (--feed ccxt)" in err
