"""The eval report: one self-contained HTML5 document drawn from a ReportData.

`render_report(data)` returns the whole page as a string. It opens offline and loads nothing: the CSS is inline,
the charts are inline SVG drawn here (paths, no JavaScript), there is no URL of any kind in the output and a
Content-Security-Policy forbids loading anything anyway. Every string that comes from the data (title, symbols,
exit reasons, metric names and values, section names, notes) is HTML-escaped.

Page: header (title, range), summary cards, equity curve of the strategy against every baseline, drawdown,
one price chart per symbol with its trade entries and exits, the metrics table (strategy and baselines), monthly
returns (years x months), the extra section tables, the trade list and the notes.

Long series are downsampled to at most MAX_POINTS points per line by keeping the minimum and the maximum of each
bucket, so spikes and the deepest drawdown survive.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from evals.report_data import FloatArray, IntArray, PriceSeries, ReportData, TradeMark

__all__ = ["MAX_POINTS", "downsample_indices", "format_value", "is_percent_key", "render_report"]

MAX_POINTS = 2000
"""At most this many points per drawn line."""
MAX_TRADE_ROWS = 2000
"""The trade list shows at most this many trades (the charts show them all)."""

WIDTH = 1100
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MAX_TICKS = 8
STRATEGY = "strategy"
STRATEGY_COLOR = "#1d4ed8"
BASELINE_COLORS = ("#f59e0b", "#6b7280", "#9333ea", "#0d9488", "#db2777", "#65a30d", "#0891b2", "#92400e")
GREEN = "#16a34a"
RED = "#dc2626"
SHORT_COLOR = "#ea580c"
PRICE_COLOR = "#334155"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_PERCENT_WORDS = ("return", "drawdown", "rate", "volatility", "exposure", "cagr")
_NOT_PERCENT_WORDS = frozenset({"duration", "periods", "period", "count", "days", "bars", "candles", "ms", "hours"})
_COUNT_WORDS = frozenset(
    {"trades", "count", "counts", "n", "num", "number", "periods", "seeds", "decisions", "calls", "tokens",
     "denials", "shrinks", "orders", "fills", "candles", "bars", "wins", "losses"}
)  # fmt: skip
_MONTH_KEY = re.compile(r"^(\d{4})-(\d{1,2})$")
_FIXED_STEPS_MS = (HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS, 6 * HOUR_MS, 12 * HOUR_MS, DAY_MS, 2 * DAY_MS, 7 * DAY_MS,
                   14 * DAY_MS)  # fmt: skip
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60, 120, 240, 600, 1200)

# ----------------------------------------------------------------------------------------------- formatting


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _words(key: str) -> list[str]:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()
    return [w for w in re.split(r"[^a-z0-9]+", snake) if w]


def is_percent_key(key: str) -> bool:
    """Whether a metric is a fraction shown as a percent: return, drawdown, rate, volatility, exposure, CAGR,
    average_trade; not durations or counts (max_drawdown_duration is a number)."""
    words = _words(key)
    if any(w in _NOT_PERCENT_WORDS for w in words):
        return False
    if "average_trade" in "_".join(words):
        return True
    return any(w.startswith(p) for w in words for p in _PERCENT_WORDS)


def _is_count_key(key: str) -> bool:
    return any(w in _COUNT_WORDS for w in _words(key))


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        item: object = value.item()
        return item
    return value


def _format_number(key: str, value: int | float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "-" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if is_percent_key(key):
        return f"{value * 100:.2f}%"
    if isinstance(value, int):
        return f"{value:,}"
    if value.is_integer() and _is_count_key(key):
        return f"{int(value):,}"
    return f"{value:,.2f}"


def format_value(key: str, value: object) -> str:
    """Plain text (not escaped) of one metric or table cell; the key decides percent / integer / 2 decimals.

    NaN and None give "-", infinities "inf" / "-inf", booleans "yes" / "no", dicts "k: v, ...".
    """
    v = _plain(value)
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return _format_number(key, v)
    if isinstance(v, str):
        return v
    if isinstance(v, Mapping):
        return ", ".join(f"{k}: {format_value(str(k), x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(format_value(key, x) for x in v)
    if isinstance(v, np.ndarray):
        return format_value(key, v.tolist())
    return str(v)


def _pct(value: float, signed: bool = False) -> str:
    if not math.isfinite(value):
        return format_value("", value)
    return f"{value * 100:+.2f}%" if signed else f"{value * 100:.2f}%"


def _num(value: float) -> str:
    """A price or amount: thousands separators, about six significant digits."""
    if not math.isfinite(value):
        return format_value("", value)
    return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:,.6g}"


def _utc(ms: float, with_time: bool = False) -> str:
    try:
        dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return "-"
    return dt.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def _to_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


# ----------------------------------------------------------------------------------------------- series


def _floats(values: object) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return np.zeros(0, dtype=np.float64)
    return arr


def _finite(arrays: Iterable[FloatArray]) -> FloatArray:
    parts = [a for a in arrays if a.size]
    if not parts:
        return np.zeros(0, dtype=np.float64)
    joined = np.concatenate(parts)
    return joined[np.isfinite(joined)]


def downsample_indices(values: FloatArray, max_points: int = MAX_POINTS) -> IntArray:
    """Sorted indices of at most `max_points` points: the first, the last, and the min and max of each bucket."""
    n = len(values)
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    low_src = np.where(finite, v, np.inf)
    high_src = np.where(finite, v, -np.inf)
    buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64).tolist()
    picks = [0, n - 1]
    for a, b in pairwise(edges):
        if b > a:
            picks.append(a + int(np.argmin(low_src[a:b])))
            picks.append(a + int(np.argmax(high_src[a:b])))
    return np.unique(np.asarray(picks, dtype=np.int64))


def _aligned(timestamps: object, values: object) -> tuple[FloatArray, FloatArray]:
    t, y = _floats(timestamps), _floats(values)
    n = min(t.size, y.size)
    return t[:n], y[:n]


def _downsampled(t: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    idx = downsample_indices(y)
    return t[idx], y[idx]


def _total_return(values: FloatArray) -> float:
    good = values[np.isfinite(values)]
    if good.size < 1 or good[0] == 0:
        return math.nan
    return float(good[-1] / good[0] - 1)


# ----------------------------------------------------------------------------------------------- chart frame


@dataclass(frozen=True)
class _Frame:
    """Maps data (time in ms, value) to SVG pixels inside the plot rectangle."""

    x0: float
    x1: float
    y0: float
    y1: float
    height: int
    top: int
    left: int = 84
    right: int = 44
    bottom: int = 28
    width: int = WIDTH

    @property
    def plot_w(self) -> float:
        return float(self.width - self.left - self.right)

    @property
    def plot_h(self) -> float:
        return float(self.height - self.top - self.bottom)

    def xs(self, t: FloatArray) -> FloatArray:
        return self.left + (t - self.x0) / (self.x1 - self.x0) * self.plot_w

    def ys(self, v: FloatArray) -> FloatArray:
        return self.top + (self.y1 - v) / (self.y1 - self.y0) * self.plot_h

    def px(self, t: float) -> float:
        return float(self.xs(np.asarray([t], dtype=np.float64))[0])

    def py(self, v: float) -> float:
        return float(self.ys(np.asarray([v], dtype=np.float64))[0])


def _x_domain(arrays: Iterable[FloatArray]) -> tuple[float, float]:
    good = _finite(arrays)
    if not good.size:
        return 0.0, float(DAY_MS)
    lo, hi = float(good.min()), float(good.max())
    if hi <= lo:
        return lo - DAY_MS / 2, hi + DAY_MS / 2
    return lo, hi


def _y_domain(arrays: Iterable[FloatArray], pad: float = 0.05) -> tuple[float, float]:
    good = _finite(arrays)
    if not good.size:
        return 0.0, 1.0
    lo, hi = float(good.min()), float(good.max())
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        margin = abs(lo) * 0.01 or 1.0
        return lo - margin, hi + margin
    return lo - span * pad, hi + span * pad


def _nice_ticks(lo: float, hi: float, target: int = 5) -> tuple[list[float], float]:
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return [], 0.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    norm = raw / mag
    step = mag * (1 if norm < 1.5 else 2 if norm < 3 else 5 if norm < 7 else 10)
    ticks: list[float] = []
    v = math.ceil(lo / step) * step
    while v <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(v) < step * 1e-6 else v)
        v += step
    return ticks, step


def _tick_label(value: float, step: float, suffix: str) -> str:
    decimals = min(8, max(0, -math.floor(math.log10(step)))) if step > 0 else 2
    return f"{value:,.{decimals}f}{suffix}"


def _fixed_ticks(t0: float, t1: float) -> list[tuple[float, str]]:
    span = t1 - t0
    step = next((s for s in _FIXED_STEPS_MS if span / s <= MAX_TICKS), _FIXED_STEPS_MS[-1])
    ticks: list[tuple[float, str]] = []
    t = float(math.ceil(t0 / step) * step)
    while t <= t1 and len(ticks) <= MAX_TICKS:
        ticks.append((t, _utc(t, with_time=step < DAY_MS)))
        t += step
    return ticks


def _month_ticks(t0: float, t1: float) -> list[tuple[float, str]]:
    start = datetime.fromtimestamp(t0 / 1000, tz=UTC)
    end = datetime.fromtimestamp(t1 / 1000, tz=UTC)
    at_month_start = start == datetime(start.year, start.month, 1, tzinfo=UTC)
    m0 = start.year * 12 + start.month - 1 + (0 if at_month_start else 1)
    m1 = end.year * 12 + end.month - 1
    step = next((s for s in _MONTH_STEPS if (m1 - m0) / s < MAX_TICKS), _MONTH_STEPS[-1])
    ticks: list[tuple[float, str]] = []
    for m in range(-(-m0 // step) * step, m1 + 1, step):
        dt = datetime(m // 12, m % 12 + 1, 1, tzinfo=UTC)
        ticks.append((dt.timestamp() * 1000, dt.strftime("%Y-%m-%d")))
    return ticks


def _time_ticks(t0: float, t1: float) -> list[tuple[float, str]]:
    """(ms, label) ticks: month starts for long spans, whole hours / days otherwise; labels in UTC."""
    try:
        ticks = _month_ticks(t0, t1) if t1 - t0 >= 60 * DAY_MS else _fixed_ticks(t0, t1)
    except (OverflowError, OSError, ValueError):
        return []
    return ticks or [(t0, _utc(t0, with_time=True))]


# ----------------------------------------------------------------------------------------------- svg pieces


def _axes(frame: _Frame, y_suffix: str = "") -> str:
    parts = [f'<rect class="frame" x="{frame.left}" y="{frame.top}" width="{frame.plot_w:.0f}" '
             f'height="{frame.plot_h:.0f}" />']  # fmt: skip
    right, bottom = frame.left + frame.plot_w, frame.top + frame.plot_h
    ticks, step = _nice_ticks(frame.y0, frame.y1)
    for v in ticks:
        y = frame.py(v)
        parts.append(f'<line class="grid" x1="{frame.left}" y1="{y:.1f}" x2="{right:.0f}" y2="{y:.1f}" />')
        label = _e(_tick_label(v, step, y_suffix))
        parts.append(f'<text class="ytick" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for t, label in _time_ticks(frame.x0, frame.x1):
        x = frame.px(t)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{bottom:.0f}" />')
        parts.append(f'<text class="xtick" x="{x:.1f}" y="{bottom + 17:.0f}" text-anchor="middle">{_e(label)}</text>')
    return "".join(parts)


def _runs(ok: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _pixel_runs(frame: _Frame, t: FloatArray, y: FloatArray) -> list[list[str]]:
    xs, ys = frame.xs(t), frame.ys(y)
    ok = np.isfinite(xs) & np.isfinite(ys)
    return [[f"{xs[i]:.1f},{ys[i]:.1f}" for i in range(a, b)] for a, b in _runs(ok)]


def _line_d(frame: _Frame, t: FloatArray, y: FloatArray) -> str:
    runs = _pixel_runs(frame, t, y)
    return "".join("M" + " ".join(run) + ("" if len(run) > 1 else " h0.1") for run in runs)


def _area_d(frame: _Frame, t: FloatArray, y: FloatArray, base: float) -> str:
    y0 = frame.py(base)
    parts = []
    for run in _pixel_runs(frame, t, y):
        first_x, last_x = run[0].split(",")[0], run[-1].split(",")[0]
        parts.append(f"M{first_x},{y0:.1f} L" + " ".join(run) + f" L{last_x},{y0:.1f} Z")
    return "".join(parts)


@dataclass(frozen=True)
class _LegendItem:
    label: str
    color: str
    kind: str = "line"
    """line, area, up, down, circle"""


def _swatch(item: _LegendItem, x: float, y: float) -> str:
    if item.kind == "line":
        return (
            f'<line x1="{x:.0f}" y1="{y:.0f}" x2="{x + 22:.0f}" y2="{y:.0f}" stroke="{item.color}" stroke-width="3" />'
        )
    if item.kind == "area":
        return f'<rect x="{x:.0f}" y="{y - 5:.0f}" width="22" height="10" fill="{item.color}" fill-opacity="0.35" />'
    if item.kind == "circle":
        return f'<circle cx="{x + 11:.0f}" cy="{y:.0f}" r="4.5" fill="{item.color}" />'
    return f'<polygon points="{_triangle(x + 11, y, item.kind == "up")}" fill="{item.color}" />'


def _legend(items: Sequence[_LegendItem], left: int, right_limit: int) -> tuple[str, int]:
    """The legend as SVG above the plot, wrapped into rows; returns (svg, height used)."""
    parts: list[str] = []
    x, row = float(left), 0
    for item in items:
        w = 34 + 6.8 * len(item.label)
        if x + w > right_limit and x > left:
            x, row = float(left), row + 1
        y = 14 + row * 20
        parts.append(_swatch(item, x, y))
        parts.append(f'<text x="{x + 28:.0f}" y="{y + 4:.0f}">{_e(item.label)}</text>')
        x += w + 14
    return f'<g class="legend">{"".join(parts)}</g>', 24 + row * 20


def _svg(kind: str, frame: _Frame, body: str, label: str) -> str:
    return (f'<svg class="chart {kind}" viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
            f'height="{frame.height}" role="img" aria-label="{_e(label)}">{body}</svg>')  # fmt: skip


def _framed(
    items: Sequence[_LegendItem], height: int, x_arrays: Iterable[FloatArray], y_dom: tuple[float, float]
) -> tuple[_Frame, str]:
    legend, legend_h = _legend(items, 84, WIDTH - 44)
    x0, x1 = _x_domain(x_arrays)
    return _Frame(x0, x1, y_dom[0], y_dom[1], height=height + legend_h, top=legend_h + 6), legend


# ----------------------------------------------------------------------------------------------- charts


def _equity_lines(data: ReportData) -> list[tuple[str, FloatArray, FloatArray, str, float]]:
    lines = [(STRATEGY, *_aligned(data.timestamps, data.equity), STRATEGY_COLOR, 2.2)]
    for i, (name, curve) in enumerate(data.baselines.items()):
        color = BASELINE_COLORS[i % len(BASELINE_COLORS)]
        lines.append((str(name), *_aligned(data.timestamps, curve), color, 1.4))
    return lines


def _equity_chart(data: ReportData) -> str:
    """Strategy and every baseline on one shared y axis."""
    lines = _equity_lines(data)
    items = [_LegendItem(f"{name} ({_pct(_total_return(y), signed=True)})", color) for name, _, y, color, _ in lines]
    frame, legend = _framed(items, 380, [t for _, t, _, _, _ in lines], _y_domain(y for _, _, y, _, _ in lines))
    paths = []
    for name, t, y, color, width in reversed(lines):
        d = _line_d(frame, *_downsampled(t, y))
        paths.append(f'<path class="series" data-series="{_e(name)}" d="{d}" fill="none" stroke="{color}" '
                     f'stroke-width="{width}" stroke-linejoin="round" stroke-linecap="round" />')  # fmt: skip
    return _svg("equity", frame, legend + _axes(frame) + "".join(paths), "equity curves")


def _drawdown_chart(data: ReportData) -> str:
    """Drawdown in percent below zero, as a filled area."""
    t, dd = _aligned(data.timestamps, data.drawdown)
    pct = -np.abs(dd) * 100
    good = pct[np.isfinite(pct)]
    deepest = float(good.min()) if good.size else 0.0
    lo = deepest * 1.05 if deepest < 0 else -1.0
    items = [_LegendItem(f"drawdown (max {-deepest:.2f}%)", RED, "area")]
    frame, legend = _framed(items, 220, [t], (lo, -lo * 0.02))
    td, yd = _downsampled(t, pct)
    body = (f'<path class="area" d="{_area_d(frame, td, yd, 0.0)}" fill="{RED}" fill-opacity="0.25" stroke="none" />'
            f'<path class="series" data-series="drawdown" d="{_line_d(frame, td, yd)}" fill="none" stroke="{RED}" '
            f'stroke-width="1.2" />')  # fmt: skip
    return _svg("drawdown", frame, legend + _axes(frame, "%") + body, "drawdown in percent")


def _triangle(x: float, y: float, up: bool) -> str:
    if up:
        return f"{x:.1f},{y - 6:.1f} {x - 5.5:.1f},{y + 4:.1f} {x + 5.5:.1f},{y + 4:.1f}"
    return f"{x:.1f},{y + 6:.1f} {x - 5.5:.1f},{y - 4:.1f} {x + 5.5:.1f},{y - 4:.1f}"


def _side(trade: TradeMark) -> str:
    return "short" if _to_float(trade.quantity) < 0 else "long"


def _tooltip(trade: TradeMark, what: str) -> str:
    pnl = _to_float(trade.pnl)
    pnl_text = f"{pnl:+,.2f}" if math.isfinite(pnl) else format_value("pnl", pnl)
    return "\n".join([
        f"{what} · {trade.symbol} {_side(trade)}",
        f"entry {_utc(_to_float(trade.entry_time), True)} UTC @ {_num(_to_float(trade.entry_price))}",
        f"exit {_utc(_to_float(trade.exit_time), True)} UTC @ {_num(_to_float(trade.exit_price))}",
        f"quantity {_num(_to_float(trade.quantity))}",
        f"pnl {pnl_text}",
        f"exit reason: {trade.exit_reason}",
    ])  # fmt: skip


def _trade_svg(frame: _Frame, trade: TradeMark) -> tuple[str, str]:
    """(connector, markers) of one trade; a marker whose time or price is not finite is left out."""
    ex, ey = frame.px(_to_float(trade.entry_time)), frame.py(_to_float(trade.entry_price))
    xx, xy = frame.px(_to_float(trade.exit_time)), frame.py(_to_float(trade.exit_price))
    entry_ok, exit_ok = math.isfinite(ex + ey), math.isfinite(xx + xy)
    win = not _to_float(trade.pnl) < 0
    outcome, color = ("win", GREEN) if win else ("loss", RED)
    side = _side(trade)
    link = ""
    if entry_ok and exit_ok:
        link = (f'<line class="trade-link" x1="{ex:.1f}" y1="{ey:.1f}" x2="{xx:.1f}" y2="{xy:.1f}" stroke="{color}" '
                f'stroke-width="1" stroke-dasharray="3 3" />')  # fmt: skip
    marks = []
    if entry_ok:
        fill = GREEN if side == "long" else SHORT_COLOR
        marks.append(f'<polygon class="marker entry {side}" points="{_triangle(ex, ey, side == "long")}" '
                     f'fill="{fill}"><title>{_e(_tooltip(trade, "entry"))}</title></polygon>')  # fmt: skip
    if exit_ok:
        marks.append(f'<circle class="marker exit {outcome}" cx="{xx:.1f}" cy="{xy:.1f}" r="4.5" fill="{color}">'
                     f"<title>{_e(_tooltip(trade, 'exit'))}</title></circle>")  # fmt: skip
    return link, "".join(marks)


_PRICE_LEGEND = (
    _LegendItem("close", PRICE_COLOR),
    _LegendItem("long entry", GREEN, "up"),
    _LegendItem("short entry", SHORT_COLOR, "down"),
    _LegendItem("exit, pnl ≥ 0", GREEN, "circle"),
    _LegendItem("exit, pnl < 0", RED, "circle"),
)


def _price_chart(symbol: str, series: PriceSeries | None, trades: Sequence[TradeMark]) -> str:
    """The close of one symbol with its trades: entries as triangles, exits as circles, each with a tooltip."""
    t, close = _aligned(series.timestamps, series.close) if series is not None else (_floats([]), _floats([]))
    trade_t = _floats([[_to_float(x.entry_time), _to_float(x.exit_time)] for x in trades])
    trade_p = _floats([[_to_float(x.entry_price), _to_float(x.exit_price)] for x in trades])
    frame, legend = _framed(_PRICE_LEGEND, 300, [t, trade_t], _y_domain([close, trade_p]))
    line = (f'<path class="series" data-series="{_e(symbol)}" d="{_line_d(frame, *_downsampled(t, close))}" '
            f'fill="none" stroke="{PRICE_COLOR}" stroke-width="1.2" stroke-linecap="round" />')  # fmt: skip
    drawn = [_trade_svg(frame, trade) for trade in trades]
    links = "".join(link for link, _ in drawn)
    marks = "".join(mark for _, mark in drawn)
    body = legend + _axes(frame) + line + f'<g class="trades">{links}{marks}</g>'
    return _svg("price", frame, body, f"{symbol} close with trades")


def _symbols(data: ReportData) -> list[tuple[str, PriceSeries | None]]:
    """Every symbol with prices, in order, then any traded symbol without prices."""
    out: dict[str, PriceSeries | None] = {}
    for series in data.prices:
        out.setdefault(str(series.symbol), series)
    for trade in data.trades:
        out.setdefault(str(trade.symbol), None)
    return list(out.items())


def _price_figure(symbol: str, series: PriceSeries | None, trades: Sequence[TradeMark]) -> str:
    longs = sum(1 for x in trades if _side(x) == "long")
    pnl = sum(p for p in (_to_float(x.pnl) for x in trades) if math.isfinite(p))
    caption = f"{symbol} · {len(trades)} trades ({longs} long, {len(trades) - longs} short), pnl {pnl:+,.2f}"
    return f"<figure><figcaption>{_e(caption)}</figcaption>{_price_chart(symbol, series, trades)}</figure>"


# ----------------------------------------------------------------------------------------------- tables


def _table(head: Sequence[str], rows: Sequence[str], cls: str) -> str:
    thead = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (f'<div class="table-wrap"><table class="{cls}"><thead><tr>{thead}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")  # fmt: skip


def _cell(key: str, value: object, numeric: bool = False) -> str:
    plain = _plain(value)
    numeric = numeric or (isinstance(plain, int | float) and not isinstance(plain, bool))
    return f'<td class="{"num" if numeric else "txt"}">{_e(format_value(key, value))}</td>'


def _union_keys(rows: Iterable[Mapping[str, object]]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def _as_mapping(value: object) -> dict[str, object]:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def _metrics_table(data: ReportData) -> str:
    columns = [(STRATEGY, _as_mapping(data.metrics))]
    columns += [(str(name), _as_mapping(m)) for name, m in data.baseline_metrics.items()]
    keys = _union_keys(m for _, m in columns)
    if not keys:
        return '<p class="empty">No metrics.</p>'
    rows = []
    for key in keys:
        cells = "".join(_cell(key, m[key]) if key in m else '<td class="num missing"></td>' for _, m in columns)
        rows.append(f'<tr><th scope="row">{_e(key)}</th>{cells}</tr>')
    return _table(["metric", *(name for name, _ in columns)], rows, "metrics")


def _month_grid(monthly: Mapping[str, Any]) -> tuple[dict[int, dict[int, float]], list[str]]:
    grid: dict[int, dict[int, float]] = {}
    ignored: list[str] = []
    for key, value in monthly.items():
        match = _MONTH_KEY.match(str(key))
        if match is None or not 1 <= int(match.group(2)) <= 12:
            ignored.append(str(key))
            continue
        grid.setdefault(int(match.group(1)), {})[int(match.group(2))] = _to_float(_plain(value))
    return grid, ignored


def _compound(returns: Iterable[float]) -> float:
    good = [r for r in returns if math.isfinite(r)]
    return math.prod(1 + r for r in good) - 1 if good else math.nan


def _month_cell(value: float | None) -> str:
    if value is None:
        return '<td class="num blank"></td>'
    if not math.isfinite(value) or value == 0:
        return f'<td class="num zero">{_e(_pct(value))}</td>'
    cls, rgb = ("pos", "22,163,74") if value > 0 else ("neg", "220,38,38")
    alpha = min(0.55, 0.08 + abs(value) * 3)
    return f'<td class="num {cls}" style="background:rgba({rgb},{alpha:.2f})">{_e(_pct(value))}</td>'


def _monthly_table(monthly: Mapping[str, Any]) -> str:
    """Years x months, plus the compounded return of each year; cells colored by sign."""
    grid, ignored = _month_grid(monthly)
    if not grid:
        return '<p class="empty">No monthly returns.</p>'
    rows = []
    for year in sorted(grid):
        months = grid[year]
        cells = "".join(_month_cell(months.get(m)) for m in range(1, 13))
        rows.append(f'<tr><th scope="row">{year}</th>{cells}{_month_cell(_compound(months.values()))}</tr>')
    note = f'<p class="empty">Ignored keys: {_e(", ".join(ignored))}</p>' if ignored else ""
    return _table(["", *MONTHS, "Year"], rows, "monthly") + note


def _as_rows(value: object) -> list[dict[str, object]]:
    if isinstance(value, Mapping):
        return [_as_mapping(value)]
    if isinstance(value, list | tuple):
        return [_as_mapping(r) if isinstance(r, Mapping) else {"value": r} for r in value]
    return [{"value": value}]


def _rows_table(rows: Sequence[Mapping[str, object]], cls: str, numeric: frozenset[str] = frozenset()) -> str:
    """One table; its columns are the union of the rows' keys in first-seen order."""
    columns = _union_keys(rows)
    if not rows or not columns:
        return '<p class="empty">No rows.</p>'
    body = [
        "<tr>" + "".join(_cell(c, row[c], c in numeric) if c in row else "<td></td>" for c in columns) + "</tr>"
        for row in rows
    ]
    return _table(columns, body, cls)


