"""The Bus protocol and the in-process adapter (the default); RabbitMQ is in ``infra.rabbitmq_bus``.

A bus carries ``BusMessage``s on a topic exchange: ``publish`` returns once the broker has confirmed every
message (publisher confirms), queues are durable and bound to topic patterns (``*`` one word, ``#`` any
number of words), and consumers acknowledge each delivery by hand: ``ack`` when its effect is committed,
``nack(requeue=True)`` to have it delivered again, ``nack(requeue=False)`` to dead-letter it.

The in-process bus keeps all of that inside one process (tests, embedding, a single-process setup); it
cannot connect separate processes, so ``tradegraph schedule`` and ``worker`` need RabbitMQ.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from infra.bus_messages import BusMessage
from tools.errors import TradegraphError

MEMORY_URL = "memory://"


def is_memory_url(url: str) -> bool:
    """The in-process bus: ``memory://`` (also as ``memory:``, how a journaled, URL-normalized config keeps it)."""
    return url.partition(":")[0].lower() == "memory"


class BusError(TradegraphError):
    """The bus cannot be reached or refused a message."""


@dataclass(slots=True)
class Delivery:
    topic: str
    message_id: str
    body: bytes
    redelivered: bool
    handle: object = field(default=None, repr=False)
    """The adapter's own reference to the delivery (what ack/nack act on)."""


class Bus(Protocol):
    @property
    def display_url(self) -> str:
        """The URL with any password redacted."""
        ...

    def publish(self, messages: Sequence[BusMessage]) -> None:
        """Publish and wait for the broker's confirms; BusError when they cannot be had."""
        ...

    def declare_queue(self, name: str, topics: Sequence[str], dead_letter: str | None = None) -> None:
        """A durable queue bound to topic patterns; rejected messages go to the ``dead_letter`` queue."""
        ...

    def consume(self, queue: str, prefetch: int) -> None: ...
    def get(self, timeout: float) -> Delivery | None: ...
    def ack(self, delivery: Delivery) -> bool:
        """False when the delivery's channel is gone (the broker then delivers it again)."""
        ...

    def nack(self, delivery: Delivery, requeue: bool) -> bool: ...
    def close(self) -> None: ...


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))


@dataclass
class _Queue:
    topics: list[str]
    dead_letter: str | None
    ready: deque[Delivery] = field(default_factory=deque)


class MemoryBus:
    """Topic routing, durable-for-the-process queues and manual acks inside one process. Thread-safe."""

    display_url = MEMORY_URL

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}
        self._consuming: str | None = None
        self._prefetch = 1
        self._unacked: set[int] = set()
        self._tags = itertools.count(1)
        self._cond = threading.Condition()
        self.published: list[BusMessage] = []

    def publish(self, messages: Sequence[BusMessage]) -> None:
        with self._cond:
            for m in messages:
                self.published.append(m)
                for q in self._queues.values():
                    if any(topic_matches(t, m.topic) for t in q.topics):
                        q.ready.append(Delivery(m.topic, m.message_id, m.body, redelivered=False))
            self._cond.notify_all()

    def declare_queue(self, name: str, topics: Sequence[str], dead_letter: str | None = None) -> None:
        with self._cond:
            if name not in self._queues:
                self._queues[name] = _Queue(list(topics), dead_letter)
            if dead_letter and dead_letter not in self._queues:
                self._queues[dead_letter] = _Queue([], None)

    def consume(self, queue: str, prefetch: int) -> None:
        if queue not in self._queues:
            raise BusError(f"no queue {queue!r} on the in-process bus")
        self._consuming, self._prefetch = queue, prefetch

    def get(self, timeout: float) -> Delivery | None:
        if self._consuming is None:
            raise BusError("get() before consume()")
        deadline = time.monotonic() + timeout
        with self._cond:
            q = self._queues[self._consuming]
            while not q.ready or len(self._unacked) >= self._prefetch:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            delivery = q.ready.popleft()
            delivery.handle = next(self._tags)
            self._unacked.add(delivery.handle)
            return delivery

    def ack(self, delivery: Delivery) -> bool:
        with self._cond:
            return self._settle(delivery)

    def nack(self, delivery: Delivery, requeue: bool) -> bool:
        with self._cond:
            if not self._settle(delivery):
                return False
            assert self._consuming is not None
            q = self._queues[self._consuming]
            again = Delivery(delivery.topic, delivery.message_id, delivery.body, redelivered=requeue)
            if requeue:
                q.ready.appendleft(again)
            elif q.dead_letter:
                self._queues[q.dead_letter].ready.append(again)
            return True

    def _settle(self, delivery: Delivery) -> bool:
        key = delivery.handle
        if not isinstance(key, int) or key not in self._unacked:
            return False
        self._unacked.discard(key)
        self._cond.notify_all()
        return True

    def queued(self, queue: str) -> list[Delivery]:
        with self._cond:
            return list(self._queues[queue].ready)

    def close(self) -> None:
        pass
