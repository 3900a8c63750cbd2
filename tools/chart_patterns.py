"""Chart patterns from fractal pivots: head and shoulders (and inverse), double top and double bottom.

Pivots: bar ``i`` is a pivot high when ``high[i]`` is the highest high of ``high[i-order : i+order+1]`` (on a tie the
earliest bar of the window wins), a pivot low likewise with ``low``. A pivot needs ``order`` bars on both sides, so the
last ``order`` bars never hold one and the result is a pure function of the bars seen so far. The pivots are then made
to alternate H/L: of consecutive pivots of one kind only the most extreme is kept (the earliest on a tie); a bar
that is both (an outside bar) is taken low-then-high after a high, high-then-low otherwise. A window holding a NaN
yields no pivot. Prices are assumed positive (the tolerances are relative).

Patterns are judged on the last pivots only, and only while the pattern's last pivot is at most ``max_age`` bars
before the last bar. ``tol`` is ``tolerance`` (relative):

* head_and_shoulders (bearish): last five pivots H L H L H; the head exceeds each shoulder by more than ``tol``
  (``head > shoulder * (1 + tol)``), ``|ls - rs| <= tol * mean(ls, rs)``, both troughs lie below both shoulders.
  Neckline = mean of the two troughs (horizontal). Invalidated when ``close[-1] > head``.
* inverse_head_and_shoulders (bullish): the mirror image on L H L H L (``head < shoulder * (1 - tol)``, peaks above
  both shoulders); invalidated when ``close[-1] < head``.
* double_top (bearish): last three pivots H L H, ``|t1 - t2| <= tol * mean(t1, t2)``, ``trough <= min(t1, t2) *
  (1 - tol)``; not reported when the last five pivots have the head-and-shoulders shape; invalidated when
  ``close[-1] > max(t1, t2)``. Neckline = the trough.
* double_bottom (bullish): the mirror image on L H L (``peak >= max(b1, b2) * (1 + tol)``); invalidated when
  ``close[-1] < min(b1, b2)``.

A pattern is confirmed when ``close[-1]`` has broken its neckline (strictly below for bearish, above for bullish):
strength 0.8 and ``values["confirmed"] = 1.0``; otherwise strength 0.5 and ``confirmed = 0.0``. The other values are
the pivot prices and the neckline, rounded to 6 significant digits. At most one pattern is reported per call, since
the bearish patterns need the last pivot to be a high and the bullish ones a low.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tools.errors import ConfigError, DataError
from tools.market import FloatArray
from tools.signals import Direction, SignalKind, TechnicalSignal

FORMED_STRENGTH = 0.5
CONFIRMED_STRENGTH = 0.8


@dataclass(frozen=True, slots=True)
class Pivot:
    index: int
    """Index into the arrays the pivot was found in."""
    price: float
    """The pivot bar's high (kind "H") or low (kind "L")."""
    kind: Literal["H", "L"]


def _alternating_pivots(high: FloatArray, low: FloatArray, order: int) -> tuple[list[int], list[float], list[bool]]:
    """Indices, prices and is-high flags of the alternating pivots, oldest first (no Pivot objects: this is hot)."""
    if order < 1:
        raise ConfigError(f"pivot order must be >= 1, got {order}")
    if high.ndim != 1 or low.shape != high.shape:
        raise DataError(f"high and low must be 1-D arrays of one length, got shapes {high.shape} and {low.shape}")
    n = high.shape[0]
    if n < 2 * order + 1:
        return [], [], []
    # One pass for both kinds: a pivot low is a pivot high of -low. argmax takes the earliest of equal extremes, and
    # a window holding a NaN never yields a pivot (argmax lands on the first NaN; a NaN centre is rejected below).
    series = np.empty((2, n), dtype=np.float64)
    series[0] = high
    np.negative(low, out=series[1])
    arg = sliding_window_view(series, 2 * order + 1, axis=1).argmax(axis=2)
    hit = (arg == order) & np.isfinite(series[:, order : n - order])
    high_idx: list[int] = (np.flatnonzero(hit[0]) + order).tolist()
    low_idx: list[int] = (np.flatnonzero(hit[1]) + order).tolist()
    high_px: list[float] = high[high_idx].tolist()
    low_px: list[float] = low[low_idx].tolist()

    out_idx: list[int] = []
    out_px: list[float] = []
    out_high: list[bool] = []
    i = j = 0
    n_high, n_low = len(high_idx), len(low_idx)
    while i < n_high or j < n_low:
        hi = high_idx[i] if i < n_high else n
        lo = low_idx[j] if j < n_low else n
        # An outside bar can be both a pivot high and a pivot low: take first the kind that alternates.
        if hi < lo or (hi == lo and (not out_high or not out_high[-1])):
            is_high, index, price = True, hi, high_px[i]
            i += 1
        else:
            is_high, index, price = False, lo, low_px[j]
            j += 1
        if out_high and out_high[-1] == is_high:
            if (price > out_px[-1]) if is_high else (price < out_px[-1]):  # keep the more extreme, earliest on a tie
                out_idx[-1] = index
                out_px[-1] = price
        else:
            out_idx.append(index)
            out_px.append(price)
            out_high.append(is_high)
    return out_idx, out_px, out_high


