"""Messages on the bus: versioned pydantic models, one per topic, plus the decision job of distributed runs.

Topics (routing keys on the topic exchange): ``market.ohlcv`` (the candle a decision is taken on),
``signals.tech`` (indicators and technical signals), ``trade.intent`` (the reasoner's intent), ``trade.order``
(an order the gate approved, with the verdict), ``execution.report`` (a fill). Jobs travel on ``jobs.decide``.

Every body is JSON with a ``v`` field. A reader accepts only the versions it knows and rejects any other with
a ``MessageVersionError`` naming the topic and both versions; fields are never guessed. Message ids are
derived from the decision key, so a message published again after a failure carries the same id and a
consumer can drop the duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra.journal import decision_id
from tools.errors import TradegraphError
from tools.market import Snapshot
from tools.signals import Action, TechnicalSignal
from tools.trade_types import Fill, GateVerdict, Order, TradeIntent

SUPPORTED_VERSION = 1
JOB_TOPIC = "jobs.decide"
TOPICS = ("market.ohlcv", "signals.tech", "trade.intent", "trade.order", "execution.report")


class MessageError(TradegraphError):
    """A message that cannot be read: not JSON, or fields that do not fit its model."""


class MessageVersionError(MessageError):
    """A message of a version this tradegraph does not read."""


@dataclass(frozen=True, slots=True)
class BusMessage:
    """What goes on the wire: routing key, a stable id, and the JSON body."""

    topic: str
    message_id: str
    body: bytes
    mandatory: bool = False
    """The broker must route it to a queue (jobs); topic messages may have no subscriber."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")
    TOPIC: ClassVar[str]

    v: Literal[1] = 1
    run_id: str

    def message_id(self) -> str:
        raise NotImplementedError

    def to_bus(self) -> BusMessage:
        return BusMessage(self.TOPIC, self.message_id(), self.model_dump_json().encode(), self.TOPIC == JOB_TOPIC)


class DecisionJob(_Message):
    """Decide one key (run, symbol, timeframe, candle). ``after``/``expect``: the previous scheduled candle and
    how many jobs were published for it; the job waits until that many decisions of ``after`` are journaled."""

    TOPIC = JOB_TOPIC
    symbol: str
    timeframe: str
    candle_time: int
    after: int | None = None
    expect: int = Field(default=0, ge=0)

    @property
    def decision_id(self) -> str:
        return decision_id(self.run_id, self.symbol, self.timeframe, self.candle_time)

    def message_id(self) -> str:
        return f"{self.decision_id}.job"


class OhlcvMessage(_Message):
    TOPIC = "market.ohlcv"
    symbol: str
    timeframe: str
    candle_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    def message_id(self) -> str:
        return f"{decision_id(self.run_id, self.symbol, self.timeframe, self.candle_time)}.ohlcv"


class TechSignalsMessage(_Message):
    TOPIC = "signals.tech"
    decision_id: str
    symbol: str
    timeframe: str
    candle_time: int
    indicators: dict[str, float]
    signals: list[TechnicalSignal]
    aggregate: Action
    confidence: float
    net_score: float

    def message_id(self) -> str:
        return f"{self.decision_id}.signals"


class TradeIntentMessage(_Message):
    TOPIC = "trade.intent"
    decision_id: str
    symbol: str
    timeframe: str
    candle_time: int
    intent: TradeIntent

    def message_id(self) -> str:
        return f"{self.decision_id}.intent"


class TradeOrderMessage(_Message):
    TOPIC = "trade.order"
    decision_id: str
    order: Order
    verdict: GateVerdict

    def message_id(self) -> str:
        return self.order.client_order_id


class ExecutionReportMessage(_Message):
    TOPIC = "execution.report"
    fill: Fill

    def message_id(self) -> str:
        f = self.fill
        return f"{f.client_order_id}.{f.kind}.{f.timestamp}"


MODELS: dict[str, type[_Message]] = {
    m.TOPIC: m
    for m in (DecisionJob, OhlcvMessage, TechSignalsMessage, TradeIntentMessage, TradeOrderMessage,
              ExecutionReportMessage)
}  # fmt: skip


