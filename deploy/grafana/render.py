"""A picture of the Grafana dashboard without Grafana: Prometheus scrapes the service, the
dashboard's own PromQL is evaluated through Prometheus's HTTP API and matplotlib draws the panels
in the dashboard's grid layout.

Run it through ``scripts/dashboard-picture``, which fetches Prometheus first. It starts
Prometheus with a generated configuration that scrapes the service's ``/metrics`` every 2 s (its
data in a temporary folder), waits ``--duration`` seconds while the service runs, then evaluates
every target of every panel over that window with ``/api/v1/query_range`` (``$instance`` is the
scraped instance, ``$__rate_interval`` is ``--rate-interval``) and writes a PNG.

It fails (exit 1, one line per problem, naming the panel) when Prometheus rejects an expression,
or when an expression returns nothing although every metric it reads has samples: the PNG is
still written so the problem can be seen. Exit 2 for a bad command line or an endpoint Prometheus
cannot scrape.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GRID_COLUMNS = 24
SCRAPE_INTERVAL_S = 2
JOB = "inference"
DASHBOARD = Path(__file__).with_name("inference-service.json")

# Units of the dashboard's fieldConfig, as a suffix after the value.
UNIT_SUFFIX = {"reqps": " req/s", "rowsps": " rows/s", "s": " s", "short": "", "none": ""}


class DashboardError(Exception):
    """A panel's expression that Prometheus rejects, or that returns nothing."""


class SetupError(Exception):
    """Prometheus cannot start, or cannot scrape the endpoint."""


@dataclass
class Series:
    """One series of a target's result: its legend and its (unix time, value) samples."""

    legend: str
    times: list[float]
    values: list[float]


@dataclass
class PanelData:
    """A panel of the dashboard with the series its targets returned."""

    panel: dict[str, Any]
    series: list[Series] = field(default_factory=list)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/dashboard-picture",
        description=(
            "Render deploy/grafana/inference-service.json as a PNG from real data: Prometheus "
            "scrapes a running service's --metrics-port for --duration seconds, then every "
            "panel's PromQL is evaluated over that window. Start the service (and a producer) "
            "first, e.g. `python -m streaming run ... --metrics-port 9108` and "
            "`python -m streaming produce --synthetic 5000 --rate 20 --malformed-share 0.02`."
        ),
    )
    p.add_argument(
        "--metrics-endpoint",
        required=True,
        help="host:port of the running service's /metrics (its --metrics-host:--metrics-port)",
    )
    p.add_argument(
        "--prometheus",
        default="prometheus",
        help="the prometheus binary (scripts/dashboard-picture passes the one it fetched)",
    )
    p.add_argument("--duration", type=float, default=210, help="seconds to scrape (default: 210)")
    p.add_argument(
        "--rate-interval",
        default="30s",
        help="what $__rate_interval stands for (default: 30s)",
    )
    p.add_argument("--dashboard", type=Path, default=DASHBOARD, help="the dashboard JSON")
    p.add_argument(
        "--output",
        type=Path,
        default=Path("docs/images/dashboard.png"),
        help="the PNG to write (default: docs/images/dashboard.png)",
    )
    p.add_argument("--keep-data", type=Path, help="copy Prometheus's data folder here at the end")
    return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(base: str, path: str, params: dict[str, str]) -> Any:
    """GET a Prometheus API path; returns ``data``; raises DashboardError with its error."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except ValueError:
            raise DashboardError(f"HTTP {e.code} from {path}") from e
    if body.get("status") != "success":
        raise DashboardError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


def _start_prometheus(
    binary: str, endpoint: str, workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Start Prometheus scraping ``endpoint``; returns the process and its base URL."""
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL_S}s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    static_configs:\n"
        f"      - targets: ['{endpoint}']\n"
    )
    port = _free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (workdir / "prometheus.log").read_text()[-2000:]
            raise SetupError(f"prometheus exited with code {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
                return process, base
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SetupError("prometheus did not become ready within 60 s")


def _wait_for_target(base: str, endpoint: str) -> None:
    """Wait until Prometheus has scraped the endpoint once; SetupError if it cannot."""
    deadline = time.monotonic() + 30
    error = ""
    while time.monotonic() < deadline:
        for target in _api(base, "/api/v1/targets", {})["activeTargets"]:
            if target["health"] == "up":
                return
            error = target.get("lastError")
        time.sleep(1)
    raise SetupError(f"prometheus cannot scrape http://{endpoint}/metrics: {error or 'no answer'}")


def _expr(expr: str, instance: str, rate_interval: str) -> str:
    """The target's PromQL with Grafana's variables replaced as Grafana would."""
    return expr.replace("$__rate_interval", rate_interval).replace(
        "$instance", re.escape(instance).replace("\\", "\\\\")
    )


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or str(
        labels
    )


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))


