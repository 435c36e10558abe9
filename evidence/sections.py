"""Per-document context: what each evidence document shows, picked out of the scenario records.

Each function reads only the results (scenario notes, drill.json, load.json) and returns plain data
for its template; a missing record yields an empty section, and the document says so.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from evidence import charts
from evidence.model import Results

LOAD_SPEC = Path(__file__).resolve().parent.parent / "load" / "slos.toml"


def _notes(res: Results, area: str) -> list[tuple[str, dict[str, Any]]]:
    return [(str(s.get("scenario")), dict(s.get("notes") or {})) for s in res.scenario_notes(area)]


def _headers_block(headers: Any, status_line: str = "") -> str:
    pairs = headers.items() if isinstance(headers, dict) else headers or []
    lines = [status_line] if status_line else []
    lines += [f"{k}: {v}" for k, v in pairs]
    return "\n".join(lines)


# -- rate limiting ----------------------------------------------------------------------------------


def _burst_chart(timeline: list[dict[str, Any]]) -> str:
    if not timeline:
        return charts.stacked_bins("Burst", [], ["admitted", "refused (429)"])
    span = max(float(r.get("t_ms", 0)) for r in timeline) + 1
    width = max(1, math.ceil(span / 24))  # about two dozen bins across the burst
    bins: dict[int, list[float]] = {}
    for r in timeline:
        b = int(float(r.get("t_ms", 0)) // width)
        slot = bins.setdefault(b, [0.0, 0.0, 0.0])
        status = int(r.get("status", 0))
        slot[0 if status < 300 else 1 if status == 429 else 2] += 1
    rows = [(f"{b * width} ms", bins.get(b, [0.0, 0.0, 0.0])) for b in range(max(bins) + 1)]
    return charts.stacked_bins(
        f"Executes per {width} ms: admitted vs 429", rows, ["admitted", "refused (429)", "other"]
    )


def rate_limit(res: Results, chart_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "bursts": [],
        "parallel": None,
        "spoofing": None,
        "redis_keys": None,
        "outages": [],
    }
    for i, (scenario, notes) in enumerate(_notes(res, "rate_limit")):
        burst = notes.get("burst")
        if isinstance(burst, dict):
            name = f"ratelimit-burst-{i}.svg"
            (chart_dir / name).write_text(_burst_chart(list(burst.get("timeline") or [])), encoding="utf-8")
            first = burst.get("first_429_headers") or {}
            out["bursts"].append(
                {
                    "scenario": scenario,
                    "note": burst,
                    "chart": name,
                    "first_429": _headers_block(first, "HTTP/1.1 429 Too Many Requests") if first else "",
                }
            )
        if isinstance(notes.get("parallel_burst"), dict):
            out["parallel"] = notes["parallel_burst"]
        if isinstance(notes.get("workspace_spoofing"), dict):
            out["spoofing"] = notes["workspace_spoofing"]
        if isinstance(notes.get("redis_keys"), dict):
            out["redis_keys"] = notes["redis_keys"]
        for key, name in (("redis_hung", "Redis hung (SIGSTOP)"), ("redis_killed", "Redis killed")):
            o = notes.get(key)
            if isinstance(o, dict):
                rec = notes.get("redis_recovery") or {}
                bound = (notes.get("latency_bound") or {}).get("bound_s")
                out["outages"].append(
                    {
                        "name": name,
                        "how": o.get("how"),
                        "max_latency_ms": o.get("max_latency_ms"),
                        "bound_s": bound,
                        "recovery_s": rec.get("seconds"),
                        "recovery_bound_s": rec.get("bound_s"),
                    }
                )
    return out


# -- signing ----------------------------------------------------------------------------------------


def signing(res: Results) -> dict[str, Any]:
    out: dict[str, Any] = {
        "delivery": None,
        "delivery_headers": "",
        "recomputations": [],
        "standardwebhooks": None,
        "gate_verifier": None,
        "request_ids": [],
        "rotation_entries": [],
        "rotation_verdicts": {},
        "retries": [],
    }
    for scenario, notes in _notes(res, "signing"):
        s = notes.get("signing")
        if isinstance(s, dict):
            d = s.get("delivery")
            if isinstance(d, dict) and out["delivery"] is None:
                out["delivery"] = d
                out["delivery_headers"] = _headers_block(
                    d.get("headers"), f"{d.get('method')} {d.get('path')} HTTP/1.1"
                )
            rec = s.get("recomputation") or {}
            for name in ("x_signature", "webhook_signature"):
                if isinstance(rec.get(name), dict) and all(n != name for n, _ in out["recomputations"]):
                    out["recomputations"].append((name, rec[name]))
            if isinstance(rec.get("standardwebhooks"), dict):
                out["standardwebhooks"] = rec["standardwebhooks"]
            if isinstance(rec.get("gate_verifier"), dict):
                out["gate_verifier"] = rec["gate_verifier"]
            if isinstance(s.get("deliveries"), list):
                out["request_ids"] = s["deliveries"]
            if isinstance(s.get("rotation_entries"), list):
                out["rotation_entries"] = s["rotation_entries"]
            if isinstance(s.get("rotation_verdicts"), dict):
                out["rotation_verdicts"] = s["rotation_verdicts"]
        d = notes.get("delivery")
        if isinstance(d, dict):
            for row in d.get("deliveries") or []:
                if isinstance(row, dict):
                    out["retries"].append(
                        {
                            "scenario": scenario,
                            "answer": row.get("first answer") or _script_words(d.get("script")),
                            "execute_status": row.get("execute_status"),
                            "attempts": len(row.get("attempts") or []),
                            "gaps_s": row.get("gaps_s") or [],
                        }
                    )
    return out


def _script_words(script: Any) -> str:
    if isinstance(script, list):
        return ", then ".join(str(r.get("answer")) for r in script if isinstance(r, dict)) + ", then 200"
    return str(script or "200")


# -- headers ----------------------------------------------------------------------------------------


def headers(res: Results) -> dict[str, Any]:
    by_status: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {"grade": None, "findings": [], "problems": [], "by_status": []}
    for _, notes in _notes(res, "headers"):
        how = {str(p.get("status")): p.get("how") for p in notes.get("provoked") or [] if isinstance(p, dict)}
        for status, hdrs in (notes.get("headers_by_status") or {}).items():
            by_status.setdefault(str(status), {"how": how.get(str(status)), "headers": _headers_block(hdrs)})
        if isinstance(notes.get("grade"), dict):
            out["grade"] = notes["grade"]
            out["findings"] = notes.get("findings") or []
        out["problems"] += [p for p in notes.get("header_problems") or [] if p]
    out["by_status"] = sorted(by_status.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 999)
    return out


# -- smoke and audit ---------------------------------------------------------------------------------


def audit(res: Results) -> dict[str, Any]:
    out: dict[str, Any] = {
        "smoke": None,
        "refusals": [],
        "matched": [],
        "failed_delivery": None,
        "db_down": None,
        "db_down_deliveries": None,
    }
    for _, notes in _notes(res, "smoke"):
        if "audit_match" in notes:
            out["smoke"] = notes
    for _, notes in _notes(res, "audit"):
        for r in notes.get("auth_refusals") or []:
            hdrs = {str(k).lower(): v for k, v in r.get("headers") or []}
            out["refusals"].append({**r, "challenge": hdrs.get("www-authenticate")})
        out["matched"] += notes.get("audit_rows_matched") or []
        if isinstance(notes.get("failed_delivery"), dict):
            out["failed_delivery"] = notes["failed_delivery"]
        down = notes.get("audit_down_execute")
        if isinstance(down, dict):
            hdrs = {str(k).lower(): v for k, v in down.get("headers") or []}
            out["db_down"] = {"status": down.get("status"), "retry_after": hdrs.get("retry-after")}
            deliveries = notes.get("audit_down_deliveries")
            out["db_down_deliveries"] = (
                deliveries.get("count", len(deliveries.get("captures", [])))
                if isinstance(deliveries, dict)
                else deliveries
            )
    return out


# -- drill and metrics (rendered from drill.json / load.json) ---------------------------------------


def drill(res: Results, chart_dir: Path) -> dict[str, Any]:
    d = res.drill
    if d is None:
        return {"present": False}
    phases = [
        (str(k), float(v)) for k, v in (d.get("durations_s") or {}).items() if isinstance(v, int | float)
    ]
    chart = None
    if phases:
        chart = "drill-timings.svg"
        (chart_dir / chart).write_text(charts.horizontal_bars("Drill phases", phases), encoding="utf-8")
    return {"present": True, "doc": d, "chart": chart, "phases": phases}


def metrics(res: Results, chart_dir: Path) -> dict[str, Any]:
    load = res.load
    if load is None:
        return {"present": False}
    groups = []
    for name, ep in (load.get("endpoints") or {}).items():
        pct = (ep.get("latency_ms") or {}).get("corrected") or {}
        groups.append((name, [float(pct.get(p) or 0) for p in ("p50", "p95", "p99")]))
    slo_marks = {
        str(v.get("endpoint")): (float(v.get("percentile") or 99), float(v["threshold_ms"]))
        for v in load.get("slos") or []
        if v.get("kind") == "latency" and v.get("threshold_ms") is not None
    }
    comparison = load.get("comparison")
    compared = comparison.get("baseline") or {} if isinstance(comparison, dict) else {}
    baseline = compared.get("endpoints") or {}
    charts_out = []
    # one chart per endpoint: a 1.2 s threshold would flatten a 5 ms spectrum on a shared scale
    for name, ep in (load.get("endpoints") or {}).items():
        lines = [("this run", spectrum_points((ep.get("hdr") or {}).get("corrected")))]
        if name in baseline:  # relay-gate load --baseline: the baseline run's spectrum beside it
            lines.append(("baseline run", spectrum_points((baseline[name] or {}).get("hdr"))))
        svg = charts.percentile_spectrum(
            f"{name}: latency by percentile, coordinated-omission corrected",
            [(label, pts) for label, pts in lines if pts],
            threshold=slo_marks.get(name),
            width=520,
            height=240,
        )
        chart = f"latency-{name}.svg"
        (chart_dir / chart).write_text(svg, encoding="utf-8")
        charts_out.append((chart, f"{name}: latency against percentile (50 % .. 99.99 %), SLO marked"))
    for name, series in (load.get("series") or {}).items():
        t = series.get("t") or []
        if not t:
            continue
        ok = [
            max(0, r - e - q)
            for r, e, q in zip(
                series.get("requests") or [],
                series.get("errors") or [],
                series.get("rate_limited") or [],
                strict=False,
            )
        ]
        rows = [
            (f"{s} s", [float(a), float(q), float(e)])
            for s, a, q, e in zip(
                t, ok, series.get("rate_limited") or [], series.get("errors") or [], strict=False
            )
        ]
        chart = f"per-second-{name}.svg"
        (chart_dir / chart).write_text(
            charts.stacked_bins(
                f"{name}: accepted vs 429 vs errors per second", rows, ["accepted", "429", "errors"]
            ),
            encoding="utf-8",
        )
        charts_out.append((chart, f"{name} per second"))
        if series.get("p99_ms"):
            chart = f"latency-per-second-{name}.svg"
            per_second = [("p50", series.get("p50_ms") or []), ("p99", series.get("p99_ms") or [])]
            (chart_dir / chart).write_text(
                charts.time_series(f"{name}: p50 and p99 latency per second, ms", t, per_second),
                encoding="utf-8",
            )
            charts_out.append((chart, f"{name}: p50 and p99 latency per second"))
    return {
        "present": True,
        "doc": load,
        "charts": charts_out,
        "budgets": _budgets(load),
        "comparison": _comparison(load),
    }


def _comparison(load: dict[str, Any]) -> dict[str, Any] | None:
    """This run and its baseline side by side (``relay-gate load --baseline``): who each run was, and
    per endpoint and percentile both figures, the shift and its interval, the finding where judged."""
    c = load.get("comparison")
    if not isinstance(c, dict):
        return None
    base = c.get("baseline") or {}
    git = (load.get("provenance") or {}).get("git") or {}
    slo_verdict = (load.get("verdict") or {}).get("slos") or load.get("verdict") or {}
    runs = [
        ("baseline", base.get("run_id"), base.get("started_at"), base.get("target"), base.get("git") or {},
         base.get("model") or {}, base.get("verdict") or {}),
        ("this run", load.get("run_id"), load.get("started_at"), (load.get("target") or {}).get("name"), git,
         load.get("model") or {}, slo_verdict),
    ]  # fmt: skip
    rows = []
    for name, e in (c.get("endpoints") or {}).items():
        samples = e.get("samples") or {}
        for key, sh in (e.get("percentiles") or {}).items():
            judged = key == e.get("judged")
            rows.append(
                {
                    "endpoint": name,
                    "percentile": key,
                    "samples": (samples.get("baseline"), samples.get("current")),
                    "shift": sh,
                    "finding": _FINDING.get(str(e.get("status")), e.get("status")) if judged else "",
                    "judged": judged,
                }
            )
        if not e.get("percentiles"):
            rows.append({"endpoint": name, "percentile": e.get("judged"), "judged": True, "shift": None,
                         "samples": (samples.get("baseline"), samples.get("current")),
                         "finding": _FINDING.get(str(e.get("status")), e.get("status"))})  # fmt: skip
    return {"c": c, "runs": runs, "rows": rows, "failed_checks": base.get("failed_checks") or []}


_FINDING = {
    "regression": "REGRESSION",
    "slower_within_allowance": "slower, within the allowance",
    "no_significant_change": "no significant change",
    "faster": "faster",
    "too_few_samples": "too few samples",
}


def spectrum_points(blob: object) -> list[tuple[float, float]]:
    """(percentile, ms) along :data:`evidence.charts.SPECTRUM_PERCENTILES` from an encoded HDR
    histogram of load.json; empty when there is none, it does not decode, or it holds no sample."""
    from load import hdr

    if not isinstance(blob, str):
        return []
    try:
        histogram = hdr.decode(blob)
    except hdr.HistogramError:
        return []
    points = [(p, hdr.value_ms(histogram, p)) for p in charts.SPECTRUM_PERCENTILES]
    return [(p, ms) for p, ms in points if ms is not None]


def _budgets(load: dict[str, Any]) -> list[dict[str, Any]]:
    """Error budget over a 30-day period at the run's error ratio (gate.observability.budget)."""
    from gate.errors import InvalidEvidence
    from gate.observability.budget import error_budgets

    try:
        return [b.to_json() for b in error_budgets(load, period_s=30 * 86400)]
    except InvalidEvidence:
        return []


def default_slo_objectives() -> list[tuple[str, str]]:
    """(endpoint, objective) pairs of load/slos.toml, worded as load.json words them: the SLO
    criteria a run is expected to prove."""
    try:
        spec = tomllib.loads(LOAD_SPEC.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return [("load", "the SLOs of load/slos.toml")]
    out = []
    for name, ep in (spec.get("endpoints") or {}).items():
        if not isinstance(ep, dict):
            continue
        for lat in ep.get("latency") or []:
            out.append((name, f"p{lat.get('percentile'):g} latency <= {lat.get('max_ms'):g} ms"))
        if "error_rate_max_pct" in ep:
            out.append((name, f"error rate <= {ep['error_rate_max_pct']:g} %"))
    return out or [("load", "the SLOs of load/slos.toml")]
