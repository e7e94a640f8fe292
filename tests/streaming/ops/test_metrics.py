"""The Grafana dashboard reads only metrics the service serves, and shows every one of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from streaming.ops.metrics import COMPACTED_TABLES, SWAP_FAILURE_REASONS, ServiceMetrics
from streaming.parse.events import ErrorKind

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "inference-service.json"
_NAME = re.compile(r"\binference_[a-z_]+\b")
# The series Prometheus stores for each metric type (prometheus_client's family names have no
# suffix; a counter is exposed as ``_total``, a histogram as ``_bucket``, ``_sum``, ``_count``).
_SERIES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def _served() -> dict[str, str]:
    """Series name -> the metric (family) it belongs to, for every metric of the registry."""
    return {
        family.name + suffix: family.name
        for family in ServiceMetrics().registry.collect()
        for suffix in _SERIES[family.type]
    }


def test_every_panel_query_names_a_served_metric_and_every_metric_has_a_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in expressions for name in _NAME.findall(expr)}
    served = _served()

    assert used - served.keys() == set()
    assert set(served.values()) - {served[name] for name in used} == set()
    assert dashboard["schemaVersion"] == 39
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"${DS_PROMETHEUS}"}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_every_known_label_value_starts_at_zero_so_rate_counts_its_first_increment() -> None:
    registry = ServiceMetrics().registry
    kinds = [v for k, v in vars(ErrorKind).items() if k.isupper()]

    for kind in kinds:
        assert registry.get_sample_value("inference_quarantined_total", {"error_kind": kind}) == 0
    for reason in SWAP_FAILURE_REASONS:
        labels = {"reason": reason}
        assert registry.get_sample_value("inference_model_swap_failures_total", labels) == 0
    for table in COMPACTED_TABLES:
        assert registry.get_sample_value("inference_compactions_total", {"table": table}) == 0
        assert registry.get_sample_value("inference_compacted_files_total", {"table": table}) == 0
