"""Scenario tables in the manner of freqtrade's BTContainer tests, through the whole graph.

A steady uptrend (close +0.05 per candle, high/low = close +/- 1, so ATR is exactly 2) warms the indicators
up; a scripted reasoner asks for a BUY at one candle (conviction 1, so the Kelly target is capped at 25% of
equity); hand-built candles follow. Stop = entry close - 2 ATR = close - 4, take-profit = close + 3 ATR = + 6.
Each row gives the expected exit reason, exit price and PnL, computed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.reasoner import ReasonerInput, ReasonerTrace
from graph.builder import GraphDeps, build_graph
from graph.runner import ReplaySession
from infra.sqlite_journal import SqliteJournal
from tools.paper_broker import PaperBroker, PaperBrokerConfig
from tools.recorded_feed import RecordedFeed
from tools.risk_gate import RiskLimits
from tools.risk_sizing import RiskConfig
from tools.signals import Action
from tools.technical_analysis import TAConfig
from tools.trade_types import TradeIntent

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01
WARMUP = 260
FEE, SLIP = 10 / 10_000, 5 / 10_000


# The warm-up trend must read as "something to decide" (aggregate BUY) for the reasoner to be asked: an
# RSI of 100 and a close above the upper band would read as bearish, so those two signals are switched off.
SCENARIO_TA = TAConfig(rsi_overbought=100.0, bb_stddev=50.0)


class ScriptedReasoner:
    """Buys at the scripted candles, holds otherwise: the scenario, not the strategy, is under test."""

    name = "scripted"

    def __init__(self, buy_at: set[int]) -> None:
        self.buy_at = buy_at

    def decide(self, inp: ReasonerInput) -> tuple[TradeIntent, ReasonerTrace]:
        action = Action.BUY if inp.candle_time in self.buy_at else Action.HOLD
        intent = TradeIntent(action=action, conviction=1.0, horizon=10, rationale="scripted", reasoner=self.name)
        return intent, ReasonerTrace(reasoner=self.name)


@dataclass
class Outcome:
    broker: PaperBroker
    journal: SqliteJournal
    run_id: str
    entry_close: float


def run_scenario(tmp_path: Path, after: list[tuple[float, float, float, float]], buys: list[int],
                 limits: RiskLimits | None = None, risk: RiskConfig | None = None) -> Outcome:  # fmt: skip
    rows = []
    close = 100.0
    for i in range(WARMUP):
        prev, close = close, 100.0 + 0.05 * i
        rows.append((T0 + i * H, prev, close + 1, close - 1, close, 50.0))
    entry_close = close
    for j, (o, h, lo, c) in enumerate(after):
        rows.append((T0 + (WARMUP + j) * H, o, h, lo, c, 50.0))
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "binance_TST-USDT_1h.csv").write_text(
        "timestamp,open,high,low,close,volume\n" + "\n".join(",".join(str(x) for x in r) for r in rows) + "\n"
    )
    feed = RecordedFeed(data, window=300)
    broker = PaperBroker(PaperBrokerConfig(initial_cash=10_000, fee_bps=10, slippage_bps=5))
    journal = SqliteJournal(tmp_path / "j.sqlite")
    lim = limits or RiskLimits()
    lim = lim.model_copy(update={"allowed_symbols": frozenset({"TST/USDT"})})
    reasoner = ScriptedReasoner({T0 + (WARMUP - 1 + b) * H for b in buys})
    deps = GraphDeps(SCENARIO_TA, reasoner, risk or RiskConfig(), lim, broker, journal, "scenario")
    session = ReplaySession(build_graph(deps), broker, journal, "scenario")
    session.run(feed.snapshots(["TST/USDT"], "1h", T0 + 230 * H), {})
    return Outcome(broker, journal, "scenario", entry_close)


def fills(o: Outcome) -> list[dict[str, object]]:
    return o.journal.run_fills(o.run_id)


def entry_qty(entry_open: float, equity: float = 10_000.0) -> tuple[float, float]:
    """(quantity, fill price): 25% of equity at the decision close, filled at the next open + slippage."""
    return 0.25 * equity / ENTRY_CLOSE, entry_open * (1 + SLIP)


ENTRY_CLOSE = 100.0 + 0.05 * (WARMUP - 1)  # 112.95


@pytest.mark.parametrize(
    ("name", "after", "reason", "exit_level"),
    [
        # entry at the open of the first candle; the stop is 112.95 - 4 = 108.95, the target 118.95
        ("stop_loss", [(113.0, 113.5, 112.0, 113.0), (113.0, 113.2, 108.0, 109.0)], "stop_loss", 108.95),
        ("take_profit", [(113.0, 114.0, 112.5, 113.5), (113.5, 119.5, 113.0, 119.0)], "take_profit", 118.95),
        ("both_in_one_candle_assumes_stop", [(113.0, 113.5, 112.5, 113.0), (113.0, 120.0, 108.0, 115.0)],
         "stop_loss", 108.95),
        ("gap_through_stop_fills_at_open", [(113.0, 113.5, 112.5, 113.0), (105.0, 106.0, 104.0, 105.5)],
         "stop_loss", 105.0),
    ],
)  # fmt: skip
def test_exit_scenarios(
    tmp_path: Path, name: str, after: list[tuple[float, float, float, float]], reason: str, exit_level: float
) -> None:
    o = run_scenario(tmp_path, after + [(110.0, 111.0, 109.0, 110.0)] * 3, buys=[0])
    f = fills(o)
    assert [x["kind"] for x in f] == ["entry", reason]
    qty, entry_price = entry_qty(after[0][0])
    assert f[0]["price"] == pytest.approx(entry_price)
    assert f[0]["quantity"] == pytest.approx(qty, rel=1e-9)
    assert f[0]["timestamp"] == T0 + WARMUP * H  # the next candle's open
    exit_price = exit_level * (1 - SLIP)
    assert f[1]["price"] == pytest.approx(exit_price)
    pnl = qty * (exit_price - entry_price) - qty * entry_price * FEE - qty * exit_price * FEE
    assert sum(float(x["realized_pnl"]) for x in f) == pytest.approx(pnl, rel=1e-9)  # type: ignore[arg-type]
    assert o.broker.equity() == pytest.approx(10_000 + pnl, rel=1e-12)


def test_fee_and_slippage_arithmetic_of_an_open_position(tmp_path: Path) -> None:
    o = run_scenario(tmp_path, [(113.0, 113.5, 112.5, 113.2), (113.2, 113.6, 112.9, 113.4)], buys=[0])
    (f,) = fills(o)
    qty, price = entry_qty(113.0)
    assert f["fee"] == pytest.approx(qty * price * FEE)
    assert o.broker.cash == pytest.approx(10_000 - qty * price * (1 + FEE))
    assert o.broker.equity() == pytest.approx(o.broker.cash + qty * 113.4)
    assert f["slippage_bps"] == pytest.approx((price / ENTRY_CLOSE - 1) * 10_000)


def test_drawdown_breaker_halts_new_risk(tmp_path: Path) -> None:
    # the open position loses about 0.8% of equity; with max_drawdown 0.5% a top-up BUY is denied
    after = [(113.0, 113.5, 112.5, 113.0), (113.0, 113.2, 109.5, 109.6), (109.6, 110.0, 109.3, 109.7)]
    limits = RiskLimits(max_drawdown=0.005)
    o = run_scenario(tmp_path, after, buys=[0, 2], limits=limits, risk=RiskConfig(min_rebalance_fraction=0.0))
    assert [x["kind"] for x in fills(o)] == ["entry"]
    decisions = o.journal.run_decisions(o.run_id)
    topup = next(d for d in decisions if d["candle_time"] == T0 + (WARMUP - 1 + 2) * H)
    assert topup["outcome"] == "denied"
    assert topup["verdict"]["reasons"] == ["DRAWDOWN_BREAKER"]
    assert 1 - o.broker.equity() / o.broker.peak_equity > 0.005
