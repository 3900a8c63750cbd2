"""Performance metrics of a backtest: pure functions over numpy arrays and plain dataclasses.

Conventions
-----------
- ``equity`` is the mark-to-market equity curve E_0 .. E_{n}, one point per candle, in quote currency; it must
  be 1-D, non-empty, finite and strictly positive. ``n = len(equity) - 1`` is the number of return periods.
- ``returns`` are simple per-period returns r_1 .. r_n, 1-D and finite.
- ``ppy`` (periods per year) is the number of candles of the timeframe in a year. Crypto trades 24/7 on 365
  days, so ppy = 365 * 24 = 8760 for 1h candles, 2190 for 4h, 365 for 1d (``tools.timeframes.periods_per_year``).
- Every ratio uses a risk-free rate of 0 (and a minimum acceptable return of 0 for Sortino) and is annualized
  with sqrt(ppy). Where a ratio is undefined (too few returns, zero dispersion) it is 0.0, never NaN or inf;
  the only infinities are ``profit_factor`` with wins and no losses, and a CAGR too large for a float.
- The definitions of Sharpe, Sortino, max drawdown, CAGR and annualized volatility are those of
  empyrical-reloaded (``empyrical.sharpe_ratio``, ``sortino_ratio``, ``max_drawdown``, ``annual_return``,
  ``annual_volatility``), checked against it in tests/test_eval_metrics.py. The differences are only where
  empyrical returns NaN or inf: here such a value is 0.0.

Formulas
--------
- period_returns:          r_t = E_t / E_{t-1} - 1, t = 1 .. n.
- total_return:            E_n / E_0 - 1.
- annualized_return (CAGR): (E_n / E_0) ** (ppy / n) - 1; 0.0 when n == 0 (empyrical: prod(1 + r) ** (ppy / n) - 1).
- annualized_volatility:   std(r, ddof=1) * sqrt(ppy) (sample standard deviation); 0.0 with fewer than 2 returns.
- sharpe:                  mean(r) / std(r, ddof=1) * sqrt(ppy), rf = 0; 0.0 with fewer than 2 returns or when
                           std == 0 (all returns equal).
- sortino:                 mean(r) / DD * sqrt(ppy), with the downside deviation DD = sqrt(mean(min(r_t, 0)^2))
                           taken over ALL n returns (returns above the MAR 0 count as 0, they are not dropped;
                           empyrical's definition with required_return = 0); 0.0 with fewer than 2 returns or
                           when DD == 0.
- drawdown_series:         D_t = 1 - E_t / M_t = (M_t - E_t) / M_t, with the running peak M_t = max(E_0 .. E_t);
                           D_t >= 0, and D_t == 0 at a new or equalled peak.
- max_drawdown:            (max_t D_t, peak index, trough index). The trough is the first t where D_t is largest;
                           the peak is the last index at or before the trough where E equals M_trough (the point
                           the drawdown started from). No drawdown gives (0.0, 0, 0).
- max_drawdown_duration:   the longest run of consecutive equity points with E_t < M_t (below an earlier peak), in
                           periods. A drawdown ends at the first point back at or above the peak; one still open
                           at the end counts up to the last point. [100, 110, 99, 120] gives 1.
- max_drawdown_duration_days: the wall-clock length of that same run, (t_last - t_first + period_ms) / 86_400_000
                           from its first and last points' timestamps (= periods * period_ms / 1 day without gaps).
- calmar:                  annualized_return / max_drawdown; 0.0 when max_drawdown == 0.
- win_rate:                #(trades with pnl > 0) / #trades; 0.0 with no trades.
- profit_factor:           sum(pnl of winners) / |sum(pnl of losers)|; inf with winners and no losers, 0.0 with
                           no trades or no winners (pnl == 0 counts as neither).
- expectancy:              mean(pnl) per trade, in quote currency (pnl is net of all fees of the round trip);
                           0.0 with no trades.
- average_trade:           mean(pnl / entry_notional), the mean return per trade as a fraction of the capital it
                           committed; 0.0 with no trades.
- exposure_time:           #(points with a non-zero position) / len(in_position), in_position aligned with equity.
- turnover:                traded_notional / mean(E_0 .. E_n) * ppy / n, traded notional of entries and exits
                           over mean equity, annualized; 0.0 when n == 0.

Bootstrap confidence intervals
------------------------------
Moving-block bootstrap (Künsch 1989): each of ``n_boot`` resamples of length n is made of ceil(n / b) blocks of
b = min(block, n) consecutive returns, block starts drawn uniformly from 0 .. n - b (so serial correlation
within a block is kept), truncated to n. All resamples come from one index matrix of shape (n_boot, n) drawn from
``numpy.random.default_rng(seed)``, so a seed gives the same interval every time. The interval is the
percentile interval [q_{(1-c)/2}, q_{(1+c)/2}] of the resampled Sharpe ratios (numpy's linear interpolation).
The paired difference uses the SAME index matrix for both series and takes the percentiles of
sharpe(a*) - sharpe(b*); a series against itself gives exactly (0.0, 0.0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DAY_MS = 86_400_000
_CHUNK_ELEMENTS = 2_000_000  # bootstrap resamples are gathered in row chunks of about this many floats


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip: a position opened from flat and closed back to flat."""

    symbol: str
    entry_time: int  # UTC ms of the entry fill
    exit_time: int  # UTC ms of the exit fill
    entry_price: float
    exit_price: float
    quantity: float  # signed: + long, - short
    pnl: float  # net of all fees of the round trip, in quote currency
    fees: float
    exit_reason: str  # "exit" | "stop_loss" | "take_profit" | "end_of_data"
    entry_notional: float  # |quantity| * entry_price


