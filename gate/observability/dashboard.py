"""The Grafana golden-signals dashboard: traffic, errors, latency, saturation, per route.

Panels: request rate and responses by status; 5xx share per route and the SLO burn rate (1h) of every
objective; latency p50/p95/p99 per route with the SLO thresholds drawn in, and the share of requests
slower than each latency SLO; rate-limit refusals per workspace and the limiter backend in use;
webhook attempt latency, deliveries by status, and audit write failures. The datasource is a
dashboard variable, so the JSON imports into any Grafana with a Prometheus datasource.
"""

from __future__ import annotations

from typing import Any

from gate.observability.objectives import Objective
from gate.observability.rules import BUDGET_RECORD, record_name

SCHEMA_VERSION = 39  # Grafana 10.x/11.x dashboards
UID = "relay-golden-signals"
RATE = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
QUANTILES = (0.5, 0.95, 0.99)


class _Layout:
    """Hands out panel ids and grid positions: two 12-wide panels a row, rows full width."""

    def __init__(self) -> None:
        self.next_id = 1
        self.y = 0
        self.x = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> dict[str, Any]:
        if self.x:
            self.y += 8
            self.x = 0
        panel = {"type": "row", "id": self._id(), "title": title, "collapsed": False, "panels": [],
                 "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}}  # fmt: skip
        self.y += 1
        return panel

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str,
        description: str,
        kind: str = "timeseries",
        thresholds: list[float] | None = None,
    ) -> dict[str, Any]:
        steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
        steps += [{"color": "red", "value": t} for t in sorted(set(thresholds or []))]
        panel = {
            "type": kind,
            "id": self._id(),
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": 8, "w": 12, "x": self.x, "y": self.y},
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "thresholds": {"mode": "absolute", "steps": steps},
                    "custom": {"thresholdsStyle": {"mode": "line" if thresholds else "off"}},
                },
                "overrides": [],
            },
            "options": {"legend": {"displayMode": "table", "placement": "bottom",
                                   "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
                 "range": True}
                for i, (expr, legend) in enumerate(targets)
            ],
        }  # fmt: skip
        if self.x:
            self.x, self.y = 0, self.y + 8
        else:
            self.x = 12
        return panel


def _quantiles(metric: str, by: str, selector: str = "") -> list[tuple[str, str]]:
    group = f"{by}, le" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [
        (f"histogram_quantile({q:g}, sum by ({group}) (rate({metric}_bucket{selector}[{RATE}])))",
         f"{prefix}p{100 * q:g}")
        for q in QUANTILES
    ]  # fmt: skip


def dashboard(objs: list[Objective]) -> dict[str, Any]:
    lay = _Layout()
    latency = [o for o in objs if o.kind == "latency"]
    panels = [
        lay.row("Traffic"),
        lay.panel("Request rate per route",
                  [(f"sum by (route) (rate(http_requests_total[{RATE}]))", "{{route}}")],
                  unit="reqps", description="Responses sent per second, by route template."),
        lay.panel("Responses by status",
                  [(f"sum by (status) (rate(http_requests_total[{RATE}]))", "{{status}}")],
                  unit="reqps",
                  description="Responses per second by HTTP status; 429s are rate-limit refusals."),
        lay.row("Errors"),
        lay.panel(
            "5xx share per route",
            [(f"sum by (route) (rate(http_errors_total[{RATE}]))\n/\n"
              f'sum by (route) (rate(http_requests_total{{status!="429"}}[{RATE}]))', "{{route}}")],
            unit="percentunit",
            description="5xx responses / responses (429s excluded, as the SLOs count them).",
            thresholds=[o.budget for o in objs if o.kind == "error_rate"],
        ),
        lay.panel(
            "SLO burn rate (1h)",
            [(f"{record_name('1h')}\n/ on (slo)\n{BUDGET_RECORD}", "{{slo}}")],
            unit="none",
            description="Bad share over 1h / error budget, per SLO (recording rules of "
            "observability/prometheus). 1 spends the 30-day budget in 30 days; 14.4 pages.",
            thresholds=[1.0, 14.4],
        ),
        lay.row("Latency"),
        lay.panel(
            "Latency p50 / p95 / p99 per route",
            _quantiles("http_request_duration_seconds", "route"),
            unit="s",
            description="From http_request_duration_seconds; the red lines are the latency SLO thresholds.",
            thresholds=[float(o.threshold_s or 0) for o in latency],
        ),
        lay.panel(
            "Share of requests slower than the SLO threshold (5m)",
            [(f'{record_name("5m")}{{slo=~".*-latency-.*"}}', "{{slo}}")],
            unit="percentunit",
            description="Per latency SLO: requests above the threshold / requests; the budget is 1 - p.",
            thresholds=[o.budget for o in latency],
        ),
        lay.row("Saturation and rate limiting"),
        lay.panel(
            "Rate-limit refusals per workspace",
            [(f"sum by (workspace) (rate(rate_limit_breaches_total[{RATE}]))", "{{workspace}}"),
             (f'sum(rate(http_requests_total{{status="429"}}[{RATE}]))', "all 429 responses")],
            unit="reqps",
            description="Executes refused by the per-workspace limiter (RateLimitBreaches alerts on these).",
        ),
        lay.panel(
            "Rate limiter backend",
            [("max by (backend) (rate_limiter_backend)", "{{backend}}")],
            unit="bool",
            kind="state-timeline",
            description="1 for the backend in use: redis, or memory (the in-process fallback: each "
            "replica then limits on its own).",
        ),
        lay.row("Webhooks and audit"),
        lay.panel(
            "Webhook attempt latency p50 / p95 / p99",
            _quantiles("webhook_duration_seconds", ""),
            unit="s",
            description="Per delivery attempt (webhook_duration_seconds); WebhookP95 alerts on the p95.",
            thresholds=[float(o.threshold_s or 0) for o in latency if o.endpoint == "execute"],
        ),
        lay.panel(
            "Webhook deliveries and audit write failures",
            [(f"sum by (status) (rate(webhook_deliveries_total[{RATE}]))", "delivery {{status}}"),
             (f"sum by (stage) (rate(audit_write_failures_total[{RATE}]))", "audit failure {{stage}}")],
            unit="ops",
            description="Deliveries by final status; audit writes that failed (execute answers 503).",
        ),
    ]  # fmt: skip
    return {
        "uid": UID,
        "title": "relay: golden signals",
        "description": "Generated by `relay-gate rules` from load/slos.toml; do not edit by hand.",
        "tags": ["relay", "slo", "generated"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "options": [],
                }
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }
