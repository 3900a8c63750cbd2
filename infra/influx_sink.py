"""Optional InfluxDB time-series sink: decided candles, indicator values and order books, via influxdb-client.

Measurements (InfluxDB line protocol, millisecond precision, UTC):

| measurement | tags | fields | time |
|---|---|---|---|
| ``ohlcv`` | symbol, timeframe, exchange | open, high, low, close, volume | the decided candle's open time |
| ``indicator`` | symbol, timeframe, exchange | one float field per indicator (rsi, macd, atr, ...) | the same candle time |
| ``orderbook`` | symbol, exchange | bid, ask, bid_qty, ask_qty, mid, spread, spread_bps, bid_depth, ask_depth, imbalance | the book's time |
| ``orderbook`` | symbol, exchange, side (bid/ask), level (1..N) | price, qty | the book's time |

``bid_depth``/``ask_depth`` are the quantities summed over the top ``depth_levels`` levels of each side and
``imbalance`` = (bid_depth - ask_depth) / (bid_depth + ask_depth). Non-finite values are never written.

Writes use the client's batching ``WriteApi``: each decision's points are queued as one item and a background
thread sends them in batches (``batch_size`` items or every ``flush_interval_ms``), so a slow or absent
server never stalls the graph. ``close()`` is the explicit flush: it sends what is queued and waits (bounded by the retry budget).
A batch that still fails after its retries is logged with the URL redacted and counted
(``points_failed``; ``tradegraph_sink_points_total{sink="influx",status="failed"}`` when metrics run). The
run goes on: the journal is the source of truth and the sink is a view of it.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import WriteApi, WriteOptions, WriteType
from influxdb_client.rest import ApiException
from influxdb_client.service.ping_service import PingService
from reactivex.scheduler import ThreadPoolScheduler

from infra.influx_settings import InfluxSettings
from infra.journal import PortfolioPoint
from infra.logging_setup import redact_text
from infra.redact import redact_url
from tools.errors import TradegraphError
from tools.market import Snapshot
from tools.trade_types import Fill

log = logging.getLogger("tradegraph.influx")

RETRY_INTERVAL_MS = 1_000


class SinkError(TradegraphError):
    """A time-series sink cannot be reached or configured (exit 2)."""


class SinkCounter(Protocol):
    def record_sink_points(self, sink: str, status: str, count: int) -> None: ...


def _finite(fields: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[name] = float(value)
    return out


def _point(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any], time_ms: int) -> Point | None:
    values = _finite(fields)
    if not values:
        return None
    point = Point(measurement)
    for key, tag in tags.items():
        point.tag(key, tag)
    for key, value in values.items():
        point.field(key, value)
    return point.time(int(time_ms), WritePrecision.MS)


def candle_point(snapshot: Snapshot, exchange: str) -> Point | None:
    """The decided candle (the snapshot's last closed candle) as an ``ohlcv`` point."""
    w = snapshot.window
    fields = {"open": w.open[-1], "high": w.high[-1], "low": w.low[-1], "close": w.close[-1], "volume": w.volume[-1]}
    tags = {"symbol": snapshot.symbol, "timeframe": snapshot.timeframe, "exchange": exchange}
    return _point("ohlcv", tags, {k: float(v) for k, v in fields.items()}, snapshot.candle_time)


def indicator_point(snapshot: Snapshot, indicators: Mapping[str, float], exchange: str) -> Point | None:
    """A decision's indicator values as one ``indicator`` point, one field per indicator."""
    tags = {"symbol": snapshot.symbol, "timeframe": snapshot.timeframe, "exchange": exchange}
    return _point("indicator", tags, indicators, snapshot.candle_time)


def _side(levels: Iterable[Sequence[Any]], descending: bool) -> list[tuple[float, float]]:
    rows = [(float(level[0]), float(level[1])) for level in levels]
    rows = [(p, q) for p, q in rows if q > 0 and math.isfinite(p) and math.isfinite(q)]
    return sorted(rows, key=lambda r: -r[0] if descending else r[0])


def order_book_points(
    symbol: str, book: Mapping[str, Any], exchange: str, levels: int, fallback_time_ms: int | None = None
) -> list[Point]:
    """A ccxt unified order book (``{'bids': [[price, amount], ...], 'asks': [...], 'timestamp': ms}``) as
    ``orderbook`` points: the top of book with spread and depth, and the top ``levels`` levels of each side.

    Empty levels (amount 0) are ignored; a book with neither side, or without a time, gives no points.
    """
    time_ms = book.get("timestamp") or fallback_time_ms
    if time_ms is None:
        return []
    bids = _side(book.get("bids") or [], descending=True)
    asks = _side(book.get("asks") or [], descending=False)
    if not bids and not asks:
        return []
    tags = {"symbol": symbol, "exchange": exchange}
    top: dict[str, float] = {}
    if bids:
        top["bid"], top["bid_qty"] = bids[0]
        top["bid_depth"] = math.fsum(q for _p, q in bids[:levels]) if levels else bids[0][1]
    if asks:
        top["ask"], top["ask_qty"] = asks[0]
        top["ask_depth"] = math.fsum(q for _p, q in asks[:levels]) if levels else asks[0][1]
    if bids and asks:
        top["mid"] = (top["bid"] + top["ask"]) / 2
        top["spread"] = top["ask"] - top["bid"]
        top["spread_bps"] = 1e4 * top["spread"] / top["mid"] if top["mid"] > 0 else math.nan
        total = top["bid_depth"] + top["ask_depth"]
        top["imbalance"] = (top["bid_depth"] - top["ask_depth"]) / total if total > 0 else math.nan
    points = [_point("orderbook", tags, top, int(time_ms))]
    for side, rows in (("bid", bids), ("ask", asks)):
        for i, (price, qty) in enumerate(rows[:levels], start=1):
            level_tags = {**tags, "side": side, "level": str(i)}
            points.append(_point("orderbook", level_tags, {"price": price, "qty": qty}, int(time_ms)))
    return [p for p in points if p is not None]


def _reason(exc: BaseException) -> str:
    """One line saying why a request failed, without response headers or object reprs."""
    if isinstance(exc, ApiException):
        body = (exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or "")).strip()
        text = f"HTTP {exc.status} {exc.reason or ''}".strip() + (f": {body[:200]}" if body else "")
    else:
        text = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    text = re.sub(r"<[^<>]*>: ", "", text)
    return redact_text(" ".join(text.split()))


