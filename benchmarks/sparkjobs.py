"""Spark jobs counted through the Spark UI's REST API (``/api/v1/applications/<id>/jobs`` and
``.../stages``).

A streaming query runs every job of its batches, those of ``foreachBatch`` included, in a job
group named after its run id.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pyspark.sql import SparkSession

__all__ = ["JobGroup", "SparkJobs"]


@dataclass(frozen=True)
class JobGroup:
    """What the jobs of one job group did.

    Attributes:
        jobs: How many jobs ran in it.
        spilled_bytes: Bytes their stages spilled from memory to disk (Spark's
            ``diskBytesSpilled``: what an execution that ran out of memory wrote).
    """

    jobs: int
    spilled_bytes: int


@dataclass(frozen=True)
class SparkJobs:
    """The jobs of one Spark application, as its UI reports them.

    Args:
        url: The UI's base URL, e.g. ``http://127.0.0.1:4040``.
        app_id: The application id.
    """

    url: str
    app_id: str

    @classmethod
    def of(cls, spark: SparkSession) -> SparkJobs:
        """The UI of ``spark`` (started with ``spark.ui.enabled=true``), on the loopback address.

        Raises:
            RuntimeError: the session has no UI.
        """
        context = spark.sparkContext
        if not context.uiWebUrl:
            raise RuntimeError("the Spark UI is disabled: set spark.ui.enabled=true")
        port = urlsplit(context.uiWebUrl).port
        return cls(f"http://127.0.0.1:{port}", context.applicationId)

    def _get(self, what: str) -> list[dict[str, Any]]:
        address = f"{self.url}/api/v1/applications/{self.app_id}/{what}"
        with urllib.request.urlopen(address, timeout=30) as response:
            return list(json.load(response))

    def in_group(self, group: str) -> JobGroup:
        """The jobs of job group ``group`` (a streaming query's run id) and their spill."""
        jobs = [job for job in self._get("jobs") if job.get("jobGroup") == group]
        stage_ids = {stage for job in jobs for stage in job.get("stageIds", ())}
        spilled = sum(
            int(stage.get("diskBytesSpilled") or 0)
            for stage in self._get("stages")
            if stage.get("stageId") in stage_ids
        )
        return JobGroup(len(jobs), spilled)
