"""Spark jobs counted through the Spark UI's REST API (``/api/v1/applications/<id>/jobs``).

A streaming query runs every job of its batches, those of ``foreachBatch`` included, in a job
group named after its run id.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from pyspark.sql import SparkSession

__all__ = ["SparkJobs"]


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

    def in_group(self, group: str) -> int:
        """How many jobs ran in job group ``group`` (a streaming query's run id)."""
        address = f"{self.url}/api/v1/applications/{self.app_id}/jobs"
        with urllib.request.urlopen(address, timeout=30) as response:
            jobs = json.load(response)
        return sum(1 for job in jobs if job.get("jobGroup") == group)