def _sections_html(sections: Mapping[str, Any]) -> str:
    return "".join(f"<h3>{_e(name)}</h3>{_rows_table(_as_rows(rows), 'section')}" for name, rows in sections.items())


_TRADE_NUMERIC = frozenset({"entry_price", "exit_price", "quantity", "pnl"})


def _trade_rows(trades: Sequence[TradeMark]) -> list[dict[str, object]]:
    return [
        {"symbol": x.symbol, "side": _side(x), "entry": _utc(_to_float(x.entry_time), True),
         "entry_price": _num(_to_float(x.entry_price)), "exit": _utc(_to_float(x.exit_time), True),
         "exit_price": _num(_to_float(x.exit_price)), "quantity": _num(_to_float(x.quantity)), "pnl": x.pnl,
         "exit_reason": x.exit_reason}
        for x in trades
    ]  # fmt: skip


def _trades_html(trades: Sequence[TradeMark]) -> str:
    if not trades:
        return '<p class="empty">No trades.</p>'
    shown = trades[:MAX_TRADE_ROWS]
    more = f" (first {len(shown)} shown)" if len(shown) < len(trades) else ""
    summary = f"<summary>{len(trades)} trades{_e(more)}, times in UTC</summary>"
    return f"<details>{summary}{_rows_table(_trade_rows(shown), 'trades', _TRADE_NUMERIC)}</details>"


