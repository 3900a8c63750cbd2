"""The chat inspector's tools over the journal: plain data out, with the decision ids each answer rests on.

The tools read through ``tools.journal_reader.JournalReader`` (passed in; agents never import infra) and
never invent a number: every value they return is a journal value or arithmetic on journal values
(returns, sums), and they say so when the journal has no answer.

"Later outcome" of a decision (``explain_decision``):
- its orders' final status and their fills (entry, exit, stop-loss and take-profit fills all carry the
  decision's id), with their realized PnL net of fees;
- the round trip its order took part in: from the fill that opened the position from flat to the fill that
  brought it back to flat (possibly another decision's exit, or still open at the end of the journal), with
  the round trip's realized PnL (net of every fee) and the decision that closed it;
- the price move over the intent's horizon (``intent.horizon`` candles, else the run's
  ``fusion.horizon_candles``, else 24): the decision candle's close against the close journaled by the same
  symbol's latest decision within the horizon, and the lowest and highest of those closes.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from tools.errors import TradegraphError
from tools.journal_reader import DecisionQuery, JournalReader
from tools.timeframes import timeframe_ms, to_iso

DECISION_ID = re.compile(r"\bd-[0-9a-f]{16}\b")
DEFAULT_HORIZON = 24
MAX_LISTED = 50
RAW_RESPONSE_CHARS = 600


class ToolOutput(BaseModel):
    """One tool call's result: ``data`` is what an LLM sees (JSON-able), ``decision_ids`` what it may cite."""

    tool: str
    data: dict[str, Any]
    decision_ids: list[str] = Field(default_factory=list)

    @property
    def error(self) -> str | None:
        value = self.data.get("error")
        return str(value) if value is not None else None


class PerformanceFn(Protocol):
    def __call__(self, run_id: str, start: int | None, end: int | None) -> dict[str, Any]: ...


def parse_time_arg(text: str, field: str) -> int:
    """UTC ms of 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM' (also with 'T' and a trailing 'Z' or ' UTC')."""
    cleaned = text.strip().removesuffix("Z").removesuffix(" UTC").replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(cleaned, fmt).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    raise ValueError(f"{field} {text!r} is not a time: use YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)")


def _round(value: Any, digits: int = 8) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    return value


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "symbol": row["symbol"],
        "candle_time": to_iso(int(row["candle_time"])),
        "outcome": row["outcome"],
        "action": row["action"],
        "gate": row.get("verdict"),
        "reason": row["reason"],
        "close": row.get("close"),
    }


