"""Which offsets a batch skipped under ``--on-data-loss skip``, from its progress report."""

from __future__ import annotations

from collections.abc import Mapping

from streaming.ops.dataloss import SkippedRange, skipped_ranges


def progress(start: object, end: object, rows: int) -> dict[str, object]:
    return {"sources": [{"startOffset": start, "endOffset": end, "numInputRows": rows}]}


def broker(earliest: dict[str, dict[int, int]], asked: list[str]) -> object:
    def look_up(topic: str) -> Mapping[int, int]:
        asked.append(topic)
        return earliest[topic]

    return look_up


def test_a_batch_that_read_all_it_planned_skipped_nothing_and_asks_no_broker() -> None:
    asked: list[str] = []
    report = progress({"t": {"0": 10, "1": 5}}, {"t": {"0": 20, "1": 9}}, rows=14)

    assert skipped_ranges(report, broker({}, asked)) == []  # type: ignore[arg-type]
    assert asked == []


def test_the_range_below_the_earliest_offset_of_each_short_partition_is_skipped() -> None:
    asked: list[str] = []
    # Planned 10..19 and 5..8 (14 records); read 8: partition 0 lost 10..15.
    report = progress('{"t": {"0": 10, "1": 5}}', '{"t": {"0": 20, "1": 9}}', rows=8)

    ranges = skipped_ranges(report, broker({"t": {0: 16, 1: 5}}, asked))  # type: ignore[arg-type]

    assert ranges == [SkippedRange("t", 0, 10, 16)]
    assert ranges[0].count == 6 and asked == ["t"]


def test_a_partition_emptied_past_the_batch_end_lost_only_what_the_batch_planned() -> None:
    report = progress({"t": {"0": 10}}, {"t": {"0": 20}}, rows=0)

    assert skipped_ranges(report, broker({"t": {0: 50}}, [])) == [  # type: ignore[arg-type]
        SkippedRange("t", 0, 10, 20)
    ]


def test_the_first_batch_and_a_new_partition_have_no_planned_start() -> None:
    first = progress(None, {"t": {"0": 20}}, rows=0)
    added = progress({"t": {"0": 20}}, {"t": {"0": 20, "1": 7}}, rows=3)

    assert skipped_ranges(first, broker({"t": {0: 5}}, [])) == []  # type: ignore[arg-type]
    assert skipped_ranges(added, broker({"t": {0: 20, 1: 4}}, [])) == []  # type: ignore[arg-type]
