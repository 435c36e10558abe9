"""FAULTS: the criteria of a fault run and the context of its document, from faults/faults.json.

``relay-gate faults`` writes ``results/<run-id>/faults/faults.json`` (``relay-gate/faults@1``, see
docs/faults.md). Its five criteria join the pack's index under the area ``faults``; a pack without a
fault run shows each of them as NOT RUN, and a criterion the run could not earn (too few requests
during the hang, a fault that did not take effect, an untrustworthy generator) is INVALID with the
reason — never PASS.

Nothing here judges: the statuses are the ones faults.json recorded (gate/faults/judgement.py decides them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evidence import charts
from evidence.criteria import Criterion
from gate.faults import CRITERIA, ENDPOINTS
from gate.verdict import Outcome

AREA = "faults"
DOCUMENT = "FAULTS"
TITLE = "Faults under load"
# faults.json records "pass", "fail" or "not evidence" (gate/faults/judgement.py, via gate.verdict.earn)
_STATUS = {"pass": Outcome.PASS, "fail": Outcome.FAIL}


def faults_criteria(doc: dict[str, Any] | None) -> list[Criterion]:
    """One criterion per fault criterion, in a fixed order, whether or not the run exists."""
    if doc is None:
        why = "no fault run in these results (relay-gate faults)"
        return [Criterion(AREA, title, Outcome.NOT_RUN, why, DOCUMENT) for title in CRITERIA.values()]
    recorded = {str(c.get("id")): c for c in doc.get("criteria") or [] if isinstance(c, dict)}
    out = []
    for cid, title in CRITERIA.items():
        c = recorded.get(cid)
        if c is None:
            out.append(Criterion(AREA, title, Outcome.NOT_RUN, "not recorded by this fault run", DOCUMENT))
            continue
        status = _STATUS.get(str(c.get("status")), Outcome.INVALID)
        reason = c.get("detail") if status is not Outcome.INVALID else f"not valid evidence: {c.get('note')}"
        out.append(Criterion(AREA, str(c.get("title") or title), status, reason, DOCUMENT))
    return out


def faults_context(doc: dict[str, Any] | None, chart_dir: Path) -> dict[str, Any]:
    """What FAULTS.md.j2 shows: the recorded document plus table rows and two charts."""
    if doc is None:
        return {"present": False}
    phases = [
        {**p, "rows": [(ep, (p.get("requests") or {}).get(ep) or {}) for ep in _endpoints(p)]}
        for p in doc.get("phases") or []
    ]
    return {
        "present": True,
        "doc": doc,
        "phases": phases,
        "events": (doc.get("timeline") or {}).get("events") or [],
        "observations": (doc.get("timeline") or {}).get("observations") or [],
        "charts": _charts(doc, chart_dir),
    }


def _endpoints(phase: dict[str, Any]) -> list[str]:
    present = list(phase.get("requests") or {})
    return [e for e in ENDPOINTS if e in present] + [e for e in present if e not in ENDPOINTS]


def _charts(doc: dict[str, Any], chart_dir: Path) -> list[tuple[str, str]]:
    s = doc.get("series") or {}
    t = s.get("t") or []
    if not t:
        return []
    events = ", ".join(
        f"{e.get('event')} at {float(e.get('at_s') or 0):.1f} s"
        for e in (doc.get("timeline") or {}).get("events") or []
    )
    answered = [
        (f"{sec} s", [float(a), float(b), float(c)])
        for sec, a, b, c in zip(
            t, s.get("2xx") or [], s.get("503") or [], s.get("errors") or [], strict=False
        )
    ]
    bound = (doc.get("hang_latency") or {}).get("bound_ms")
    p99 = [(f"{sec} s", [float(v or 0)]) for sec, v in zip(t, s.get("p99_ms") or [], strict=False)]
    out = []
    for name, svg, alt in (
        (
            "faults-requests.svg",
            charts.stacked_bins(
                "Requests per second by the time they were due: 2xx, 503, other errors",
                answered,
                ["2xx", "503", "other errors"],
                colors=("#38a169", "#dd6b20", "#e53e3e"),
            ),
            f"requests per second and how they were answered ({events})",
        ),
        (
            "faults-p99.svg",
            charts.stacked_bins(
                f"p99 latency per second, ms (corrected; hang bound {bound} ms)",
                p99,
                ["p99 ms"],
                colors=("#2b6cb0",),
            ),
            "p99 latency per second",
        ),
    ):
        (chart_dir / name).write_text(svg, encoding="utf-8")
        out.append((name, alt))
    return out
