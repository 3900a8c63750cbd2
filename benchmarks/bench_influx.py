"""What the InfluxDB sink costs a replay: the same replay without and with the sink, side by side in one run.

The sink writes to a private victoria-metrics (Debian's, speaking the InfluxDB v2 write API) on loopback,
started here on a free port with a temporary storage dir. Prints, without and with the sink (runs
interleaved, medians): snapshots/s including the final flush, and the process CPU time per snapshot (all
threads, so the sink's writer thread counts; steadier than wall time on a shared machine); their ratios,
the points written and the time the final flush (close) took.

Usage: python benchmarks/bench_influx.py [--months N] [--repeat K]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.influx_sink import InfluxSink  # noqa: E402
from infra.settings import load_settings  # noqa: E402
from tradegraph.composition import build_replay  # noqa: E402


def start_victoria(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("victoria-metrics")
    if binary is None:
        sys.exit("victoria-metrics is not installed (apt-get install victoria-metrics)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, f"-storageDataPath={data}", f"-httpListenAddr=127.0.0.1:{port}",
                             "-retentionPeriod=100y", "-loggerLevel=ERROR"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    sys.exit("victoria-metrics did not start")


def replay(months: int, tmp: Path, url: str | None) -> tuple[float, float, int, float, int]:
    """snapshots/s, CPU ms per snapshot, snapshots, seconds spent closing the sink, points written."""
    end = date(2024, months, 28) if months <= 12 else date(2024, 12, 31)
    overrides = {"influx": {"url": url}} if url else {}
    settings = load_settings(journal=tmp / f"j-{time.monotonic_ns()}.sqlite", start=date(2024, 1, 1), end=end,
                             progress=False, **overrides)  # fmt: skip
    sink = InfluxSink(settings.influx, settings.exchange).start() if url else None
    job = build_replay(settings, observers=[sink] if sink else [])
    started, cpu = time.perf_counter(), time.process_time()
    summary = job.session.run(job.snapshots(), job.config)
    job.journal.close()
    closing = 0.0
    written = 0
    if sink is not None:
        t = time.perf_counter()
        sink.close()
        closing = time.perf_counter() - t
        written = sink.points_written
        assert sink.points_failed == 0, "the sink lost points"
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    n = summary.snapshots
    return n / elapsed, 1000 * cpu / n, n, closing, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        proc, url = start_victoria(tmp / "vm")
        try:
            plain, sunk, plain_cpu, sunk_cpu, closes = [], [], [], [], []
            for _ in range(args.repeat):  # interleaved, so both see the same machine load
                rate, cpu, snapshots, _c, _w = replay(args.months, tmp, None)
                plain.append(rate)
                plain_cpu.append(cpu)
                rate, cpu, _s, close_s, written = replay(args.months, tmp, url)
                sunk.append(rate)
                sunk_cpu.append(cpu)
                closes.append(close_s)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    a, b = statistics.median(plain), statistics.median(sunk)
    ca, cb = statistics.median(plain_cpu), statistics.median(sunk_cpu)
    print(f"replay of {snapshots} snapshots (BTC/USDT + ETH/USDT 1h, {args.months} months), median of {args.repeat}")
    print(f"  without sink        {a:8.0f} snapshots/s  {ca:6.2f} ms CPU/snapshot")
    print(
        f"  with influx sink    {b:8.0f} snapshots/s  {cb:6.2f} ms CPU/snapshot  ({written} points written, 0 failed)"
    )
    print(f"  with/without        {b / a:8.2f}x rate     {cb / ca:6.2f}x CPU")
    print(f"  final flush (close) {1000 * statistics.median(closes):8.0f} ms")


if __name__ == "__main__":
    main()