def evaluate(
    base: str,
    dashboard: dict[str, Any],
    instance: str,
    rate_interval: str,
    start: float,
    end: float,
) -> tuple[list[PanelData], list[str]]:
    """Evaluate every target of every panel over ``[start, end]``.

    Returns:
        The panels with their series, and the problems found: expressions Prometheus rejects,
        and expressions returning nothing although the metrics they read have samples.
    """
    step = max(SCRAPE_INTERVAL_S, math.ceil((end - start) / 300))
    panels: list[PanelData] = []
    problems: list[str] = []
    for panel in dashboard["panels"]:
        data = PanelData(panel)
        name = f"panel {panel.get('id')} {panel['title']!r}"
        panels.append(data)
        for target in panel.get("targets", []):
            query = _expr(target["expr"], instance, rate_interval)
            params = {
                "query": query,
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
                "step": f"{step}s",
            }
            try:
                result = _api(base, "/api/v1/query_range", params)["result"]
            except DashboardError as e:
                problems.append(f"{name}: Prometheus rejects `{query}`: {e}")
                continue
            if not result:
                present = [
                    name
                    for name in sorted(_metric_names(query))
                    if _api(
                        base, "/api/v1/query", {"query": f"count({name})", "time": f"{end:.3f}"}
                    )["result"]
                ]
                if present and len(present) == len(_metric_names(query)):
                    problems.append(
                        f"{name}: `{query}` returns nothing although "
                        f"{', '.join(present)} has samples"
                    )
            for item in result:
                times = [float(t) for t, _ in item["values"]]
                values = [float(v) for _, v in item["values"]]
                data.series.append(
                    Series(_legend(target.get("legendFormat", ""), item["metric"]), times, values)
                )
    return panels, problems


def _format(value: float, unit: str) -> str:
    if math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value * 100:.2f}%"
    text = f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.2f}"
    return text + UNIT_SUFFIX.get(unit, f" {unit}")


def _last_not_null(series: Series) -> float:
    for value in reversed(series.values):
        if not math.isnan(value):
            return value
    return math.nan


