"""Start-up reconciliation between the journal and the exchange: the report, and the journal's side of it.

At start-up an exchange broker compares what the journal says about the account (orders not finished yet,
the fills it holds for them, the last portfolio point) with what the exchange says (the order looked up by
its client order id, the account's recent orders with our client-id prefix, balances), and resolves every
difference without sending an order:

- journal unfinished, exchange filled or canceled meanwhile: the missing fills are recorded, the status updated;
- journal unfinished, exchange still open: tracked again (polled, canceled at its time-to-live);
- on the exchange with our prefix, not in the journal (sent, then the process died before the journal
  write): adopted, i.e. journaled with its fills and tracked if still open;
- in the journal, unknown to the exchange after a lookup by client id: marked lost, never re-sent;
- the exchange could not be asked: left as it is, reported unverified, looked up again at every candle.

Balances: the exchange's are the truth; the report lists where they differ from the journal's last point.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.timeframes import to_iso
from tools.trade_types import Side

Finding = Literal["in_sync", "filled_while_away", "changed_while_away", "still_open", "adopted", "lost", "unverified"]


class JournalOrder(BaseModel):
    """An order as the journal holds it, with the totals of the fills journaled for it."""

    model_config = ConfigDict(extra="ignore")

    client_order_id: str
    decision_id: str
    symbol: str
    side: Side
    quantity: float
    reference_price: float
    submitted_at: int
    kind: str
    status: str
    filled_quantity: float
    stop_loss: float | None = None
    take_profit: float | None = None
    journal_filled: float = 0.0
    journal_notional: float = 0.0
    journal_fee: float = 0.0


class OrderFinding(BaseModel):
    client_order_id: str
    exchange_client_id: str
    symbol: str
    finding: Finding
    journal_status: str | None = None
    exchange_status: str | None = None
    journal_filled: float = 0.0
    exchange_filled: float | None = None
    action: str = ""


class BalanceLine(BaseModel):
    asset: str
    journal: float | None
    exchange: float

    @property
    def difference(self) -> float | None:
        return None if self.journal is None else self.exchange - self.journal

    def differs(self) -> bool:
        d = self.difference
        return d is not None and abs(d) > 1e-9 * max(1.0, abs(self.exchange))


class ReconciliationReport(BaseModel):
    exchange: str
    mode: str
    at: int
    orders: list[OrderFinding] = Field(default_factory=list)
    balances: list[BalanceLine] = Field(default_factory=list)
    journal_point_at: int | None = None
    notes: list[str] = Field(default_factory=list)

    def differences(self) -> list[OrderFinding]:
        return [o for o in self.orders if o.finding not in ("in_sync", "still_open")]

    def balance_differences(self) -> list[BalanceLine]:
        return [b for b in self.balances if b.differs()]

    @property
    def clean(self) -> bool:
        return not self.differences() and not self.balance_differences()

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for o in self.orders:
            counts[o.finding] = counts.get(o.finding, 0) + 1
        orders = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(counts.items())) or "none"
        diffs = len(self.balance_differences())
        return f"orders checked {len(self.orders)} ({orders}); balance differences {diffs}"

    def lines(self) -> list[str]:
        out = [f"reconciliation with {self.exchange} ({self.mode}): {self.summary()}"]
        for o in self.orders:
            if o.finding == "in_sync":
                continue
            filled = f"{o.exchange_filled:.8g}" if o.exchange_filled is not None else "?"
            out.append(
                f"  {o.finding.replace('_', ' ')}: {o.symbol} {o.client_order_id} (exchange id {o.exchange_client_id}): "
                f"journal {o.journal_status or '-'} filled {o.journal_filled:.8g}, exchange "
                f"{o.exchange_status or '-'} filled {filled} -> {o.action}"
            )
        since = f" (journal's last point {to_iso(self.journal_point_at)})" if self.journal_point_at else ""
        for b in self.balance_differences():
            out.append(f"  balance {b.asset}: journal {b.journal:.8g}, exchange {b.exchange:.8g}{since}")
        out += [f"  note: {n}" for n in self.notes]
        return out


def balance_lines(
    last_point: dict[str, Any] | None,
    quote: str,
    cash: float,
    positions: dict[str, float],
) -> list[BalanceLine]:
    """The journal's last cash and positions next to the exchange's (``positions``: symbol -> base quantity)."""
    journal_positions: dict[str, Any] = (last_point or {}).get("positions") or {}
    lines = [BalanceLine(asset=quote, journal=_float(last_point.get("cash")) if last_point else None, exchange=cash)]
    for symbol in sorted(set(positions) | set(journal_positions)):
        journal = _float(journal_positions.get(symbol, 0.0)) if last_point else None
        lines.append(BalanceLine(asset=symbol, journal=journal, exchange=positions.get(symbol, 0.0)))
    return lines


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