class InfluxSink:
    """A session observer writing ``ohlcv``, ``indicator`` and ``orderbook`` points to an InfluxDB v2 server."""

    name = "influx"

    def __init__(self, settings: InfluxSettings, exchange: str, metrics: SinkCounter | None = None) -> None:
        if settings.url is None:
            raise SinkError("no InfluxDB URL is set (TRADEGRAPH_INFLUX_URL or --influx)")
        self.settings = settings
        self.exchange = exchange
        self.url = redact_url(settings.url)
        self.metrics = metrics
        self.points_queued = 0
        self.points_written = 0
        self.points_failed = 0
        self._lock = threading.Lock()
        self._closed = False
        self._settled = False  # counts are final: a callback arriving after close gave up is ignored
        token = settings.token.get_secret_value() if settings.token is not None else None
        self._client = InfluxDBClient(url=settings.url, token=token, org=settings.org, timeout=settings.timeout_ms)
        self._scheduler: ThreadPoolScheduler | None = None
        self._write_api: WriteApi | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Fails with one line naming the (redacted) URL when the server does not answer ``/ping``."""
        try:
            PingService(self._client.api_client).get_ping()
        except Exception as exc:
            self._client.close()
            raise SinkError(f"cannot reach InfluxDB at {self.url}: {_reason(exc)}") from None

    def start(self) -> InfluxSink:
        self.check()
        self._scheduler = ThreadPoolScheduler(1)
        s = self.settings
        options = WriteOptions(
            write_type=WriteType.batching,
            batch_size=s.batch_size,
            flush_interval=s.flush_interval_ms,
            retry_interval=RETRY_INTERVAL_MS,
            max_retries=s.max_retries,
            max_retry_delay=max(RETRY_INTERVAL_MS, s.max_retry_time_ms // 2),
            max_retry_time=s.max_retry_time_ms,
            max_close_wait=s.close_wait_ms,
            write_scheduler=self._scheduler,
        )
        self._write_api = self._client.write_api(
            write_options=options, success_callback=self._on_success, error_callback=self._on_error
        )
        log.info("influx sink started", extra={"fields": {"url": self.url, "org": s.org, "bucket": s.bucket}})
        return self

    def close(self) -> None:
        """Sends what is queued, waits for it (bounded), and reports what was written and what failed."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._write_api is not None:
                self._write_api.close()
        finally:
            if self._scheduler is not None:
                self._scheduler.executor.shutdown(wait=False)
            self._client.close()
        with self._lock:  # settled: a callback arriving after close gave up waiting is not counted twice
            self._settled = True
            lost = self.points_queued - self.points_written - self.points_failed
        if lost > 0:  # close gave up waiting: those points were never confirmed either way
            self._count("failed", lost)
            log.error("influx sink closed with %d points unconfirmed at %s", lost, self.url,
                      extra={"fields": {"url": self.url, "points": lost}})  # fmt: skip
        level = logging.WARNING if self.points_failed else logging.INFO
        log.log(level, "influx sink closed: %d points written, %d failed", self.points_written, self.points_failed,
                extra={"fields": {"url": self.url, "written": self.points_written, "failed": self.points_failed}})  # fmt: skip

    def __enter__(self) -> InfluxSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -----------------------------------------------------------------------------------
    def write(self, points: Sequence[Point | None]) -> None:
        """Queues points for the background writer; never raises (a failure is logged and counted).

        The points of one call go to the writer as one line-protocol text: one queue item per decision
        instead of one per point keeps the writer thread's share of the interpreter small.
        """
        lines = [line for p in points if p is not None and (line := p.to_line_protocol())]
        if not lines:
            return
        with self._lock:
            self.points_queued += len(lines)
        if self._write_api is None or self._closed:
            self._failed(len(lines), "the sink is not open")
            return
        try:
            self._write_api.write(
                bucket=self.settings.bucket, org=self.settings.org, record="\n".join(lines),
                write_precision=WritePrecision.MS,
            )  # fmt: skip
        except Exception as exc:
            self._failed(len(lines), _reason(exc))

    def write_order_book(self, symbol: str, book: Mapping[str, Any], fallback_time_ms: int | None = None) -> None:
        self.write(order_book_points(symbol, book, self.exchange, self.settings.depth_levels, fallback_time_ms))

    # --- SessionObserver ---------------------------------------------------------------------------
    def on_decision(self, snapshot: Snapshot, state: Mapping[str, Any]) -> None:
        points = [candle_point(snapshot, self.exchange)]
        technical = state.get("technical")
        if technical is not None:
            points.append(indicator_point(snapshot, technical.indicators, self.exchange))
        self.write(points)
        book = snapshot.book  # set by live feeds that have one
        if book is not None:
            unified = {"bids": [list(level) for level in book.bids], "asks": [list(level) for level in book.asks],
                       "timestamp": book.timestamp}  # fmt: skip
            self.write_order_book(snapshot.symbol, unified, snapshot.as_of)

    def on_fills(self, fills: Sequence[Fill]) -> None:
        return None

    def on_portfolio(self, point: PortfolioPoint) -> None:
        return None

    # --- callbacks from the writer thread ----------------------------------------------------------
    def _on_success(self, _conf: tuple[str, str, str], data: bytes | str) -> None:
        self._count("written", _lines(data), from_writer=True)

    def _on_error(self, _conf: tuple[str, str, str], data: bytes | str, exc: BaseException) -> None:
        self._failed(_lines(data), _reason(exc), from_writer=True)

    def _failed(self, count: int, reason: str, from_writer: bool = False) -> None:
        if not self._count("failed", count, from_writer):
            return
        log.error("influx write of %d points to %s failed: %s", count, self.url, reason,
                  extra={"fields": {"url": self.url, "points": count}})  # fmt: skip

    def _count(self, status: str, count: int, from_writer: bool = False) -> bool:
        with self._lock:
            if from_writer and self._settled:
                return False
            if status == "written":
                self.points_written += count
            else:
                self.points_failed += count
        if self.metrics is not None:
            self.metrics.record_sink_points(self.name, status, count)
        return True


def _lines(data: bytes | str) -> int:
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    return sum(1 for line in text.split("\n") if line.strip())
