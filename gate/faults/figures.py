"""The figures of a fault run, pure, from what faults.json records: how each request was answered
per phase and endpoint, the latency during the Redis hang, the deliveries against the audit rows, and
a per-second series for the charts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gate.faults.model import COLUMNS, ENDPOINTS, LATENCY_MARGIN_MS, MIN_HANG_SAMPLES, Marks, Sample


def column(s: Sample) -> str:
    """The count a request goes into."""
    if s.status is None:
        return "unfinished"
    if s.status == 0:
        return "no_response"
    if 200 <= s.status < 300:
        return "2xx"
    if s.status in (429, 503):
        return str(s.status)
    return "other_5xx" if s.status >= 500 else "other"


def allowed_503(s: Sample, marks: Marks) -> bool:
    """The documented 503: an execute in flight while its replica's database was away."""
    if s.endpoint != "execute" or s.status != 503 or s.sent is None or s.done is None:
        return False
    start, end = marks.db_window(s.replica)
    return s.sent <= end and s.done >= start


def nearest_rank(values: Iterable[float], percentile: float) -> float | None:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)] if ordered else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def phase_counts(samples: Sequence[Sample], marks: Marks, origin: float) -> list[dict[str, Any]]:
    """Per phase (a request belongs to the phase it was due in) and endpoint: how it was answered."""
    endpoints = [*ENDPOINTS, *sorted({s.endpoint for s in samples} - set(ENDPOINTS))]
    first = min((s.due for s in samples), default=origin)
    last = max((s.due for s in samples), default=origin)
    out = []
    for name, start, end, what in marks.phases():
        counts = {ep: dict.fromkeys(COLUMNS, 0) for ep in endpoints}
        for s in samples:
            if start <= s.due < end:
                row = counts[s.endpoint]
                row["requests"] += 1
                row[column(s)] += 1
                row["503_outside_db_outage"] += s.status == 503 and not allowed_503(s, marks)
        out.append(
            {
                "phase": name,
                "what": what,
                "start_s": round(max(start, first) - origin, 3),
                "end_s": round(min(end, last) - origin, 3),
                "requests": counts,
            }
        )
    return out


def hang_latency(samples: Sequence[Sample], marks: Marks, origin: float, timeout_ms: float) -> dict[str, Any]:
    """The requests due between SIGSTOP and SIGCONT: their p99 (corrected) against the bound. 429s
    stay out, as in load.json's histograms (none are expected: the quota is out of reach)."""
    hung = [s for s in samples if marks.pause <= s.due < marks.resume and s.status != 429]
    steady = [s for s in samples if s.due < marks.kill and s.status not in (None, 429)]
    p99 = nearest_rank((s.corrected_ms for s in hung), 99)
    bound = timeout_ms + LATENCY_MARGIN_MS

    def figures(rows: Sequence[Sample]) -> dict[str, Any]:
        return {
            "samples": len(rows),
            "p99_ms": _ms(nearest_rank((s.corrected_ms for s in rows), 99)),
            "max_ms": _ms(max((s.corrected_ms for s in rows), default=None)),
        }

    return {
        "window": {
            "start_s": round(marks.pause - origin, 3),
            "end_s": round(marks.resume - origin, 3),
            "seconds": round(marks.resume - marks.pause, 3),
        },
        "basis": "corrected",
        "samples": len(hung),
        "executes": sum(1 for s in hung if s.endpoint == "execute"),
        "min_samples": MIN_HANG_SAMPLES,
        "p99_ms": _ms(p99),
        "max_ms": _ms(max((s.corrected_ms for s in hung), default=None)),
        "uncorrected_p99_ms": _ms(
            nearest_rank((s.response_ms for s in hung if s.response_ms is not None), 99)
        ),
        "lag_p99_ms": _ms(nearest_rank(((s.sent - s.due) * 1000 for s in hung if s.sent is not None), 99)),
        "configured_timeout_ms": timeout_ms,
        "margin_ms": LATENCY_MARGIN_MS,
        "bound_ms": bound,
        "steady_p99_ms": _ms(nearest_rank((s.corrected_ms for s in steady), 99)),
        "by_endpoint": {
            ep: figures(rows) for ep in ENDPOINTS if (rows := [s for s in hung if s.endpoint == ep])
        },
        "passed": None if p99 is None else p99 <= bound,
    }


def cross_check(
    captures: Sequence[Mapping[str, Any]], rows: Mapping[str, Mapping[str, Any]], samples: Sequence[Sample]
) -> dict[str, Any]:
    """Every captured delivery against the audit table, and against the executes answered 503 (which
    must have delivered nothing). Retries of one delivery share its webhook-id and its row."""
    refused = {s.request_id for s in samples if s.endpoint == "execute" and s.status == 503 and s.request_id}
    missing, mismatched, after_503 = [], [], []
    for c in captures:
        row = rows.get(str(c.get("webhook_id")))
        seen = {k: c.get(k) for k in ("seq", "webhook_id", "request_id", "received_at_s")}
        if row is None:
            missing.append({**seen, "problem": "no audit row"})
        elif row.get("request_id") != c.get("request_id"):
            mismatched.append({**seen, "problem": f"audit row has request id {row.get('request_id')}"})
        if c.get("request_id") in refused:
            after_503.append({**seen, "problem": "delivered for an execute answered 503"})
    webhooks = {str(c.get("webhook_id")) for c in captures}
    audited = webhooks & set(rows)
    statuses: dict[str, int] = {}
    for w in sorted(audited):
        statuses[str(rows[w].get("status"))] = statuses.get(str(rows[w].get("status")), 0) + 1
    return {
        "deliveries": len(captures),
        "webhooks": len(webhooks),
        "audit_rows_found": len(audited),
        "audit_row_status": statuses,
        "executes_2xx": sum(1 for s in samples if s.endpoint == "execute" and column(s) == "2xx"),
        "executes_503": len(refused),
        "missing_audit_row": len(missing),
        "request_id_mismatch": len(mismatched),
        "delivered_after_503": len(after_503),
        "problems": (missing + mismatched + after_503)[:20],
        "passed": not missing and not mismatched and not after_503,
    }


def series(samples: Sequence[Sample], origin: float) -> dict[str, list[Any]]:
    """Per second of the run (by due time): how requests were answered, and their corrected p50 and
    p99 (429s left out: a refusal's latency says nothing about the service under fault)."""
    buckets: dict[int, list[Sample]] = {}
    for s in samples:
        buckets.setdefault(math.floor(s.due - origin), []).append(s)
    seconds = list(range(min(buckets), max(buckets) + 1)) if buckets else []
    out: dict[str, list[Any]] = {
        "t": seconds, "2xx": [], "429": [], "503": [], "errors": [], "p50_ms": [], "p99_ms": [],
    }  # fmt: skip
    for t in seconds:
        rows = buckets.get(t, [])
        cols = [column(s) for s in rows]
        out["2xx"].append(cols.count("2xx"))
        out["429"].append(cols.count("429"))
        out["503"].append(cols.count("503"))
        out["errors"].append(sum(cols.count(c) for c in ("other_5xx", "other", "no_response")))
        served = [s.corrected_ms for s in rows if s.status != 429]
        out["p50_ms"].append(_ms(nearest_rank(served, 50)))
        out["p99_ms"].append(_ms(nearest_rank(served, 99)))
    return out
