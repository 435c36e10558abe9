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
from gate.faults.model import CRITERIA, ENDPOINTS
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
            "faults-latency.svg",
            charts.time_series(
                f"p50 and p99 latency per second, ms (corrected; hang bound {bound} ms)",
                t,
                [("p50", s.get("p50_ms") or []), ("p99", s.get("p99_ms") or [])],
                shaded=fault_windows((doc.get("timeline") or {}).get("events") or []),
            ),
            "p50 and p99 latency per second, fault windows shaded",
        ),
    ):
        (chart_dir / name).write_text(svg, encoding="utf-8")
        out.append((name, alt))
    return out


# a fault event opens a window that the event naming the same part closes: kill_redis .. restart_redis
_OPENS = {"kill": "killed", "pause": "hung", "stop": "down"}
_CLOSES = ("restart", "resume", "start")


def fault_windows(events: list[dict[str, Any]]) -> list[tuple[float, float, str]]:
    """(start, end, label) of each fault, from faults.json's timeline events (seconds of the run); a
    fault never closed runs to its last event."""
    open_at: dict[str, tuple[float, str]] = {}
    out = []
    last = max((float(e.get("done_s") or e.get("at_s") or 0) for e in events), default=0.0)
    for e in events:
        verb, _, part = str(e.get("event") or "").partition("_")
        at = float(e.get("at_s") or 0)
        if verb in _OPENS:
            open_at[part] = (at, f"{part} {_OPENS[verb]}")
        elif verb in _CLOSES and part in open_at:
            start, label = open_at.pop(part)
            out.append((start, at, label))
    out += [(start, last, label) for start, label in open_at.values()]
    return sorted(out)
