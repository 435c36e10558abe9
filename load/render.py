"""The verdict as text: what the Locust quitting hook and ``relay-gate load`` print."""

from __future__ import annotations

from typing import Any


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} %"


def headline(doc: dict[str, Any]) -> str:
    m = doc["model"]
    gens = [g for g in doc.get("generators", []) if g.get("role") != "master"]
    where = f"{len(gens)} generator{'s' if len(gens) != 1 else ''}"
    achieved = sum(float(g.get("achieved_rps") or 0) for g in gens)
    if m["kind"] == "open":
        load = (
            f"open model, {m['arrival_rate']:g} req/s requested, {achieved:.1f} achieved, {m['users']} users"
        )
    else:
        load = f"closed model, {m['users']} users, {achieved:.1f} req/s achieved"
    return f"{load}, {m.get('elapsed_s', 0):.1f} s, {where}"


def render(doc: dict[str, Any], judged: dict[str, Any] | None = None, *, label: str = "verdict") -> str:
    """``judged`` (a recomputed verdict) overrides the one stored in ``doc``; ``label`` names the
    verdict line (``relay-gate load --baseline`` prints the SLO verdict before the comparison's)."""
    v = judged or doc
    lines = [f"SLO verdict: {headline(doc)}"]
    rows = [("endpoint", "SLO", "measured", "samples", "status", "")]
    for s in v["slos"]:
        if s["kind"] == "latency":
            measured = _ms(s["measured_ms"])
            extra = f"uncorrected {_ms(s.get('uncorrected_ms'))}, Locust {_ms(s.get('locust_ms'))}"
            if s["basis"] == "uncorrected":
                extra = (
                    f"closed model: not corrected for coordinated omission; Locust {_ms(s.get('locust_ms'))}"
                )
        else:
            measured = _pct(s["measured_pct"])
            b = s["budget"]
            extra = f"budget {b['allowed']:g} allowed, {b['consumed']} used, {b['remaining']:g} left"
        status = s["status"].upper() + (f" ({s['note']})" if s.get("note") else "")
        rows.append((s["endpoint"], s["slo"], measured, f"{s['samples']:,}", status, extra))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])

    eps = doc.get("endpoints", {})
    if eps:
        lines.append(
            "  requests: "
            + "; ".join(
                f"{n} {e['requests']:,} ({e['errors']} errors, {e['rate_limited']} x 429)"
                for n, e in eps.items()
            )
        )
    b = v["budget"]
    lines.append(
        f"error budget (availability {b['availability_pct']:g} %): "
        f"{b['allowed_failures']:g} failures allowed over {b['requests']:,} requests, "
        f"{b['consumed']} consumed, {b['remaining']:g} remaining"
        + (f", burn rate {b['burn_rate']:g}" if b.get("burn_rate") is not None else "")
    )
    lines.append("validity:")
    for c in v["validity"]:
        lines.append(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {c['detail']}")
    if v.get("comparison"):
        lines += comparison_lines(v["comparison"])
    lines += verdict_lines(v["verdict"], label=label)
    return "\n".join(lines)


def verdict_lines(verdict: dict[str, Any], *, label: str = "verdict") -> list[str]:
    return [
        f"{label}: {verdict['outcome'].upper()} (exit {verdict['exit_code']})",
        *(f"  - {r}" for r in verdict["reasons"]),
    ]


_STATUS = {
    "regression": "REGRESSION",
    "slower_within_allowance": "slower, within the allowance",
    "no_significant_change": "no significant change",
    "faster": "faster",
    "too_few_samples": "TOO FEW SAMPLES",
}


def comparison_lines(comparison: dict[str, Any]) -> list[str]:
    """The comparison with a baseline run (load/baseline.py): per endpoint and percentile, both
    figures, the shift and its interval; the finding at the judged percentile."""
    base, method = comparison["baseline"], comparison["method"]
    conf = f"{method['confidence_pct']:g} %"
    lines = [
        f"against the baseline {base.get('run_id')} ({base.get('path')}): {comparison['basis']} latency; "
        f"shift = this run - baseline, {conf} bootstrap interval ({method['resamples']:,} resamples, "
        f"seed {method['seed']})"
    ]
    rows = [("endpoint", "", "baseline", "this run", "shift", f"{conf} interval", "")]
    for name, e in comparison["endpoints"].items():
        n = f"{e['samples']['baseline']:,} / {e['samples']['current']:,} samples"
        rows.append((name, n, "", "", "", "", ""))
        for key, s in e["percentiles"].items():
            judged = key == e["judged"]
            pct = f" ({s['shift_pct']:+g} %)" if s["shift_pct"] is not None else ""
            verdict = f"{_STATUS.get(e['status'], e['status'])} [{e['outcome'].upper()}]" if judged else ""
            lo, hi = s["interval_ms"]
            rows.append(
                ("", key, _ms(s["baseline_ms"]), _ms(s["current_ms"]), f"{s['shift_ms']:+.3f} ms{pct}",
                 f"{lo:+.3f} .. {hi:+.3f} ms", verdict)
            )  # fmt: skip
        if not e["percentiles"]:
            rows.append(("", e["judged"], "", "", "", "", f"{_STATUS[e['status']]}: {e.get('note')}"))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6])
    rules = comparison["rules"]
    lines.append(
        f"  a regression: p{rules['percentile']:g} worse by more than {rules['max_increase_pct']:g} % with "
        f"the interval above zero"
        + (f" (overrides: {', '.join(rules['endpoints'])})" if rules.get("endpoints") else "")
    )
    return lines
