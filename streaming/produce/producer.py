"""Sending events to a topic at a target rate, counting what the broker acknowledged."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from infra.errors import ProjectError
from streaming.errors import ConfigurationError
from streaming.produce.events import MALFORMED_KINDS, OutgoingEvent

__all__ = ["DeliveryReport", "EventSender", "Pacer", "Progress", "send_events"]


class EventSender(Protocol):
    """What :func:`send_events` needs of a producer (a kafka-python ``KafkaProducer``)."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...


class Pacer:
    """Holds the ``i``-th send back until ``i / rate`` seconds after the first.

    A sender that falls behind (a slow broker) catches up as fast as it can, so the achieved
    rate over a run is at most ``rate``, never much above it.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None

    def wait_turn(self, index: int) -> None:
        """Sleep until the ``index``-th send (from 0) is due."""
        now = self._clock()
        if self._start is None:
            self._start = now
        delay = self._start + index * self._interval - now
        if delay > 0:
            self._sleep(delay)


@dataclass(frozen=True)
class Progress:
    """The figures of a send so far."""

    sent: int
    acknowledged: int
    failed: int
    seconds: float

    @property
    def rate(self) -> float:
        """Events sent per second so far."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class _Deliveries:
    """Delivery callbacks of the sent records' futures (called on kafka-python's I/O thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.acknowledged = 0
        self.failed = 0
        self.first_error: str | None = None

    def on_acknowledged(self, _metadata: Any) -> None:
        with self._lock:
            self.acknowledged += 1

    def on_failed(self, error: BaseException) -> None:
        with self._lock:
            self.failed += 1
            if self.first_error is None:
                text, name = str(error), type(error).__name__
                # kafka-python's errors name themselves in their text, most of them.
                self.first_error = text if name in text else f"{name}: {text}".rstrip(": ")

    def progress(self, seconds: float) -> Progress:
        with self._lock:
            return Progress(self.sent, self.acknowledged, self.failed, seconds)


@dataclass(frozen=True)
class DeliveryReport:
    """What a send did.

    Attributes:
        sent: Records handed to the producer.
        acknowledged: Records the broker acknowledged (``acks=all``).
        failed: Records not acknowledged: rejected, timed out, or unanswered at the end.
        malformed: Records malformed on purpose, per error kind.
        first_error: The first failure's reason, when any failed.
        interrupted: The send was stopped (Ctrl-C) before the source ended.
    """

    topic: str
    source: str
    sent: int
    acknowledged: int
    failed: int
    seconds: float
    malformed: Mapping[str, int] = field(default_factory=dict)
    first_error: str | None = None
    interrupted: bool = False

    @property
    def rate(self) -> float:
        """Events per second achieved, from the first send to the last acknowledgement."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Every record sent was acknowledged."""
        return self.acknowledged == self.sent

    @property
    def exit_code(self) -> int:
        """0 when every record sent was acknowledged, 1 when not, 130 after Ctrl-C."""
        if self.interrupted:
            return 130
        return 0 if self.complete else 1

    def render(self) -> str:
        """One line for people."""
        line = (
            f"sent {self.sent} events from {self.source} to {self.topic} in "
            f"{self.seconds:.1f} s ({self.rate:.1f} events/s): {self.acknowledged} "
            f"acknowledged, {self.failed} failed"
        )
        if self.malformed:
            kinds = ", ".join(f"{n} {kind}" for kind, n in self.malformed.items())
            line += f"; {sum(self.malformed.values())} malformed on purpose ({kinds})"
        if self.first_error:
            line += f"; first failure: {self.first_error}"
        if self.interrupted:
            line += "; interrupted"
        return line

    def to_json(self) -> str:
        """One JSON object for scripts."""
        return json.dumps(
            {
                "topic": self.topic,
                "source": self.source,
                "sent": self.sent,
                "acknowledged": self.acknowledged,
                "failed": self.failed,
                "seconds": round(self.seconds, 3),
                "rate": round(self.rate, 1),
                "malformed": dict(self.malformed),
                "first_error": self.first_error,
                "interrupted": self.interrupted,
                "ok": self.complete and not self.interrupted,
            }
        )


def send_events(
    producer: EventSender,
    topic: str,
    events: Iterable[OutgoingEvent],
    source: str,
    rate: float | None = None,
    progress: Callable[[Progress], None] | None = None,
    flush_timeout_s: float = 180.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send ``events`` to ``topic``, at most ``rate`` per second, and wait for every answer.

    Each record's delivery callbacks count it as acknowledged or failed. A record the
    producer refuses at once (too large) fails alone; a producer that cannot get metadata or
    buffer space in time (the broker went away) stops the send. Ctrl-C stops it too: what was
    sent is still flushed and reported.

    Args:
        source: What the events are, for the report.
        rate: Events per second (``None``: as fast as the producer takes them).
        progress: Called after each send with the figures so far.
        flush_timeout_s: How long to wait at the end for the last answers; records still
            unanswered then count as failed.

    Returns:
        The report: sent, acknowledged and failed records, time, malformed kinds.

    Raises:
        ConfigurationError: the source could not be read to its end; the message says how
            many records were sent and acknowledged before.
    """
    from kafka.errors import KafkaError, KafkaTimeoutError

    deliveries = _Deliveries()
    malformed: Counter[str] = Counter()
    pacer = Pacer(rate, clock, sleep) if rate else None
    interrupted = False
    source_error: ProjectError | None = None
    started: float | None = None  # at the first event, once the source has produced it
    try:
        for index, event in enumerate(events):
            if started is None:
                started = clock()
            if pacer is not None:
                pacer.wait_turn(index)
            key = event.key.encode() if event.key is not None else None
            deliveries.sent += 1
            try:
                future = producer.send(topic, value=event.value, key=key)
            except KafkaTimeoutError as e:
                deliveries.on_failed(e)
                break
            except KafkaError as e:
                deliveries.on_failed(e)
                continue
            future.add_callback(deliveries.on_acknowledged)
            future.add_errback(deliveries.on_failed)
            if event.malformed:
                malformed[event.malformed] += 1
            if progress is not None:
                progress(deliveries.progress(clock() - started))
    except KeyboardInterrupt:
        interrupted = True
    except ProjectError as e:
        source_error = e
    try:
        producer.flush(timeout=flush_timeout_s)
    except KafkaError as e:
        deliveries.on_failed(e)
    final = deliveries.progress(0.0 if started is None else clock() - started)
    if progress is not None:
        progress(final)
    report = DeliveryReport(
        topic=topic,
        source=source,
        sent=final.sent,
        acknowledged=final.acknowledged,
        failed=final.sent - final.acknowledged,
        seconds=final.seconds,
        malformed={kind: malformed[kind] for kind in MALFORMED_KINDS if malformed[kind]},
        first_error=deliveries.first_error,
        interrupted=interrupted,
    )
    if source_error is not None:
        raise ConfigurationError(
            f"{source_error} ({report.sent} events sent before it, "
            f"{report.acknowledged} acknowledged)"
        ) from source_error
    return report
