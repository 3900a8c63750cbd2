"""The HTML eval report: self-contained, well-formed, escaped, and robust to degenerate data."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evals.report import MAX_POINTS, downsample_indices, format_value, is_percent_key, render_report
from evals.report_data import PriceSeries, ReportData, TradeMark

HOUR = 3_600_000
T0 = 1_701_388_800_000  # 2023-12-01 00:00 UTC
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "area", "base", "source", "track", "embed"}
XSS = "<script>alert(1)</script>"


class Doc(HTMLParser):
    """Checks nesting (every end tag closes the innermost open element) and collects what the tests look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        """(tag, attrs, path of open tags)"""
        self.text: list[str] = []
        self.text_paths: list[tuple[list[str], str]] = []

    def _record(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}, list(self.stack)))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        self.text_paths.append((list(self.stack), data))

    def tags(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a, _ in self.elements if t == tag and (cls is None or cls in a.get("class", "").split())]

    def texts_in(self, tag: str) -> list[str]:
        return [d for path, d in self.text_paths if tag in path]


def parse(doc: str) -> Doc:
    p = Doc()
    p.feed(doc)
    p.close()
    assert p.errors == []
    assert p.stack == [], f"unclosed: {p.stack}"
    return p


def _walk(n: int, seed: int, start: float, vol: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray(start * np.exp(np.cumsum(rng.normal(0, vol, n))), dtype=np.float64)


def _drawdown(equity: np.ndarray) -> np.ndarray:
    return np.asarray(1 - equity / np.maximum.accumulate(equity), dtype=np.float64)


def _trades(ts: np.ndarray, close: np.ndarray, symbol: str, count: int, step: int) -> list[TradeMark]:
    out = []
    for k in range(count):
        i, j = 10 + k * step, 10 + k * step + step // 2
        qty = 1.0 if k % 2 == 0 else -1.0
        pnl = (close[j] - close[i]) * qty
        out.append(TradeMark(symbol, int(ts[i]), float(close[i]), int(ts[j]), float(close[j]), qty, float(pnl),
                             "take_profit" if pnl > 0 else "stop_loss"))  # fmt: skip
    return out


def make_data(
    n: int = 500, trades_per_symbol: int = 3, symbols: tuple[str, str] = ("BTC/USDT", "ETH/USDT")
) -> ReportData:
    ts = T0 + np.arange(n, dtype=np.int64) * HOUR
    equity = _walk(n, 1, 100_000, 0.004)
    closes = [_walk(n, 2, 40_000, 0.006), _walk(n, 3, 2_200, 0.008)]
    step = max(4, (n - 20) // max(1, trades_per_symbol))
    trades = [t for sym, c in zip(symbols, closes, strict=True) for t in _trades(ts, c, sym, trades_per_symbol, step)]
    return ReportData(
        title="tradegraph eval · BTC/USDT, ETH/USDT 1h",
        timestamps=ts,
        equity=equity,
        baselines={"buy_and_hold": _walk(n, 4, 100_000, 0.005), "random_median": _walk(n, 5, 100_000, 0.003)},
        drawdown=_drawdown(equity),
        prices=[PriceSeries(sym, ts, c) for sym, c in zip(symbols, closes, strict=True)],
        trades=trades,
        monthly_returns={"2023-11": 0.05, "2023-12": -0.02, "2024-01": 0.031, "2024-02": -0.0125, "2024-03": 0.0},
        metrics={
            "total_return": 0.1234,
            "sharpe": 1.2345,
            "max_drawdown": 0.0567,
            "win_rate": 0.5,
            "trades": 6,
            "profit_factor": float("inf"),
            "sortino": float("nan"),
            "exposure": 0.25,
            "llm_calls": 0.0,
            "max_drawdown_duration": 42,
        },
        baseline_metrics={"buy_and_hold": {"total_return": 0.08, "sharpe": 0.9, "max_drawdown": 0.1}},
        sections={
            "Per period": [
                {"period": "2023-Q4", "return": 0.02, "sharpe": 1.5},
                {"period": "2024-Q1", "return": -0.01, "sharpe": -0.3, "max_drawdown": 0.04},
            ],
            "Gate denials": [{"reason": "max_exposure", "count": 3}],
        },
        notes=["Fills at the next candle's open.", "Code 0.1.0, data sha256 abc."],
    )


@pytest.fixture(scope="module")
def data() -> ReportData:
    return make_data()


@pytest.fixture(scope="module")
def page(data: ReportData) -> str:
    return render_report(data)


@pytest.fixture(scope="module")
def doc(page: str) -> Doc:
    return parse(page)


def _svg_children(doc: Doc, svg_class: str, tag: str) -> list[dict[str, str]]:
    """Elements `tag` inside the svg of class `svg_class` (located by document order)."""
    out: list[dict[str, str]] = []
    inside = False
    for t, attrs, path in doc.elements:
        if t == "svg":
            inside = svg_class in attrs.get("class", "").split()
        elif inside and "svg" in path and t == tag:
            out.append(attrs)
    return out


def test_document_is_self_contained(page: str, doc: Doc) -> None:
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    for needle in ("http://", "https://", "src=", "<script", "<link", "@import", "url("):
        assert needle not in lowered
    assert len(doc.tags("style")) == 1
    assert doc.tags("title")


def test_one_svg_per_chart(doc: Doc, data: ReportData) -> None:
    svgs = doc.tags("svg")
    assert len(svgs) == 2 + len(data.prices)
    assert len(doc.tags("svg", "equity")) == 1
    assert len(doc.tags("svg", "drawdown")) == 1
    assert len(doc.tags("svg", "price")) == len(data.prices)


def test_equity_chart_has_one_line_per_curve_and_a_legend(doc: Doc, page: str, data: ReportData) -> None:
    lines = [a for a in _svg_children(doc, "equity", "path") if "series" in a.get("class", "")]
    assert sorted(a["data-series"] for a in lines) == sorted(["strategy", *data.baselines])
    assert all(a["d"].startswith("M") for a in lines)
    svg = page[page.index('<svg class="chart equity"') : page.index("</svg>")]
    legend = svg[svg.index('<g class="legend">') :]
    for name in ["strategy", *data.baselines]:
        assert f">{name} (" in legend
    assert re.search(r'class="xtick"[^>]*>2023-12-\d\d<', svg)
    assert len(re.findall(r'class="ytick"', svg)) >= 3


def test_drawdown_is_a_filled_area_in_percent(page: str) -> None:
    svg = page[page.index('<svg class="chart drawdown"') :]
    svg = svg[: svg.index("</svg>")]
    assert re.search(r'<path class="area" d="M[^"]+Z"', svg)
    assert re.search(r'class="ytick"[^>]*>-?\d+(\.\d+)?%<', svg)


def test_one_marker_per_entry_and_exit_with_tooltips(doc: Doc, data: ReportData) -> None:
    markers = [a for t, a, _ in doc.elements if "marker" in a.get("class", "").split()]
    assert len(markers) == 2 * len(data.trades)
    longs = sum(1 for t in data.trades if t.quantity > 0)
    assert len(doc.tags("polygon", "long")) == longs
    assert len(doc.tags("polygon", "short")) == len(data.trades) - longs
    losses = sum(1 for t in data.trades if t.pnl < 0)
    assert len(doc.tags("circle", "loss")) == losses
    assert all(a["fill"] == "#dc2626" for a in doc.tags("circle", "loss"))
    assert all(a["fill"] == "#16a34a" for a in doc.tags("circle", "win"))
    tips = doc.texts_in("title")[1:]  # the first is the document's <title>
    assert len(tips) == 2 * len(data.trades)
    first = data.trades[0]
    assert any(first.exit_reason in tip and "pnl " in tip and "UTC @" in tip for tip in tips)


def test_markers_sit_inside_their_symbols_chart(doc: Doc, data: ReportData) -> None:
    per_chart: list[int] = []
    for t, attrs, path in doc.elements:
        if t == "svg":
            per_chart.append(0)
        elif "svg" in path and "marker" in attrs.get("class", "").split():
            per_chart[-1] += 1
    expected = [0, 0] + [2 * sum(1 for t in data.trades if t.symbol == p.symbol) for p in data.prices]
    assert per_chart == expected


def test_metrics_table(page: str, doc: Doc, data: ReportData) -> None:
    table = page[page.index('<table class="metrics">') :]
    table = table[: table.index("</table>")]
    for key in data.metrics:
        assert f'<th scope="row">{key}</th>' in table
    assert ">strategy</th>" in table and ">buy_and_hold</th>" in table
    row = re.search(r'<th scope="row">total_return</th>(.*?)</tr>', table)
    assert row is not None and re.findall(r">([^<]*)</td>", row.group(1)) == ["12.34%", "8.00%"]
    cells = {k: re.search(rf'<th scope="row">{k}</th><td[^>]*>([^<]*)</td>', table) for k in data.metrics}
    got = {k: m.group(1) for k, m in cells.items() if m}
    assert got == {"total_return": "12.34%", "sharpe": "1.23", "max_drawdown": "5.67%", "win_rate": "50.00%",
                   "trades": "6", "profit_factor": "inf", "sortino": "-", "exposure": "25.00%", "llm_calls": "0",
                   "max_drawdown_duration": "42"}  # fmt: skip


def test_monthly_table(page: str) -> None:
    table = page[page.index('<table class="monthly">') :]
    table = table[: table.index("</table>")]
    head = re.findall(r"<th>([^<]*)</th>", table[: table.index("</thead>")])
    assert head == ["", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Year"]
    rows = re.findall(r'<tr><th scope="row">(\d{4})</th>(.*?)</tr>', table)
    assert [y for y, _ in rows] == ["2023", "2024"]
    cells_2023 = re.findall(r"<td[^>]*>([^<]*)</td>", rows[0][1])
    assert len(cells_2023) == 13
    assert cells_2023[10:] == ["5.00%", "-2.00%", "2.90%"]  # (1.05 * 0.98) - 1
    cells_2024 = re.findall(r"<td[^>]*>([^<]*)</td>", rows[1][1])
    assert cells_2024[:3] == ["3.10%", "-1.25%", "0.00%"]
    assert cells_2024[-1] == f"{((1.031 * 0.9875) - 1) * 100:.2f}%"
    assert 'class="num pos"' in rows[0][1] and 'class="num neg"' in rows[0][1]


def test_section_tables_and_notes(page: str, doc: Doc, data: ReportData) -> None:
    h3 = doc.texts_in("h3")
    assert h3 == list(data.sections)
    tables = re.findall(r'<table class="section">(.*?)</table>', page)
    assert len(tables) == 2
    assert re.findall(r"<th>([^<]*)</th>", tables[0]) == ["period", "return", "sharpe", "max_drawdown"]
    assert "2.00%" in tables[0] and "-0.30" in tables[0] and "4.00%" in tables[0]
    assert ">max_exposure<" in tables[1] and ">3<" in tables[1]
    items = [d for path, d in doc.text_paths if path[-1:] == ["li"]]
    assert items == data.notes


def test_strings_from_data_are_escaped() -> None:
    base = make_data(n=120, trades_per_symbol=2, symbols=(XSS, "ETH/USDT"))
    data = replace(base, title=f"title {XSS}", notes=[f"note {XSS}"], baselines={XSS: base.baselines["buy_and_hold"]},
                   metrics={XSS: XSS}, trades=[replace(t, exit_reason=XSS) for t in base.trades],
                   sections={XSS: [{XSS: XSS}]}, monthly_returns={XSS: 0.1, "2024-01": 0.01})  # fmt: skip
    page = render_report(data)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    doc = parse(page)
    assert doc.tags("script") == []
    assert f"note {XSS}" in doc.text
    assert f"{XSS} · 2 trades (1 long, 1 short), pnl " in "".join(doc.texts_in("figcaption"))


def test_percent_keys() -> None:
    for key in ("total_return", "max_drawdown", "win_rate", "volatility", "exposure", "average_trade", "cagr",
                "buy_and_hold_return", "annualizedVolatility"):  # fmt: skip
        assert is_percent_key(key), key
    for key in ("sharpe", "profit_factor", "trades", "max_drawdown_duration", "generated_orders", "periods"):
        assert not is_percent_key(key), key


def test_format_value() -> None:
    assert format_value("total_return", 0.1234) == "12.34%"
    assert format_value("sharpe", np.float64(1.005)) in {"1.00", "1.01"}
    assert format_value("trades", np.int64(12)) == "12"
    assert format_value("llm_tokens", 12345.0) == "12,345"
    assert format_value("sharpe", float("nan")) == "-"
    assert format_value("sharpe", float("inf")) == "inf"
    assert format_value("max_drawdown", -math.inf) == "-inf"
    assert format_value("x", None) == "-"
    assert format_value("x", True) == "yes"
    assert format_value("x", {"low": 0.5, "high": 1.5}) == "low: 0.50, high: 1.50"


def test_downsampling_keeps_spikes_and_bounds_points() -> None:
    y = np.zeros(100_000)
    y[12_345], y[77_777] = 100.0, -50.0
    idx = downsample_indices(y)
    assert len(idx) <= MAX_POINTS
    assert {0, 12_345, 77_777, 99_999} <= set(idx.tolist())
    assert np.all(np.diff(idx) > 0)
    assert downsample_indices(np.arange(10.0)).tolist() == list(range(10))


def _coordinate_pairs(d: str) -> int:
    return len(re.findall(r"-?\d+(?:\.\d+)?,-?\d+(?:\.\d+)?", d))


def test_large_report_is_downsampled(tmp_path: Path) -> None:
    data = make_data(n=20_000, trades_per_symbol=40)
    page = render_report(data)
    out = tmp_path / "report.html"
    out.write_text(page, encoding="utf-8")
    size = out.stat().st_size
    assert 50_000 < size < 2_000_000
    doc = parse(page)
    lines = [a for a in doc.tags("path") if "series" in a.get("class", "").split()]
    assert len(lines) == 3 + 1 + 2  # equity lines, drawdown line, one close per symbol
    for a in lines:
        assert 100 < _coordinate_pairs(a["d"]) <= MAX_POINTS + 1
    assert len([a for _, a, _ in doc.elements if "marker" in a.get("class", "").split()]) == 2 * len(data.trades)
    assert re.search(r'class="xtick"[^>]*>2024-\d\d-01<', page)


def _edge_cases() -> dict[str, ReportData]:
    base = make_data(n=50, trades_per_symbol=1)
    one = np.array([T0], dtype=np.int64)
    flat = np.full(50, 100_000.0)
    bad_metrics: dict[str, Any] = {"sharpe": float("nan"), "total_return": float("inf"), "x": None, "d": {"a": 1}}
    empty = np.zeros(0)
    return {
        "no trades": replace(base, trades=[]),
        "single point": replace(
            base,
            timestamps=one,
            equity=np.array([100_000.0]),
            drawdown=np.array([0.0]),
            baselines={"bh": np.array([100_000.0])},
            prices=[PriceSeries("BTC/USDT", one, np.array([40_000.0]))],
            trades=[],
        ),
        "flat": replace(base, equity=flat, drawdown=np.zeros(50), baselines={"bh": flat.copy()}),
        "nan inf metrics": replace(base, metrics=bad_metrics, baseline_metrics={"bh": bad_metrics}),
        "no baselines": replace(base, baselines={}, baseline_metrics={}),
        "no sections, notes, months": replace(base, sections={}, notes=[], monthly_returns={}),
        "empty": replace(
            base,
            timestamps=empty.astype(np.int64),
            equity=empty,
            drawdown=empty,
            baselines={},
            prices=[],
            trades=[],
            monthly_returns={},
            metrics={},
            baseline_metrics={},
        ),
        "nan in series": replace(
            base, equity=np.where(np.arange(50) % 7 == 3, np.nan, base.equity), drawdown=np.full(50, np.nan)
        ),
        "trade without price series": replace(base, prices=base.prices[:1]),
        "odd sections": replace(base, sections={"scalar": 3, "dict": {"a": 1}, "mixed": [1, {"b": 2}], "none": []}),
    }


@pytest.mark.parametrize("case", list(_edge_cases()))
def test_edge_cases_render(case: str) -> None:
    data = _edge_cases()[case]
    page = render_report(data)
    doc = parse(page)
    assert "nan" not in " ".join(a.get("d", "") + a.get("points", "") for _, a, _ in doc.elements).lower()
    assert len(doc.tags("svg", "equity")) == 1 and len(doc.tags("svg", "drawdown")) == 1
    if case == "nan inf metrics":
        assert '<th scope="row">sharpe</th><td class="num">-</td>' in page
        assert '<th scope="row">total_return</th><td class="num">inf</td>' in page
    if case == "trade without price series":
        assert len(doc.tags("svg", "price")) == 2
    if case == "no trades":
        assert "No trades." in page and not doc.tags("polygon", "marker")
