"""`tradegraph decisions` and `tradegraph explain`: read the journal."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tools.errors import ConfigError, TradegraphError
from tools.timeframes import to_iso
from tradegraph.cli_common import SubParsers, open_journal_arg


def register(sub: SubParsers) -> None:
    dec = sub.add_parser("decisions", help="list journaled decisions")
    dec.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default tradegraph.sqlite)")
    dec.add_argument("--last", type=int, help="only the last N")
    dec.add_argument("--symbol", help="only this symbol")
    dec.add_argument("--run", dest="run_id", help="run id (default: the latest run)")
    dec.add_argument("--json", action="store_true", help="print JSON")
    dec.set_defaults(handler=cmd_decisions)

    exp = sub.add_parser("explain", help="print one decision's full evidence chain")
    exp.add_argument("decision_id")
    exp.add_argument("--journal", help="SQLite journal path or postgresql:// URL (default tradegraph.sqlite)")
    exp.add_argument("--json", action="store_true", help="print JSON")
    exp.set_defaults(handler=cmd_explain)


def cmd_decisions(args: argparse.Namespace) -> int:
    if args.last is not None and args.last <= 0:
        raise ConfigError("--last must be a positive number")
    store = open_journal_arg(args.journal)
    try:
        run_id = args.run_id
        if run_id is None:
            latest = store.latest_run()
            run_id = latest["run_id"] if latest else None
        symbol = args.symbol.upper() if args.symbol else None
        rows = store.list_decisions(last=args.last, symbol=symbol, run_id=run_id) if run_id else []
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no decisions journaled" + (f" for run {run_id}" if run_id else ""))
        return 0
    for r in rows:
        print(
            f"{r['id']}  {to_iso(r['candle_time'])}  {r['symbol']:<10} {r['outcome']:<8} {r['action'] or '-':<4}  {r['reason']}"
        )
    return 0


def explain_text(d: dict[str, Any]) -> str:
    def block(title: str, value: Any) -> str:
        if value in (None, {}, []):
            return f"{title}: -"
        return f"{title}:\n" + "\n".join("  " + line for line in json.dumps(value, indent=2).splitlines())

    head = [
        f"decision   {d['id']} (run {d['run_id']})",
        f"market     {d['symbol']} {d['timeframe']} candle {to_iso(d['candle_time'])} (decided {to_iso(d['as_of'])})",
        f"outcome    {d['outcome']}: {d['reason']}",
        f"inputs     {d['window_length']} candles {to_iso(d['window_start'])} .. {to_iso(d['window_end'])}, "
        f"hash {d['inputs_hash']}",
    ]
    parts = [
        "\n".join(head),
        block("indicators", d.get("indicators")),
        block("signals (incl. candlestick and chart patterns)", d.get("signals")),
        block("aggregate", d.get("aggregate")),
        block("intent", d.get("intent")),
        block("reasoner", d.get("reasoner")),
        block("risk assessment", d.get("risk")),
        block("order proposal", d.get("proposal")),
        block("gate verdict", d.get("verdict")),
        block("orders", d.get("orders")),
        block("fills", d.get("fills")),
        block("portfolio at decision", d.get("portfolio")),
        block("node timings (us)", d.get("node_timings_us")),
    ]
    return "\n".join(parts)


def cmd_explain(args: argparse.Namespace) -> int:
    store = open_journal_arg(args.journal)
    try:
        record = store.get_decision(args.decision_id)
    finally:
        store.close()
    if record is None:
        raise TradegraphError(f"no decision {args.decision_id!r} in {store.path}")
    print(json.dumps(record, indent=1) if args.json else explain_text(record))
    return 0