# --- validation ---------------------------------------------------------------------------------------------


def _returns(returns: FloatArray | Sequence[float]) -> FloatArray:
    a = np.asarray(returns, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"returns must be 1-D, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("returns must be finite")
    return a


def _equity(equity: FloatArray | Sequence[float]) -> FloatArray:
    a = np.asarray(equity, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"equity must be a non-empty 1-D array, got shape {a.shape}")
    if not np.isfinite(a).all() or (a <= 0.0).any():
        raise ValueError("equity must be finite and strictly positive")
    return a


def _ppy(periods_per_year: float) -> float:
    ppy = float(periods_per_year)
    if not math.isfinite(ppy) or ppy <= 0.0:
        raise ValueError(f"periods_per_year must be finite and > 0, got {periods_per_year!r}")
    return ppy


# --- returns and ratios -------------------------------------------------------------------------------------


def period_returns(equity: FloatArray) -> FloatArray:
    """Simple returns r_t = E_t / E_{t-1} - 1 (length len(equity) - 1)."""
    e = _equity(equity)
    return e[1:] / e[:-1] - 1.0


def annualized_volatility(returns: FloatArray, periods_per_year: float) -> float:
    """std(r, ddof=1) * sqrt(ppy); 0.0 with fewer than 2 returns."""
    r, ppy = _returns(returns), _ppy(periods_per_year)
    if r.size < 2:
        return 0.0
    return float(np.std(r, ddof=1) * math.sqrt(ppy))


def sharpe(returns: FloatArray, periods_per_year: float) -> float:
    """mean(r) / std(r, ddof=1) * sqrt(ppy), rf = 0; 0.0 with fewer than 2 returns or zero dispersion."""
    r, ppy = _returns(returns), _ppy(periods_per_year)
    if r.size < 2 or r.max() == r.min():
        return 0.0
    std = float(np.std(r, ddof=1))
    if std == 0.0:
        return 0.0
    return float(np.mean(r)) / std * math.sqrt(ppy)


def sortino(returns: FloatArray, periods_per_year: float) -> float:
    """mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(ppy) over all returns (MAR 0); 0.0 if undefined."""
    r, ppy = _returns(returns), _ppy(periods_per_year)
    if r.size < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.square(np.minimum(r, 0.0)))))
    if downside == 0.0:
        return 0.0
    return float(np.mean(r)) / downside * math.sqrt(ppy)


# --- equity curve -------------------------------------------------------------------------------------------


def drawdown_series(equity: FloatArray) -> FloatArray:
    """D_t = (M_t - E_t) / M_t with M_t the running peak; >= 0."""
    e = _equity(equity)
    peak = np.maximum.accumulate(e)
    return (peak - e) / peak


def max_drawdown(equity: FloatArray) -> tuple[float, int, int]:
    """(largest drawdown as a positive fraction, index of its peak, index of its trough); (0.0, 0, 0) if none."""
    e = _equity(equity)
    peak = np.maximum.accumulate(e)
    dd = (peak - e) / peak
    trough = int(np.argmax(dd))
    if dd[trough] == 0.0:
        return 0.0, 0, 0
    start = int(np.flatnonzero(e[: trough + 1] == peak[trough])[-1])
    return float(dd[trough]), start, trough


def _longest_underwater_run(e: FloatArray) -> tuple[int, int]:
    """(first index, length) of the longest run of points below the running peak; (0, 0) when there is none."""
    under = e < np.maximum.accumulate(e)
    if not under.any():
        return 0, 0
    edges = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    lengths = np.flatnonzero(edges == -1) - starts
    best = int(np.argmax(lengths))
    return int(starts[best]), int(lengths[best])


