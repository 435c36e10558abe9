"""Prometheus rule files from the objectives: SLI recording rules, burn-rate alerts, the seed's alerts.

- ``slo:sli_error:ratio_rate<window>{slo=...}``: the bad share of each objective over each window
  the burn policy reads (5m .. 3d); ``slo:error_budget:ratio{slo=...}``: its budget, as a series so
  dashboards can divide by it.
- ``<Objective>BudgetBurn`` alerts, multiwindow and multi-burn-rate (Google SRE workbook): severity
  ``page`` when 1h and 5m burn above 14.4x, or 6h and 30m above 6x; ``ticket`` when 1d and 2h burn
  above 3x, or 3d and 6h above 1x. The short window makes an alert stop soon after the burn does.
- The seed's four named alerts, rewritten against the metrics the service exports: ``ActionsErrorRate``
  (per endpoint, its error-rate target), ``WebhookP95`` (the execute latency SLO's percentile and
  threshold, on webhook attempts), ``LightEndpointP99`` (each non-webhook endpoint's p99 SLO) and
  ``RateLimitBreaches`` (the seed's rule as written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gate.observability.objectives import WINDOWS, BurnTier, Objective
from gate.observability.yamltext import number

DOC = "docs/observability/SLOs.md"
SEED_FOR = "5m"  # the seed's `for:` of its error and latency alerts
BREACH_FOR = "10m"  # the seed's `for:` of RateLimitBreaches
SEED_SEVERITY = "warning"  # the burn-rate alerts page; the seed's threshold alerts warn


def record_name(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


BUDGET_RECORD = "slo:error_budget:ratio"
SLI_GROUP = "relay-slo-sli"
BURN_GROUP = "relay-slo-burn"


def recording_groups(objs: list[Objective]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for o in objs:
        labels = {"slo": o.slo}
        rules.append({"record": BUDGET_RECORD, "expr": f"vector({number(o.budget)})", "labels": labels})
        for window in WINDOWS:
            rules.append({"record": record_name(window), "expr": o.ratio_expr(window), "labels": labels})
    return [{"name": SLI_GROUP, "rules": rules}]


def burn_threshold(o: Objective, tier: BurnTier) -> float:
    return round(tier.factor * o.budget, 12)


def burn_expr(o: Objective, tiers: tuple[BurnTier, ...]) -> str:
    sel = f'{{slo="{o.slo}"}}'
    parts = []
    for t in tiers:
        th = number(burn_threshold(o, t))
        parts.append(
            f"(\n  {record_name(t.long)}{sel} > {th}\n  and\n  {record_name(t.short)}{sel} > {th}\n)"
        )
    return "\nor\n".join(parts)


def burn_annotations(o: Objective, severity: str, tiers: tuple[BurnTier, ...]) -> dict[str, str]:
    conditions = " or ".join(
        f"above {number(burn_threshold(o, t))} over {t.long} and {t.short} ({number(t.factor)}x)"
        for t in tiers
    )
    return {
        "summary": f"{o.title}: error budget burning fast enough to {severity}",
        "description": (
            f"The share of bad requests of SLO {o.slo} is {conditions}; the budget is "
            f"{number(100 * o.budget)} % of requests over 30 days."
        ),
        "runbook": f"{DOC}#{o.slo}",
    }


def burn_groups(objs: list[Objective]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for o in objs:
        for severity in ("page", "ticket"):
            tiers = tuple(t for t in o.tiers() if t.severity == severity)
            if not tiers:
                continue  # budget too large for this tier to ever fire; SLOs.md says so
            rules.append(
                {
                    "alert": o.alert,
                    "expr": burn_expr(o, tiers),
                    "labels": {"severity": severity},
                    "annotations": burn_annotations(o, severity, tiers),
                }
            )
    return [{"name": BURN_GROUP, "rules": rules}]


# -- the seed's named alerts --------------------------------------------------------------------------


def actions_error_rate(o: Objective) -> dict[str, Any]:
    return {
        "alert": "ActionsErrorRate",
        "expr": f"{o.ratio_expr(SEED_FOR)}\n> {number(o.budget)}",
        "for": SEED_FOR,
        "labels": {"severity": SEED_SEVERITY, "endpoint": str(o.endpoint), "route": str(o.route)},
        "annotations": {
            "summary": f"{o.method} {o.route}: 5xx share above {number(100 * o.budget)} % for {SEED_FOR}",
            "description": f"The share of 5xx responses of {o.title.split(':')[0]} has exceeded its "
            f"error-rate target ({number(100 * o.budget)} %) for {SEED_FOR}.",
            "runbook": f"{DOC}#seed-alerts",
        },
    }


def quantile_expr(metric: str, q: float, selector: str, window: str) -> str:
    return f"histogram_quantile({number(q)}, sum by (le) (rate({metric}_bucket{selector}[{window}])))"


def webhook_p95(o: Objective) -> dict[str, Any]:
    q = float(o.percentile or 0) / 100.0
    return {
        "alert": "WebhookP95",
        "expr": f"{quantile_expr('webhook_duration_seconds', q, '', SEED_FOR)}\n"
        f"> {number(o.threshold_s or 0)}",
        "for": SEED_FOR,
        "labels": {"severity": SEED_SEVERITY},
        "annotations": {
            "summary": f"webhook delivery p{number(o.percentile or 0)} above "
            f"{number(o.threshold_s or 0)} s for {SEED_FOR}",
            "description": f"The p{number(o.percentile or 0)} of webhook delivery attempts "
            f"(webhook_duration_seconds) has exceeded {number(o.threshold_s or 0)} s, the execute "
            f"latency SLO, for {SEED_FOR}.",
            "runbook": f"{DOC}#seed-alerts",
        },
    }


def light_endpoint_p99(o: Objective) -> dict[str, Any]:
    sel = f'{{route="{o.route}"}}'
    return {
        "alert": "LightEndpointP99",
        "expr": f"{quantile_expr('http_request_duration_seconds', 0.99, sel, SEED_FOR)}\n"
        f"> {number(o.threshold_s or 0)}",
        "for": SEED_FOR,
        "labels": {"severity": SEED_SEVERITY, "endpoint": str(o.endpoint), "route": str(o.route)},
        "annotations": {
            "summary": f"{o.method} {o.route}: p99 above {number(o.threshold_s or 0)} s for {SEED_FOR}",
            "description": f"The p99 latency of {o.method} {o.route} has exceeded its SLO "
            f"({number(o.threshold_s or 0)} s) for {SEED_FOR}.",
            "runbook": f"{DOC}#seed-alerts",
        },
    }


def rate_limit_breaches() -> dict[str, Any]:
    return {
        "alert": "RateLimitBreaches",
        "expr": f"sum by (workspace) (rate(rate_limit_breaches_total[{BREACH_FOR}])) > 0",
        "for": BREACH_FOR,
        "labels": {"severity": "info"},
        "annotations": {
            "summary": f"a workspace has been hitting its execute rate limit for {BREACH_FOR}",
            "description": "Executes of this workspace are being refused with 429 by the rate limiter.",
            "runbook": f"{DOC}#seed-alerts",
        },
    }


@dataclass(frozen=True)
class SeedAlert:
    rule: dict[str, Any]
    objective: Objective | None  # the SLO its threshold comes from (None: the seed's own value)


def seed_alerts(objs: list[Objective]) -> tuple[list[SeedAlert], list[str]]:
    """The seed's alerts, and a note for each one the spec gives nothing to derive from."""
    out: list[SeedAlert] = []
    notes: list[str] = []
    errors = [o for o in objs if o.kind == "error_rate"]
    out += [SeedAlert(actions_error_rate(o), o) for o in errors]
    if not errors:
        notes.append("ActionsErrorRate: the spec has no endpoint error-rate SLO to take a threshold from")
    webhook = [o for o in objs if o.kind == "latency" and o.endpoint == "execute"]
    if webhook:
        # the seed's alert is a p95; take the execute SLO at that percentile when there is one
        o = next((x for x in webhook if x.percentile == 95.0), webhook[0])
        out.append(SeedAlert(webhook_p95(o), o))
    else:
        notes.append("WebhookP95: the spec has no latency SLO for endpoints.execute")
    light = [o for o in objs if o.kind == "latency" and o.endpoint != "execute" and o.percentile == 99.0]
    out += [SeedAlert(light_endpoint_p99(o), o) for o in light]
    if not light:
        notes.append("LightEndpointP99: the spec has no p99 latency SLO for list or preview")
    out.append(SeedAlert(rate_limit_breaches(), None))
    return out, notes


def seed_groups(objs: list[Objective]) -> list[dict[str, Any]]:
    return [{"name": "relay-seed-alerts", "rules": [a.rule for a in seed_alerts(objs)[0]]}]
