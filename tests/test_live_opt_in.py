"""Live orders only by explicit opt-in: the setting, the flag and keys from the environment, each missing one
named in one error line (exit 2); sandbox/demo need keys but no live switch; keys never come from files and
are never printed; paper is the default; the banner says the mode loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import load_settings
from tradegraph.cli import build_parser, main
from tradegraph.execution_cli import Execution, banner, mode_line, resolve_execution

KEY = "tg-live-key-Zq81"
SECRET = "tg-live-secret-never-printed-93f1"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("TRADEGRAPH_EXCHANGE_API_KEY", "TRADEGRAPH_EXCHANGE_API_SECRET", "TRADEGRAPH_EXCHANGE_API_PASSWORD",
                "TRADEGRAPH_LIVE__ENABLED", "TRADEGRAPH_EXCHANGE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["run", "--no-progress", "--journal", "j.sqlite", *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tradegraph: error: "), err
    return lines[0]


def test_live_without_the_setting_and_the_keys_names_all_three(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--live"], capsys)
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert "live.enabled = true" in line and "TRADEGRAPH_EXCHANGE_API_KEY" in line
    assert "TRADEGRAPH_EXCHANGE_API_SECRET" in line
    assert not Path("j.sqlite").exists()  # nothing journaled


def test_live_names_only_what_is_missing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE_API_KEY", KEY)
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE_API_SECRET", SECRET)
    code, _, err = run(["--live"], capsys)
    line = one_error_line(err)
    assert code == 2 and "live.enabled" in line and "TRADEGRAPH_EXCHANGE_API" not in line
    monkeypatch.setenv("TRADEGRAPH_LIVE__ENABLED", "1")
    monkeypatch.delenv("TRADEGRAPH_EXCHANGE_API_SECRET")
    code, _, err = run(["--live"], capsys)
    line = one_error_line(err)
    assert code == 2 and "TRADEGRAPH_EXCHANGE_API_SECRET" in line and "live.enabled" not in line
    assert KEY not in err


def test_the_setting_and_keys_without_the_flag_stay_paper(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADEGRAPH_LIVE__ENABLED", "1")
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE_API_KEY", KEY)
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE_API_SECRET", SECRET)
    code, out, err = run(["--start", "2024-02-01", "--end", "2024-02-01", "--symbols", "BTC/USDT"], capsys)
    assert code == 0 and "PAPER TRADING" in err and "LIVE" not in err
    assert KEY not in out + err and SECRET not in out + err


def test_all_three_given_still_no_real_orders_from_a_recorded_replay(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADEGRAPH_LIVE__ENABLED", "1")
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE_API_KEY", KEY)
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE_API_SECRET", SECRET)
    code, _, err = run(["--live"], capsys)
    assert code == 2 and "paper only" in one_error_line(err) and SECRET not in err


def test_sandbox_needs_keys_but_not_the_live_switch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["--sandbox"], capsys)
    line = one_error_line(err)
    assert code == 2 and "sandbox trading on binance needs" in line and "live.enabled" not in line
    assert "TRADEGRAPH_EXCHANGE_API_KEY" in line
    code, _, err = run(["--demo"], capsys)
    assert code == 2 and "demo trading on binance needs" in one_error_line(err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--live", "--sandbox"], "choose one of --sandbox, --live"),
        (["--broker", "ccxt"], "--broker ccxt sends orders to an exchange"),
        (["--broker", "paper", "--sandbox"], "does not go with --broker paper"),
        (["--broker", "kraken"], "invalid choice"),
    ],
)
def test_contradictory_flags(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(args, capsys)
    assert code == 2 and message in one_error_line(err)


def test_keys_in_a_dotenv_file_are_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    Path(".env").write_text(f"TRADEGRAPH_SYMBOLS=BTC/USDT\nexport TRADEGRAPH_EXCHANGE_API_SECRET={SECRET}\n")
    args = build_parser().parse_args(["run", "--sandbox"])
    from tools.errors import ConfigError

    with pytest.raises(ConfigError, match="environment only, never from files") as caught:
        resolve_execution(args, load_settings(), environ={"TRADEGRAPH_EXCHANGE_API_KEY": KEY})
    assert SECRET not in str(caught.value)
    code, out, err = run(["--sandbox"], capsys)  # the same through the command line, whatever the mode
    assert code == 2 and "never from files" in one_error_line(err) and SECRET not in out + err
    Path(".env").write_text("TRADEGRAPH_SYMBOLS=BTC/USDT\n")
    Path("keys.toml").write_text(f'exchange_api_secret = "{SECRET}"\n')
    code, out, err = run(["--config", "keys.toml"], capsys)
    assert code == 2 and "never from files" in one_error_line(err) and SECRET not in out + err


def test_an_exchange_with_key_passwords_asks_for_one(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["run", "--sandbox"])
    env = {"TRADEGRAPH_EXCHANGE_API_KEY": KEY, "TRADEGRAPH_EXCHANGE_API_SECRET": SECRET}
    from tools.errors import ConfigError

    with pytest.raises(ConfigError, match="TRADEGRAPH_EXCHANGE_API_PASSWORD"):
        resolve_execution(args, load_settings(exchange="okx"), environ=env)
    env["TRADEGRAPH_EXCHANGE_API_PASSWORD"] = "pw-1234"
    execution = resolve_execution(args, load_settings(exchange="okx"), environ=env)
    assert execution.mode == "sandbox" and execution.credentials is not None
    assert execution.credentials.password is not None


def test_an_unknown_exchange_id_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["run", "--sandbox"])
    env = {"TRADEGRAPH_EXCHANGE_API_KEY": KEY, "TRADEGRAPH_EXCHANGE_API_SECRET": SECRET}
    from tools.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown exchange 'binanse'.*did you mean binance"):
        resolve_execution(args, load_settings(exchange="binanse"), environ=env)


def test_credentials_never_show_in_repr_or_config() -> None:
    args = build_parser().parse_args(["run", "--sandbox"])
    env = {"TRADEGRAPH_EXCHANGE_API_KEY": KEY, "TRADEGRAPH_EXCHANGE_API_SECRET": SECRET}
    execution = resolve_execution(args, load_settings(), environ=env)
    assert isinstance(execution, Execution) and execution.broker == "ccxt"
    assert KEY not in repr(execution) and SECRET not in repr(execution) and SECRET not in str(execution)
    assert execution.credentials is not None and execution.credentials.ccxt_config()["secret"] == SECRET


def test_paper_is_the_default() -> None:
    args = build_parser().parse_args(["run"])
    assert resolve_execution(args, load_settings(), environ={}) == Execution("paper", None)


def test_the_banner_says_the_mode_loudly() -> None:
    assert "PAPER TRADING" in banner("paper", "binance") and "no real orders" in banner("paper", "binance")
    assert "SANDBOX" in banner("sandbox", "binance") and "no real funds" in banner("sandbox", "binance")
    assert "DEMO" in banner("demo", "binance")
    live = banner("live", "kraken")
    assert "LIVE TRADING" in live and "REAL ORDERS WITH REAL FUNDS on kraken" in live and "on red" in live
    assert mode_line("live", "kraken").startswith("LIVE") and mode_line("paper", "x").startswith("PAPER")


def test_a_mode_the_exchange_lacks_is_refused_before_anything_else() -> None:
    args = build_parser().parse_args(["run", "--sandbox"])
    from tools.errors import ConfigError

    with pytest.raises(ConfigError, match="kraken has no sandbox/testnet in ccxt"):
        resolve_execution(args, load_settings(exchange="kraken"), environ={})
    args = build_parser().parse_args(["run", "--demo"])
    with pytest.raises(ConfigError, match="coinbase has no demo trading environment"):
        resolve_execution(args, load_settings(exchange="coinbase"), environ={})
