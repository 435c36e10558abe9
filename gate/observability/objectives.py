"""SLOs of ``load/slos.toml`` as Prometheus SLIs: one bad-event ratio per objective, and the burn policy.

Every objective becomes "the share of requests that were bad", so error-rate, latency and
availability SLOs share one alerting scheme:

- error rate of an endpoint: 5xx responses / responses (429s excluded, as the load verdict does);
- latency at percentile p under T: requests slower than T / requests, read from the histogram bucket
  whose ``le`` equals T — exact, no interpolation; a T without such a bucket cannot be expressed and
  raises :class:`~load.slos.SloSpecError` (exit 2) naming the key;
- availability: 5xx responses / responses over every route except /metrics and the health probes
  (scrapes and probes would otherwise dilute the ratio with requests no user made).

The error budget of an objective is its allowed bad share: 0.5 % for ``error_rate_max_pct = 0.5``,
1 % for a p99 latency SLO, 0.1 % for 99.9 % availability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client.utils import floatToGoString

from load.endpoints import ENDPOINTS
from load.slos import SloSpec, SloSpecError
from service.metrics import LATENCY_BUCKETS

Kind = Literal["error_rate", "latency", "availability"]

PERIOD_DAYS = 30  # the SLO period the burn factors below are computed for (the SRE workbook's)
# routes that are not user traffic: Prometheus scrapes and platform health probes
INFRA_ROUTES = "/metrics|/_stcore/.*"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
MINUTES = {"5m": 5, "30m": 30, "1h": 60, "2h": 120, "6h": 360, "1d": 1440, "3d": 4320}


@dataclass(frozen=True)
class BurnTier:
    """Alert when the bad ratio over both windows exceeds ``factor`` x the budget."""

    severity: Literal["page", "ticket"]
    long: str
    short: str
    factor: float

    @property
    def spends(self) -> str:
        """How much of a 30-day budget this burn spends over the long window (the workbook's rationale)."""
        share = self.factor * MINUTES[self.long] / (PERIOD_DAYS * 1440)
        return f"{100 * share:.3g} %"


# Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate alerts (recommended parameters)
POLICY: tuple[BurnTier, ...] = (
    BurnTier("page", "1h", "5m", 14.4),
    BurnTier("page", "6h", "30m", 6.0),
    BurnTier("ticket", "1d", "2h", 3.0),
    BurnTier("ticket", "3d", "6h", 1.0),
)


@dataclass(frozen=True)
class Objective:
    slo: str  # label value: "list-error-rate", "execute-latency-p95", "availability"
    alert: str  # the burn-rate alert's name: "ListErrorRateBudgetBurn"
    title: str  # "list (GET /actions): error rate <= 0.5 %"
    kind: Kind
    key: str  # where it comes from in the spec: "endpoints.list.error_rate_max_pct"
    budget: float  # allowed bad share, 0 < budget < 1
    endpoint: str | None = None
    method: str | None = None
    route: str | None = None
    percentile: float | None = None
    threshold_s: float | None = None
    le: str | None = None  # the histogram bucket's label value, as the service exposes it

    @property
    def target_pct(self) -> float:
        return round(100.0 * (1.0 - self.budget), 6)

    def tiers(self) -> tuple[BurnTier, ...]:
        """The burn tiers that can fire: a factor x budget of 100 % or more is a ratio never exceeded."""
        return tuple(t for t in POLICY if t.factor * self.budget < 1.0)

    def selectors(self) -> tuple[str, str]:
        """(bad, total) series selectors, without the range."""
        if self.kind == "latency":
            route = f'route="{self.route}"'
            return (f'http_request_duration_seconds_bucket{{{route},le="{self.le}"}}',
                    f"http_request_duration_seconds_count{{{route}}}")  # fmt: skip
        if self.kind == "availability":
            where = f'route!~"{INFRA_ROUTES}"'
        else:
            where = f'method="{self.method}",route="{self.route}"'
        return f"http_errors_total{{{where}}}", f'http_requests_total{{{where},status!="429"}}'

    def ratio_expr(self, window: str) -> str:
        """PromQL for the bad share over ``window``; no result without traffic (no false alarm)."""
        bad, total = self.selectors()
        if self.kind == "latency":
            # slow = all - fast; the bucket counts requests at or under the threshold
            return (
                f"(\n  sum(rate({total}[{window}]))\n  -\n  sum(rate({bad}[{window}]))\n)\n"
                f"/\nsum(rate({total}[{window}]))"
            )
        # http_errors_total has no series until the first 5xx: count that as zero errors
        return f"(sum(rate({bad}[{window}])) or vector(0))\n/\nsum(rate({total}[{window}]))"


def _camel(*parts: str) -> str:
    return "".join(p[:1].upper() + p[1:] for part in parts for p in part.replace("-", "_").split("_") if p)


def latency_le(threshold_ms: float, key: str, source: str) -> str:
    """The ``le`` label of the bucket equal to the threshold, or SloSpecError naming the key."""
    seconds = threshold_ms / 1000.0
    for bound in LATENCY_BUCKETS:
        if abs(bound - seconds) <= 1e-9 * max(1.0, bound):
            return floatToGoString(bound)
    exposed = ", ".join(f"{b * 1000:g}" for b in LATENCY_BUCKETS)
    raise SloSpecError(
        f"{source}: {key} = {threshold_ms:g} ms cannot be expressed as a Prometheus SLO: "
        f"http_request_duration_seconds has no bucket with le={seconds:g}, and a latency SLO is the "
        f"share of requests above a bucket boundary; use one of the service's buckets ({exposed} ms) "
        "or add the threshold to LATENCY_BUCKETS in service/metrics.py"
    )


def objectives(spec: SloSpec) -> list[Objective]:
    """Every objective of the spec, in spec order, availability last."""
    out: list[Objective] = []
    for name, slo in spec.endpoints.items():
        ep = ENDPOINTS[name]
        where = f"{name} ({ep.method} {ep.route})"
        for i, lat in enumerate(slo.latency):
            key = f"endpoints.{name}.latency[{i}].max_ms"
            label = lat.label.replace(".", "_")
            out.append(
                Objective(
                    slo=f"{name}-latency-{label}",
                    alert=_camel(name, "latency", label.upper(), "budget_burn"),
                    title=f"{where}: {lat.label} latency <= {lat.max_ms:g} ms",
                    kind="latency",
                    key=key,
                    budget=round(1.0 - lat.percentile / 100.0, 12),
                    endpoint=name,
                    method=ep.method,
                    route=ep.route,
                    percentile=lat.percentile,
                    threshold_s=lat.max_ms / 1000.0,
                    le=latency_le(lat.max_ms, key, spec.source),
                )
            )
        if slo.error_rate_max_pct <= 0:
            raise SloSpecError(
                f"{spec.source}: endpoints.{name}.error_rate_max_pct = 0 leaves no error budget to "
                "burn; a burn-rate alert needs a target above 0"
            )
        out.append(
            Objective(
                slo=f"{name}-error-rate",
                alert=_camel(name, "error_rate", "budget_burn"),
                title=f"{where}: error rate <= {slo.error_rate_max_pct:g} %",
                kind="error_rate",
                key=f"endpoints.{name}.error_rate_max_pct",
                budget=round(slo.error_rate_max_pct / 100.0, 12),
                endpoint=name,
                method=ep.method,
                route=ep.route,
            )
        )
    out.append(
        Objective(
            slo="availability",
            alert="AvailabilityBudgetBurn",
            title=f"availability (every route but /metrics and health probes) >= {spec.availability_pct:g} %",
            kind="availability",
            key="availability_pct",
            budget=round(1.0 - spec.availability_pct / 100.0, 12),
        )
    )
    return out