def max_drawdown_duration(equity: FloatArray) -> int:
    """Longest run of consecutive points below an earlier peak, in periods (an open drawdown counts to the end)."""
    return _longest_underwater_run(_equity(equity))[1]


def annualized_return(equity: FloatArray, periods_per_year: float) -> float:
    """CAGR (E_n / E_0) ** (ppy / n) - 1 with n = len(equity) - 1; 0.0 when n == 0, inf on float overflow."""
    e, ppy = _equity(equity), _ppy(periods_per_year)
    n = e.size - 1
    if n == 0:
        return 0.0
    try:
        return float((float(e[-1]) / float(e[0])) ** (ppy / n) - 1.0)
    except OverflowError:
        return math.inf


def calmar(equity: FloatArray, periods_per_year: float) -> float:
    """annualized_return / max_drawdown; 0.0 when there is no drawdown."""
    mdd = max_drawdown(equity)[0]
    if mdd == 0.0:
        return 0.0
    return annualized_return(equity, periods_per_year) / mdd


# --- trades and activity ------------------------------------------------------------------------------------


def win_rate(trades: Sequence[Trade]) -> float:
    """Share of trades with pnl > 0; 0.0 with no trades."""
    if not trades:
        return 0.0
    return sum(1 for t in trades if t.pnl > 0.0) / len(trades)


def profit_factor(trades: Sequence[Trade]) -> float:
    """Gross profit / |gross loss|; inf with wins and no losses, 0.0 with no trades or no wins."""
    gross_profit = math.fsum(t.pnl for t in trades if t.pnl > 0.0)
    gross_loss = -math.fsum(t.pnl for t in trades if t.pnl < 0.0)
    if gross_loss == 0.0:
        return math.inf if gross_profit > 0.0 else 0.0
    return gross_profit / gross_loss


def expectancy(trades: Sequence[Trade]) -> float:
    """Mean pnl per trade in quote currency; 0.0 with no trades."""
    if not trades:
        return 0.0
    return math.fsum(t.pnl for t in trades) / len(trades)


def average_trade(trades: Sequence[Trade]) -> float:
    """Mean of pnl / entry_notional (a fraction); 0.0 with no trades."""
    if not trades:
        return 0.0
    for t in trades:
        if not t.entry_notional > 0.0:
            raise ValueError(f"trade {t.symbol} at {t.entry_time} has entry_notional {t.entry_notional!r} <= 0")
    return math.fsum(t.pnl / t.entry_notional for t in trades) / len(trades)


def exposure_time(in_position: BoolArray) -> float:
    """Fraction of points holding a non-zero position."""
    a = np.asarray(in_position, dtype=np.bool_)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"in_position must be a non-empty 1-D array, got shape {a.shape}")
    return float(np.count_nonzero(a)) / a.size


def turnover(traded_notional: float, equity: FloatArray, periods_per_year: float) -> float:
    """traded_notional / mean(equity) * ppy / n; 0.0 when n == 0."""
    e, ppy = _equity(equity), _ppy(periods_per_year)
    if not math.isfinite(traded_notional) or traded_notional < 0.0:
        raise ValueError(f"traded_notional must be finite and >= 0, got {traded_notional!r}")
    n = e.size - 1
    if n == 0:
        return 0.0
    return traded_notional / float(np.mean(e)) * ppy / n


# --- all together -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    total_return: float
    annualized_return: float
    volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration: int  # periods
    max_drawdown_duration_days: float
    win_rate: float
    profit_factor: float
    expectancy: float
    average_trade: float
    exposure_time: float  # fraction of periods with a non-zero position
    turnover: float  # traded notional (entries + exits) / mean equity, annualized
    fees_paid: float
    number_of_trades: int
    periods: int  # return periods: len(equity) - 1

    def to_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {f.name: getattr(self, f.name) for f in fields(self)}
        return out