def render(
    panels: list[PanelData],
    title: str,
    subtitle: str,
    window: tuple[float, float],
    output: Path,
) -> None:
    """Draw the panels on the dashboard's 24-column grid and write the PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    rows = max(p.panel["gridPos"]["y"] + p.panel["gridPos"]["h"] for p in panels)
    header = 2.0  # grid rows of space for the title
    unit_w, unit_h = 0.8, 0.42  # inches of one grid column and one grid row
    fig = plt.figure(figsize=(GRID_COLUMNS * unit_w, (rows + header) * unit_h), facecolor="#111217")
    total = rows + header
    fig.text(0.01, 1 - 0.8 / total, title, color="#d8d9da", fontsize=18, va="center", weight="bold")
    fig.text(0.01, 1 - 1.5 / total, subtitle, color="#9fa1a6", fontsize=10, va="center")
    pad_x, pad_top, pad_bottom = 0.004, 0.55, 0.2  # fig fraction; grid rows
    palette = [
        "#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c",
        "#b877d9", "#8ab8ff", "#fade2a", "#96d98d", "#ffb357",
    ]  # fmt: skip
    for data in panels:
        grid = data.panel["gridPos"]
        unit = data.panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        left = grid["x"] / GRID_COLUMNS + pad_x
        width = grid["w"] / GRID_COLUMNS - 2 * pad_x
        bottom = 1 - (header + grid["y"] + grid["h"]) / total + pad_bottom / total
        height = (grid["h"] - pad_top - pad_bottom) / total
        frame = fig.add_axes((left, bottom, width, height + pad_top / total * 0.9))
        frame.set_facecolor("#181b1f")
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color("#2c3235")
        frame.text(
            0.01, 0.98, data.panel["title"], transform=frame.transAxes, color="#d8d9da",
            fontsize=11, va="top", weight="bold",
        )  # fmt: skip
        if data.panel["type"] == "stat":
            values = [_last_not_null(s) for s in data.series]
            text = " / ".join(_format(v, unit) for v in values) if values else "No data"
            frame.text(
                0.5, 0.42, text, transform=frame.transAxes, ha="center", va="center",
                fontsize=26 if len(text) < 12 else 18, weight="bold",
                color="#73bf69" if values else "#9fa1a6",
            )  # fmt: skip
            continue
        # Inside the frame: a grid row for the title on top, two for the ticks and the legend below.
        inner_bottom = bottom + 1.9 / total
        inner_height = height + pad_top / total * 0.9 - 2.8 / total
        inner = fig.add_axes(
            (left + 0.03, inner_bottom, width - 0.038, inner_height), facecolor="#181b1f"
        )
        for spine in inner.spines.values():
            spine.set_color("#2c3235")
        inner.tick_params(colors="#9fa1a6", labelsize=8)
        inner.grid(color="#2c3235", linewidth=0.6)
        if not data.series:
            inner.text(
                0.5, 0.5, "No data", transform=inner.transAxes, ha="center", va="center",
                color="#9fa1a6", fontsize=14,
            )  # fmt: skip
            inner.set_xticks([])
            inner.set_yticks([])
            continue
        for i, series in enumerate(data.series):
            times = mdates.date2num([datetime.fromtimestamp(t, UTC) for t in series.times])
            inner.plot(times, series.values, label=series.legend, color=palette[i % len(palette)],
                       linewidth=1.4)  # fmt: skip
        inner.set_xlim(*mdates.date2num([datetime.fromtimestamp(t, UTC) for t in window]))
        inner.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
        if unit not in ("short", "none"):
            inner.set_ylabel(
                UNIT_SUFFIX.get(unit, unit).strip() or unit, color="#9fa1a6", fontsize=8
            )
        many = len(data.series) > 8  # e.g. every quarantine kind: five to a row, smaller
        inner.legend(
            loc="upper left", bbox_to_anchor=(0, -0.1), fontsize=7 if many else 8,
            frameon=False, labelcolor="#d8d9da", ncol=5 if many else 4,
            handlelength=1.2 if many else 2, columnspacing=1.0 if many else 2,
        )  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90, facecolor=fig.get_facecolor())
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    dashboard = json.loads(args.dashboard.read_text())
    workdir = Path(tempfile.mkdtemp(prefix="dashboard-picture-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        process, base = _start_prometheus(args.prometheus, args.metrics_endpoint, workdir)
        print(
            f"prometheus on {base} scrapes http://{args.metrics_endpoint}/metrics "
            f"every {SCRAPE_INTERVAL_S}s",
            flush=True,
        )
        _wait_for_target(base, args.metrics_endpoint)
        start = time.time()
        while (left := args.duration - (time.time() - start)) > 0:
            print(f"scraping, {left:.0f} s left", flush=True)
            time.sleep(min(30.0, left))
        end = time.time()
        instances = _api(base, "/api/v1/query", {"query": f'up{{job="{JOB}"}}'})["result"]
        instance = instances[0]["metric"]["instance"]
        panels, problems = evaluate(base, dashboard, instance, args.rate_interval, start, end)
        window = (
            f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M:%S} to "
            f"{datetime.fromtimestamp(end, UTC):%H:%M:%S} UTC"
        )
        version = _api(base, "/api/v1/status/buildinfo", {})["version"]
        subtitle = (
            f"Rendered by scripts/dashboard-picture from Prometheus {version} "
            f"with the dashboard's own queries (not a Grafana screenshot); instance {instance}, "
            f"{window}, scraped every {SCRAPE_INTERVAL_S}s, $__rate_interval = {args.rate_interval}"
        )
        render(panels, dashboard.get("title", "dashboard"), subtitle, (start, end), args.output)
        print(f"wrote {args.output}")
        for problem in problems:
            print(f"dashboard-picture: {problem}", file=sys.stderr)
        return 1 if problems else 0
    except SetupError as e:
        print(f"dashboard-picture: {e}", file=sys.stderr)
        return 2
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        if args.keep_data is not None and (workdir / "data").is_dir():
            shutil.copytree(workdir / "data", args.keep_data, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