def decode(topic: str, body: bytes) -> _Message:
    """The typed message of ``topic``; MessageVersionError for an unknown version, MessageError if malformed."""
    model = MODELS.get(topic)
    if model is None:
        raise MessageError(f"unknown topic {topic!r}")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"{topic} message is not JSON: {exc}") from None
    if not isinstance(raw, dict) or "v" not in raw:
        raise MessageError(f"{topic} message has no version field 'v'")
    if raw["v"] != SUPPORTED_VERSION:
        raise MessageVersionError(
            f"{topic} message version {raw['v']!r} is not supported (this tradegraph reads v{SUPPORTED_VERSION})"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MessageError(f"malformed {topic} message: {where}: {first['msg']}") from None


def decode_job(body: bytes) -> DecisionJob:
    job = decode(JOB_TOPIC, body)
    assert isinstance(job, DecisionJob)
    return job


# --- building the topic messages of one decision --------------------------------------------------------
def ohlcv_message(run_id: str, snap: Snapshot) -> OhlcvMessage:
    w = snap.window
    return OhlcvMessage(run_id=run_id, symbol=snap.symbol, timeframe=snap.timeframe, candle_time=snap.candle_time,
                        open=float(w.open[-1]), high=float(w.high[-1]), low=float(w.low[-1]), close=float(w.close[-1]),
                        volume=float(w.volume[-1]))  # fmt: skip


def messages_from_state(run_id: str, snap: Snapshot, state: Mapping[str, Any]) -> list[BusMessage]:
    """The messages of a decision as the graph left it (what a session observer sees)."""
    did = str(state.get("decision_id") or decision_id(run_id, snap.symbol, snap.timeframe, snap.candle_time))
    out: list[_Message] = [ohlcv_message(run_id, snap)]
    key = {"decision_id": did, "symbol": snap.symbol, "timeframe": snap.timeframe, "candle_time": snap.candle_time}
    tech = state.get("technical")
    if tech is not None:
        out.append(TechSignalsMessage(run_id=run_id, **key, indicators=tech.indicators, signals=tech.signals,
                                      aggregate=tech.aggregate, confidence=tech.confidence, net_score=tech.net_score))  # fmt: skip
    if state.get("intent") is not None:
        out.append(TradeIntentMessage(run_id=run_id, **key, intent=state["intent"]))
    if state.get("order") is not None:
        out.append(TradeOrderMessage(run_id=run_id, decision_id=did, order=state["order"], verdict=state["verdict"]))
    return [m.to_bus() for m in out]


def messages_from_record(run_id: str, snap: Snapshot, record: Mapping[str, Any]) -> list[BusMessage]:
    """The same messages rebuilt from a journaled decision (republishing after a failure)."""
    did = record["id"]
    out: list[_Message] = [ohlcv_message(run_id, snap)]
    key = {"decision_id": did, "symbol": record["symbol"], "timeframe": record["timeframe"],
           "candle_time": record["candle_time"]}  # fmt: skip
    aggregate = record.get("aggregate") or {}
    if aggregate:
        out.append(TechSignalsMessage(run_id=run_id, **key, indicators=record["indicators"],
                                      signals=[TechnicalSignal.model_validate(s) for s in record["signals"]],
                                      aggregate=Action(aggregate["action"]), confidence=aggregate["confidence"],
                                      net_score=aggregate["net_score"]))  # fmt: skip
    if record.get("intent"):
        out.append(TradeIntentMessage(run_id=run_id, **key, intent=TradeIntent.model_validate(record["intent"])))
    if record.get("order"):
        out.append(TradeOrderMessage(run_id=run_id, decision_id=did, order=Order.model_validate(record["order"]),
                                     verdict=GateVerdict.model_validate(record["verdict"])))  # fmt: skip
    return [m.to_bus() for m in out]


def fill_messages(run_id: str, fills: Sequence[Fill]) -> list[BusMessage]:
    return [ExecutionReportMessage(run_id=run_id, fill=f).to_bus() for f in fills]
