"""How the bundled fixtures were cut from the project's recorded market set (run by hand, never by the tests).

    python tests/exchange_wire/data/cut_recordings.py MARKETS_DIR

MARKETS_DIR holds the full recordings (``binance_SOL-USDT_1h.csv``, ``aux/orderbook/*_l2stream_20240808.jsonl.gz``);
they are not part of a clone and nothing needs them: the cut files are committed (see ../PROVENANCE.md).

- ``binance_SOL-USDT_1h.csv``: SOL/USDT 1h candles 2024-07-01 .. 2024-08-31 (UTC), rows copied unchanged.
- ``binance_{BTC,ETH}-USDT_depth.jsonl.gz``: the recorded Binance spot stream of 2024-08-08 from its first
  line to 30 s after the 1,000-level REST depth snapshot, keeping only the snapshot and the
  ``@depth@100ms`` diff messages (bookTicker and trade lines dropped); every kept line is unchanged
  (``<receive time ns> <json>``).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
SOL_FIRST, SOL_LAST = 1719792000000, 1725145200000  # 2024-07-01T00:00, 2024-08-31T23:00
KEEP_AFTER_SNAPSHOT_NS = 30_000_000_000


def cut_candles(markets: Path) -> None:
    src = markets / "binance_SOL-USDT_1h.csv"
    lines = src.read_text().splitlines()
    rows = [line for line in lines[1:] if SOL_FIRST <= int(line.split(",")[0]) <= SOL_LAST]
    (HERE / src.name).write_text("\n".join([lines[0], *rows]) + "\n")


def cut_depth(markets: Path, base: str) -> None:
    src = markets / "aux" / "orderbook" / f"binance_{base}-USDT_l2stream_20240808.jsonl.gz"
    kept: list[str] = []
    snapshot_ns: int | None = None
    with gzip.open(src, "rt") as handle:
        for line in handle:
            received, _, payload = line.rstrip("\n").partition(" ")
            message = json.loads(payload)
            if snapshot_ns is not None and int(received) > snapshot_ns + KEEP_AFTER_SNAPSHOT_NS:
                break
            if "lastUpdateId" in message:
                snapshot_ns = int(received)
                kept.append(line.rstrip("\n"))
            elif str(message.get("stream", "")).endswith("@depth@100ms"):
                kept.append(line.rstrip("\n"))
    with gzip.open(HERE / f"binance_{base}-USDT_depth.jsonl.gz", "wt") as out:
        out.write("\n".join(kept) + "\n")


if __name__ == "__main__":
    root = Path(sys.argv[1])
    cut_candles(root)
    for asset in ("BTC", "ETH"):
        cut_depth(root, asset)
