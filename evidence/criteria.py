"""The acceptance criteria a results folder proves, each with its outcome, and the pack's verdict.

Every outcome is one of gate/verdict.py's, and the verdict is :func:`gate.verdict.decide` over the
criteria and the steps ``run.json`` records — the same call ``relay-gate run`` makes for its exit
code, so the pack never says more than the run did. A criterion whose results are missing is NOT RUN;
a skipped scenario carries the category its skip was raised with (``summary.json``); a load run that
failed a validity check makes its SLO criteria INVALID, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import features
from evidence.model import Results
from gate.verdict import (
    LABEL,
    Item,
    Outcome,
    Verdict,
    decide,
    earn,
    outcome_of_exit,
    scenario_outcome,
)

# area tag -> (title, the document that shows its evidence)
AREAS: dict[str, tuple[str, str]] = {
    "rate_limit": ("Rate limiting", "RATELIMIT-SMOKE"),
    "signing": ("Webhook signing", "SIGNING-E2E"),
    "headers": ("Security headers", "SECURITY-HEADERS"),
    "audit": ("Authentication and audit", "SMOKE-AUDIT"),
    "smoke": ("Post-deploy smoke", "SMOKE-AUDIT"),
    "api": ("The API contract: errors, bodies, previews, request ids", "SMOKE-AUDIT"),
    "drill": ("Backup and restore drill", "RESTORE-DRILL-REPORT"),
    "slo": ("Latency and error SLOs", "METRICS-SUMMARY"),
    "regression": ("Latency against the baseline run", "METRICS-SUMMARY"),
    "faults": ("Faults under load", "FAULTS"),
}
# a scenario that checks relay-gate's own drill tooling (it damages a copy of a backup), not the target:
# RESTORE-DRILL-REPORT shows these apart
TOOLING_TAG = "drill-tooling"


@dataclass(frozen=True)
class Criterion:
    area: str
    title: str
    outcome: Outcome
    reason: str | None
    doc: str
    slug: str | None = None
    tooling: bool = False  # a check of relay-gate's drill tooling (TOOLING_TAG), not of the target

    @property
    def status(self) -> str:
        """How the pack shows it: PASS, FAIL, BREACH, INVALID, NOT RUN, NOT APPLICABLE, ..."""
        return LABEL[self.outcome]

    def item(self) -> Item:
        return Item(f"{self.area}: {self.title}", self.outcome, self.reason)


@dataclass(frozen=True)
class CatalogueEntry:
    area: str
    feature: str
    title: str
    tags: frozenset[str] = frozenset()


def catalogue(feature_dir: Path | None = None) -> list[CatalogueEntry]:
    """Every scenario the feature files state, with its area: the criteria a full run proves."""
    feature_dir = feature_dir or Path(features.__file__).resolve().parent
    out = []
    for path in sorted(feature_dir.glob("*.feature")):
        area = None
        feature = path.stem
        pending_tags: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            s = line.strip()
            if s.startswith("@"):
                pending_tags += [t.lstrip("@") for t in s.split()]
            elif s.startswith("Feature:"):
                feature = s.removeprefix("Feature:").strip()
                area = next((t for t in pending_tags if t in AREAS), area)
                pending_tags = []
            elif s.startswith(("Scenario:", "Scenario Outline:")):
                title = s.split(":", 1)[1].strip()
                out.append(CatalogueEntry(area or "smoke", feature, title, frozenset(pending_tags)))
                pending_tags = []
    return out


def feature_criteria(res: Results, entries: list[CatalogueEntry]) -> list[Criterion]:
    ran: dict[str, dict[str, Any]] = {}
    if res.features is not None:
        for feat in res.features.get("features", []):
            for sc in feat.get("scenarios", []):
                ran[str(sc["scenario"])] = sc
    out = []
    for e in entries:
        sc = ran.get(e.title)
        doc = AREAS.get(e.area, ("", "INDEX"))[1]
        tooling = TOOLING_TAG in e.tags
        if sc is None:
            why = "no feature results in this run" if res.features is None else "not selected in this run"
            out.append(Criterion(e.area, e.title, Outcome.NOT_RUN, why, doc, tooling=tooling))
        else:
            outcome, reason = scenario_outcome(sc), sc.get("reason")
            out.append(Criterion(e.area, e.title, outcome, reason, doc, sc.get("slug"), tooling=tooling))
    return out


DRILL_TITLE = "The latest backup restores and matches its manifest (relay-gate drill)"
RTO_TITLE = "The restore finishes within the RTO target"
RPO_TITLES = {
    # the reference stack's drill restores the backup the run itself just took: its age says the backup
    # tooling timestamps what it dumps, not that anybody's backups run on schedule
    "this_run": "The backup this run took is younger than the RPO target (it checks the backup tooling's "
    "timestamps, not a backup schedule)",
    "latest": "The latest backup in the backup folder is younger than the RPO target",
}


def drill_criteria(res: Results) -> list[Criterion]:
    doc = AREAS["drill"][1]
    d = res.drill
    if d is None:
        return [Criterion("drill", DRILL_TITLE, Outcome.NOT_RUN, "no drill results in this run", doc)]
    # the drill's own exit code says whether it failed a criterion (1) or could not run (5)
    ran = outcome_of_exit(d.get("exit_code")) if "exit_code" in d else None
    passed = d.get("verdict") == "PASSED"
    outcome = ran if ran is not None else (Outcome.PASS if passed else Outcome.FAIL)
    out = [Criterion("drill", DRILL_TITLE, outcome, d.get("reason"), doc)]
    for key in ("rto", "rpo"):
        obj = d.get(key) or {}
        title = RTO_TITLE if key == "rto" else RPO_TITLES.get(str(obj.get("scope")), RPO_TITLES["latest"])
        if "passed" not in obj:
            continue
        measured = obj.get("measured_s")
        if measured is None:  # the drill stopped before it could measure this
            out.append(
                Criterion("drill", title, Outcome.NOT_RUN, "not measured: the drill stopped before", doc)
            )
            continue
        reason = f"{measured} s measured, target {obj.get('target_s')} s"
        outcome = Outcome.PASS if obj["passed"] else Outcome.FAIL
        out.append(Criterion("drill", title, outcome, reason, doc))
    return out


def slo_criteria(res: Results, default_spec: list[tuple[str, str]]) -> list[Criterion]:
    """One criterion per endpoint objective of load.json; ``default_spec`` (endpoint, objective)
    lists them when no load run exists, so a missing run shows as NOT RUN rather than not at all.

    Validity is applied by :func:`gate.verdict.earn`, as load/verdict.py applies it: a failed check
    that blocks the verdict makes every SLO INVALID; one that blocks a pass makes the passes INVALID
    (a breach it shows stays a breach)."""
    doc = AREAS["slo"][1]
    load = res.load
    if load is None:
        return [
            Criterion("slo", f"{ep}: {obj}", Outcome.NOT_RUN, "no load results in this run", doc)
            for ep, obj in default_spec
        ]
    failed = [c for c in load.get("validity") or [] if not c.get("ok", True)]
    untrusted = [c for c in failed if c.get("blocks") == "verdict"]
    unearned = [c for c in failed if c.get("blocks") != "verdict"]
    out = []
    for v in load.get("slos") or []:
        title = f"{v.get('endpoint')}: {v.get('slo')}"
        measured = {"pass": Outcome.PASS, "fail": Outcome.BREACH}.get(str(v.get("status")), Outcome.INVALID)
        outcome = earn(measured, untrusted=bool(untrusted), unearned=bool(unearned))
        if outcome is Outcome.INVALID:
            blocking = untrusted or (unearned if measured is Outcome.PASS else [])
            why = "; ".join(f"{c.get('check')}: {c.get('detail')}" for c in blocking)
            reason = (
                f"the load run is not valid evidence: {why}"
                if why
                else str(v.get("note") or "not valid evidence")
            )
        else:
            reason = _measured(v)
        out.append(Criterion("slo", title, outcome, reason, doc))
    return out


def regression_criteria(res: Results) -> list[Criterion]:
    """One criterion per endpoint of a load run compared with a baseline (``relay-gate load
    --baseline``; none without one): its judged percentile did not regress. Judged from the
    comparison's finding and both runs' validity by load/baseline.py's own rule, as the load step did."""
    comparison = (res.load or {}).get("comparison")
    if not isinstance(comparison, dict):
        return []
    from load.baseline import judged

    doc = AREAS["regression"][1]
    base = comparison.get("baseline") or {}
    validity = (res.load or {}).get("validity") or []
    out = []
    for name, e in (comparison.get("endpoints") or {}).items():
        title = f"{name}: {e.get('judged')} not regressed against the baseline run {base.get('run_id')}"
        outcome, why = judged(str(e.get("status")), validity=validity, baseline=base)
        out.append(Criterion("regression", title, outcome, why or str(e.get("note") or ""), doc))
    return out


