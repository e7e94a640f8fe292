"""``tail``: the newest rows of the predictions or quarantine table, read with delta-rs.

No Spark: the table's log gives each data file's largest ``batch_id`` (Delta's file
statistics), so only the files of the newest batches are read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from streaming.errors import ConfigurationError
from streaming.sink.deltars import open_table

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TableTail", "render_json", "render_text"]

_BATCH = "batch_id"
_ORDER = ("topic", "partition", "offset")
# The columns a person looks at first, per table; other tables show every column.
_SHOWN = (
    ("scored_at", "batch_id", "topic", "partition", "offset", "key", "event_id", "prediction",
     "model_version", "profile_flags"),
    ("quarantined_at", "batch_id", "topic", "partition", "offset", "key", "error_kind",
     "error_detail"),
)  # fmt: skip


class TableTail:
    """Reads the newest rows of one Delta table written by the service (it has ``batch_id``).

    Raises:
        ConfigurationError: there is no Delta table at ``path``, or it has no ``batch_id``.
    """

    def __init__(self, path: str) -> None:
        self.table = open_table(path)
        if _BATCH not in self.table.schema().to_arrow().names:
            raise ConfigurationError(
                f"table {path} has no {_BATCH} column: give the predictions or quarantine table"
            )
        self.path = path

    def newest(self, rows: int) -> pa.Table:
        """The newest ``rows`` rows, oldest first (by batch, then topic, partition, offset)."""
        cutoff = self._cutoff(rows)
        if cutoff is None:
            return self._read(None).slice(0, 0)
        found = self._read(cutoff)
        return found.slice(max(found.num_rows - rows, 0))

    def since(self, batch_id: int) -> pa.Table:
        """Rows of batches after ``batch_id``, oldest first."""
        return self._read(batch_id + 1)

    def follow(
        self, rows: int, poll_s: float, keep_going: Callable[[], bool] = lambda: True
    ) -> Iterator[pa.Table]:
        """The newest ``rows``, then the rows of each new batch as the table grows."""
        shown = self.newest(rows)
        yield shown
        last = _max_batch(shown)
        version = self.table.version()
        while keep_going():
            time.sleep(poll_s)
            self.table.update_incremental()
            if self.table.version() == version:
                continue
            version = self.table.version()
            new = self.since(last) if last is not None else self.newest(rows)
            if new.num_rows:
                last = _max_batch(new)
                yield new

    def _cutoff(self, rows: int) -> int | None:
        """The oldest batch id the newest ``rows`` rows need, from the files' statistics.

        Files are counted newest first (by their largest batch id) until they hold ``rows``
        rows; the cutoff is the smallest batch id in those files, since a compacted file spans
        many batches and the newest rows may reach back into any of them.
        """
        import pyarrow as pa

        files = pa.table(self.table.get_add_actions(flatten=True))
        newest, oldest = f"max.{_BATCH}", f"min.{_BATCH}"
        if not files.num_rows:
            return None
        if not {newest, oldest, "num_records"} <= set(files.column_names):
            return 0  # no statistics: read it all
        counted = 0
        cutoff: int | None = None
        for high, low, records in sorted(
            zip(
                files[newest].to_pylist(),
                files[oldest].to_pylist(),
                files["num_records"].to_pylist(),
                strict=True,
            ),
            key=lambda file: -1 if file[0] is None else file[0],
            reverse=True,
        ):
            if high is None or low is None:
                return 0
            counted += records or 0
            cutoff = int(low) if cutoff is None else min(cutoff, int(low))
            if counted >= rows:
                return cutoff
        return 0

    def _read(self, from_batch: int | None) -> pa.Table:
        import pyarrow.compute as pc

        dataset = self.table.to_pyarrow_dataset()
        where = None if from_batch is None else pc.field(_BATCH) >= from_batch
        found = dataset.to_table(filter=where)
        keys = [_BATCH, *(c for c in _ORDER if c in found.column_names)]
        order = [(c, "ascending") for c in keys]
        return found.sort_by(order)


def _max_batch(rows: pa.Table) -> int | None:
    import pyarrow.compute as pc

    if not rows.num_rows:
        return None
    return int(pc.max(rows[_BATCH]).as_py())


def _shown_columns(names: Sequence[str]) -> list[str]:
    for preferred in _SHOWN:
        if set(preferred) <= set(names):
            return list(preferred)
    return list(names)


def _plain(value: Any) -> Any:
    """A value as JSON can hold it (bytes as text with invalid UTF-8 escaped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def render_text(rows: pa.Table, header: bool = True) -> str:
    """Tab-separated lines of the columns a person looks at first."""
    columns = _shown_columns(rows.column_names)
    lines = ["\t".join(columns)] if header else []
    for row in rows.select(columns).to_pylist():
        lines.append("\t".join("" if row[c] is None else str(_plain(row[c])) for c in columns))
    return "\n".join(lines)


def render_json(rows: pa.Table) -> str:
    """One JSON object per row, every column."""
    return "\n".join(
        json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True)
        for row in rows.to_pylist()
    )
