"""The golden-signals dashboard is structurally valid Grafana JSON and shows what the issue asks for."""

from __future__ import annotations

import json
from typing import Any

from gate.observability import DASHBOARD, Generated


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out += _panels(p.get("panels", []))  # collapsed rows nest their panels
    return out


def test_dashboard_is_structurally_valid(generated: Generated) -> None:
    doc = json.loads(generated.outputs[DASHBOARD])
    assert isinstance(doc["schemaVersion"], int) and doc["schemaVersion"] >= 36
    assert doc["uid"] and doc["title"]
    panels = _panels(doc["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {ids}"
    assert all(isinstance(i, int) for i in ids)
    for p in panels:
        grid = p["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid) and grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["targets"], f"{p['title']} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["refId"], p["title"]
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )


def test_dashboard_has_the_golden_signals(generated: Generated) -> None:
    doc = json.loads(generated.outputs[DASHBOARD])
    exprs = "\n".join(t["expr"] for p in _panels(doc["panels"]) for t in p.get("targets", []))
    assert "sum by (route) (rate(http_requests_total" in exprs  # request rate
    assert "http_errors_total" in exprs  # error rate
    for q in ("0.5", "0.95", "0.99"):
        assert (
            f"histogram_quantile({q}, sum by (route, le) (rate(http_request_duration_seconds_bucket" in exprs
        )
        assert f"histogram_quantile({q}, sum by (le) (rate(webhook_duration_seconds_bucket" in exprs
    assert "rate_limit_breaches_total" in exprs and "rate_limiter_backend" in exprs
    # the SLO thresholds are drawn on the latency panel
    latency = next(p for p in doc["panels"] if p["title"].startswith("Latency p50"))
    steps = [s["value"] for s in latency["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert 0.05 in steps and 1.2 in steps