def find_pivots(high: FloatArray, low: FloatArray, order: int = 5) -> list[Pivot]:
    """Alternating fractal pivots, oldest first; never one in the last ``order`` bars (see the module docstring)."""
    indices, prices, highs = _alternating_pivots(high, low, order)
    return [Pivot(i, p, "H" if h else "L") for i, p, h in zip(indices, prices, highs, strict=True)]


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def _signal(name: str, direction: Direction, confirmed: bool, values: dict[str, float]) -> TechnicalSignal:
    rounded = {key: _sig(value) for key, value in values.items()}
    rounded["confirmed"] = 1.0 if confirmed else 0.0
    return TechnicalSignal(
        name=name,
        kind=SignalKind.CHART_PATTERN,
        direction=direction,
        strength=CONFIRMED_STRENGTH if confirmed else FORMED_STRENGTH,
        values=rounded,
    )


def _kinds(pivots: list[Pivot]) -> str:
    return "".join(p.kind for p in pivots)


def _head_and_shoulders_shape(last5: list[Pivot], tolerance: float, *, inverse: bool) -> bool:
    if _kinds(last5) != ("LHLHL" if inverse else "HLHLH"):
        return False
    ls, mid1, head, mid2, rs = (p.price for p in last5)
    shoulders_even = abs(ls - rs) <= tolerance * (ls + rs) / 2.0
    if inverse:
        head_clear = head < ls * (1.0 - tolerance) and head < rs * (1.0 - tolerance)
        middles_outside = min(mid1, mid2) > max(ls, rs)
    else:
        head_clear = head > ls * (1.0 + tolerance) and head > rs * (1.0 + tolerance)
        middles_outside = max(mid1, mid2) < min(ls, rs)
    return head_clear and shoulders_even and middles_outside


def _double_shape(last3: list[Pivot], tolerance: float, *, bottom: bool) -> bool:
    if _kinds(last3) != ("LHL" if bottom else "HLH"):
        return False
    a, middle, b = (p.price for p in last3)
    even = abs(a - b) <= tolerance * (a + b) / 2.0
    if bottom:
        return even and middle >= max(a, b) * (1.0 + tolerance)
    return even and middle <= min(a, b) * (1.0 - tolerance)


def detect_chart_patterns(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    *,
    order: int = 5,
    tolerance: float = 0.03,
    max_age: int = 15,
) -> list[TechnicalSignal]:
    """Chart patterns completed by the last pivots as of the last bar (rules in the module docstring)."""
    if not tolerance >= 0.0:
        raise ConfigError(f"pattern tolerance must be >= 0, got {tolerance}")
    if max_age < 0:
        raise ConfigError(f"pattern max_age must be >= 0, got {max_age}")
    if close.shape != high.shape:
        raise DataError(f"close must match high, got shapes {close.shape} and {high.shape}")
    indices, prices, highs = _alternating_pivots(high, low, order)
    if len(indices) < 3 or close.shape[0] - 1 - indices[-1] > max_age:
        return []
    pivots = [Pivot(i, p, "H" if h else "L") for i, p, h in zip(indices[-5:], prices[-5:], highs[-5:], strict=True)]
    last_close = float(close[-1])
    bullish = pivots[-1].kind == "L"

    last5 = pivots[-5:]
    if len(last5) == 5 and _head_and_shoulders_shape(last5, tolerance, inverse=bullish):
        ls, t1, head, t2, rs = (p.price for p in last5)
        neckline = (t1 + t2) / 2.0
        values = {"left_shoulder": ls, "head": head, "right_shoulder": rs, "neckline": neckline}
        if bullish:
            if last_close < head:
                return []
            return [_signal("inverse_head_and_shoulders", Direction.BULLISH, last_close > neckline, values)]
        if last_close > head:
            return []
        return [_signal("head_and_shoulders", Direction.BEARISH, last_close < neckline, values)]

    last3 = pivots[-3:]
    if not _double_shape(last3, tolerance, bottom=bullish):
        return []
    first, middle, second = (p.price for p in last3)
    if bullish:
        if last_close < min(first, second):
            return []
        values = {"first_bottom": first, "peak": middle, "second_bottom": second, "neckline": middle}
        return [_signal("double_bottom", Direction.BULLISH, last_close > middle, values)]
    if last_close > max(first, second):
        return []
    values = {"first_top": first, "trough": middle, "second_top": second, "neckline": middle}
    return [_signal("double_top", Direction.BEARISH, last_close < middle, values)]