# ----------------------------------------------------------------------------------------------- page


def _card(label: str, value: str) -> str:
    return f'<div class="card"><div class="k">{_e(label)}</div><div class="v">{_e(value)}</div></div>'


def _summary(data: ReportData) -> str:
    equity = _floats(data.equity)
    good = equity[np.isfinite(equity)]
    dd = np.abs(_floats(data.drawdown))
    dd = dd[np.isfinite(dd)]
    pnls = [p for p in (_to_float(x.pnl) for x in data.trades) if math.isfinite(p)]
    cards = [
        _card("Final equity", _num(float(good[-1])) if good.size else "-"),
        _card("Total return", _pct(_total_return(equity), signed=True)),
        _card("Max drawdown", _pct(float(dd.max())) if dd.size else "-"),
        _card("Trades", str(len(data.trades))),
        _card("Win rate", _pct(sum(p > 0 for p in pnls) / len(pnls)) if pnls else "-"),
    ]
    cards += [
        _card(f"{name} return", _pct(_total_return(_floats(c)), signed=True)) for name, c in data.baselines.items()
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _subtitle(data: ReportData) -> str:
    t = _floats(data.timestamps)
    t = t[np.isfinite(t)]
    span = f"{_utc(float(t.min()), True)} .. {_utc(float(t.max()), True)} UTC" if t.size else "no data"
    return f"{span} · {t.size} points · {len(_symbols(data))} symbols · {len(data.trades)} trades"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


_NAV = (("equity", "Equity"), ("drawdown", "Drawdown"), ("prices", "Prices and trades"), ("metrics", "Metrics"),
        ("monthly", "Monthly returns"), ("tables", "Tables"), ("trades", "Trades"), ("notes", "Notes"))  # fmt: skip


def _nav(present: set[str]) -> str:
    links = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in _NAV if a in present)
    return f"<nav>{links}</nav>"


_CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--panel:#f9fafb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);
background:#f3f4f6}
main{max-width:1180px;margin:0 auto;padding:24px}
header,section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 18px}
h1{font-size:21px;margin:0 0 4px;overflow-wrap:anywhere}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:18px 0 6px}
.sub{color:var(--muted);margin:0 0 8px}
nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:10px;margin-top:12px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.card .k{color:var(--muted);font-size:12px;overflow-wrap:anywhere}
.card .v{font-size:18px;font-weight:600;font-variant-numeric:tabular-nums}
svg.chart{display:block;width:100%;height:auto}
svg.chart text{font:11px system-ui,sans-serif;fill:#4b5563}
svg.chart .legend text{fill:#111827;font-size:12px}
svg.chart .grid{stroke:#eef0f3;stroke-width:1}
svg.chart .frame{fill:none;stroke:#d1d5db}
svg.chart .marker{cursor:help;stroke:#fff;stroke-width:0.8}
svg.chart .marker:hover{stroke:#111827;stroke-width:1.6}
figure{margin:0 0 16px}
figcaption{font-weight:600;margin:0 0 4px;overflow-wrap:anywhere}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
thead th{background:var(--panel);font-weight:600}
tbody th{font-weight:500}
td.num{text-align:right}
table.monthly td{min-width:64px}
td.pos{color:#14532d}
td.neg{color:#7f1d1d}
td.zero{color:var(--muted)}
summary{cursor:pointer;margin-bottom:8px}
.empty{color:var(--muted);font-style:italic}
.notes li{margin:4px 0;overflow-wrap:anywhere}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _body_sections(data: ReportData) -> list[tuple[str, str, str]]:
    by_symbol: dict[str, list[TradeMark]] = {}
    for trade in data.trades:
        by_symbol.setdefault(str(trade.symbol), []).append(trade)
    figures = "".join(_price_figure(sym, series, by_symbol.get(sym, [])) for sym, series in _symbols(data))
    parts = [
        ("equity", "Equity: strategy vs baselines", _equity_chart(data)),
        ("drawdown", "Drawdown", _drawdown_chart(data)),
        ("prices", "Prices and trades", figures or '<p class="empty">No price series.</p>'),
        ("metrics", "Metrics", _metrics_table(data)),
        ("monthly", "Monthly returns", _monthly_table(data.monthly_returns)),
    ]
    if data.sections:
        parts.append(("tables", "Tables", _sections_html(data.sections)))
    parts.append(("trades", "Trades", _trades_html(data.trades)))
    if data.notes:
        notes = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
        parts.append(("notes", "Notes", f'<ul class="notes">{notes}</ul>'))
    return parts


def render_report(data: ReportData) -> str:
    """The whole report as one self-contained HTML5 document (no external resource, no script)."""
    parts = _body_sections(data)
    header = (f"<header><h1>{_e(data.title)}</h1><p class=\"sub\">{_e(_subtitle(data))}</p>"
              f"{_nav({a for a, _, _ in parts})}{_summary(data)}</header>")  # fmt: skip
    body = "\n".join(_section(anchor, title, html_) for anchor, title, html_ in parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(data.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{header}\n{body}\n</main>\n"
        "</body>\n</html>\n"
    )
