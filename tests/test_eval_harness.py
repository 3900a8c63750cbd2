"""`tradegraph eval` end to end on the bundled real candles: outputs, golden fingerprint, bias analyses, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tools.market import Snapshot
from tools.recorded_feed import CandleSeries, RecordedFeed
from tradegraph.cli import main

# Fingerprint (sha256 of every trade) of the fixed eval below. A change here means the decisions changed:
# update it only together with the change that explains why.
GOLDEN_FINGERPRINT = "7d6f600fc782555842b31d5e14cf8d2db78eea342e00fa8ee09819cdd82650ff"
FIXED = ["eval", "--start", "2024-01-01", "--end", "2024-02-29", "--seeds", "5", "--bootstrap", "200", "--no-progress"]


@pytest.fixture(scope="module")
def fixed_eval(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("eval") / "out"
    assert main([*FIXED, "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_eval_writes_results_report_and_journal(fixed_eval: tuple[Path, dict[str, object]]) -> None:
    out, results = fixed_eval
    assert sorted(p.name for p in out.iterdir()) == ["journal.sqlite", "report.html", "results.json"]
    metrics = results["metrics"]
    assert isinstance(metrics, dict)
    for key in (
        "total_return",
        "annualized_return",
        "volatility",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "max_drawdown_duration",
        "win_rate",
        "profit_factor",
        "expectancy",
        "average_trade",
        "exposure_time",
        "turnover",
        "fees_paid",
        "number_of_trades",
        "gate_denials",
        "llm_calls",
        "llm_tokens",
        "llm_cost_usd",
    ):
        assert key in metrics, key  # fmt: skip
    baselines = results["baselines"]
    assert isinstance(baselines, dict)
    assert {"buy_and_hold", "random"} <= set(baselines)
    assert baselines["random"]["seeds"] == 5
    ci = results["confidence_intervals"]
    assert isinstance(ci, dict)
    assert ci["sharpe"]["low"] <= metrics["sharpe"] <= ci["sharpe"]["high"]
    assert {"sharpe_minus_buy_and_hold", "sharpe_minus_random_median"} <= set(ci)
    assert results["range"] == {"first_candle": "2024-01-01T00:00", "last_candle": "2024-02-29T23:00", "periods": 1440}
    assert results["data_gaps"] == {"BTC/USDT": [], "ETH/USDT": []}
    assert set(results["data"]) == {"binance_BTC-USDT_1h.csv", "binance_ETH-USDT_1h.csv"}  # type: ignore[arg-type]
    assert results["code_version"]["package"] == "0.1.0"  # type: ignore[index]
    assert [p["period"] for p in results["periods"]] == ["2024-01", "2024-02"]  # type: ignore[union-attr]
    assert sum(r["periods"] for r in results["regimes"]) == 1439  # type: ignore[union-attr]
    html = (out / "report.html").read_text()
    assert "<svg" in html and "http://" not in html and "https://" not in html


def test_buy_and_hold_matches_the_recorded_prices(fixed_eval: tuple[Path, dict[str, object]], sample_dir: Path) -> None:
    _, results = fixed_eval
    feed = RecordedFeed(sample_dir)
    total = 0.0
    for symbol in ("BTC/USDT", "ETH/USDT"):
        c = feed.series(symbol, "1h").candles
        entry = float(c.open[c.timestamp == 1704067200000 + 3_600_000][0]) * 1.0005
        last = float(c.close[c.timestamp == 1709247600000][0])
        total += 50_000 / (entry * 1.001) * last
    assert results["baselines"]["buy_and_hold"]["total_return"] == pytest.approx(total / 100_000 - 1, rel=1e-9)  # type: ignore[index]


def test_golden_fingerprint(fixed_eval: tuple[Path, dict[str, object]]) -> None:
    _, results = fixed_eval
    assert results["trades_fingerprint"] == GOLDEN_FINGERPRINT
    assert len(results["trades"]) > 10  # type: ignore[arg-type]


def test_lookahead_analysis_passes_on_the_real_graph(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "lookahead", "--start", "2024-01-01", "--end", "2024-01-08", "--checkpoints", "2",
                 "--jobs", "2", "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no look-ahead bias" in out
    assert out.count("0 changed") == 4


def test_lookahead_analysis_catches_a_planted_leak(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    original = RecordedFeed.snapshot_at

    def leaky(self: RecordedFeed, series: CandleSeries, index: int) -> Snapshot:
        # a biased component: the snapshot's last close is replaced by the NEXT candle's close
        snap = original(self, series, index)
        if index + 1 < len(series.candles):
            close = snap.window.close.copy()
            close[-1] = series.candles.close[index + 1]
            window = type(snap.window)(snap.window.timestamp, snap.window.open, np.maximum(snap.window.high, close),
                                       np.minimum(snap.window.low, close), close, snap.window.volume)  # fmt: skip
            return snap.model_copy(update={"window": window})
        return snap

    monkeypatch.setattr(RecordedFeed, "snapshot_at", leaky)
    code = main(["eval", "lookahead", "--start", "2024-01-01", "--end", "2024-01-08", "--checkpoints", "2",
                 "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3
    last = err.strip().splitlines()[-1]
    assert last.startswith("tradegraph: error: look-ahead bias: decisions changed when only the future changed")


def test_warmup_analysis_reports_the_minimum(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "warmup", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end", "2024-01-15",
                 "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    # the shortest window the indicators accept (201) changes a few decisions; 300 and longer agree
    assert "window of   201 candles: 360 decisions, 5 differ from the longest window" in out
    assert "window of   300 candles: 360 decisions, 0 differ" in out
    assert "window of  1200 candles: 360 decisions, 0 differ" in out
    assert "minimum warm-up: 300 candles (configured window 300, 2208 candles of history before the start)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "XRP/USDT"], "no data for XRP/USDT 1h"),
        (["--start", "2019-01-01", "--end", "2019-02-01"], "start 2019-01-01 is before the BTC/USDT 1h data"),
        (["--start", "2024-12-20", "--end", "2025-03-31"], "end 2025-03-31 is after the BTC/USDT 1h data"),
        (["--start", "2023-10-05"], "too little history before 2023-10-05T00:00 for warm-up: 96 candles"),
        (["--seeds", "0"], "--seeds must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["eval", *args, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_unwritable_out_and_corrupt_data(tmp_path: Path, data_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(
        ["eval", "--start", "2024-01-01", "--end", "2024-01-02", "--out", str(blocker / "out"), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "cannot write to --out" in err and err.count("\n") == 1
    path = data_copy / "binance_BTC-USDT_1h.csv"
    lines = path.read_text().splitlines()
    lines[42] = lines[42] + ",7"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out2"
    code = main(["eval", "--data", str(data_copy), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "binance_BTC-USDT_1h.csv line 43: expected 6 fields, got 7" in err
    assert not out.exists()
