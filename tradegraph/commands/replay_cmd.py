"""`tradegraph replay DECISION_ID`: re-run one journaled decision and report whether it reproduces."""

from __future__ import annotations

import argparse
from pathlib import Path

from tools.errors import DataError, TradegraphError
from tools.timeframes import to_iso
from tradegraph.cli_common import SubParsers

EXIT_NOT_REPRODUCED = 3


class NotReproduced(TradegraphError):
    exit_code = EXIT_NOT_REPRODUCED


def register(sub: SubParsers) -> None:
    p = sub.add_parser("replay", help="re-run one journaled decision and diff it against the journal")
    p.add_argument("decision_id")
    p.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default tradegraph.sqlite)")
    p.add_argument(
        "--data", type=Path, dest="data_dir", help="recorded candles (default: the run's journaled data dir)"
    )
    p.add_argument(
        "--cassette",
        type=Path,
        help="the LLM answers recorded with the run (--record-cassette): needed for decisions of llm, local, crew "
        "and replay runs; replay never calls a model",
    )
    p.set_defaults(handler=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    from infra.settings import load_settings
    from tradegraph.composition import open_journal_reader, replay_one

    reader = open_journal_reader(args.journal if args.journal is not None else load_settings().journal)
    try:
        try:
            report = replay_one(reader, args.decision_id.strip(), args.data_dir, args.cassette)
        except DataError as exc:
            raise DataError(f"{exc} (point --data at the run's recorded candles)") from None
    finally:
        reader.close()
    stored = report.stored
    print(f"decision   {report.decision_id} (run {report.run_id})")
    print(f"market     {stored['symbol']} {stored['timeframe']} candle {to_iso(int(stored['candle_time']))}")
    print(f"journaled  {stored['outcome']}: {stored['reason']}")
    if report.replayed is not None:
        print(f"replayed   {report.replayed['outcome']}: {report.replayed['reason']}")
    if report.data_changed:
        print(f"data       {report.data_changed}")
    else:
        print(f"inputs     window hash {stored['inputs_hash']} matches the recorded data")
    for note in report.notes:
        print(f"note       {note}")
    if report.reproduced:
        print("result     reproduces: the replayed decision is identical to the journaled one")
        return 0
    if report.diff:
        print(f"diff       {len(report.diff)} differing fields:")
        for line in report.diff:
            print(f"  {line}")
    raise NotReproduced(f"decision {report.decision_id} does not reproduce")
