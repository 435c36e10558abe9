"""A load run against a baseline run (``relay-gate load --baseline PATH``): per endpoint, how far p50,
p95 and p99 moved, with a bootstrap interval from the two runs' HDR histograms (load/bootstrap.py),
and a regression verdict by the spec's ``[regression]`` rules (load/slos.py).

Only runs of the same load compare: the same model (open or closed), the same arrival rate (open) or
users and think time (closed), the same journey mix. Anything else is refused before the run starts
(:class:`Incomparable`, exit 2, naming what differs), as is a baseline that is not a readable
relay-gate/load@1 file (:class:`BaselineError`, exit 2, naming the file).

The comparison is a section of this run's load.json (``comparison``). It keeps what it was computed
from — the baseline's histograms, the rules — so ``relay-gate load --recompute`` and the evidence
pack need nothing but this one file. An endpoint whose judged percentile is worse by more than the
allowed share, with the interval of the shift above zero, is a regression: a BREACH (exit 3) under
gate/verdict.py's precedence, discounted by the validity of both runs like any SLO.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import InvalidEvidence, UsageError
from gate.verdict import EXIT_CODE, Item, Outcome, decide, earn, outcome_of_exit, rank, worst
from load import hdr
from load.bootstrap import Distribution, Shift, shift
from load.endpoints import ENDPOINTS
from load.slos import Regression, RegressionRule, SloSpecError, parse_regression

KIND, VERSION = "load", 1
SCHEMA = f"relay-gate/{KIND}@{VERSION}"
PERCENTILES = (50.0, 95.0, 99.0)  # every comparison shows these; the judged one is added if another

# what a comparison found at the judged percentile, and the outcome each stands for before validity
REGRESSION, SLOWER, NO_CHANGE, FASTER, TOO_FEW = (
    "regression", "slower_within_allowance", "no_significant_change", "faster", "too_few_samples",
)  # fmt: skip
_MEASURED = {REGRESSION: Outcome.BREACH, TOO_FEW: Outcome.INVALID}


class BaselineError(UsageError):
    """The baseline is not a load.json this relay-gate compares against; the message names the file."""


class Incomparable(UsageError):
    """The two runs did not apply the same load; the message says what differs."""


@dataclass(frozen=True)
class Baseline:
    path: Path  # the load.json itself
    doc: dict[str, Any]


def read(path: Path) -> Baseline:
    """The baseline's load.json: ``path`` itself, or ``path/load/load.json`` for a results folder."""
    file = path / "load" / "load.json" if path.is_dir() else path
    if path.is_dir() and not file.exists():
        raise BaselineError(f"--baseline {path}: a results folder without load/load.json (no load run)")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(
            f"--baseline {file} does not exist: give a previous run's load.json or its results folder"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BaselineError(f"--baseline {file} is not a load.json (not readable JSON: {exc})") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if not isinstance(schema, str) or not schema.startswith(f"relay-gate/{KIND}@"):
        raise BaselineError(f"--baseline {file} is not a load.json (schema: {schema or 'none'})")
    if schema != SCHEMA:
        raise BaselineError(
            f"--baseline {file} is a {schema} document; this relay-gate compares {SCHEMA} runs only"
        )
    try:
        _model(doc)
        for ep in doc["endpoints"].values():
            hdr.decode(ep["hdr"][_basis(doc)])
    except (KeyError, TypeError, AttributeError, hdr.HistogramError) as exc:
        raise BaselineError(
            f"--baseline {file}: an incomplete or corrupt load.json ({type(exc).__name__}: {exc})"
        ) from None
    return Baseline(file, doc)


# -- what makes two runs comparable -----------------------------------------------------------------


def planned_model(
    *, rate: float | None, users: int, think_time: tuple[float, float], weights: dict[str, int]
) -> dict[str, Any]:
    """The model a run about to start will record (load/document.py), for :func:`check_comparable`."""
    return {
        "kind": "open" if rate else "closed",
        "arrival_rate": rate,
        "users": users,
        "think_time_s": None if rate else list(think_time),
        "weights": weights,
    }


def check_comparable(baseline: Baseline, model: dict[str, Any]) -> None:
    """Refuse (exit 2) a comparison of runs that did not apply the same load, naming every difference."""
    _refuse_differences(str(baseline.path), _model(baseline.doc), model)


def _refuse_differences(source: str, base: dict[str, Any], model: dict[str, Any]) -> None:
    diffs = []
    if base["kind"] != model["kind"]:
        diffs.append(f"the model (baseline {base['kind']}, this run {model['kind']})")
    elif model["kind"] == "open" and float(base["arrival_rate"]) != float(model["arrival_rate"]):
        diffs.append(
            f"the arrival rate (baseline {base['arrival_rate']:g} req/s, this run {model['arrival_rate']:g})"
        )
    elif model["kind"] == "closed":
        if int(base["users"]) != int(model["users"]):
            diffs.append(f"the users (baseline {base['users']}, this run {model['users']})")
        if [float(x) for x in base["think_time_s"] or []] != [float(x) for x in model["think_time_s"]]:
            diffs.append(
                f"the think time (baseline {_think(base['think_time_s'])}, this run "
                f"{_think(model['think_time_s'])})"
            )
    if _mix(base["weights"]) != _mix(model["weights"]):
        ours, theirs = _weights(model["weights"]), _weights(base["weights"])
        diffs.append(f"the journey weights (baseline {theirs}, this run {ours})")
    if diffs:
        raise Incomparable(
            f"--baseline {source}: not comparable with this run: {'; '.join(diffs)} differ(s). "
            "Compare runs of the same load: give this run the baseline's --rate/--users and --weights"
        )


def _model(doc: dict[str, Any]) -> dict[str, Any]:
    m = doc["model"]
    return {k: m[k] for k in ("kind", "arrival_rate", "users", "think_time_s", "weights")}


def _mix(weights: dict[str, Any]) -> dict[str, float]:
    """The journey mix as shares: list=4,preview=4,execute=2 is the mix list=2,preview=2,execute=1."""
    total = sum(int(v) for v in weights.values())
    return {k: round(int(v) / total, 9) for k, v in weights.items() if int(v)} if total else {}


def _weights(weights: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in weights.items())


def _think(think: list[float] | None) -> str:
    return "-".join(f"{x:g}" for x in think or []) + " s"


def _basis(doc: dict[str, Any]) -> str:
    """The histogram a verdict reads: corrected in the open model, uncorrected in the closed one."""
    return "corrected" if doc["model"]["kind"] == "open" else "uncorrected"


# -- the comparison ----------------------------------------------------------------------------------


def snapshot(baseline: Baseline) -> dict[str, Any]:
    """What a comparison keeps of its baseline: enough to recompute it and draw it, from this file."""
    doc, basis = baseline.doc, _basis(baseline.doc)
    return {
        "path": str(baseline.path),
        "run_id": doc.get("run_id"),
        "started_at": doc.get("started_at"),
        "target": (doc.get("target") or {}).get("name"),
        "git": (doc.get("provenance") or {}).get("git"),
        "model": {**_model(doc), "elapsed_s": doc["model"].get("elapsed_s")},
        "basis": basis,
        "verdict": {k: (doc.get("verdict") or {}).get(k) for k in ("outcome", "exit_code")},
        "failed_checks": [
            {"check": c.get("check"), "detail": c.get("detail")}
            for c in doc.get("validity") or []
            if not c.get("ok", True)
        ],
        "endpoints": {
            name: {
                "latency_ms": (ep.get("latency_ms") or {}).get(basis),
                "hdr": ep["hdr"][basis],
            }
            for name, ep in doc["endpoints"].items()
        },
    }


def compare(doc: dict[str, Any], base: dict[str, Any], regression: Regression) -> dict[str, Any]:
    """The ``comparison`` section of ``doc`` (a load.json) against ``base`` (a :func:`snapshot`)."""
    _refuse_differences(str(base["path"]), base["model"], _model(doc))
    basis = _basis(doc)
    names = [n for n in ENDPOINTS if n in doc["endpoints"] or n in base["endpoints"]]
    names += sorted((set(doc["endpoints"]) | set(base["endpoints"])) - set(names))
    endpoints: dict[str, Any] = {}
    for name in names:
        ours, theirs = doc["endpoints"].get(name), base["endpoints"].get(name)
        rule = regression.rule_for(name)
        entry = _endpoint(
            name,
            Distribution.of(hdr.decode(theirs["hdr"]) if theirs else hdr.new()),
            Distribution.of(hdr.decode(ours["hdr"][basis]) if ours else hdr.new()),
            rule,
            regression,
        )
        outcome, why = judged(entry["status"], validity=doc.get("validity") or [], baseline=base)
        entry["outcome"] = str(outcome)
        if why:
            entry["note"] = why
        endpoints[name] = entry
    return {
        "baseline": base,
        "basis": basis,
        "method": {
            "kind": "bootstrap",
            "resamples": regression.resamples,
            "confidence_pct": regression.confidence_pct,
            "seed": regression.seed,
        },
        "rules": regression.to_json(),
        "endpoints": endpoints,
        "verdict": _verdict(endpoints),
    }


def judged(status: str, *, validity: list[dict[str, Any]], baseline: dict[str, Any]) -> tuple[Outcome, str]:
    """The outcome of an endpoint's comparison: what it found (a regression is a breach, too few
    samples invalid) discounted by :func:`gate.verdict.earn` with the validity checks of *both* runs
    (a baseline that was not valid evidence cannot show a regression or its absence); with the reason
    when the checks decided it ("" otherwise). The evidence pack judges a comparison with this too."""
    failed = [c for c in validity if not c.get("ok", True)]
    untrusted = [f"this run: {c['check']}: {c['detail']}" for c in failed if c.get("blocks") == "verdict"]
    untrusted += [f"the baseline: {c['check']}: {c['detail']}" for c in baseline.get("failed_checks") or []]
    unearned = [f"this run: {c['check']}: {c['detail']}" for c in failed if c.get("blocks") != "verdict"]
    measured = _MEASURED.get(status, Outcome.PASS)
    outcome = earn(measured, untrusted=bool(untrusted), unearned=bool(unearned))
    if outcome is Outcome.INVALID and measured is not Outcome.INVALID:
        return outcome, "not valid evidence: " + "; ".join(untrusted or unearned)
    return outcome, ""


def _endpoint(
    name: str, base: Distribution, ours: Distribution, rule: RegressionRule, regression: Regression
) -> dict[str, Any]:
    judged = rule.label
    entry: dict[str, Any] = {
        "samples": {"baseline": base.total, "current": ours.total},
        "judged": judged,
        "rule": rule.to_json(),
        "percentiles": {},
    }
    if base.total and ours.total:
        for p in sorted({*PERCENTILES, rule.percentile}):
            s = shift(
                base,
                ours,
                p,
                resamples=regression.resamples,
                confidence_pct=regression.confidence_pct,
                seed=f"{regression.seed}:{name}:{p:g}",
            )
            entry["percentiles"][hdr.percentile_key(p)] = _shift_json(s)
    fewest = min(base.total, ours.total)
    if fewest < rule.min_samples:
        entry["status"] = TOO_FEW
        entry["note"] = (
            f"{base.total} baseline / {ours.total} current samples; a comparison of {judged} needs "
            f"{rule.min_samples} in each run"
        )
        return entry
    s = entry["percentiles"][judged]
    worse_pct = s["shift_pct"] if s["shift_pct"] is not None else float("inf")
    above, below = s["interval_ms"][0] > 0, s["interval_ms"][1] < 0
    if above and worse_pct > rule.max_increase_pct:
        entry["status"] = REGRESSION
    elif above and worse_pct > rule.noise_pct:
        entry["status"] = SLOWER
    elif below and worse_pct < -rule.noise_pct:
        entry["status"] = FASTER
    else:  # the interval includes zero, or the shift is within the noise band
        entry["status"] = NO_CHANGE
    entry["note"] = finding(name, entry)
    return entry


def _shift_json(s: Shift) -> dict[str, Any]:
    return {
        "baseline_ms": s.baseline_ms,
        "current_ms": s.current_ms,
        "shift_ms": s.shift_ms,
        "shift_pct": s.pct(s.shift_ms),
        "interval_ms": [round(s.low_ms, 3), round(s.high_ms, 3)],
        "interval_pct": [s.pct(s.low_ms), s.pct(s.high_ms)],
    }


def finding(name: str, entry: dict[str, Any]) -> str:
    """One sentence: what the comparison found at the judged percentile."""
    judged, rule = entry["judged"], entry["rule"]
    s = entry["percentiles"].get(judged)
    if entry["status"] == TOO_FEW or s is None:
        return str(entry.get("note") or "not compared")
    lo, hi = s["interval_ms"]
    moved = (
        f"{name} {judged} {s['baseline_ms']:g} -> {s['current_ms']:g} ms ({s['shift_ms']:+g} ms, "
        f"{_signed_pct(s['shift_pct'])}; interval {lo:+g} .. {hi:+g} ms)"
    )
    return {
        REGRESSION: f"{moved}: regressed, worse by more than {rule['max_increase_pct']:g} % and the "
        "interval above zero",
        SLOWER: f"{moved}: slower, within the {rule['max_increase_pct']:g} % allowed",
        FASTER: f"{moved}: faster, by more than the {rule.get('noise_pct', 0):g} % noise band",
        NO_CHANGE: f"{moved}: no significant change ("
        + (
            "the interval includes zero)"
            if lo <= 0 <= hi
            else f"within the +-{rule.get('noise_pct', 0):g} % two runs of one build may drift apart)"
        ),
    }[entry["status"]]


def _signed_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+g} %"


