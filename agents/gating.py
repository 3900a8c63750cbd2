"""When the LLM is asked: only when the deterministic signals leave something to decide.

Before any reasoner, the graph journals a snapshot as ``skipped`` when there is no position and no
actionable signal. Of the rest, the LLM is asked when (1) bullish and bearish signals of at least
``conflict_min_strength`` disagree, or (2) the rules' fused P(up) lies within ``threshold_margin`` of the
BUY or the SELL threshold, so the rules' own decision is marginal. Otherwise the rules decide and the trace
says why the LLM was not asked (outcome ``skipped``). With gating off every valid snapshot is asked.
"""

from __future__ import annotations

from agents.reasoner import ReasonerInput
from tools.llm_config import GatingConfig
from tools.signal_fusion import FusionConfig
from tools.signals import Direction


def should_ask(inp: ReasonerInput, p_up: float, gating: GatingConfig, fusion: FusionConfig) -> tuple[bool, str]:
    """(ask the LLM?, why) for a snapshot that reached the reasoner."""
    if not gating.enabled:
        return True, "gating off: every snapshot is asked"
    strong = gating.conflict_min_strength
    bull = [s.name for s in inp.signals if s.direction is Direction.BULLISH and s.strength >= strong]
    bear = [s.name for s in inp.signals if s.direction is Direction.BEARISH and s.strength >= strong]
    if bull and bear:
        return (
            True,
            f"conflicting signals: {', '.join(bull)} bullish vs {', '.join(bear)} bearish (strength >= {strong:g})",
        )
    d_buy, d_sell = abs(p_up - fusion.buy_threshold), abs(p_up - fusion.sell_threshold)
    side, threshold, distance = (
        ("BUY", fusion.buy_threshold, d_buy) if d_buy <= d_sell else ("SELL", fusion.sell_threshold, d_sell)
    )
    if distance <= gating.threshold_margin:
        return True, (f"rules undecided: P(up)={p_up:.3f} is within {gating.threshold_margin:g} of the {side} "
                      f"threshold {threshold:g}")  # fmt: skip
    return False, (f"rules decisive: P(up)={p_up:.3f} is {distance:.3f} from the nearest threshold ({side} "
                   f"{threshold:g}, margin {gating.threshold_margin:g}) and no signals conflict")  # fmt: skip
