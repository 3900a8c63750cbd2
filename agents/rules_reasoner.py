"""The deterministic ``rules`` reasoner: Bayesian fusion of the technical signals (see tools.signal_fusion)."""

from __future__ import annotations

from agents.reasoner import ReasonerInput, ReasonerTrace
from tools.signal_fusion import FusionConfig, action_for, fuse
from tools.signals import Action, Direction
from tools.trade_types import TradeIntent


class RulesReasoner:
    name = "rules"

    def __init__(self, cfg: FusionConfig) -> None:
        self.cfg = cfg

    def decide(self, inp: ReasonerInput) -> tuple[TradeIntent, ReasonerTrace]:
        result = fuse(inp.signals, self.cfg)
        p = result.probability_up
        action = action_for(p, self.cfg)
        if action is Action.SELL and inp.position_quantity <= 0 and not inp.allow_short:
            action = Action.HOLD
        if action is Action.BUY and inp.position_quantity < 0 and not inp.allow_short:
            action = Action.HOLD
        used = [s for s in inp.signals if s.direction is not Direction.NEUTRAL and s.strength > 0]
        evidence = {f"{s.name}.{k}": v for s in used for k, v in s.values.items()}
        evidence["probability_up"] = round(p, 6)
        evidence["log_odds"] = round(result.log_odds, 6)
        terms = ", ".join(
            f"{s.name} {s.direction.value} s={s.strength:.2f} ({result.contributions[s.name]:+.3f})" for s in used
        )
        rationale = f"P(up)={p:.3f} (log-odds {result.log_odds:+.3f}) from {len(used)} signals: {terms or 'none'}"
        intent = TradeIntent(
            action=action,
            conviction=round(abs(2 * p - 1), 6),
            horizon=self.cfg.horizon_candles,
            rationale=rationale[:4000],
            evidence=evidence,
            reasoner=self.name,
            probability_up=p,
        )
        return intent, ReasonerTrace(reasoner=self.name, details={"probability_up": p, "log_odds": result.log_odds})
