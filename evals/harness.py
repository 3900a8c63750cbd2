"""`tradegraph eval`: one honest replay of the graph, its metrics, baselines in the same run, and a report.

Everything lands in a staging folder inside --out and is moved into place only when complete, so a failed
or interrupted eval leaves no half-written report.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from evals.baselines import aligned_closes, buy_and_hold, random_entries
from evals.engine import FloatArray, ReplayFactory, StrategyRun, run_strategy, trades_fingerprint
from evals.metrics import (
    Metrics,
    bootstrap_sharpe_ci,
    bootstrap_sharpe_diff_ci,
    compute_metrics,
    drawdown_series,
    max_drawdown,
    period_returns,
    sharpe,
)
from evals.periods import by_period, by_regime, monthly_returns
from evals.report import render_report
from evals.report_data import PriceSeries, ReportData, TradeMark
from infra.settings import Settings, redacted_config
from tools.errors import ConfigError, DataError
from tools.market import Snapshot
from tools.recorded_feed import RecordedFeed
from tools.timeframes import periods_per_year, timeframe_ms, to_iso


@dataclass(frozen=True)
class EvalOptions:
    out: Path
    seeds: int = 20
    bootstrap: int = 1000
    jobs: int = 1


def prepare_output(out: Path) -> Path:
    """Create --out if needed and prove it is writable; returns a fresh staging folder inside it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    except OSError as exc:
        raise ConfigError(f"cannot write to --out {out}: {exc.strerror or exc}") from None


def check_warmup(feed: RecordedFeed, settings: Settings, start: int) -> None:
    need = settings.ta.min_history - 1
    for symbol in settings.symbols:
        series = feed.series(symbol, settings.timeframe)
        have = int(np.searchsorted(series.candles.timestamp, start, side="left"))
        if have < need:
            raise DataError(
                f"too little history before {to_iso(start)} for warm-up: {have} candles of {symbol} "
                f"{settings.timeframe} in {series.path.name}, need {need} (start later or add older data)"
            )


def default_range(feed: RecordedFeed, settings: Settings, start: int | None, end: int | None) -> tuple[int, int]:
    """Without --start, begin once every symbol has a full snapshot window of history."""
    tf = timeframe_ms(settings.timeframe)
    if start is None:
        firsts = [feed.series(s, settings.timeframe).first for s in settings.symbols]
        start = -(-(max(firsts) + settings.window * tf) // 86_400_000) * 86_400_000
    if end is None:
        end = max(feed.series(s, settings.timeframe).last for s in settings.symbols) + tf
    return start, end


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.floating | np.integer):
        return _finite(value.item())
    return value


def code_version() -> dict[str, str | None]:
    try:
        version: str | None = metadata.version("tradegraph")
    except metadata.PackageNotFoundError:
        version = None
    try:
        here = Path(__file__).resolve().parent
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        commit = git.stdout.strip() if git.returncode == 0 else None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit and dirty.stdout.strip():
            commit += "-dirty"
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"package": version, "git": commit}


def data_hashes(feed: RecordedFeed, settings: Settings) -> dict[str, str]:
    out = {}
    for symbol in settings.symbols:
        path = feed.series(symbol, settings.timeframe).path
        out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _baseline_metrics(equity: FloatArray, timestamps: Any, ppy: float, period_ms: int, fees: float) -> Metrics:
    in_pos = np.ones(equity.size, dtype=np.bool_)
    in_pos[0] = False
    return compute_metrics(equity, timestamps, [], in_pos, float(equity[0]) if equity.size else 0.0, fees, ppy,
                           period_ms)  # fmt: skip


