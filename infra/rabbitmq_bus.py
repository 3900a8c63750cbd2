"""The RabbitMQ bus via aio-pika: a durable topic exchange, durable queues, publisher confirms, manual acks.

How the async client is driven: the graph is synchronous, so the adapter owns a private event loop on a
daemon thread (``infra.async_thread``) for the life of the connection. That loop answers heartbeats,
collects publisher confirms and receives deliveries while the main thread runs the graph; the main thread
submits coroutines to it and waits with a bound. Deliveries are handed over through a thread-safe queue and
acknowledged by the main thread once their effect is committed.

Reconnection is explicit rather than ``connect_robust``: after a broker restart, robust connections have been
seen to come back without their consumers (aio-pika issues #231, #626) and to block publishes until the
reconnection finishes (#636). Here any lost connection or channel is dropped whole; the next ``publish`` or
``get`` opens a new connection with backoff, declares the exchange and queues again and restarts the
consumer. Deliveries of the old connection are stale: the broker requeues them when the connection dies and
delivers them again, so they are skipped instead of processed, and an ack that cannot be sent reports False.
Publishing retries with backoff for at most ``retry_seconds``; a message published twice keeps its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import Sequence
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage

from infra.async_thread import AsyncThread
from infra.bus import BusError, Delivery
from infra.bus_messages import BusMessage
from infra.logging_setup import redact_text
from infra.redact import redact_url

log = logging.getLogger("tradegraph.bus")
# The client libraries log every failed attempt and lost connection themselves, as plain text with tracebacks;
# this adapter reports those as its own structured warnings (and retries), so theirs are silenced.
for _name in ("aiormq", "aio_pika"):
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)

TRANSIENT = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
    ConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    RuntimeError,  # aiormq raises it for writes on a connection that is closing
)


def _describe(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return redact_text(f"{type(exc).__name__}: {text}")[:300]


class RabbitBus:
    def __init__(
        self,
        url: str,
        exchange: str = "tradegraph",
        *,
        connect_timeout: float = 10.0,
        op_timeout: float = 30.0,
        retry_seconds: float = 120.0,
        name: str = "tradegraph",
    ) -> None:
        self.url = url
        self.display_url = redact_url(url)
        self.exchange_name = exchange
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self.retry_seconds = retry_seconds
        self.name = name
        self.reconnects = 0
        self._io = AsyncThread("tradegraph-amqp")
        self._conn: AbstractConnection | None = None
        self._pub: AbstractChannel | None = None
        self._sub: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._alive = False
        self._was_lost = False
        self._generation = 0
        self._queues: dict[str, tuple[list[str], str | None]] = {}
        self._consuming: tuple[str, int] | None = None
        self._inbox: queue.Queue[Delivery] = queue.Queue()
        self._next_attempt = 0.0
        self._backoff = 0.1
        try:
            self._io.call(self._connect(), timeout=connect_timeout + op_timeout)
        except TRANSIENT as exc:
            self._io.close()
            raise BusError(f"cannot connect to the bus at {self.display_url}: {_describe(exc)}") from None

    # --- connection (runs on the private loop) ----------------------------------------------------------
    def _lost(self, *_args: Any) -> None:
        if self._alive:
            self._was_lost = True
        self._alive = False

    async def _connect(self) -> None:
        await self._drop()
        conn = await aio_pika.connect(
            self.url, timeout=self.connect_timeout, client_properties={"connection_name": self.name}
        )
        try:
            conn.close_callbacks.add(self._lost)
            pub = await conn.channel(publisher_confirms=True, on_return_raises=True)
            pub.close_callbacks.add(self._lost)
            exchange = await pub.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True, timeout=self.op_timeout
            )
            for name, (topics, dead_letter) in self._queues.items():
                await self._declare(pub, exchange, name, topics, dead_letter)
            sub: AbstractChannel | None = None
            if self._consuming is not None:
                name, prefetch = self._consuming
                sub = await conn.channel(publisher_confirms=False)
                sub.close_callbacks.add(self._lost)
                await sub.set_qos(prefetch_count=prefetch, timeout=self.op_timeout)
                topics, dead_letter = self._queues.get(name, ([], None))
                q = await sub.declare_queue(name, durable=True, arguments=self._arguments(dead_letter),
                                            timeout=self.op_timeout)  # fmt: skip
                generation = self._generation + 1

                async def on_message(message: AbstractIncomingMessage) -> None:
                    self._on_message(generation, message)

                await q.consume(on_message, no_ack=False, timeout=self.op_timeout)
        except BaseException:
            await conn.close()
            raise
        self._conn, self._pub, self._sub, self._exchange = conn, pub, sub, exchange
        self._generation += 1
        self._alive = True

    async def _drop(self) -> None:
        conn, self._conn, self._pub, self._sub, self._exchange = self._conn, None, None, None, None
        self._alive = False
        if conn is not None:
            with contextlib.suppress(*TRANSIENT):  # the old connection is gone either way
                await asyncio.wait_for(conn.close(), timeout=5)

    @staticmethod
    def _arguments(dead_letter: str | None) -> dict[str, Any] | None:
        if dead_letter is None:
            return None
        return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead_letter}

    async def _declare(
        self, ch: AbstractChannel, ex: AbstractExchange, name: str, topics: Sequence[str], dead_letter: str | None
    ) -> None:
        if dead_letter is not None:
            await ch.declare_queue(dead_letter, durable=True, timeout=self.op_timeout)
        q = await ch.declare_queue(name, durable=True, arguments=self._arguments(dead_letter), timeout=self.op_timeout)
        for topic in topics:
            await q.bind(ex, routing_key=topic, timeout=self.op_timeout)

    def _on_message(self, generation: int, message: AbstractIncomingMessage) -> None:
        self._inbox.put(Delivery(
            topic=message.routing_key or "", message_id=message.message_id or "", body=message.body,
            redelivered=bool(message.redelivered), handle=(generation, message),
        ))  # fmt: skip

    def _healthy(self) -> bool:
        return (
            self._alive
            and self._pub is not None
            and not self._pub.is_closed
            and (self._consuming is None or (self._sub is not None and not self._sub.is_closed))
        )

    def _reconnect(self) -> None:
        """One (re)connection attempt, raising what it failed with; the callers back off between attempts."""
        lost = self._was_lost
        try:
            self._io.call(self._connect(), timeout=self.connect_timeout + self.op_timeout)
        finally:
            self._was_lost = lost and not self._alive
        if lost:
            self.reconnects += 1
            log.warning("bus connection to %s restored (reconnection %d)", self.display_url, self.reconnects)

    # --- the Bus protocol (called from the main thread) ---------------------------------------------------
    def declare_queue(self, name: str, topics: Sequence[str], dead_letter: str | None = None) -> None:
        self._queues[name] = (list(topics), dead_letter)
        self._with_retry(lambda: self._io.call(self._declare_now(name), timeout=self.op_timeout * 2), "declare")

    async def _declare_now(self, name: str) -> None:
        assert self._pub is not None and self._exchange is not None
        topics, dead_letter = self._queues[name]
        await self._declare(self._pub, self._exchange, name, topics, dead_letter)

    def consume(self, queue: str, prefetch: int) -> None:
        if queue not in self._queues:
            raise BusError(f"declare the queue {queue!r} before consuming from it")
        self._consuming = (queue, prefetch)
        self._alive = False  # the next connection opens the consumer channel
        self._with_retry(lambda: None, "consume")

    def publish(self, messages: Sequence[BusMessage]) -> None:
        if messages:
            self._with_retry(lambda: self._io.call(self._publish(messages), timeout=self.op_timeout + 5), "publish")

    async def _publish(self, messages: Sequence[BusMessage]) -> None:
        exchange = self._exchange
        assert exchange is not None
        await asyncio.gather(*(
            exchange.publish(
                aio_pika.Message(m.body, message_id=m.message_id, content_type="application/json", type=m.topic,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=m.topic, mandatory=m.mandatory, timeout=self.op_timeout,
            )
            for m in messages
        ))  # fmt: skip

    def _with_retry(self, action: Any, what: str) -> None:
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.1
        while True:
            try:
                if not self._healthy():
                    self._reconnect()
                action()
                return
            except aio_pika.exceptions.PublishError as exc:
                raise BusError(
                    f"the bus at {self.display_url} could not route a message ({_describe(exc)}): "
                    "is the jobs queue declared?"
                ) from None
            except aio_pika.exceptions.ChannelPreconditionFailed as exc:
                raise BusError(f"the bus at {self.display_url} refused a declaration: {_describe(exc)}") from None
            except TRANSIENT as exc:
                self._lost()
                if time.monotonic() + delay > deadline:
                    raise BusError(
                        f"cannot {what} on the bus at {self.display_url} within {self.retry_seconds:.0f} s: "
                        f"{_describe(exc)}"
                    ) from None
                log.warning("bus %s failed (%s); retrying in %.1f s", what, _describe(exc), delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def get(self, timeout: float) -> Delivery | None:
        """The next delivery, or None after ``timeout`` seconds. Reconnects (with backoff) when the link is down."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if not self._healthy() and self._consuming is not None:
                if time.monotonic() >= self._next_attempt:
                    try:
                        self._reconnect()
                        self._backoff = 0.1
                    except TRANSIENT as exc:
                        log.warning("bus reconnection to %s failed: %s", self.display_url, _describe(exc))
                        self._next_attempt = time.monotonic() + self._backoff
                        self._backoff = min(self._backoff * 2, 5.0)
                if not self._healthy():
                    time.sleep(max(0.0, min(left, self._next_attempt - time.monotonic(), 0.5)))
                    if deadline - time.monotonic() <= 0:
                        return None
                    continue
            try:
                delivery = self._inbox.get(timeout=max(0.0, min(left, 0.5)))
            except queue.Empty:
                if deadline - time.monotonic() <= 0:
                    return None
                continue
            generation, _message = self._handle(delivery)
            if generation != self._generation:
                continue  # delivered on a connection that is gone: the broker has requeued it
            return delivery

    @staticmethod
    def _handle(delivery: Delivery) -> tuple[int, AbstractIncomingMessage]:
        handle = delivery.handle
        assert isinstance(handle, tuple)
        return handle[0], handle[1]

    def _settle(self, delivery: Delivery, requeue: bool | None) -> bool:
        generation, message = self._handle(delivery)
        if generation != self._generation or not self._healthy():
            return False
        action = message.ack() if requeue is None else message.nack(requeue=requeue)
        try:
            self._io.call(action, timeout=self.op_timeout)
        except TRANSIENT as exc:
            log.warning("bus ack/nack lost (%s); the broker will deliver the message again", _describe(exc))
            return False
        return True

    def ack(self, delivery: Delivery) -> bool:
        return self._settle(delivery, None)

    def nack(self, delivery: Delivery, requeue: bool) -> bool:
        return self._settle(delivery, requeue)

    def close(self) -> None:
        try:
            self._io.call(self._drop(), timeout=10)
        except TRANSIENT:
            pass
        finally:
            self._io.close()
