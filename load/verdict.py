"""The verdict: a load run's measurements judged against an SLO spec, with error budgets and validity.

:func:`evaluate` reads only what a results file holds (the encoded HDR histograms, the outcome
counts, the generators' figures, the facts the run reported), so the verdict printed when Locust
quits and the one ``relay-gate load --recompute FILE`` prints are computed by the same code from the
same data.

Each SLO is judged against its threshold, then discounted by the run's validity checks with
:func:`gate.verdict.earn`, and the exit code follows gate/verdict.py's one precedence:

- a check that makes *any* verdict untrustworthy failed (no requests, exceptions in the load
  generator, a worker's data missing, a saturated generator CPU, requests the service refused as
  malformed: a bad key, the run measured 401s): every SLO is INVALID, exit 4 — or 5 when the
  target never answered at all;
- an SLO with enough samples was breached: exit 3, even when a check a *pass* needs failed;
- a check that makes a *pass* unearned failed (the arrival rate not held, the rate limiter answering
  too many requests), or an SLO lacks samples: INVALID, exit 4;
- every SLO passed on a valid run: exit 0.
"""

from __future__ import annotations

import math
from typing import Any

from gate.verdict import Item, Outcome, decide, earn
from load import hdr, identity
from load.recorder import ERROR_OUTCOMES
from load.slos import SloSpec

MONTH_MINUTES = 30 * 24 * 60


def evaluate(spec: SloSpec, doc: dict[str, Any]) -> dict[str, Any]:
    """Judge the measurements in ``doc`` (a load.json document, or the same built live)."""
    model = doc["model"]
    basis = "corrected" if model["kind"] == "open" else "uncorrected"
    endpoints: dict[str, Any] = doc["endpoints"]
    slos: list[dict[str, Any]] = []
    for name, slo in spec.endpoints.items():
        ep = endpoints.get(name)
        histogram = hdr.decode(ep["hdr"][basis]) if ep else hdr.new()
        samples = int(histogram.get_total_count())
        for lat in slo.latency:
            measured = hdr.value_ms(histogram, lat.percentile)
            key = hdr.percentile_key(lat.percentile)
            result: dict[str, Any] = {
                "endpoint": name,
                "kind": "latency",
                "slo": f"{lat.label} latency <= {lat.max_ms:g} ms",
                "percentile": lat.percentile,
                "basis": basis,
                "measured_ms": measured,
                "threshold_ms": lat.max_ms,
                "samples": samples,
                "min_samples": lat.min_samples,
                # the same percentile as an uncorrected, closed-loop tool (and Locust itself) saw it
                "uncorrected_ms": hdr.value_ms(hdr.decode(ep["hdr"]["uncorrected"]), lat.percentile)
                if ep
                else None,
                "locust_ms": (ep.get("latency_ms", {}).get("locust") or {}).get(key) if ep else None,
            }
            if samples < lat.min_samples:
                result["status"] = "invalid"
                result["note"] = f"{samples} samples; {lat.label} needs at least {lat.min_samples}"
            else:
                result["status"] = "fail" if measured is not None and measured > lat.max_ms else "pass"
            slos.append(result)
        slos.append(_error_rate(name, slo.error_rate_max_pct, slo.min_requests, ep))

    validity = _validity(spec, doc)
    budget = _budget(spec, endpoints)
    return {"slos": slos, "budget": budget, "validity": validity, "verdict": _decide(slos, validity)}


def _error_rate(name: str, target_pct: float, min_requests: int, ep: dict[str, Any] | None) -> dict[str, Any]:
    counts = ep["counts"] if ep else {}
    served = sum(counts.values()) - counts.get("rate_limited", 0)
    errors = sum(counts.get(o, 0) for o in ERROR_OUTCOMES)
    measured = round(100.0 * errors / served, 4) if served else None
    allowed = target_pct / 100.0 * served
    result: dict[str, Any] = {
        "endpoint": name,
        "kind": "error_rate",
        "slo": f"error rate <= {target_pct:g} %",
        "measured_pct": measured,
        "threshold_pct": target_pct,
        "samples": served,
        "min_samples": min_requests,
        # the error budget of this SLO over this run: allowed = (1 - target) x requests served
        "budget": {
            "allowed": round(allowed, 3),
            "consumed": errors,
            "remaining": round(allowed - errors, 3),
            "remaining_pct": round(100.0 * (allowed - errors) / allowed, 1) if allowed > 0 else None,
        },
    }
    if served < min_requests:
        result["status"] = "invalid"
        result["note"] = f"{served} requests served; the error-rate SLO needs at least {min_requests}"
    else:
        result["status"] = "fail" if errors > allowed + 1e-9 else "pass"
    return result


