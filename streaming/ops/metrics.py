"""The service's Prometheus metrics, on a registry of their own (one per service instance).

Two sources feed them, neither adding work to a batch: the ``foreachBatch`` function counts
what it wrote (records, predictions, quarantined by kind), the model provider counts swaps, and
the query's progress report (:mod:`streaming.ops.progress`) gives rates, durations and lag.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from streaming.parse.events import ErrorKind

__all__ = ["COMPACTED_TABLES", "SWAP_FAILURE_REASONS", "TRIGGER_SECONDS_BUCKETS", "ServiceMetrics"]

SWAP_FAILURE_REASONS = ("version_rejected", "registry_unreachable")
COMPACTED_TABLES = ("predictions", "quarantine")

# From a few records (well under a second) to a backlog batch capped by
# --max-offsets-per-trigger (minutes).
TRIGGER_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class ServiceMetrics:
    """Counters and gauges a dashboard or alert reads from ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.batches = Counter("inference_batches", "Micro-batches processed", registry=r)
        self.records_in = Counter(
            "inference_records_in", "Kafka records processed (scored or quarantined)", registry=r
        )
        self.predictions = Counter(
            "inference_predictions", "Rows written to the predictions table", registry=r
        )
        self.quarantined = Counter(
            "inference_quarantined",
            "Records written to the quarantine table, by error kind",
            ["error_kind"],
            registry=r,
        )
        self.model_swaps = Counter(
            "inference_model_swaps", "Model versions swapped in at a batch boundary", registry=r
        )
        self.query_restarts = Counter(
            "inference_query_restarts",
            "Times the query was stopped and started again from its checkpoint, to judge "
            "records with a new model version's judge in its own plan",
            registry=r,
        )
        self.model_swap_failures = Counter(
            "inference_model_swap_failures",
            "Model versions or registry look-ups that failed; the current model kept serving",
            ["reason"],
            registry=r,
        )
        self.model_version = Gauge(
            "inference_model_version",
            "Registry version of the serving model (NaN outside the registry)",
            registry=r,
        )
        self.last_batch_id = Gauge("inference_last_batch_id", "Last batch id committed", registry=r)
        self.last_batch_seconds = Gauge(
            "inference_last_batch_seconds",
            "Seconds the last batch spent in foreachBatch (parse, score, both table writes)",
            registry=r,
        )
        self.last_trigger_seconds = Gauge(
            "inference_last_trigger_seconds",
            "Seconds the last micro-batch took from trigger to offsets committed "
            "(Spark's triggerExecution)",
            registry=r,
        )
        self.trigger_seconds = Histogram(
            "inference_trigger_seconds",
            "Seconds each micro-batch took from trigger to offsets committed "
            "(Spark's triggerExecution)",
            buckets=TRIGGER_SECONDS_BUCKETS,
            registry=r,
        )
        self.input_rows_per_second = Gauge(
            "inference_input_rows_per_second",
            "Records per second arriving from Kafka, over the last batch's interval "
            "(Spark's inputRowsPerSecond; 0 while the query is idle)",
            registry=r,
        )
        self.processed_rows_per_second = Gauge(
            "inference_processed_rows_per_second",
            "Records per second the last batch processed (Spark's processedRowsPerSecond; "
            "0 while the query is idle)",
            registry=r,
        )
        self.offsets_behind = Gauge(
            "inference_offsets_behind_latest",
            "Offsets behind the latest, largest over the partitions, as of the last batch",
            registry=r,
        )
        self.partition_offsets_behind = Gauge(
            "inference_partition_offsets_behind_latest",
            "Offsets between the last batch's end and the partition's latest offset",
            ["topic", "partition"],
            registry=r,
        )
        self.offsets_skipped = Counter(
            "inference_offsets_skipped",
            "Offsets deleted by retention before they were read (--on-data-loss skip)",
            ["topic", "partition"],
            registry=r,
        )
        self.compactions = Counter(
            "inference_compactions",
            "Background compactions of a table (--compact-every)",
            ["table"],
            registry=r,
        )
        self.compacted_files = Counter(
            "inference_compacted_files",
            "Small files a background compaction rewrote into larger ones",
            ["table"],
            registry=r,
        )

        # A labelled series appears with its first increment, and rate() or increase() never
        # counts the value a series is born with: the first quarantined records, the first
        # failed swap or compaction would be invisible on the dashboard. Every label value known
        # in advance starts at 0 instead (offsets_skipped's partitions are not known).
        for name, value in vars(ErrorKind).items():
            if name.isupper():
                self.quarantined.labels(error_kind=value)
        for reason in SWAP_FAILURE_REASONS:
            self.model_swap_failures.labels(reason=reason)
        for table in COMPACTED_TABLES:
            self.compactions.labels(table=table)
            self.compacted_files.labels(table=table)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP on ``host:port`` (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)
