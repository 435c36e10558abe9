"""``promtool test rules`` files: synthetic series just above and just below every alert threshold.

Burn-rate alerts: for each objective and each burn tier, traffic at 1,000 requests a minute whose bad
share is 1.01x (just above) or 0.99x (just below) the tier's threshold during the tier's long window,
and good before it. The expected alerts are computed from that shape — the bad share over a window W
is ``r x min(L, W) / W`` — so every test also checks that the *other* tiers stay silent (a 1h burn
must not open a ticket). Seed alerts: the same idea on their own thresholds, long enough for their
``for:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client.utils import floatToGoString

from gate.observability.objectives import MINUTES, POLICY, BurnTier, Objective
from gate.observability.rules import SeedAlert, burn_annotations, burn_threshold, seed_alerts
from gate.observability.yamltext import number
from service.metrics import LATENCY_BUCKETS

PER_MINUTE = 1000.0  # requests a minute in every synthetic series
ABOVE, BELOW = 1.01, 0.99
# the longest window (3d) lies wholly inside the series, so no window starts before the data does
BURN_EVAL_MIN = MINUTES["3d"] + 30
SEED_EVAL_MIN = 20


def ramp(*segments: tuple[float, int]) -> str:
    """promtool's expanding notation for a counter starting at 0 and growing by ``inc`` a minute for
    ``n`` minutes per segment: ``ramp((1000, 10), (990, 5))`` is ``0+1000x10 10990+990x4`` (16 samples)."""
    parts: list[str] = []
    value = 0.0
    for inc, n in segments:
        if n <= 0:
            continue
        if not parts:
            parts.append(f"0+{number(inc)}x{n}")
            value = inc * n
        else:
            first = value + inc
            parts.append(f"{number(first)}+{number(inc)}x{n - 1}")
            value = first + inc * (n - 1)
    return " ".join(parts)


def _labels(metric: str, **labels: str) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def sli_series(o: Objective, bad_share: float, *, minutes: int, bad_minutes: int) -> list[dict[str, str]]:
    """Raw series whose SLI is 0 for ``minutes - bad_minutes`` minutes, then ``bad_share``."""
    good_before = (PER_MINUTE, minutes - bad_minutes)
    if o.kind == "latency":
        route = str(o.route)
        return [
            {"series": _labels("http_request_duration_seconds_count", route=route),
             "values": ramp(good_before, (PER_MINUTE, bad_minutes))},
            {"series": _labels("http_request_duration_seconds_bucket", route=route, le=str(o.le)),
             "values": ramp(good_before, (PER_MINUTE * (1 - bad_share), bad_minutes))},
        ]  # fmt: skip
    # availability counts every user route: any one will do
    where = (o.method, o.route) if o.kind == "error_rate" else ("POST", "/actions/execute")
    labels = {"method": str(where[0]), "route": str(where[1])}
    bad = ramp((0.0, minutes - bad_minutes), (PER_MINUTE * bad_share, bad_minutes))
    return [
        {"series": _labels("http_requests_total", **labels, status="200"),
         "values": ramp(good_before, (PER_MINUTE * (1 - bad_share), bad_minutes))},
        {"series": _labels("http_requests_total", **labels, status="500"), "values": bad},
        {"series": _labels("http_errors_total", **labels), "values": bad},
    ]  # fmt: skip


@dataclass(frozen=True)
class BurnCase:
    objective: Objective
    tier: BurnTier
    factor: float  # ABOVE or BELOW

    @property
    def share(self) -> float:
        return burn_threshold(self.objective, self.tier) * self.factor

    def ratio(self, window: str) -> float:
        long = MINUTES[self.tier.long]
        return self.share * min(long, MINUTES[window]) / MINUTES[window]

    def firing(self) -> list[str]:
        """Severities that fire for this shape, tier by tier (what the rules must agree with)."""
        out: list[str] = []
        for t in self.objective.tiers():
            th = burn_threshold(self.objective, t)
            if self.ratio(t.long) > th and self.ratio(t.short) > th and t.severity not in out:
                out.append(t.severity)
        return out


def burn_test(case: BurnCase) -> dict[str, Any]:
    o, t = case.objective, case.tier
    where = "above" if case.factor > 1 else "below"
    expected = []
    for severity in case.firing():
        tiers = tuple(x for x in o.tiers() if x.severity == severity)
        expected.append(
            {
                "exp_labels": {"severity": severity, "slo": o.slo},
                "exp_annotations": burn_annotations(o, severity, tiers),
            }
        )
    return {
        "name": f"{o.slo}: bad share {number(case.factor)}x the {t.severity} threshold "
        f"({number(t.factor)}x budget) over the last {t.long} -> {', '.join(case.firing()) or 'silent'} "
        f"(just {where})",
        "interval": "1m",
        "input_series": sli_series(o, case.share, minutes=BURN_EVAL_MIN, bad_minutes=MINUTES[t.long]),
        "alert_rule_test": [{"eval_time": f"{BURN_EVAL_MIN}m", "alertname": o.alert, "exp_alerts": expected}],
    }


def burn_tests(objs: list[Objective], rule_files: list[str], group_order: list[str]) -> dict[str, Any]:
    tests = []
    for o in objs:
        for t in POLICY:
            if t not in o.tiers() or t.factor * o.budget * ABOVE >= 1.0:
                continue  # a share above 100 % cannot be synthesised; the tier is left out of the rules
            for factor in (ABOVE, BELOW):
                tests.append(burn_test(BurnCase(o, t, factor)))
    return {
        "rule_files": rule_files,
        # The alerts have no `for:` and are checked once, at the end: evaluating the rules only there
        # (recording group first) gives the same result as every minute, for a fraction of the time.
        "evaluation_interval": f"{BURN_EVAL_MIN}m",
        "group_eval_order": group_order,
        "tests": tests,
    }


# -- seed alerts ----------------------------------------------------------------------------------------


def _alert(rule: dict[str, Any], **extra_labels: str) -> dict[str, Any]:
    return {"exp_labels": {**rule["labels"], **extra_labels}, "exp_annotations": rule["annotations"]}


def _buckets(
    metric: str, labels: dict[str, str], q: float, threshold: float, *, above: bool
) -> list[dict[str, str]]:
    """Cumulative buckets putting the q-quantile just past ``threshold`` (into the next bucket) or just
    under it (between the previous bound and it): histogram_quantile interpolates inside a bucket."""
    delta = min(0.01, q / 2, (1 - q) / 2)
    at_threshold = (q - delta) if above else (q + delta)
    out = []
    for bound in (*LATENCY_BUCKETS, float("inf")):
        share = at_threshold if abs(bound - threshold) <= 1e-12 else 0.0 if bound < threshold else 1.0
        series = _labels(f"{metric}_bucket", **labels, le=floatToGoString(bound))
        out.append({"series": series, "values": ramp((PER_MINUTE * share, SEED_EVAL_MIN))})
    return out


def _case(name: str, series: list[dict[str, str]], alertname: str, expected: list[Any]) -> dict[str, Any]:
    return {
        "name": name,
        "interval": "1m",
        "input_series": series,
        # checked past every `for:` of the seed alerts (5m, 10m)
        "alert_rule_test": [{"eval_time": f"{SEED_EVAL_MIN - 5}m", "alertname": alertname,
                             "exp_alerts": expected}],
    }  # fmt: skip


def _seed_cases(alert: SeedAlert) -> list[dict[str, Any]]:
    rule, o, name = alert.rule, alert.objective, alert.rule["alert"]
    if o is None:  # RateLimitBreaches: any breach at all, sustained
        return [
            _case(
                f"{name}: {'one 429 a minute' if above else 'no 429'} for {SEED_EVAL_MIN} minutes",
                [
                    {
                        "series": _labels("rate_limit_breaches_total", workspace="ws-a"),
                        "values": ramp((1.0 if above else 0.0, SEED_EVAL_MIN)),
                    }
                ],
                name,
                [_alert(rule, workspace="ws-a")] if above else [],
            )
            for above in (True, False)
        ]
    if o.kind == "error_rate":
        return [
            _case(
                f"{name} {o.endpoint}: 5xx share {number(factor)}x its target of {number(100 * o.budget)} %",
                sli_series(o, o.budget * factor, minutes=SEED_EVAL_MIN, bad_minutes=SEED_EVAL_MIN),
                name,
                [_alert(rule)] if factor > 1 else [],
            )
            for factor in (ABOVE, BELOW)
        ]
    if name == "WebhookP95":
        metric, labels = "webhook_duration_seconds", {"outcome": "delivered"}
        q = float(o.percentile or 0) / 100
    else:
        metric, labels, q = "http_request_duration_seconds", {"route": str(o.route)}, 0.99
    threshold = float(o.threshold_s or 0)
    cases = []
    for above in (True, False):
        if above and threshold >= max(LATENCY_BUCKETS):
            continue  # histogram_quantile never reports past the last finite bucket
        cases.append(
            _case(
                f"{name} {o.endpoint}: p{number(100 * q)} just {'above' if above else 'below'} "
                f"{number(threshold)} s",
                _buckets(metric, labels, q, threshold, above=above),
                name,
                [_alert(rule)] if above else [],
            )
        )
    return cases


def seed_tests(objs: list[Objective], rule_files: list[str]) -> dict[str, Any]:
    alerts, _notes = seed_alerts(objs)
    return {
        "rule_files": rule_files,
        "evaluation_interval": "1m",
        "tests": [case for alert in alerts for case in _seed_cases(alert)],
    }