def _budget(spec: SloSpec, endpoints: dict[str, Any]) -> dict[str, Any]:
    """The availability error budget over every request of the run (arithmetic, not a pass/fail)."""
    served = errors = 0
    for ep in endpoints.values():
        c = ep["counts"]
        served += sum(c.values()) - c.get("rate_limited", 0)
        errors += sum(c.get(o, 0) for o in ERROR_OUTCOMES)
    unavailable = 1.0 - spec.availability_pct / 100.0
    allowed = unavailable * served
    rate = errors / served if served else 0.0
    return {
        "availability_pct": spec.availability_pct,
        "requests": served,
        "allowed_failures": round(allowed, 3),
        "consumed": errors,
        "remaining": round(allowed - errors, 3),
        # 1.0 spends the budget exactly as fast as the target allows; 2.0 would exhaust a month's
        # budget (43.2 min at 99.9 %) in half a month
        "burn_rate": round(rate / unavailable, 3) if served else None,
        "monthly_budget_minutes": round(unavailable * MONTH_MINUTES, 1),
    }


def _check(name: str, ok: bool, blocks: str, detail: str, **values: Any) -> dict[str, Any]:
    return {"check": name, "ok": ok, "blocks": blocks, "detail": detail, **values}


def _validity(spec: SloSpec, doc: dict[str, Any]) -> list[dict[str, Any]]:
    model = doc["model"]
    facts = doc.get("facts", {})
    endpoints: dict[str, Any] = doc["endpoints"]
    totals = {o: 0 for o in ("transport_error", "client_error")}
    requests = 0
    for ep in endpoints.values():
        requests += sum(ep["counts"].values())
        for o in totals:
            totals[o] += ep["counts"].get(o, 0)
    checks: list[dict[str, Any]] = []

    answered = requests - totals["transport_error"]
    checks.append(
        _check(
            "target_reachable",
            not (answered == 0 and totals["transport_error"] > 0),
            "verdict",
            f"{answered} of {requests} requests got an HTTP response",
            transport_errors=totals["transport_error"],
        )
    )
    checks.append(_check("requests_completed", requests > 0, "verdict", f"{requests} requests completed"))

    exceptions = facts.get("exceptions", [])
    crashed = bool(facts.get("unhandled_errors"))
    checks.append(
        _check(
            "generator_exceptions",
            not exceptions and not crashed,
            "verdict",
            "no exceptions in the load generator"
            if not exceptions and not crashed
            else "; ".join(f"{e['count']} x {e['msg']}" for e in exceptions[:5])
            or "an event handler or greenlet of the load generator raised (see the Locust log)",
            exceptions=exceptions,
        )
    )
    missing = facts.get("missing_workers", [])
    workers = facts.get("workers")
    names = (workers or {}).get("names", {})
    checks.append(
        _check(
            "worker_reports",
            not missing,
            "verdict",
            "every worker delivered its final measurements"
            if not missing
            else f"no final measurements from {', '.join(names.get(n, n) for n in missing)} (it died or "
            "lost its connection to the master): the merged histograms are incomplete",
        )
    )
    if workers is not None:  # a distributed run: who joined, who was refused, who came late
        trouble = identity.problems(workers)
        checks.append(
            _check(
                "workers",
                not trouble,
                "verdict",
                "; ".join(trouble)
                or f"{len(workers.get('joined', []))} workers joined in time, each running the master's "
                "code, SLO spec and request settings",
            )
        )

    limit = spec.validity.max_generator_cpu_pct
    hot = []
    for g in doc.get("generators", []):
        p90 = _p90(g.get("cpu_samples", []))
        if p90 is not None and p90 >= limit:
            hot.append(f"{g['id']} (CPU p90 {p90:.0f} %)")
    checks.append(
        _check(
            "generator_cpu",
            not hot,
            "verdict",
            f"every generator's CPU p90 below {limit:g} %"
            if not hot
            else f"saturated: {', '.join(hot)}; latency would include the generator's own queueing: "
            "add --workers or lower the rate",
        )
    )

    bad = {
        f"{name}: "
        + ", ".join(
            f"{n} x {s}" for s, n in sorted(ep["statuses"].items()) if s.startswith("4") and s != "429"
        )
        for name, ep in endpoints.items()
        if ep["counts"].get("client_error", 0)
    }
    checks.append(
        _check(
            "well_formed_requests",
            not bad,
            "verdict",
            "no request refused as malformed or unauthorised"
            if not bad
            else "the service refused the load test's own requests ("
            + "; ".join(sorted(bad))
            + "): check RELAY_API_KEY(S) and the target",
            client_errors=totals["client_error"],
        )
    )

    if model["kind"] == "open":
        requested = float(model["arrival_rate"])
        achieved = sum(float(g.get("achieved_rps") or 0.0) for g in doc.get("generators", []))
        tol = spec.validity.rate_tolerance_pct
        deviation = 100.0 * (achieved - requested) / requested if requested else 0.0
        checks.append(
            _check(
                "achieved_rate",
                abs(deviation) <= tol,
                "pass",
                f"achieved {achieved:.1f} req/s of {requested:g} requested ({deviation:+.2f} %, "
                f"tolerance ±{tol:g} %)",
                requested_rps=requested,
                achieved_rps=round(achieved, 3),
                deviation_pct=round(deviation, 3),
            )
        )

    shares = []
    for name, ep in endpoints.items():
        total = sum(ep["counts"].values())
        limited = ep["counts"].get("rate_limited", 0)
        if total and 100.0 * limited / total > spec.validity.max_rate_limited_pct:
            shares.append(f"{name} {limited}/{total} ({100.0 * limited / total:.1f} %)")
    checks.append(
        _check(
            "rate_limited_share",
            not shares,
            "pass",
            f"429s at most {spec.validity.max_rate_limited_pct:g} % of each endpoint's requests"
            if not shares
            else f"the rate limiter answered {', '.join(shares)}: the run measured the limiter, not the "
            "service; spread the load over more workspace keys (RELAY_API_KEYS) or raise the limit",
        )
    )
    return checks


