"""LLM reasoning cost: decisions/s and LLM calls per 100 snapshots for `rules` and `local`, gating on and off,
and a cassette replay of the gated `local` run (0 calls, identical decisions), all measured in one run.

Prints one row per configuration and the ratios between them. The `local` rows run the bundled SmolLM2-135M
through llama.cpp's server (needs the optional extra local-llm); on a busy 2-core machine a call takes
several seconds, so the default is 48 snapshots (BTC/USDT 1h from 2024-01-01).

Usage: python benchmarks/bench_llm.py [--snapshots N] [--skip-local]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.llm_client import Endpoint  # noqa: E402
from evals.engine import decision_signature  # noqa: E402
from infra.settings import Settings, load_settings  # noqa: E402
from tradegraph.composition import build_replay, llm_endpoint  # noqa: E402


@dataclass
class Row:
    label: str
    snapshots: int
    seconds: float
    calls: int
    replayed: int
    tokens: int
    outcomes: dict[str, int]
    signatures: list[str]

    @property
    def rate(self) -> float:
        return self.snapshots / self.seconds if self.seconds > 0 else float("inf")

    @property
    def per_100(self) -> float:
        return 100 * self.calls / self.snapshots if self.snapshots else 0.0


def settings_for(reasoner: str, journal: Path, gating: bool, **llm: Any) -> Settings:
    return load_settings(
        reasoner=reasoner, symbols="BTC/USDT", start=date(2024, 1, 1), end=date(2024, 3, 31), journal=str(journal),
        progress=False, llm={"gating": {"enabled": gating}, "timeout_s": 300, "max_retries": 0,
                             "budget": {"max_output_tokens": 160}, **llm},
    )  # fmt: skip


def run(label: str, settings: Settings, n: int, endpoint: Endpoint | None = None) -> Row:
    job = build_replay(settings, endpoint=endpoint)
    try:
        snaps = list(islice(job.snapshots(), n))
        start = time.perf_counter()
        summary = job.session.run(snaps, job.config)
        seconds = time.perf_counter() - start
        decisions = job.journal.run_decisions(job.session.run_id)
    finally:
        job.journal.close()
    return Row(label, summary.snapshots, seconds, summary.llm_calls, summary.llm_replayed, summary.llm_tokens,
               summary.llm_outcomes, [decision_signature(d) for d in decisions])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=48)
    parser.add_argument("--skip-local", action="store_true", help="rules only (no local model needed)")
    args = parser.parse_args()
    n = args.snapshots
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        run("warm-up (not shown)", settings_for("rules", t / "w.sqlite", True), n)  # imports, first graph build
        rows.append(run("rules, gating on", settings_for("rules", t / "r1.sqlite", True), n))
        rows.append(run("rules, gating off", settings_for("rules", t / "r2.sqlite", False), n))
        if not args.skip_local:
            cassette = t / "cassette"
            gated = settings_for("local", t / "l1.sqlite", True, record_cassette=cassette)
            started = time.perf_counter()
            with llm_endpoint(gated) as endpoint:
                print(
                    f"local model server up in {time.perf_counter() - started:.1f} s at {endpoint and endpoint.base_url}"
                )
                rows.append(run("local, gating on (recorded)", gated, n, endpoint))
                rows.append(run("local, gating off", settings_for("local", t / "l2.sqlite", False), n, endpoint))
            replay = settings_for("replay", t / "l3.sqlite", True, cassette=cassette)
            rows.append(run("replay of 'local, gating on'", replay, n))
    print(f"\nBTC/USDT 1h, {n} snapshots from 2024-01-01 per configuration (one run, this machine)\n")
    print(f"{'configuration':<30} {'decisions/s':>12} {'LLM calls':>10} {'per 100 snap':>13} {'replayed':>9} "
          f"{'tokens':>8}  reasoner outcomes")  # fmt: skip
    for r in rows:
        outcomes = ", ".join(f"{k}={v}" for k, v in sorted(r.outcomes.items())) or "-"
        print(
            f"{r.label:<30} {r.rate:>12.2f} {r.calls:>10} {r.per_100:>13.1f} {r.replayed:>9} {r.tokens:>8}  {outcomes}"
        )
    by = {r.label: r for r in rows}
    rules_on = by["rules, gating on"]
    if "local, gating on (recorded)" in by:
        local_on, local_off = by["local, gating on (recorded)"], by["local, gating off"]
        replay = by["replay of 'local, gating on'"]
        print()
        print(f"gating cuts LLM calls by {local_off.calls / max(local_on.calls, 1):.1f}x "
              f"({local_off.per_100:.0f} -> {local_on.per_100:.0f} per 100 snapshots)")  # fmt: skip
        print(f"rules vs local (gating on) throughput: {rules_on.rate / local_on.rate:.0f}x")
        print(
            f"replay vs recorded run throughput: {replay.rate / local_on.rate:.0f}x, replay LLM calls: {replay.calls}"
        )
        same = replay.signatures == local_on.signatures
        print(f"replay decisions identical to the recorded run: {same} ({len(replay.signatures)} decisions)")
        if not same or replay.calls:
            sys.exit("replay diverged from the recorded run")


if __name__ == "__main__":
    main()
