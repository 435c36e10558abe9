"""The judgement of a fault run, pure, from what faults.json records: the validity checks that make
the run evidence, the criteria, and the verdict (precedence in gate/faults/__init__.py). Tests feed it
synthetic requests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gate.faults.figures import allowed_503, cross_check, hang_latency, phase_counts, series
from gate.faults.model import (
    CRITERIA,
    ENDPOINTS,
    LATENCY_MARGIN_MS,
    MEASURED,
    MIN_HANG_EXECUTES,
    MIN_HANG_SAMPLES,
    PLANNED_FAULTS,
    RECOVERY_BOUND_S,
    Marks,
    Sample,
)
from gate.verdict import Item, Outcome, earn
from gate.verdict import decide as decide_items


def _check(
    name: str, ok: bool, blocks: str, detail: str, affects: Sequence[str] = MEASURED
) -> dict[str, Any]:
    """A validity check. ``blocks``: "verdict" (no criterion can be trusted) or "pass" (a pass of the
    criteria it ``affects`` would be unearned; a failure they show still counts)."""
    return {"check": name, "ok": ok, "blocks": blocks, "detail": detail, "affects": list(affects)}


def validity(
    *,
    generators: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    recovery: Sequence[Mapping[str, Any]],
    phases: Sequence[Mapping[str, Any]],
    hang: Mapping[str, Any],
    deliveries: Mapping[str, Any],
    captures_expected: int,
) -> list[dict[str, Any]]:
    """What makes the run evidence: the generators, the request logs, the faults themselves."""

    def failing(check: Callable[[Mapping[str, Any]], bool]) -> list[str]:
        return [
            f"replica {g['replica']}: {c['check']}: {c['detail']}"
            for g in generators
            for c in g["validity"]
            if not c["ok"] and check(c)
        ]

    untrusted = failing(lambda c: c["blocks"] == "verdict")
    slow = failing(lambda c: c["check"] == "achieved_rate")
    short = [
        f"replica {g['replica']}: {g['requests_logged']} logged of {g['requests_measured']} measured"
        for g in generators
        if g["requests_logged"] != g["requests_measured"]
    ]
    checks = [
        _check(
            "generators",
            not untrusted,
            "verdict",
            "; ".join(untrusted) or "no generator exceptions, saturated CPU or malformed requests",
        ),
        _check("arrival_rate", not slow, "pass", "; ".join(slow) or "every generator held its arrival rate"),
        _check(
            "request_logs",
            not short,
            "verdict",
            "; ".join(short) or "every measured request is in the request logs",
        ),
    ]
    affected = {
        "kill_redis": ("no_5xx", "recovery_kill"),
        "pause_redis": ("no_5xx", "hang_p99", "recovery_hang"),
        "stop_postgres": ("no_5xx", "deliveries_audited"),
    }
    for e in events:
        if e["event"] in affected:
            ok = bool(e.get("confirmed"))
            checks.append(
                _check(
                    f"{e['event']}_took_effect",
                    ok,
                    "pass",
                    f"{e.get('check')}" + ("" if ok else ": it still answered"),
                    affected[e["event"]],
                )
            )
    for r in recovery:
        stayed = [str(x["replica"]) for x in r["replicas"] if x["on_fallback_at_s"] is None]
        checks.append(
            _check(
                f"{r['fault']}_fallback_seen",
                not stayed,
                "pass",
                f"replica(s) {', '.join(stayed)} never seen on the fallback: no recovery to time"
                if stayed
                else "every replica was seen on the fallback",
                (r["id"],),
            )
        )
    empty = [
        f"{p['phase']}/{ep}"
        for p in phases
        for ep, row in p["requests"].items()
        if ep in ENDPOINTS and row["requests"] == 0
    ]
    checks.append(
        _check(
            "phases_covered",
            not empty,
            "pass",
            f"no requests in {', '.join(empty)}" if empty else "requests of every endpoint in every phase",
        )
    )
    enough = hang["samples"] >= MIN_HANG_SAMPLES and hang["executes"] >= MIN_HANG_EXECUTES
    checks.append(
        _check(
            "hang_samples",
            enough,
            "pass",
            f"{hang['samples']} requests ({hang['executes']} executes) due during the hang; "
            f"the p99 needs {MIN_HANG_SAMPLES} ({MIN_HANG_EXECUTES} executes)",
            ("hang_p99",),
        )
    )
    got = int(deliveries["deliveries"])
    checks.append(
        _check(
            "receiver_complete",
            got == captures_expected and got > 0,
            "pass",
            f"{got} deliveries read back of {captures_expected} captured",
            ("deliveries_audited",),
        )
    )
    return checks


def judge(
    samples: Sequence[Sample],
    marks: Marks,
    *,
    origin: float,
    timeout_ms: float,
    recovery: Sequence[Mapping[str, Any]],
    captures: Sequence[Mapping[str, Any]],
    captures_expected: int,
    rows: Mapping[str, Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    generators: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The criteria, validity checks and verdict of a fault run, from what it recorded."""
    phases = phase_counts(samples, marks, origin)
    hang = hang_latency(samples, marks, origin, timeout_ms)
    deliveries = cross_check(captures, rows, samples)
    bad_keys = ("503_outside_db_outage", "other_5xx", "no_response")
    violations = [
        {"phase": p["phase"], "endpoint": ep, **{k: row[k] for k in bad_keys}}
        for p in phases
        for ep, row in p["requests"].items()
        if any(row[k] for k in bad_keys)
    ]
    allowed = sum(1 for s in samples if allowed_503(s, marks))
    by_id = {r["id"]: r for r in recovery}

    def recovered(cid: str) -> dict[str, Any]:
        r = by_id.get(cid)
        if r is None:
            return _criterion(cid, None, "not measured")
        per = ", ".join(f"replica {x['replica']} {x['back_on_redis_after_s']} s" for x in r["replicas"])
        return _criterion(
            cid,
            bool(r["passed"]),
            f"{r['recovery_s']} s after {r['recovered_by']} ({per}); bound {RECOVERY_BOUND_S:g} s",
        )

    criteria = [
        _criterion(
            "no_5xx",
            not violations,
            "; ".join(
                f"{v['phase']}: {v['endpoint']} "
                + ", ".join(f"{v[k]} x {k.replace('_', ' ')}" for k in bad_keys if v[k])
                for v in violations
            )
            or f"none; {allowed} x 503 on execute while the database was down",
        ),
        _criterion(
            "hang_p99",
            hang["passed"],
            f"p99 {hang['p99_ms']} ms over {hang['samples']} requests due during the hang; bound "
            f"{hang['bound_ms']:g} ms ({timeout_ms:g} ms configured + {LATENCY_MARGIN_MS:g} ms)",
        ),
        recovered("recovery_kill"),
        recovered("recovery_hang"),
        _criterion(
            "deliveries_audited",
            deliveries["passed"],
            f"{deliveries['deliveries']} deliveries ({deliveries['webhooks']} webhook ids): "
            f"{deliveries['audit_rows_found']} with their audit row, {deliveries['missing_audit_row']} "
            f"without, {deliveries['request_id_mismatch']} under another request id; "
            f"{deliveries['delivered_after_503']} for the {deliveries['executes_503']} executes answered 503",
        ),
        _injected(events),
    ]
    checks = validity(
        generators=generators,
        events=events,
        recovery=recovery,
        phases=phases,
        hang=hang,
        deliveries=deliveries,
        captures_expected=captures_expected,
    )
    for c in criteria:
        _earn(c, checks)
    return {
        "phases": phases,
        "five_xx": {"allowed_503_on_execute": allowed, "violations": violations},
        "hang_latency": hang,
        "deliveries": deliveries,
        "series": series(samples, origin),
        "criteria": criteria,
        "validity": checks,
        **decide(criteria, checks),
    }