def _p90(samples: list[float]) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return float(ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)])


def _decide(slos: list[dict[str, Any]], validity: list[dict[str, Any]]) -> dict[str, Any]:
    """Each SLO's outcome discounted by the validity checks (:func:`gate.verdict.earn`), an
    unreachable target as an error, and the exit code by gate/verdict.py's one precedence."""
    failed = [c for c in validity if not c["ok"]]
    untrusted = [c for c in failed if c["blocks"] == "verdict"]
    unearned = [c for c in failed if c["blocks"] != "verdict"]
    items = [
        Item(
            f"{s['endpoint']} {s['slo']}",
            earn(
                _MEASURED.get(s["status"], Outcome.INVALID),
                untrusted=bool(untrusted),
                unearned=bool(unearned),
            ),
        )
        for s in slos
    ]
    unreachable = [c for c in failed if c["check"] == "target_reachable"]
    items += [Item(c["check"], Outcome.ERROR, c["detail"]) for c in unreachable]
    decided = decide(items, nothing="no SLO to judge")
    breached = [s for s in slos if s["status"] == "fail"]
    short = [s for s in slos if s["status"] == "invalid"]

    def reason_slo(s: dict[str, Any]) -> str:
        if s["kind"] == "latency":
            return f"{s['endpoint']} {s['slo']}: measured {_fmt(s['measured_ms'])} ms"
        return f"{s['endpoint']} {s['slo']}: measured {_fmt(s['measured_pct'])} %"

    reasons: list[str] = []
    if decided.outcome is Outcome.ERROR:
        outcome, reasons = "unreachable", [c["detail"] for c in unreachable]
    elif decided.outcome is Outcome.BREACH:
        outcome, reasons = "breach", [reason_slo(s) for s in breached]
    elif decided.outcome is Outcome.PASS:
        outcome = "pass"
    else:
        outcome = "invalid"
        reasons = [f"{c['check']}: {c['detail']}" for c in (untrusted or failed)]
        if not untrusted:
            reasons += [f"{s['endpoint']} {s['slo']}: {s['note']}" for s in short]
    return {"exit_code": decided.exit_code, "outcome": outcome, "reasons": reasons}


_MEASURED = {"pass": Outcome.PASS, "fail": Outcome.BREACH}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
