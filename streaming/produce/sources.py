"""Where produced events come from: a file replayed (JSON lines, CSV, Parquet, a Delta table) or
synthetic listings. Files are read as a stream of record batches, never whole into memory."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from infra.errors import first_line
from infra.tables import local_table_format
from streaming.errors import ConfigurationError
from streaming.produce.events import key_of
from streaming.settings import InputFormat

if TYPE_CHECKING:
    import pyarrow.dataset as ds

__all__ = [
    "INPUT_FORMATS",
    "EventSource",
    "Row",
    "detect_format",
    "open_file",
    "open_synthetic",
    "read_event_lines",
]

INPUT_FORMATS: tuple[InputFormat, ...] = get_args(InputFormat)
_JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")
# Rows per record batch read from a table: small enough that the first events leave at once.
_BATCH_ROWS = 10_000

# pyarrow's preamble before the reason a dataset cannot be opened (it names the path again).
_DATASET_PREAMBLE = re.compile(r"^Error creating dataset\. .*?\?: ")

# ``(key, row)``: a row's fields (encoded as an event), or a JSON line sent as it is.
Row = tuple[str | None, Mapping[str, Any] | bytes]


@dataclass(frozen=True)
class EventSource:
    """Rows to send, with what a report calls them and how many there are when known cheaply.

    Attributes:
        rows: ``(key, row)`` pairs, read lazily.
        name: ``events.jsonl (jsonl)``, ``synthetic listings``...
        total: The row count, when known without reading the rows (``None`` otherwise).
    """

    rows: Iterator[Row]
    name: str
    total: int | None = None


def detect_format(path: Path) -> InputFormat:
    """The format of ``--input``, from its name or folder.

    JSON lines for ``*.jsonl``, ``*.ndjson`` and ``*.json`` (one event per line), a Delta table
    for a folder with a ``_delta_log``, CSV or Parquet by suffix or by the files in a folder.

    Raises:
        ConfigurationError: the path says nothing about its format.
    """
    if path.is_file() and path.name.lower().endswith(_JSON_LINES_SUFFIXES):
        return "jsonl"
    found = local_table_format(path)
    if found is None:
        raise ConfigurationError(
            f"cannot tell the format of --input {path} from its name: give --input-format "
            f"{'|'.join(INPUT_FORMATS)}"
        )
    return found


def open_file(path: Path, fmt: InputFormat | None, key_field: str | None) -> EventSource:
    """A replay of ``path``: its format is ``fmt`` or told by :func:`detect_format`.

    The file is opened here, so that a missing, unreadable or malformed one (or a
    ``key_field`` that is not one of its columns) fails before anything is sent.

    Raises:
        ConfigurationError: one line naming the path and what is wrong with it.
    """
    if not path.exists():
        raise ConfigurationError(f"cannot read --input {path}: no such file or folder")
    chosen = fmt or detect_format(path)
    if chosen == "jsonl":
        return EventSource(read_event_lines(path, key_field), f"{path} (jsonl)")
    dataset = _dataset(path, chosen)
    if key_field is not None and key_field not in dataset.schema.names:
        raise ConfigurationError(
            f"--key-field {key_field} is not a column of --input {path} (its columns: "
            f"{', '.join(dataset.schema.names)})"
        )
    total = None if chosen == "csv" else _count_rows(dataset, path, chosen)
    rows = _dataset_rows(dataset, path, chosen, key_field)
    return EventSource(rows, f"{path} ({chosen})", total)


def open_synthetic(count: int, seed: int, key_field: str | None) -> EventSource:
    """``count`` synthetic listings (see :func:`streaming.produce.synthetic.listing_rows`).

    Raises:
        ConfigurationError: ``key_field`` is not a field of the listings.
    """
    from streaming.produce.synthetic import listing_rows  # pandas: only when asked for

    rows = listing_rows(count, seed, key_field)
    return EventSource(rows, f"synthetic listings (seed {seed})", count)


def _dataset(path: Path, fmt: InputFormat) -> ds.Dataset:
    """A pyarrow dataset over ``path`` (nothing is read but the schema and the file list)."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    try:
        if fmt == "delta":
            return DeltaTable(str(path)).to_pyarrow_dataset()
        if fmt == "csv":
            import pyarrow.csv as csv

            # Empty CSV fields are missing values (as Spark reads them), not empty strings.
            options = csv.ConvertOptions(strings_can_be_null=True)
            return ds.dataset(path, format=ds.CsvFileFormat(convert_options=options))
        return ds.dataset(path, format="parquet")
    except (OSError, pa.ArrowException, DeltaError) as e:
        reason = _DATASET_PREAMBLE.sub("", first_line(e))
        raise ConfigurationError(f"cannot read --input {path} as {fmt}: {reason}") from e


def _count_rows(dataset: ds.Dataset, path: Path, fmt: InputFormat) -> int:
    """Rows of a Parquet or Delta dataset, from the files' footers."""
    import pyarrow as pa

    try:
        return int(dataset.count_rows())
    except (OSError, pa.ArrowException) as e:
        raise ConfigurationError(f"cannot read --input {path} as {fmt}: {first_line(e)}") from e


def _dataset_rows(
    dataset: ds.Dataset, path: Path, fmt: InputFormat, key_field: str | None
) -> Iterator[Row]:
    import pyarrow as pa

    try:
        for batch in dataset.to_batches(batch_size=_BATCH_ROWS):
            for row in batch.to_pylist():
                yield (key_of(row, key_field) if key_field else None), row
    except (OSError, pa.ArrowException) as e:
        raise ConfigurationError(f"cannot read --input {path} as {fmt}: {first_line(e)}") from e


def read_event_lines(path: Path, key_field: str | None = None) -> Iterator[Row]:
    """``(key, value)`` pairs from a JSON-lines file, one event object per line.

    A line is sent as it is (bytes unchanged), so a file can also carry malformed events. The
    key is the value of ``key_field`` in the line's object, when given and present.

    Raises:
        ConfigurationError: the file cannot be read.
    """
    try:
        handle = path.open("rb")
    except OSError as e:
        raise ConfigurationError(f"cannot read --input {path}: {e.strerror}") from e
    return _lines(handle, path, key_field)


def _lines(handle: Any, path: Path, key_field: str | None) -> Iterator[Row]:
    with handle:
        try:
            for line in handle:
                value = line.rstrip(b"\r\n")
                if value.strip():
                    yield _line_key(value, key_field), value
        except OSError as e:
            raise ConfigurationError(f"cannot read --input {path}: {e.strerror}") from e


def _line_key(value: bytes, key_field: str | None) -> str | None:
    if key_field is None:
        return None
    try:
        body = json.loads(value)
    except ValueError:
        return None
    return key_of(body, key_field) if isinstance(body, dict) else None
