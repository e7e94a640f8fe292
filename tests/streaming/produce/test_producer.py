"""Sending at a rate and counting answers, with a stand-in producer (no broker)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NotLeaderForPartitionError

from streaming.errors import ConfigurationError
from streaming.produce.events import MALFORMED_KINDS, OutgoingEvent
from streaming.produce.producer import DeliveryReport, Pacer, Progress, send_events
from streaming.produce.progress import ProgressLine


class FakeClock:
    """A clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []
        self.errbacks: list[Callable[[BaseException], None]] = []

    def add_callback(self, fn: Callable[[Any], None]) -> None:
        self.callbacks.append(fn)

    def add_errback(self, fn: Callable[[BaseException], None]) -> None:
        self.errbacks.append(fn)


class FakeProducer:
    """Answers every record at flush: acknowledged, unless its value is in ``refused``;
    ``raising`` maps a value to what ``send`` raises for it."""

    def __init__(
        self, refused: tuple[bytes, ...] = (), raising: dict[bytes, Exception] | None = None
    ) -> None:
        self.refused = refused
        self.raising = raising or {}
        self.pending: list[tuple[bytes, FakeFuture]] = []
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> FakeFuture:
        assert value is not None
        if value in self.raising:
            raise self.raising[value]
        self.sent.append((topic, key, value))
        future = FakeFuture()
        self.pending.append((value, future))
        return future

    def flush(self, timeout: float | None = None) -> None:
        for value, future in self.pending:
            if value in self.refused:
                for errback in future.errbacks:
                    errback(NotLeaderForPartitionError("gone"))
            else:
                for callback in future.callbacks:
                    callback(object())
        self.pending = []


def _events(count: int, malformed_every: int = 0) -> Iterator[OutgoingEvent]:
    for i in range(count):
        kind = MALFORMED_KINDS[i % 3] if malformed_every and i % malformed_every == 0 else None
        yield OutgoingEvent(f"k{i}", f"v{i}".encode(), kind)


def test_the_pacer_holds_each_send_until_its_turn() -> None:
    clock = FakeClock()
    pacer = Pacer(4.0, clock, clock.sleep)
    times = []
    for i in range(5):
        pacer.wait_turn(i)
        times.append(clock.now - 100.0)
        clock.now += 0.05  # the send itself
    assert times == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_a_pacer_that_fell_behind_catches_up_without_sleeping() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock, clock.sleep)
    pacer.wait_turn(0)
    clock.now += 1.0  # a slow broker held the producer for a second
    for i in range(1, 11):
        pacer.wait_turn(i)
    assert clock.now == pytest.approx(101.0)


def test_a_send_at_a_rate_takes_as_long_as_the_rate_says() -> None:
    clock = FakeClock()
    report = send_events(
        FakeProducer(), "t", _events(201), "test", rate=100, clock=clock, sleep=clock.sleep
    )
    assert (report.sent, report.acknowledged, report.failed) == (201, 201, 0)
    assert report.seconds == pytest.approx(2.0)
    assert report.rate == pytest.approx(100.5)


def test_every_record_is_sent_with_its_key_and_counted_by_its_answer() -> None:
    producer = FakeProducer(refused=(b"v1", b"v4"))
    report = send_events(producer, "t", _events(6, malformed_every=2), "test")
    assert producer.sent[:2] == [("t", b"k0", b"v0"), ("t", b"k1", b"v1")]
    assert (report.sent, report.acknowledged, report.failed) == (6, 4, 2)
    assert report.first_error == "[Error 6] NotLeaderForPartitionError: gone"
    assert report.malformed == {"malformed_json": 1, "type_mismatch": 1, "invalid_utf8": 1}
    assert not report.complete and report.exit_code == 1