def _verdict(endpoints: dict[str, Any]) -> dict[str, Any]:
    items = [Item(name, Outcome(e["outcome"]), e.get("note")) for name, e in endpoints.items()]
    decided = decide(items, nothing="no endpoint to compare")
    top = decided.outcome
    reasons = [str(i.reason) for i in items if rank(i.outcome) == rank(top) and i.outcome is not Outcome.PASS]
    return {"exit_code": decided.exit_code, "outcome": _word(top), "reasons": reasons}


def _word(outcome: Outcome) -> str:
    """The words load.json's verdicts use (load/verdict.py)."""
    if outcome in (Outcome.PASS, Outcome.NOT_APPLICABLE):
        return "pass"
    if outcome is Outcome.BREACH:
        return "breach"
    if outcome is Outcome.ERROR:
        return "unreachable"
    return "invalid"


def combine(slos: dict[str, Any], comparison: dict[str, Any]) -> dict[str, Any]:
    """The load step's verdict: the SLO verdict and the comparison's, by gate/verdict.py's precedence;
    the reasons of whichever decides (both, when they rank the same)."""
    a, b = outcome_of_exit(slos["exit_code"]), outcome_of_exit(comparison["exit_code"])
    top = worst([a, b])
    reasons = [*(slos["reasons"] if rank(a) == rank(top) else [])]
    reasons += [f"against the baseline: {r}" for r in comparison["reasons"] if rank(b) == rank(top)]
    outcome = slos["outcome"] if rank(a) == rank(top) else comparison["outcome"]
    return {"exit_code": EXIT_CODE[top], "outcome": outcome, "reasons": reasons, "slos": slos}


