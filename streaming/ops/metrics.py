"""The service's Prometheus metrics, on a registry of their own (one per service instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

__all__ = ["ServiceMetrics"]


class ServiceMetrics:
    """Counters and gauges a dashboard or alert reads from ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.batches = Counter("inference_batches", "Micro-batches processed", registry=r)
        self.records_in = Counter("inference_records_in", "Kafka records read", registry=r)
        self.predictions = Counter(
            "inference_predictions", "Rows written to predictions", registry=r
        )
        self.quarantined = Counter(
            "inference_quarantined", "Records quarantined", ["error_kind"], registry=r
        )
        self.model_swaps = Counter("inference_model_swaps", "Model versions swapped in", registry=r)
        self.model_swap_failures = Counter(
            "inference_model_swap_failures",
            "Model versions or registry look-ups that failed; the current model kept serving",
            ["reason"],
            registry=r,
        )
        self.model_version = Gauge(
            "inference_model_version", "Registry version of the serving model", registry=r
        )
        self.last_batch_id = Gauge("inference_last_batch_id", "Last batch id committed", registry=r)
        self.last_batch_seconds = Gauge(
            "inference_last_batch_seconds", "Duration of the last batch", registry=r
        )
        self.offsets_behind = Gauge(
            "inference_offsets_behind_latest",
            "Max offsets behind latest over partitions",
            registry=r,
        )
        self.offsets_skipped = Counter(
            "inference_offsets_skipped",
            "Offsets deleted by retention before they were read (--on-data-loss skip)",
            ["topic", "partition"],
            registry=r,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP on ``host:port`` (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)
