"""Synthetic listing events: the listings generator's rows, as events in the service's contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from infra.listings import FEATURE_COLUMNS, ID_COLUMN, generate_listings
from streaming.errors import ConfigurationError
from streaming.produce.events import MalformedMix, key_of, prepare_events

__all__ = ["listing_events", "listing_rows"]

# Listings are generated this many at a time, so that any count streams in bounded memory.
_CHUNK = 50_000


def _chunk_seed(seed: int, chunk: int) -> int:
    """The generator's seed for one chunk: ``seed`` itself for the first, so that up to
    :data:`_CHUNK` events are exactly ``generate_listings(count, seed)``."""
    if chunk == 0:
        return seed
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0])


def listing_rows(
    count: int, seed: int, key_field: str | None = None
) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """``(key, features)`` of ``count`` synthetic listings with ids 1..count.

    Args:
        seed: The same seed gives the same listings.
        key_field: The feature whose value is the key (default: the listing id).

    Raises:
        ConfigurationError: ``key_field`` is neither the id nor a feature of the listings.
    """
    if key_field not in (None, ID_COLUMN, *FEATURE_COLUMNS):
        raise ConfigurationError(
            f"--key-field {key_field} is not a field of the synthetic listings: use "
            f"{ID_COLUMN} (the default) or one of {', '.join(FEATURE_COLUMNS)}"
        )
    return _rows(count, seed, key_field or ID_COLUMN)


def _rows(count: int, seed: int, key_field: str) -> Iterator[tuple[str | None, dict[str, Any]]]:
    for chunk, start in enumerate(range(0, count, _CHUNK)):
        size = min(_CHUNK, count - start)
        frame = generate_listings(size, seed=_chunk_seed(seed, chunk), start_id=start + 1)
        for row in frame.to_dict("records"):
            yield key_of(row, key_field), {c: row[c] for c in FEATURE_COLUMNS}


def listing_events(count: int, seed: int, malformed_every: int = 0) -> Iterator[tuple[str, bytes]]:
    """Synthetic listing events ``(key, value)``: the listing id as key, its features as value.

    Args:
        count: How many events.
        seed: Seed of the listings generator.
        malformed_every: When > 0, every N-th value is malformed, in turn truncated JSON, a
            wrong type and bytes that are not UTF-8 (to exercise the quarantine).
    """
    mix = MalformedMix.every(malformed_every) if malformed_every > 0 else None
    for key, value, _ in prepare_events(listing_rows(count, seed), mix):
        assert key is not None
        yield key, value
