"""``compact`` and ``vacuum`` on a real Delta table while a writer appends batches to it."""

from __future__ import annotations

import threading
from pathlib import Path

import deltalake
import pytest
from pyspark.sql import SparkSession

from streaming.cli import main
from streaming.sink.delta import DeltaSink
from streaming.sink.maintenance import vacuum
from streaming.sink.tables import PREDICTIONS_PARTITION, PREDICTIONS_SCHEMA
from tests.streaming.sink.conftest import append_predictions
from tests.support import duckdb_with_delta


def test_compaction_while_batches_are_appended_loses_and_doubles_nothing(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "predictions")
    sink = DeltaSink(spark, path, PREDICTIONS_SCHEMA, PREDICTIONS_PARTITION, app_id="q:p")
    sink.ensure_table()
    for batch_id in range(6):
        append_predictions(spark, sink, batch_id, range(batch_id * 4, batch_id * 4 + 4))
    files_before = len(deltalake.DeltaTable(path).file_uris())

    errors: list[BaseException] = []

    def writer() -> None:  # appends as the query does, while the compaction runs
        try:
            for batch_id in range(6, 10):
                append_predictions(spark, sink, batch_id, range(batch_id * 4, batch_id * 4 + 4))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    appending = threading.Thread(target=writer)
    appending.start()
    assert main(["compact", "--table", path, "--where", "event_date = '2026-11-26'"], {}) == 0
    appending.join(120)
    assert not errors
    assert "compacted" in capsys.readouterr().out

    offsets = [r.offset for r in spark.read.format("delta").load(path).select("offset").collect()]
    assert sorted(offsets) == list(range(40))  # every row once
    assert sink.last_batch() is not None and sink.last_batch().batch_id == 9  # type: ignore[union-attr]
    assert len(deltalake.DeltaTable(path).file_uris()) < files_before
    by_delta_rs = deltalake.DeltaTable(path).to_pandas()["offset"].sort_values().tolist()
    by_duckdb = duckdb_with_delta().sql(f"SELECT count(*) FROM delta_scan('{path}')").fetchone()
    assert by_delta_rs == list(range(40)) and by_duckdb == (40,)

    assert main(["vacuum", "--table", path], {}) == 0  # the compacted files are too recent
    assert "deleted 0 files" in capsys.readouterr().out
    assert spark.read.format("delta").load(path).count() == 40
    assert main(["vacuum", "--table", path, "--retain-hours", "1"], {}) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "retain" in err[0]

    # Once the removed files are older than the retention, vacuum deletes them and only them.
    # Here the table's own retention is set to none so that "older" is now.
    spark.sql(
        f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES "
        "('delta.deletedFileRetentionDuration' = 'interval 0 hours')"
    )
    referenced = {
        Path(uri.removeprefix("file://")) for uri in deltalake.DeltaTable(path).file_uris()
    }
    on_disk = _data_files(path)
    deleted = vacuum(path, retain_hours=0)
    assert len(deleted) == len(on_disk - referenced) >= files_before
    assert _data_files(path) == referenced
    assert spark.read.format("delta").load(path).count() == 40
    assert deltalake.DeltaTable(path).to_pyarrow_table().num_rows == 40
    assert duckdb_with_delta().sql(f"SELECT count(*) FROM delta_scan('{path}')").fetchone() == (40,)


def _data_files(path: str) -> set[Path]:
    return {p for p in Path(path).rglob("*.parquet") if "_delta_log" not in p.parts}