def _measured(v: dict[str, Any]) -> str:
    n = v.get("samples")
    if "measured_ms" in v:
        return f"{v['measured_ms']} ms measured (threshold {v.get('threshold_ms')} ms, {n} samples)"
    if "measured_pct" in v:
        return f"{v['measured_pct']} % measured (threshold {v.get('threshold_pct')} %, {n} samples)"
    return str(v.get("note") or "")


def step_items(res: Results) -> list[Item]:
    """The steps ``relay-gate run`` recorded in run.json, as verdict items (empty for a single verb):
    a step that crashed, was interrupted or refused its input counts even where no criterion shows it."""
    out = []
    for s in (res.run or {}).get("steps") or []:
        if not isinstance(s, dict):
            continue
        try:
            outcome = Outcome(str(s.get("outcome")))
        except ValueError:
            outcome = outcome_of_exit(s.get("exit_code"))
        out.append(Item(f"step {s.get('name')}", outcome, s.get("note") or None))
    interrupted = (res.run or {}).get("interrupted")
    if isinstance(interrupted, dict):
        sig = str(interrupted.get("signal"))
        outcome = Outcome.TERMINATED if sig == "SIGTERM" else Outcome.INTERRUPTED
        out.append(Item("run", outcome, f"{sig} during {interrupted.get('step')}"))
    return out


def verdict(criteria: list[Criterion], steps: list[Item] | None = None) -> Verdict:
    """The pack's verdict: gate/verdict.py's one precedence over the criteria and the run's steps."""
    return decide([c.item() for c in criteria], steps=steps or [], nothing="no criterion in these results")