def run_eval(
    factory: ReplayFactory,
    settings: Settings,
    feed: RecordedFeed,
    start: int,
    end: int,
    options: EvalOptions,
    on_step: Callable[[Snapshot], None] | None = None,
) -> dict[str, Any]:
    check_warmup(feed, settings, start)
    staging = prepare_output(options.out)
    try:
        results, report = _evaluate(factory, settings, feed, start, end, options, staging, on_step)
        (staging / "results.json").write_text(json.dumps(_finite(results), indent=1, allow_nan=False))
        (staging / "report.html").write_text(render_report(report))
        for name in ("journal.sqlite", "results.json", "report.html"):
            (staging / name).replace(options.out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


def _evaluate(
    factory: ReplayFactory,
    settings: Settings,
    feed: RecordedFeed,
    start: int,
    end: int,
    options: EvalOptions,
    staging: Path,
    on_step: Callable[[Snapshot], None] | None,
) -> tuple[dict[str, Any], ReportData]:
    ppy = periods_per_year(settings.timeframe)
    period_ms = timeframe_ms(settings.timeframe)
    run = run_strategy(factory, settings, feed, staging / "journal.sqlite", on_step=on_step)
    if run.equity.size < 2:
        raise DataError("the range holds fewer than two candles: nothing to evaluate")
    ts, equity = run.timestamps, run.equity
    metrics = compute_metrics(equity, ts, run.trades, run.in_position, run.traded_notional, run.fees_paid, ppy,
                              period_ms)  # fmt: skip
    paper = settings.paper
    bh = buy_and_hold(feed, settings.symbols, settings.timeframe, ts, paper.initial_cash, paper.fee_bps,
                      paper.slippage_bps)  # fmt: skip
    bh_fees = paper.initial_cash * paper.fee_bps / 10_000
    randoms = random_entries(feed, settings.timeframe, ts, equity, run.trades, options.seeds, paper.fee_bps,
                             paper.slippage_bps, period_ms)  # fmt: skip
    random_sharpes = np.array([sharpe(period_returns(c), ppy) for c in randoms])
    random_returns = np.array([c[-1] / c[0] - 1 for c in randoms])
    random_drawdowns = np.array([max_drawdown(c)[0] for c in randoms])
    median_curve = randoms[int(np.argsort(random_sharpes)[len(random_sharpes) // 2])]
    curves: dict[str, FloatArray] = {"buy_and_hold": bh, "random_median": median_curve}
    rules_run: StrategyRun | None = None
    if settings.reasoner != "rules":
        rules_settings = settings.model_copy(update={"reasoner": "rules"})
        rules_run = run_strategy(factory, rules_settings, feed, staging / "rules.sqlite")
        curves["rules"] = rules_run.equity
    r = period_returns(equity)
    ci: dict[str, Any] = {
        "sharpe": dict(zip(("low", "high"), bootstrap_sharpe_ci(r, ppy, n_boot=options.bootstrap), strict=True))
    }
    for name, curve in curves.items():
        low, high = bootstrap_sharpe_diff_ci(r, period_returns(curve), ppy, n_boot=options.bootstrap)
        ci[f"sharpe_minus_{name}"] = {"low": low, "high": high}
    baseline_metrics = {"buy_and_hold": _baseline_metrics(bh, ts, ppy, period_ms, bh_fees).to_dict()}
    if rules_run is not None:
        baseline_metrics["rules"] = compute_metrics(
            rules_run.equity, rules_run.timestamps, rules_run.trades, rules_run.in_position,
            rules_run.traded_notional, rules_run.fees_paid, ppy, period_ms,
        ).to_dict()  # fmt: skip
    closes = [aligned_closes(feed, s, settings.timeframe, ts) for s in settings.symbols]
    index_close = np.mean([c / c[0] for c in closes], axis=0)
    quarterly = (ts[-1] - ts[0]) > 731 * 86_400_000
    summary = run.summary
    results: dict[str, Any] = {
        "config": {
            **redacted_config(settings),
            "start": to_iso(start),
            "end": to_iso(end),
            "data_dir": str(feed.data_dir),
            "journal": "journal.sqlite",
            "seeds": options.seeds,
            "bootstrap": options.bootstrap,
        },
        "code_version": code_version(),
        "data": data_hashes(feed, settings),
        "range": {"first_candle": to_iso(int(ts[0])), "last_candle": to_iso(int(ts[-1])), "periods": int(ts.size)},
        "data_gaps": {
            s: [{"after": to_iso(g.after), "before": to_iso(g.before), "missing": g.missing} for g in gaps]
            for s, gaps in feed.gaps_in(settings.symbols, settings.timeframe, start, end).items()
        },
        "metrics": {
            **metrics.to_dict(),
            "gate_denials": summary.gate_denials,
            "gate_shrinks": summary.gate_shrinks,
            "decisions": summary.outcomes,
            "llm_calls": run.llm.get("calls", 0.0),
            "llm_tokens": run.llm.get("tokens", 0.0),
            "llm_cost_usd": run.llm.get("cost_usd", 0.0),
            "llm_replayed": run.llm.get("replayed", 0.0),
        },
        "baselines": {
            **baseline_metrics,
            "random": {
                "seeds": options.seeds,
                "sharpe_mean": float(random_sharpes.mean()),
                "sharpe_p05": float(np.percentile(random_sharpes, 5)),
                "sharpe_p95": float(np.percentile(random_sharpes, 95)),
                "strategy_sharpe_percentile": float((random_sharpes < metrics.sharpe).mean() * 100),
                "total_return_p05": float(np.percentile(random_returns, 5)),
                "total_return_median": float(np.median(random_returns)),
                "total_return_p95": float(np.percentile(random_returns, 95)),
                "max_drawdown_median": float(np.median(random_drawdowns)),
            },
        },
        "confidence_intervals": ci,
        "periods": by_period(ts, equity, bh, ppy, quarterly),
        "regimes": by_regime(equity, bh, index_close, ppy),
        "trades": [
            {
                "symbol": t.symbol,
                "entry": to_iso(t.entry_time),
                "exit": to_iso(t.exit_time),
                "entry_price": t.entry_price,
                "exit_price": t.exit_price,
                "quantity": t.quantity,
                "pnl": t.pnl,
                "exit_reason": t.exit_reason,
            }
            for t in run.trades
        ],
        "trades_fingerprint": trades_fingerprint(run.trades),
        "run_id": run.run_id,
        "journal": "journal.sqlite",
    }
    report = ReportData(
        title=f"tradegraph eval · {', '.join(settings.symbols)} {settings.timeframe} · {to_iso(start)} .. {to_iso(end)}"
        f" · reasoner {settings.reasoner}",
        timestamps=ts,
        equity=equity,
        baselines=curves,
        drawdown=drawdown_series(equity),
        prices=[PriceSeries(s, ts, c) for s, c in zip(settings.symbols, closes, strict=True)],
        trades=[
            TradeMark(
                t.symbol, t.entry_time, t.entry_price, t.exit_time, t.exit_price, t.quantity, t.pnl, t.exit_reason
            )
            for t in run.trades
        ],
        monthly_returns=monthly_returns(ts, equity),
        metrics={k: v for k, v in results["metrics"].items() if not isinstance(v, dict)},
        baseline_metrics=baseline_metrics,
        sections={
            "Sharpe confidence intervals (block bootstrap)": [{"statistic": k, **v} for k, v in ci.items()],
            "Random-entry baseline": [results["baselines"]["random"]],
            "Gate denials": [{"reason": k, "count": v} for k, v in summary.gate_denials.items()],
            "Per period": results["periods"],
            "Per regime": results["regimes"],
        },
        notes=[
            "Fills at the next candle's open with the configured fee and slippage; every decision is in "
            "journal.sqlite next to this report (tradegraph explain ID --journal journal.sqlite).",
            f"Code {results['code_version']}, data sha256 {results['data']}.",
        ],
    )
    return results, report
