"""Inline SVG charts for the dashboard (no script, no external asset): equity line and drawdown area.

Long series are bucketed to at most ``MAX_POINTS`` points, keeping each bucket's minimum and maximum so the
deepest drawdown survives. Every label is escaped; everything else in the markup is a number.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

MAX_POINTS = 1200
WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 14, 28


def _downsample(t: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    n = len(t)
    if n <= MAX_POINTS:
        return list(t), list(y)
    size = 2 * n // MAX_POINTS + 1
    xs: list[float] = []
    ys: list[float] = []
    for lo in range(0, n, size):
        idx = range(lo, min(n, lo + size))
        pick = sorted({min(idx, key=lambda i: y[i]), max(idx, key=lambda i: y[i])})
        xs += [t[i] for i in pick]
        ys += [y[i] for i in pick]
    return xs, ys


def _label_time(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _fmt(value: float, suffix: str) -> str:
    if suffix == "%":
        return f"{value:.1f}%"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"


def line_chart(
    times: Sequence[float],
    values: Sequence[float],
    *,
    label: str,
    color: str = "#1d4ed8",
    area: bool = False,
    suffix: str = "",
) -> str:
    """One series as an SVG line (or an area down from zero when ``area``), with y and x tick labels."""
    if len(times) < 2:
        return f'<p class="empty">{html.escape(label)}: not enough points to draw.</p>'
    t, y = _downsample(times, values)
    y_lo, y_hi = min(y), max(y)
    if area:
        y_hi = max(y_hi, 0.0)
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 1, y_hi + 1
    pad = (y_hi - y_lo) * 0.05
    y_lo, y_hi = y_lo - (0 if area and y_lo == 0 else pad), y_hi + (0 if area else pad)
    t0, t1 = t[0], t[-1] if t[-1] > t[0] else t[0] + 1
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(v: float) -> float:
        return LEFT + (v - t0) / (t1 - t0) * w

    def py(v: float) -> float:
        return TOP + (y_hi - v) / (y_hi - y_lo) * h

    points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(t, y, strict=True))
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="#f8fafc" stroke="#cbd5e1"/>']
    for i in range(5):
        v = y_lo + (y_hi - y_lo) * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + w}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#e2e8f0"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{html.escape(_fmt(v, suffix))}</text>'
        )
    for i in range(5):
        v = t0 + (t1 - t0) * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(f'<text x="{px(v):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">{_label_time(v)}</text>')
    if area:
        base = py(0.0)
        parts.append(f'<polygon points="{px(t[0]):.1f},{base:.1f} {points} {px(t[-1]):.1f},{base:.1f}" '
                     f'fill="{color}" fill-opacity="0.35" stroke="{color}" stroke-width="1"/>')  # fmt: skip
    else:
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6"/>')
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(label)}">'
        + "".join(parts)
        + "</svg>"
    )