def attach(doc: dict[str, Any], baseline: Baseline, regression: Regression) -> dict[str, Any]:
    """``doc`` with its comparison against ``baseline`` and the verdict that includes it."""
    comparison = compare(doc, snapshot(baseline), regression)
    return {**doc, "comparison": comparison, "verdict": combine(_slo_verdict(doc), comparison["verdict"])}


def recompute(doc: dict[str, Any], judged: dict[str, Any], regression: Regression | None) -> dict[str, Any]:
    """``judged`` (a recomputed SLO verdict of ``doc``) with ``doc``'s comparison recomputed: from the
    baseline it keeps, by ``regression`` or the rules it recorded. A comparison that cannot be
    recomputed raises UsageError (a hand-edited file)."""
    stored = doc["comparison"]
    try:
        rules = regression or parse_regression(stored["rules"], source="load.json comparison")
        comparison = compare({**doc, "validity": judged["validity"]}, stored["baseline"], rules)
    except SloSpecError as exc:
        raise InvalidEvidence(f"the regression rules inside the results file are invalid: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEvidence(
            f"the comparison in this load.json cannot be recomputed ({type(exc).__name__}: {exc})"
        ) from None
    verdict = combine(_slo_verdict(judged), comparison["verdict"])
    return {**judged, "comparison": comparison, "verdict": verdict}


def _slo_verdict(doc: dict[str, Any]) -> dict[str, Any]:
    """The SLO verdict of a document (kept under ``verdict.slos`` once a comparison joined it)."""
    verdict = dict(doc["verdict"])
    return dict(verdict.pop("slos", verdict))
