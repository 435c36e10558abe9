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


def render(doc: dict[str, Any], judged: dict[str, Any] | None = None) -> str:
    """``judged`` (a recomputed verdict) overrides the one stored in ``doc``."""
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
    verdict = v["verdict"]
    lines.append(f"verdict: {verdict['outcome'].upper()} (exit {verdict['exit_code']})")
    lines.extend(f"  - {r}" for r in verdict["reasons"])
    return "\n".join(lines)
