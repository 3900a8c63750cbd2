"""Look-ahead and warm-up analysis, in the manner of freqtrade's lookahead-analysis and recursive-analysis.

Look-ahead: for each checkpoint c, the market is re-run twice: with every candle after c removed, and with
every candle after c perturbed (random multiplicative noise on OHLC, volume rescaled). Every decision at or
before c must be identical to the full run's: same inputs hash (the window the decision saw), outcome,
action, gate decision and order. Any difference means some component used data from after its decision time.

Warm-up: indicators are computed on the snapshot window, so the start-up history an indicator sees is the
window length. The same period is re-run with windows of H candles for several H and the decisions (route,
action, gate verdict, order) are compared with the longest window's. The minimum warm-up is the smallest H
from which every longer window gives identical decisions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evals.engine import ReplayFactory, decision_key, decision_outcome, decision_signature
from infra.settings import Settings
from tools.errors import DataError
from tools.market import CandleWindow
from tools.recorded_feed import CandleSeries, RecordedFeed, find_gaps
from tools.timeframes import to_iso


def _slice(series: CandleSeries, lo: int, hi: int) -> CandleSeries:
    c = series.candles
    window = CandleWindow(c.timestamp[lo:hi], c.open[lo:hi], c.high[lo:hi], c.low[lo:hi], c.close[lo:hi],
                          c.volume[lo:hi])  # fmt: skip
    return replace(series, candles=window, gaps=find_gaps(window.timestamp, series.timeframe))


def truncate_after(series: CandleSeries, t: int) -> CandleSeries:
    return _slice(series, 0, int(np.searchsorted(series.candles.timestamp, t, side="right")))


def perturb_after(series: CandleSeries, t: int, seed: int) -> CandleSeries:
    c = series.candles
    cut = int(np.searchsorted(c.timestamp, t, side="right"))
    rng = np.random.default_rng(seed)
    n = len(c) - cut
    factor = np.exp(rng.normal(0.0, 0.02, n))
    o, h, lo, cl = (arr.copy() for arr in (c.open, c.high, c.low, c.close))
    o[cut:], cl[cut:] = o[cut:] * factor, cl[cut:] * factor[::-1]
    h[cut:] = np.maximum.reduce([h[cut:] * factor, o[cut:], cl[cut:]])
    lo[cut:] = np.minimum.reduce([lo[cut:] * factor, o[cut:], cl[cut:]])
    v = c.volume.copy()
    v[cut:] = v[cut:] * rng.uniform(0.5, 1.5, n)
    return replace(series, candles=CandleWindow(c.timestamp, o, h, lo, cl, v))


@dataclass(frozen=True)
class Variant:
    label: str
    kind: str  # full | truncate | perturb | window
    at: int = 0
    seed: int = 0


def _run_variant(
    factory: ReplayFactory, settings: Settings, feed: RecordedFeed, v: Variant, start: int
) -> dict[tuple[str, int], Any]:
    if v.kind == "truncate":
        feed = feed.derive(lambda s: truncate_after(s, v.at))
    elif v.kind == "perturb":
        feed = feed.derive(lambda s: perturb_after(s, v.at, v.seed))
    elif v.kind == "window":
        feed = feed.derive(lambda s: s, window=v.at)
    job = factory(settings.model_copy(update={"progress": False}), feed=feed, journal_path=Path(":memory:"))
    try:
        job.session.run(job.snapshots(), job.config)
        decisions = job.journal.run_decisions(job.session.run_id)
    finally:
        job.journal.close()
    sign = decision_outcome if v.kind == "window" else decision_signature
    return {decision_key(d): sign(d) for d in decisions}


def _run_all(
    factory: ReplayFactory,
    settings: Settings,
    feed: RecordedFeed,
    variants: Sequence[Variant],
    start: int,
    jobs: int,
    on_done: Callable[[str], None] | None = None,
) -> list[dict[tuple[str, int], Any]]:
    done = on_done or (lambda _label: None)
    results = []
    if jobs <= 1:
        for v in variants:
            results.append(_run_variant(factory, settings, feed, v, start))
            done(v.label)
        return results
    with ProcessPoolExecutor(max_workers=min(jobs, os.cpu_count() or 1)) as pool:
        futures = [pool.submit(_run_variant, factory, settings, feed, v, start) for v in variants]
        for v, future in zip(variants, futures, strict=True):
            results.append(future.result())
            done(v.label)
    return results


def _compare(
    reference: dict[tuple[str, int], Any], other: dict[tuple[str, int], Any], until: int | None
) -> tuple[int, list[dict[str, Any]]]:
    keys = [k for k in reference if until is None or k[1] <= until]
    diffs = []
    for key in keys:
        if other.get(key) != reference[key]:
            diffs.append({"symbol": key[0], "candle": to_iso(key[1]), "expected": str(reference[key]),
                          "got": str(other.get(key, "missing"))})  # fmt: skip
    return len(keys), diffs


def lookahead_analysis(
    factory: ReplayFactory,
    settings: Settings,
    feed: RecordedFeed,
    start: int,
    end: int,
    checkpoints: int,
    jobs: int,
    on_done: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    times = sorted({int(t) for s in settings.symbols for t in feed.series(s, settings.timeframe).candles.timestamp
                    if start <= t < end})  # fmt: skip
    if len(times) < 2:
        raise DataError("look-ahead analysis needs at least two candles in the range")
    picks = sorted({times[int(i)] for i in np.linspace(len(times) * 0.2, len(times) - 2, checkpoints)})
    variants = [Variant("full", "full")]
    for i, at in enumerate(picks):
        variants += [Variant(f"truncated after {to_iso(at)}", "truncate", at),
                     Variant(f"perturbed after {to_iso(at)}", "perturb", at, seed=i)]  # fmt: skip
    results = _run_all(factory, settings, feed, variants, start, jobs, on_done)
    reference = results[0]
    rows = []
    for variant, decisions in zip(variants[1:], results[1:], strict=True):
        compared, diffs = _compare(reference, decisions, variant.at)
        rows.append({"variant": variant.label, "checkpoint": to_iso(variant.at), "decisions_compared": compared,
                     "changed": len(diffs), "first_change": diffs[0] if diffs else None})  # fmt: skip
    return {"biased": any(r["changed"] for r in rows), "checkpoints": [to_iso(t) for t in picks], "rows": rows}


def warmup_analysis(
    factory: ReplayFactory,
    settings: Settings,
    feed: RecordedFeed,
    start: int,
    lengths: Sequence[int],
    jobs: int,
    on_done: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    available = min(
        int(np.searchsorted(feed.series(s, settings.timeframe).candles.timestamp, start, side="left"))
        for s in settings.symbols
    )
    lengths = sorted({h for h in lengths if settings.ta.min_history <= h <= available + 1})
    if not lengths:
        raise DataError(f"too little history before {to_iso(start)} for a warm-up analysis ({available} candles)")
    variants = [Variant(f"window of {h} candles", "window", h) for h in lengths]
    results = _run_all(factory, settings, feed, variants, start, jobs, on_done)
    reference = results[-1]
    rows = []
    for h, decisions in zip(lengths, results, strict=True):
        compared, diffs = _compare(reference, decisions, None)
        rows.append({"window": h, "decisions_compared": compared, "changed": len(diffs),
                     "first_change": diffs[0] if diffs else None})  # fmt: skip
    minimum = lengths[-1]
    for row in reversed(rows):
        if row["changed"]:
            break
        minimum = row["window"]
    return {"available_history": available, "minimum_warmup": minimum, "window": settings.window, "rows": rows}
