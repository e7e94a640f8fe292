"""Synthetic listing events for the demo and the tests, some deliberately malformed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from models.listings import FEATURE_COLUMNS, ID_COLUMN, generate_listings
from streaming.produce.producer import encode_event

__all__ = ["listing_events"]


def listing_events(count: int, seed: int, malformed_every: int = 0) -> Iterator[tuple[str, bytes]]:
    """Synthetic listing events ``(key, value)``: the listing id as key, its features as value.

    Args:
        count: How many events.
        seed: Seed of the listings generator.
        malformed_every: When > 0, every N-th value is truncated JSON (to exercise quarantine).
    """
    listings = generate_listings(count, seed=seed)
    for i, row in enumerate(listings.to_dict("records"), start=1):
        key = str(row[ID_COLUMN])
        features = {c: row[c] for c in FEATURE_COLUMNS}
        if malformed_every and i % malformed_every == 0:
            yield key, _malformed(features, i // malformed_every)
        else:
            yield key, encode_event(features)


def _malformed(features: Mapping[str, Any], n: int) -> bytes:
    """The n-th malformed value: truncated JSON, a wrong type, or bytes that are not UTF-8."""
    kind = n % 3
    if kind == 0:
        return b'{"truncated": '
    if kind == 1:
        return encode_event({**features, "accommodates": "a few"})
    return b"\xc3\x28 not utf-8"


def main(argv: list[str] | None = None) -> int:
    """Write synthetic listing events as JSON lines, for ``python -m streaming produce``."""
    parser = argparse.ArgumentParser(prog="python -m demo.events", description=main.__doc__)
    parser.add_argument("--count", type=int, default=1000, help="how many events")
    parser.add_argument("--malformed-every", type=int, default=0, help="every Nth event is bad")
    parser.add_argument("--seed", type=int, default=7, help="seed of the listings generator")
    args = parser.parse_args(argv)
    for _, value in listing_events(args.count, args.seed, args.malformed_every):
        sys.stdout.buffer.write(value.replace(b"\n", b" ") + b"\n")
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
