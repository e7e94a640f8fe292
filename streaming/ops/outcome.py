"""What one micro-batch did: the figures of its log line and metrics."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchOutcome"]


@dataclass(frozen=True)
class BatchOutcome:
    """The figures of one processed micro-batch."""

    batch_id: int
    rows_in: int
    predictions: int
    quarantined: int
    model_version: str | None
    duration_s: float
