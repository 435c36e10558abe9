"""What a results folder holds, read strictly, and the acceptance criteria it does or does not prove.

Every document of the pack is rendered from these files and nothing else. A criterion whose results
are missing is NOT RUN — never assumed to have passed — and makes the verdict fail.

    results/<run-id>/run.json                    relay-gate/run@1
    results/<run-id>/features/summary.json       relay-gate/features@1
    results/<run-id>/features/scenarios/*.json   relay-gate/scenario@1
    results/<run-id>/drill/drill.json            relay-gate/drill@1
    results/<run-id>/load/load.json              relay-gate/load@1
    results/<run-id>/faults/faults.json          relay-gate/faults@1
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import features

# the schema versions this relay-gate can read, per kind
SUPPORTED: dict[str, set[int]] = {
    "run": {1},
    "features": {1},
    "scenario": {1},
    "drill": {1},
    "load": {1},
    "faults": {1},
}

PASS, FAIL, SKIPPED, NOT_RUN = "PASS", "FAIL", "SKIPPED", "NOT RUN"
# skip reasons that mean "this target cannot have it", not "the configuration left it out"
NOT_APPLICABLE = ("needs control of", "needs a path that answers an unhandled 500")

# area tag -> (title, the document that shows its evidence)
AREAS: dict[str, tuple[str, str]] = {
    "rate_limit": ("Rate limiting", "RATELIMIT-SMOKE"),
    "signing": ("Webhook signing", "SIGNING-E2E"),
    "headers": ("Security headers", "SECURITY-HEADERS"),
    "audit": ("Authentication and audit", "SMOKE-AUDIT"),
    "smoke": ("Post-deploy smoke", "SMOKE-AUDIT"),
    "drill": ("Backup and restore drill", "RESTORE-DRILL-REPORT"),
    "slo": ("Latency and error SLOs", "METRICS-SUMMARY"),
    "faults": ("Faults under load", "FAULTS"),
}


class ResultsError(Exception):
    """A results file that cannot be used: missing folder, unreadable, not JSON, unknown schema."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class Results:
    root: Path
    run: dict[str, Any] | None = None
    features: dict[str, Any] | None = None
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)  # by slug
    drill: dict[str, Any] | None = None
    load: dict[str, Any] | None = None
    faults: dict[str, Any] | None = None

    def scenario_notes(self, area: str) -> list[dict[str, Any]]:
        """Scenario records of an area, in feature-file order where known."""
        return [s for s in self.scenarios.values() if area in s.get("tags", [])]

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _read(path: Path, kind: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(path, f"unreadable ({exc.strerror})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(path, f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ResultsError(path, "not a relay-gate results document")
    schema = str(doc.get("schema", ""))
    m = re.fullmatch(r"relay-gate/([a-z_]+)@(\d+)", schema)
    if m is None or m.group(1) != kind:
        raise ResultsError(path, f"expected a relay-gate/{kind}@N document, found {schema or 'no schema'}")
    version = int(m.group(2))
    if version not in SUPPORTED[kind]:
        known = ", ".join(f"@{v}" for v in sorted(SUPPORTED[kind]))
        raise ResultsError(
            path, f"schema {schema} is newer than this relay-gate reads ({kind}{known}); upgrade"
        )
    return doc


def load_results(root: Path) -> Results:
    """Read a results folder; raise :class:`ResultsError` for anything unusable (exit 2)."""
    if not root.is_dir():
        raise ResultsError(root, "results folder does not exist (run relay-gate check/drill/load first)")
    res = Results(root=root)
    optional = {
        "run": root / "run.json",
        "features": root / "features" / "summary.json",
        "drill": root / "drill" / "drill.json",
        "load": root / "load" / "load.json",
        "faults": root / "faults" / "faults.json",
    }
    for kind, path in optional.items():
        if path.exists():
            setattr(res, kind, _read(path, kind))
    scen_dir = root / "features" / "scenarios"
    if scen_dir.is_dir():
        for path in sorted(scen_dir.glob("*.json")):
            doc = _read(path, "scenario")
            res.scenarios[str(doc.get("slug", path.stem))] = doc
    if all(getattr(res, k) is None for k in ("run", "features", "drill", "load", "faults")):
        raise ResultsError(root, "holds no relay-gate results (no run.json, features, drill, load or faults)")
    return res


# -- criteria ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    area: str
    title: str
    status: str  # PASS | FAIL | SKIPPED | NOT RUN
    reason: str | None
    doc: str
    slug: str | None = None

    @property
    def missing_config(self) -> bool:
        return self.status == SKIPPED and not any(s in str(self.reason) for s in NOT_APPLICABLE)


@dataclass(frozen=True)
class CatalogueEntry:
    area: str
    feature: str
    title: str


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
                out.append(CatalogueEntry(area or "smoke", feature, title))
                pending_tags = []
    return out


_OUTCOME = {"passed": PASS, "failed": FAIL, "skipped": SKIPPED, "not run": NOT_RUN}


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
        if sc is None:
            why = "no feature results in this run" if res.features is None else "not selected in this run"
            out.append(Criterion(e.area, e.title, NOT_RUN, why, doc))
        else:
            status = _OUTCOME.get(str(sc.get("outcome")), NOT_RUN)
            out.append(Criterion(e.area, e.title, status, sc.get("reason"), doc, sc.get("slug")))
    return out


def drill_criteria(res: Results) -> list[Criterion]:
    doc = AREAS["drill"][1]
    d = res.drill
    if d is None:
        return [
            Criterion(
                "drill",
                "The latest backup restores and matches its manifest (relay-gate drill)",
                NOT_RUN,
                "no drill results in this run",
                doc,
            )
        ]
    out = [
        Criterion(
            "drill",
            "The latest backup restores and matches its manifest (relay-gate drill)",
            PASS if d.get("verdict") == "PASSED" else FAIL,
            d.get("reason"),
            doc,
        )
    ]
    for key, title in (
        ("rto", "The restore finishes within the RTO target"),
        ("rpo", "The backup is younger than the RPO target"),
    ):
        obj = d.get(key) or {}
        if "passed" in obj:
            measured = obj.get("measured_s")
            target = obj.get("target_s")
            reason = f"{measured} s measured, target {target} s" if measured is not None else None
            out.append(Criterion("drill", title, PASS if obj["passed"] else FAIL, reason, doc))
    return out


def slo_criteria(res: Results, default_spec: list[tuple[str, str]]) -> list[Criterion]:
    """One criterion per endpoint objective of load.json; ``default_spec`` (endpoint, objective)
    lists them when no load run exists, so a missing run shows as NOT RUN rather than not at all."""
    doc = AREAS["slo"][1]
    load = res.load
    if load is None:
        return [
            Criterion("slo", f"{ep}: {obj}", NOT_RUN, "no load results in this run", doc)
            for ep, obj in default_spec
        ]
    blocking = [
        c for c in load.get("validity") or [] if not c.get("ok", True) and c.get("blocks") == "verdict"
    ]
    out = []
    for v in load.get("slos") or []:
        title = f"{v.get('endpoint')}: {v.get('slo')}"
        status = str(v.get("status"))
        if blocking:
            why = "; ".join(str(c.get("detail") or c.get("check")) for c in blocking)
            out.append(Criterion("slo", title, NOT_RUN, f"the load run is not valid evidence: {why}", doc))
        elif status == "pass":
            out.append(Criterion("slo", title, PASS, _measured(v), doc))
        elif status == "fail":
            out.append(Criterion("slo", title, FAIL, _measured(v), doc))
        else:  # "invalid": too few samples for the percentile, so the run cannot say
            out.append(Criterion("slo", title, NOT_RUN, str(v.get("note") or "not valid evidence"), doc))
    return out


def _measured(v: dict[str, Any]) -> str:
    n = v.get("samples")
    if "measured_ms" in v:
        return f"{v['measured_ms']} ms measured (threshold {v.get('threshold_ms')} ms, {n} samples)"
    if "measured_pct" in v:
        return f"{v['measured_pct']} % measured (threshold {v.get('threshold_pct')} %, {n} samples)"
    return str(v.get("note") or "")


def verdict(criteria: list[Criterion]) -> tuple[int, str]:
    """Exit code and one line. A failed criterion (1) outranks a breached SLO (3), which outranks
    anything not run or skipped for missing configuration (4)."""
    fails = [c for c in criteria if c.status == FAIL and c.area != "slo"]
    breaches = [c for c in criteria if c.status == FAIL and c.area == "slo"]
    not_run = [c for c in criteria if c.status == NOT_RUN or c.missing_config]
    if fails:
        return 1, f"FAIL: {len(fails)} criterion(s) false"
    if breaches:
        return 3, f"FAIL: {len(breaches)} SLO(s) breached"
    if not_run:
        return 4, f"INCOMPLETE: {len(not_run)} criterion(s) not run or not runnable with this configuration"
    return 0, "PASS: every criterion ran and held"