def _criterion(cid: str, passed: bool | None, detail: str) -> dict[str, Any]:
    return {"id": cid, "title": CRITERIA[cid], "passed": passed, "detail": detail}


def _injected(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every fault of the timeline happened: a run that skipped one proves nothing about it, so this
    is a criterion that fails, not a validity check that only withholds a pass."""
    done = {str(e.get("event")) for e in events}
    missing = [f for f in PLANNED_FAULTS if f not in done]
    detail = f"never injected: {', '.join(missing)}" if missing else f"all {len(PLANNED_FAULTS)} injected"
    return _criterion("faults_injected", not missing, detail)


_MEASURED_AS = {True: Outcome.PASS, False: Outcome.FAIL, None: Outcome.INVALID}
_STATUS = {Outcome.PASS: "pass", Outcome.FAIL: "fail", Outcome.INVALID: "not evidence"}


def _earn(criterion: dict[str, Any], checks: Sequence[Mapping[str, Any]]) -> None:
    """Set the criterion's status by :func:`gate.verdict.earn`: "pass", "fail", or "not evidence" —
    when no verdict can be trusted, when it could not be measured, or when a pass was not earned (a
    failure seen stays a failure)."""
    blocking = [k for k in checks if not k["ok"] and criterion["id"] in k["affects"]]
    outcome = earn(
        _MEASURED_AS[criterion["passed"]],
        untrusted=any(k["blocks"] == "verdict" for k in blocking),
        unearned=bool(blocking),
    )
    criterion["status"] = _STATUS[outcome]
    if outcome is Outcome.INVALID:
        criterion["note"] = "; ".join(f"{k['check']}: {k['detail']}" for k in blocking) or "not measured"


def decide(criteria: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """gate/verdict.py's one precedence over the criteria (the checks are already in their status):
    FAILED (1) when a criterion is false, INVALID (4) when one is not evidence, else PASSED (0)."""
    outcome = {"pass": Outcome.PASS, "fail": Outcome.FAIL}
    items = [Item(c["id"], outcome.get(c["status"], Outcome.INVALID)) for c in criteria]
    decided = decide_items(items, nothing="no fault criterion")
    untrusted = [f"{k['check']}: {k['detail']}" for k in checks if not k["ok"] and k["blocks"] == "verdict"]
    failed = [f"{c['title']}: {c['detail']}" for c in criteria if c["status"] == "fail"]
    unearned = [
        f"{c['title']}: not evidence ({c['note']})" for c in criteria if c["status"] == "not evidence"
    ]
    name = {Outcome.PASS: "PASSED", Outcome.FAIL: "FAILED"}.get(decided.outcome, "INVALID")
    reasons = {"FAILED": failed, "INVALID": untrusted or unearned, "PASSED": []}[name]
    return {"verdict": name, "exit_code": decided.exit_code, "reasons": reasons}