def test_a_record_refused_at_once_fails_alone_and_a_blocked_producer_stops_the_send() -> None:
    too_large = FakeProducer(raising={b"v1": MessageSizeTooLargeError("1 MB")})
    report = send_events(too_large, "t", _events(4), "test")
    assert (report.sent, report.acknowledged, report.failed) == (4, 3, 1)

    blocked = FakeProducer(raising={b"v1": KafkaTimeoutError("no metadata in 60 s")})
    report = send_events(blocked, "t", _events(4), "test")
    assert (report.sent, report.acknowledged, report.failed) == (2, 1, 1)
    assert report.first_error == "KafkaTimeoutError: no metadata in 60 s"


def test_ctrl_c_stops_the_send_and_what_was_sent_is_still_flushed_and_reported() -> None:
    def interrupted() -> Iterator[OutgoingEvent]:
        yield from _events(3)
        raise KeyboardInterrupt

    report = send_events(FakeProducer(), "t", interrupted(), "test")
    assert (report.sent, report.acknowledged, report.interrupted) == (3, 3, True)
    assert report.exit_code == 130


def test_a_source_that_breaks_halfway_says_how_much_was_sent_before() -> None:
    def broken() -> Iterator[OutgoingEvent]:
        yield from _events(3)
        raise ConfigurationError("cannot read --input x.csv as csv: bad row")

    with pytest.raises(ConfigurationError) as caught:
        send_events(FakeProducer(), "t", broken(), "test")
    assert str(caught.value) == (
        "cannot read --input x.csv as csv: bad row (3 events sent before it, 3 acknowledged)"
    )


def test_progress_is_reported_after_each_send_and_at_the_end() -> None:
    seen: list[Progress] = []
    send_events(FakeProducer(), "t", _events(3), "test", progress=seen.append)
    assert [(p.sent, p.acknowledged) for p in seen] == [(1, 0), (2, 0), (3, 0), (3, 3)]


def test_the_report_in_text_and_json() -> None:
    report = DeliveryReport(
        "listings", "events.jsonl (jsonl)", 100, 99, 1, 2.0, {"malformed_json": 1}, "E: x"
    )
    assert report.render() == (
        "sent 100 events from events.jsonl (jsonl) to listings in 2.0 s (50.0 events/s): "
        "99 acknowledged, 1 failed; 1 malformed on purpose (1 malformed_json); first failure: E: x"
    )
    assert json.loads(report.to_json()) == {
        "topic": "listings",
        "source": "events.jsonl (jsonl)",
        "sent": 100,
        "acknowledged": 99,
        "failed": 1,
        "seconds": 2.0,
        "rate": 50.0,
        "malformed": {"malformed_json": 1},
        "first_error": "E: x",
        "interrupted": False,
        "ok": False,
    }


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_progress_line_rewrites_itself_and_ends_with_a_newline() -> None:
    clock = FakeClock()
    stream = Terminal()
    with ProgressLine(stream, "t", total=200, clock=clock) as line:
        for sent in (50, 100, 200):
            clock.now += 1.0
            line.show(Progress(sent, sent - 10, 0, clock.now - 100.0))
    assert stream.getvalue() == (
        "\rproducing to t: 50/200 (25%) sent, 40 acknowledged, 0 failed, 50.0 events/s, 1 s"
        "\rproducing to t: 100/200 (50%) sent, 90 acknowledged, 0 failed, 50.0 events/s, 2 s"
        "\rproducing to t: 200/200 (100%) sent, 190 acknowledged, 0 failed, 66.7 events/s, 3 s"
        "\rproducing to t: 200/200 (100%) sent, 190 acknowledged, 0 failed, 66.7 events/s, 3 s"
        "\n"
    )


def test_elsewhere_a_progress_line_is_written_every_few_seconds() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    with ProgressLine(stream, "t", clock=clock) as line:
        for second in range(1, 12):
            clock.now += 1.0
            line.show(Progress(10 * second, 10 * second, 0, float(second)))
    assert stream.getvalue().splitlines() == [
        "producing to t: 50 sent, 50 acknowledged, 0 failed, 10.0 events/s, 5 s",
        "producing to t: 100 sent, 100 acknowledged, 0 failed, 10.0 events/s, 10 s",
    ]