def compute_metrics(
    equity: FloatArray,
    timestamps: IntArray,
    trades: list[Trade],
    in_position: BoolArray,
    traded_notional: float,
    fees_paid: float,
    periods_per_year: float,
    period_ms: int,
) -> Metrics:
    """Every metric of one backtest. ``timestamps`` (UTC ms, strictly increasing) and ``in_position`` are
    aligned with ``equity``; ``traded_notional`` sums |quantity| * price over every fill (entries and exits)."""
    e, ppy = _equity(equity), _ppy(periods_per_year)
    ts = np.asarray(timestamps, dtype=np.int64)
    pos = np.asarray(in_position, dtype=np.bool_)
    if ts.shape != e.shape or pos.shape != e.shape:
        raise ValueError(f"timestamps {ts.shape} and in_position {pos.shape} must have equity's shape {e.shape}")
    if (np.diff(ts) <= 0).any():
        raise ValueError("timestamps must be strictly increasing")
    if period_ms <= 0:
        raise ValueError(f"period_ms must be > 0, got {period_ms!r}")
    r = period_returns(e)
    mdd = max_drawdown(e)[0]
    run_start, run_len = _longest_underwater_run(e)
    run_ms = int(ts[run_start + run_len - 1] - ts[run_start]) + period_ms if run_len else 0
    return Metrics(
        total_return=float(e[-1] / e[0] - 1.0),
        annualized_return=annualized_return(e, ppy),
        volatility=annualized_volatility(r, ppy),
        sharpe=sharpe(r, ppy),
        sortino=sortino(r, ppy),
        calmar=calmar(e, ppy),
        max_drawdown=mdd,
        max_drawdown_duration=run_len,
        max_drawdown_duration_days=run_ms / DAY_MS,
        win_rate=win_rate(trades),
        profit_factor=profit_factor(trades),
        expectancy=expectancy(trades),
        average_trade=average_trade(trades),
        exposure_time=exposure_time(pos),
        turnover=turnover(float(traded_notional), e, ppy),
        fees_paid=float(fees_paid),
        number_of_trades=len(trades),
        periods=int(e.size - 1),
    )


# --- bootstrap ----------------------------------------------------------------------------------------------


def _check_bootstrap(n_boot: int, block: int, confidence: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def block_bootstrap_indices(n: int, n_boot: int, block: int, seed: int) -> IntArray:
    """Moving-block bootstrap index matrix of shape (n_boot, n): ceil(n / b) blocks of b = min(block, n)
    consecutive indices each, starts uniform on 0 .. n - b, truncated to n."""
    b = min(block, n)
    k = -(-n // b)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - b + 1, size=(n_boot, k), dtype=np.int64)
    idx: IntArray = (starts[:, :, None] + np.arange(b, dtype=np.int64)).reshape(n_boot, k * b)[:, :n]
    return idx


def _sharpe_rows(samples: FloatArray, ppy: float) -> FloatArray:
    """Sharpe of each row (n >= 2), 0.0 for rows of zero dispersion."""
    mean = samples.mean(axis=1)
    std = samples.std(axis=1, ddof=1)
    ok = (samples.max(axis=1) != samples.min(axis=1)) & (std > 0.0)
    out: FloatArray = np.zeros(samples.shape[0], dtype=np.float64)
    np.divide(mean, std, out=out, where=ok)
    return out * math.sqrt(ppy)


def _resampled_sharpes(r: FloatArray, idx: IntArray, ppy: float) -> FloatArray:
    rows = max(1, _CHUNK_ELEMENTS // max(1, idx.shape[1]))
    parts = [_sharpe_rows(r[idx[i : i + rows]], ppy) for i in range(0, idx.shape[0], rows)]
    return np.concatenate(parts)


def _percentile_interval(stats: FloatArray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_sharpe_ci(
    returns: FloatArray,
    periods_per_year: float,
    *,
    n_boot: int = 1000,
    block: int = 24,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of the Sharpe ratio by moving-block bootstrap; (0.0, 0.0) with fewer than 2 returns."""
    r, ppy = _returns(returns), _ppy(periods_per_year)
    _check_bootstrap(n_boot, block, confidence)
    if r.size < 2:
        return 0.0, 0.0
    idx = block_bootstrap_indices(r.size, n_boot, block, seed)
    return _percentile_interval(_resampled_sharpes(r, idx, ppy), confidence)


def bootstrap_sharpe_diff_ci(
    returns_a: FloatArray,
    returns_b: FloatArray,
    periods_per_year: float,
    *,
    n_boot: int = 1000,
    block: int = 24,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of sharpe(a) - sharpe(b), both resampled with the SAME block indices (paired)."""
    a, b, ppy = _returns(returns_a), _returns(returns_b), _ppy(periods_per_year)
    _check_bootstrap(n_boot, block, confidence)
    if a.shape != b.shape:
        raise ValueError(f"paired series must have the same length, got {a.size} and {b.size}")
    if a.size < 2:
        return 0.0, 0.0
    idx = block_bootstrap_indices(a.size, n_boot, block, seed)
    diff = _resampled_sharpes(a, idx, ppy) - _resampled_sharpes(b, idx, ppy)
    return _percentile_interval(diff, confidence)