class InspectorTools:
    """Tools over one run of the journal (the latest one unless ``run_id`` names another)."""

    def __init__(self, reader: JournalReader, performance: PerformanceFn, run_id: str | None = None) -> None:
        self.reader = reader
        self._performance = performance
        self._run_id = run_id
        self._run: dict[str, Any] | None = None

    # --- the run ------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any] | None:
        """The run the tools look at; None while the journal holds no run."""
        if self._run is None:
            if self._run_id is not None:
                self._run = self.reader.get_run(self._run_id)
                if self._run is None:
                    raise TradegraphError(f"no run {self._run_id!r} in journal {self.reader.path}")
            else:
                latest = self.reader.latest_run()
                self._run = self.reader.get_run(latest["run_id"]) if latest else None
        return self._run

    def _need_run(self, tool: str) -> tuple[dict[str, Any] | None, ToolOutput | None]:
        run = self.run()
        if run is None:
            return None, ToolOutput(tool=tool, data={"error": "the journal holds no run yet: nothing to inspect"})
        return run, None

    def symbols(self) -> list[str]:
        run = self.run()
        return self.reader.run_symbols(run["run_id"]) if run else []

    def resolve_symbol(self, text: str | None) -> tuple[str | None, str | None]:
        """(symbol, None) for 'ETH', 'eth/usdt', 'ETHUSDT' or 'ETH-USDT'; (None, error) when the run has no such."""
        if text is None or not text.strip():
            return None, None
        wanted = text.strip().upper().replace("-", "/").replace("_", "/")
        symbols = self.symbols()
        for s in symbols:
            if wanted in (s, s.replace("/", ""), s.split("/")[0]):
                return s, None
        known = ", ".join(symbols) or "none yet"
        return None, f"{wanted} is not a symbol of this run (it decided on: {known})"

    def run_info(self) -> ToolOutput:
        run, err = self._need_run("run_info")
        if err:
            return err
        assert run is not None
        rid = run["run_id"]
        span = self.reader.time_span(rid)
        counts: Counter[str] = Counter()
        for outcome in ("invalid", "skipped", "hold", "no_order", "denied", "ordered", "error"):
            n = self.reader.count_decisions(DecisionQuery(run_id=rid, outcomes=(outcome,)))
            if n:
                counts[outcome] = n
        data = {
            "run_id": rid,
            "status": run["status"],
            "mode": run["mode"],
            "timeframe": run["config"].get("timeframe"),
            "symbols": self.reader.run_symbols(rid),
            "first_candle": to_iso(span[0]) if span else None,
            "last_candle": to_iso(span[1]) if span else None,
            "decisions_by_outcome": dict(counts),
            "initial_cash": run["config"].get("paper", {}).get("initial_cash"),
        }
        return ToolOutput(tool="run_info", data=data)

    # --- finding decisions --------------------------------------------------------------------------
    def find_decisions(
        self,
        symbol: str | None = None,
        start: int | None = None,
        end: int | None = None,
        action: str | None = None,
        verdict: str | None = None,
        outcome: str | None = None,
        limit: int = 20,
        newest_first: bool = False,
    ) -> ToolOutput:
        run, err = self._need_run("find_decisions")
        if err:
            return err
        assert run is not None
        sym, problem = self.resolve_symbol(symbol)
        if problem:
            return ToolOutput(tool="find_decisions", data={"error": problem})
        try:
            query = DecisionQuery(
                run_id=run["run_id"],
                symbol=sym,
                start=start,
                end=end,
                action=action.upper() if action else None,
                verdict=verdict.upper() if verdict else None,
                outcomes=(outcome.lower(),) if outcome else None,
                limit=max(1, min(limit, MAX_LISTED)),
                newest_first=newest_first,
            )
        except ValueError as exc:
            return ToolOutput(tool="find_decisions", data={"error": f"invalid filter: {_first_error(exc)}"})
        rows = self.reader.find_decisions(query)
        total = self.reader.count_decisions(query)
        filters = {k: v for k, v in {"symbol": sym, "from": to_iso(start) if start is not None else None,
                                     "before": to_iso(end) if end is not None else None, "action": query.action,
                                     "gate": query.verdict, "outcome": outcome}.items() if v is not None}  # fmt: skip
        data = {"run_id": run["run_id"], "filters": filters, "total": total, "shown": len(rows),
                "decisions": [_summary(r) for r in rows]}  # fmt: skip
        return ToolOutput(tool="find_decisions", data=data, decision_ids=[r["id"] for r in rows])

    def decision_at(self, symbol: str, at: int, action: str | None = None) -> ToolOutput:
        """The symbol's decision on the candle opening at ``at``, or else the one decided at ``at`` (its close)."""
        run, err = self._need_run("decision_at")
        if err:
            return err
        assert run is not None
        sym, problem = self.resolve_symbol(symbol)
        if problem or sym is None:
            return ToolOutput(tool="decision_at", data={"error": problem or "a symbol is needed"})
        tf = timeframe_ms(str(run["config"].get("timeframe", "1h")))
        rid = run["run_id"]
        for candle in (at, at - tf):
            rows = self.reader.find_decisions(DecisionQuery(run_id=rid, symbol=sym, start=candle, end=candle + 1))
            if rows:
                row = rows[0]
                data = _summary(row)
                data["matched"] = "candle open time" if candle == at else "decision time (the candle's close)"
                if action and row["action"] != action.upper():
                    data["note"] = f"the decision's action was {row['action'] or 'none'}, not {action.upper()}"
                return ToolOutput(tool="decision_at", data=data, decision_ids=[row["id"]])
        span = self.reader.time_span(rid)
        near = self.reader.find_decisions(
            DecisionQuery(run_id=rid, symbol=sym, start=at - 12 * tf, end=at + 12 * tf,
                          action=action.upper() if action else None, limit=6)
        )  # fmt: skip
        data = {
            "error": f"no {sym} decision at {to_iso(at)} in run {rid}",
            "run_covers": f"{to_iso(span[0])} .. {to_iso(span[1])}" if span else "nothing yet",
            "nearby": [_summary(r) for r in near],
        }
        return ToolOutput(tool="decision_at", data=data, decision_ids=[r["id"] for r in near])

    # --- one decision -------------------------------------------------------------------------------
    def explain_decision(self, decision_id: str) -> ToolOutput:
        decision_id = decision_id.strip()
        d = self.reader.get_decision(decision_id)
        if d is None:
            return ToolOutput(tool="explain_decision", data={"error": f"no decision {decision_id!r} in the journal"})
        run = self.reader.get_run(d["run_id"]) or {"config": {}}
        later, later_ids = self._later_outcome(d, run["config"])
        intent = d.get("intent")
        verdict = d.get("verdict")
        data: dict[str, Any] = {
            "id": d["id"],
            "run_id": d["run_id"],
            "symbol": d["symbol"],
            "timeframe": d["timeframe"],
            "candle_time": to_iso(int(d["candle_time"])),
            "decided_at": to_iso(int(d["as_of"])),
            "outcome": d["outcome"],
            "reason": d["reason"],
            "action": d["action"],
            "inputs": {
                "candles": d["window_length"],
                "from": to_iso(int(d["window_start"])),
                "to": to_iso(int(d["window_end"])),
                "hash": d["inputs_hash"],
            },
            "candle": _round(d.get("candle")),
            "indicators": _round(d.get("indicators") or {}),
            "signals": [
                {
                    "name": s.get("name"),
                    "kind": s.get("kind"),
                    "direction": s.get("direction"),
                    "strength": _round(s.get("strength")),
                    "values": _round(s.get("values") or {}),
                }
                for s in d.get("signals") or []
            ],
            "aggregate": _round(d.get("aggregate") or {}),
            "intent": None
            if not intent
            else {
                k: _round(intent.get(k))
                for k in ("action", "conviction", "horizon", "rationale", "probability_up", "reasoner")
            },
            "reasoner": _reasoner_view(d.get("reasoner")),
            "risk": _round(d.get("risk")),
            "proposal": _round(d.get("proposal")),
            "gate": None
            if not verdict
            else {
                "decision": verdict.get("decision"),
                "reasons": verdict.get("reasons", []),
                "details": verdict.get("details", []),
                "proposed_quantity": _round(verdict.get("proposed_quantity")),
                "approved_quantity": _round(verdict.get("approved_quantity")),
            },
            "orders": [
                {
                    k: _round(o.get(k))
                    for k in (
                        "client_order_id",
                        "kind",
                        "side",
                        "quantity",
                        "reference_price",
                        "status",
                        "filled_quantity",
                        "stop_loss",
                        "take_profit",
                    )
                }
                for o in d.get("orders") or []
            ],
            "fills": [
                {
                    "kind": f["kind"],
                    "side": f["side"],
                    "quantity": _round(f["quantity"]),
                    "price": _round(f["price"]),
                    "fee": _round(f["fee"]),
                    "time": to_iso(int(f["timestamp"])),
                    "realized_pnl": _round(f["realized_pnl"]),
                }
                for f in d.get("fills") or []
            ],
            "portfolio_at_decision": _round(d.get("portfolio") or {}),
            "later": later,
        }
        return ToolOutput(tool="explain_decision", data=data, decision_ids=list(dict.fromkeys([d["id"], *later_ids])))

    def _later_outcome(self, d: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        later: dict[str, Any] = {}
        cited: list[str] = []
        fills = d.get("fills") or []
        if fills:
            later["own_fills"] = len(fills)
            later["own_fills_realized_pnl"] = _round(sum(f["realized_pnl"] for f in fills))
            later["own_fills_fees"] = _round(sum(f["fee"] for f in fills))
        elif d.get("orders"):
            later["own_fills"] = 0
            later["order_status"] = d["orders"][0]["status"]
        trip = self._round_trip(d, fills)
        if trip:
            later["round_trip"] = trip
            cited += [x for x in (trip.get("opened_by"), trip.get("closed_by")) if x]
        if not d.get("indicators") or "close" not in d["indicators"]:
            later["price_move"] = "no close journaled for this decision (no indicators were computed)"
            return later, cited
        horizon = (d.get("intent") or {}).get("horizon") or config.get("fusion", {}).get("horizon_candles")
        horizon = int(horizon or DEFAULT_HORIZON)
        tf = timeframe_ms(d["timeframe"])
        t0 = int(d["candle_time"])
        closes = self.reader.closes(d["run_id"], d["symbol"], t0, t0 + horizon * tf + 1)
        after = [c for c in closes if c[0] > t0]
        if not after:
            later["price_move"] = "the journal has no later decision for this symbol"
            return later, cited
        c0 = float(d["indicators"]["close"])
        t1, c1, last_id = after[-1]
        values = [c[1] for c in after]
        candles = (t1 - t0) // tf
        later["price_move"] = {
            "horizon_candles": horizon,
            "candles_observed": int(candles),
            "close_at_decision": c0,
            "close_at_end": c1,
            "end_time": to_iso(t1),
            "end_decision": last_id,
            "change": _round(c1 / c0 - 1.0),
            "lowest_close": min(values),
            "highest_close": max(values),
        }
        if candles < horizon:
            later["price_move"]["note"] = f"the journal ends {candles} candles after the decision"
        cited.append(last_id)
        return later, cited

    def _round_trip(self, d: dict[str, Any], own_fills: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The flat-to-flat round trip of the symbol that this decision's first fill belongs to."""
        if not own_fills:
            return None
        first = own_fills[0]
        fills = self.reader.fills_between(d["run_id"], None, None, d["symbol"])
        position = 0.0
        trip: list[dict[str, Any]] = []
        for f in fills:
            if abs(position) <= 1e-12:
                trip = []
            trip.append(f)
            position += f["quantity"] * (1 if f["side"] == "buy" else -1)
            if f["client_order_id"] == first["client_order_id"] and f["timestamp"] == first["timestamp"]:
                break
        else:
            return None
        for f in fills[fills.index(trip[-1]) + 1 :]:
            if abs(position) <= 1e-12:
                break
            trip.append(f)
            position += f["quantity"] * (1 if f["side"] == "buy" else -1)
        closed = abs(position) <= 1e-12
        return {
            "opened": to_iso(int(trip[0]["timestamp"])),
            "opened_by": trip[0]["decision_id"],
            "closed": to_iso(int(trip[-1]["timestamp"])) if closed else None,
            "closed_by": trip[-1]["decision_id"] if closed else None,
            "closed_with": trip[-1]["kind"] if closed else None,
            "still_open_quantity": None if closed else _round(position),
            "fills": len(trip),
            "realized_pnl": _round(sum(f["realized_pnl"] for f in trip)),
            "fees": _round(sum(f["fee"] for f in trip)),
        }

    # --- portfolio ----------------------------------------------------------------------------------
    def positions_at(self, at: int | None = None) -> ToolOutput:
        run, err = self._need_run("positions_at")
        if err:
            return err
        assert run is not None
        rid = run["run_id"]
        point = self.reader.portfolio_at(rid, at if at is not None else 2**62)
        if point is None:
            span = self.reader.time_span(rid)
            when = to_iso(at) if at is not None else "any time"
            covers = f"the run covers {to_iso(span[0])} .. {to_iso(span[1])}" if span else "the run has no decision yet"
            return ToolOutput(
                tool="positions_at", data={"error": f"no portfolio snapshot at or before {when}; {covers}"}
            )
        t = int(point["timestamp"])
        initial = run["config"].get("paper", {}).get("initial_cash")
        fills = self.reader.fills_between(rid, None, t + 1)
        realized = sum(f["realized_pnl"] for f in fills)
        book: dict[str, dict[str, Any]] = {}
        for f in fills:
            signed = f["quantity"] * (1 if f["side"] == "buy" else -1)
            b = book.setdefault(f["symbol"], {"qty": 0.0, "avg": 0.0, "ids": []})
            if abs(b["qty"]) <= 1e-12:
                b.update(qty=0.0, avg=0.0, ids=[])
            if b["qty"] * signed >= 0:
                total = b["qty"] + signed
                b["avg"] = (b["avg"] * b["qty"] + f["price"] * signed) / total if total else 0.0
                if f["decision_id"] not in b["ids"]:
                    b["ids"].append(f["decision_id"])
            b["qty"] += signed
        positions = []
        cited: list[str] = []
        for symbol, quantity in sorted(point["positions"].items()):
            entry: dict[str, Any] = {"symbol": symbol, "quantity": _round(quantity)}
            held = book.get(symbol)
            average = None
            if held and abs(held["qty"]) > 1e-12:
                average = float(held["avg"])
                entry["average_entry_price"] = _round(average)
                entry["opened_by"] = held["ids"]
                cited += held["ids"]
            marks = self.reader.closes(rid, symbol, t, t + 1)
            if marks:
                entry["mark_close"] = marks[0][1]
                entry["mark_decision"] = marks[0][2]
                cited.append(marks[0][2])
                if average is not None:
                    entry["unrealized_pnl"] = _round(quantity * (marks[0][1] - average))
            positions.append(entry)
        data: dict[str, Any] = {
            "run_id": rid,
            "asked": to_iso(at) if at is not None else "end of the journal",
            "snapshot_time": to_iso(t),
            "cash": _round(point["cash"], 10),
            "equity": _round(point["equity"], 10),
            "gross_exposure": _round(point["gross_exposure"], 10),
            "drawdown": _round(point["drawdown"]),
            "positions": positions,
            "realized_pnl_to_date": _round(realized, 10),
            "fees_to_date": _round(sum(f["fee"] for f in fills), 10),
            "fills_to_date": len(fills),
        }
        if initial:
            data["initial_cash"] = initial
            data["pnl_since_start"] = _round(point["equity"] - float(initial), 10)
        if at is not None and at > t:
            last = self.reader.portfolio_at(rid, 2**62)
            if last is not None and int(last["timestamp"]) == t:
                data["note"] = f"the journal holds nothing after {to_iso(t)}: the run's last portfolio point is shown"
        return ToolOutput(tool="positions_at", data=data, decision_ids=list(dict.fromkeys(cited)))

    # --- the gate's denials -------------------------------------------------------------------------
    def denied_orders(
        self, symbol: str | None = None, start: int | None = None, end: int | None = None, limit: int = 20
    ) -> ToolOutput:
        run, err = self._need_run("denied_orders")
        if err:
            return err
        assert run is not None
        sym, problem = self.resolve_symbol(symbol)
        if problem:
            return ToolOutput(tool="denied_orders", data={"error": problem})
        query = DecisionQuery(run_id=run["run_id"], symbol=sym, start=start, end=end, verdict="DENY")
        rows = self.reader.find_decisions(query)
        by_reason: Counter[str] = Counter(code for r in rows for code in r["gate_reasons"])
        shown = rows[: max(1, min(limit, MAX_LISTED))]
        data = {
            "run_id": run["run_id"],
            "total": len(rows),
            "by_reason": dict(by_reason.most_common()),
            "shown": len(shown),
            "denials": [{**_summary(r), "gate_reasons": r["gate_reasons"]} for r in shown],
        }
        if sym or start is not None or end is not None:
            data["filters"] = {k: v for k, v in {"symbol": sym, "from": to_iso(start) if start is not None else None,
                                                 "before": to_iso(end) if end is not None else None}.items() if v}  # fmt: skip
        return ToolOutput(tool="denied_orders", data=data, decision_ids=[r["id"] for r in shown])

    # --- performance --------------------------------------------------------------------------------
    def performance(self, start: int | None = None, end: int | None = None) -> ToolOutput:
        run, err = self._need_run("performance")
        if err:
            return err
        assert run is not None
        try:
            data = self._performance(run["run_id"], start, end)
        except TradegraphError as exc:
            return ToolOutput(tool="performance", data={"error": str(exc)})
        ids = list(data.pop("decision_ids", []))
        return ToolOutput(tool="performance", data=_round(data, 10), decision_ids=ids)


def _reasoner_view(trace: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reasoner trace; LLM call records keep every field, with long raw responses shortened."""
    if not trace:
        return None
    view = {k: _round(v) for k, v in trace.items() if k != "calls"}
    calls = trace.get("calls")
    if calls:
        view["calls"] = []
        for call in calls:
            c = {k: _round(v) for k, v in call.items()}
            raw = c.get("raw_response")
            if isinstance(raw, str) and len(raw) > RAW_RESPONSE_CHARS:
                c["raw_response"] = raw[:RAW_RESPONSE_CHARS] + f"... ({len(raw)} characters)"
            view["calls"].append(c)
    return view


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
