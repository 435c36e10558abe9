"""``relay-gate faults``: the judgement on synthetic runs, the request log, and real fault runs.

The real runs (marked ``stack``) are the point: one against the clean reference stack must pass, one
against a stack whose Redis calls have no timeout must fail on the hang's p99. The synthetic ones pin
down each rule (which 503 is allowed, what the p99 is taken over, what makes a run invalid) quickly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evidence.faults_document import faults_context, faults_criteria
from evidence.markdown import cell
from evidence.model import Results
from evidence.render import _env, provenance
from gate.errors import EXIT_CRITERION, EXIT_INVALID, EXIT_OK
from gate.faults import CRITERIA, FaultConfig, FaultRun, Marks, Sample, Timeline, judge, nearest_rank
from gate.faults.model import MEASURED, PLANNED_FAULTS
from gate.verdict import Outcome
from load import requestlog, slos
from load.launch import LocustPlan, LocustRun
from tests.load import fakeserver

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = 1_000_000.0


# -- a synthetic run, as the request logs and the timeline would record it -------------------------------


def _marks() -> Marks:
    """The instants of a run on the default timeline (gate.faults.Timeline)."""
    return Marks(
        kill=ORIGIN + 5.0,
        redis_back=ORIGIN + 10.0,
        pause=ORIGIN + 16.0,
        resume=ORIGIN + 19.0,
        db_stop=ORIGIN + 25.0,
        db_start=ORIGIN + 29.0,
        db_ready=(ORIGIN + 29.5, ORIGIN + 29.6),
    )


def _samples(rate: float = 50.0) -> list[Sample]:
    """50 requests/s for 36 s over two replicas, list/preview/execute as 2/2/1, all answered 200 in 10 ms;
    the executes due in the first 250 ms of the hang wait out a 250 ms Redis socket timeout."""
    out = []
    for i in range(int(36 * rate)):
        due = ORIGIN + i / rate
        endpoint = ("list", "preview", "list", "preview", "execute")[i % 5]
        ms = 10.0
        if endpoint == "execute" and ORIGIN + 16.0 <= due < ORIGIN + 16.25:
            ms = 260.0
        out.append(
            Sample(
                replica=i % 2,
                endpoint=endpoint,
                status=200,
                due=due,
                sent=due + 0.001,
                response_ms=ms,
                corrected_ms=ms + 1.0,
                request_id=f"rid-{i}",
            )
        )
    return out


def _replace(s: Sample, **changes: Any) -> Sample:
    return Sample(**{**s.__dict__, **changes})


def _captures(samples: list[Sample]) -> list[dict[str, Any]]:
    """What the receiver captured: one delivery per execute answered 200."""
    executes = [s for s in samples if s.endpoint == "execute" and s.status == 200]
    return [{"seq": n + 1, "webhook_id": f"msg_{s.request_id}", "request_id": s.request_id,
             "received_at_s": s.due - ORIGIN} for n, s in enumerate(executes)]  # fmt: skip


def _rows(captures: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The audit row of every captured delivery."""
    return {c["webhook_id"]: {"request_id": c["request_id"], "status": "ok"} for c in captures}


def _recovery() -> list[dict[str, Any]]:
    """Both recoveries as the run records them: every replica fell back, and came back in 1.2 s."""
    faults = (
        ("recovery_kill", "redis-kill", "restart_redis", 10.0),
        ("recovery_hang", "redis-hang", "resume_redis", 19.0),
    )
    return [
        {
            "id": cid, "fault": fault, "recovered_by": by, "recovered_at_s": at, "recovery_s": 1.2,
            "bound_s": 5.0, "passed": True,
            "replicas": [
                {"replica": r, "on_fallback_at_s": at - 4, "back_on_redis_after_s": 1.2} for r in (0, 1)
            ],
        }
        for cid, fault, by, at in faults
    ]  # fmt: skip


def _events(**unconfirmed: str) -> list[dict[str, Any]]:
    """Every planned fault, injected and confirmed, but those named: not confirmed, with that check."""
    return [
        {"event": e, "confirmed": e not in unconfirmed, "check": unconfirmed.get(e, "it stopped answering")}
        for e in PLANNED_FAULTS
    ]


def _run(samples: list[Sample] | None = None, **overrides: Any) -> dict[str, Any]:
    """judge() over a synthetic run in which everything went right, unless ``overrides`` say otherwise."""
    samples = _samples() if samples is None else samples
    captures = _captures(samples)
    per_replica = [sum(1 for s in samples if s.replica == r) for r in (0, 1)]
    kwargs: dict[str, Any] = {
        "origin": ORIGIN,
        "timeout_ms": 500.0,
        "recovery": _recovery(),
        "captures": captures,
        "captures_expected": len(captures),
        "rows": _rows(captures),
        "events": _events(),
        "generators": [
            {"replica": r, "validity": [], "requests_logged": n, "requests_measured": n}
            for r, n in enumerate(per_replica)
        ],
    }
    kwargs.update(overrides)
    return judge(samples, _marks(), **kwargs)


def _status_detail(doc: dict[str, Any], cid: str) -> str:
    return str(next(c["detail"] for c in doc["criteria"] if c["id"] == cid))


def _status(doc: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in doc["criteria"]}


def test_a_clean_synthetic_run_passes_with_every_figure_where_it_belongs() -> None:
    doc = _run()
    assert doc["verdict"] == "PASSED" and doc["exit_code"] == EXIT_OK, doc["reasons"]
    assert set(_status(doc).values()) == {"pass"}
    names = [p["phase"] for p in doc["phases"]]
    assert names == [
        "steady",
        "redis-killed",
        "redis-back",
        "redis-hung",
        "redis-resumed",
        "db-down",
        "db-back",
    ]
    hung = doc["phases"][3]
    assert sum(r["requests"] for r in hung["requests"].values()) == 150  # 3 s at 50 requests/s
    h = doc["hang_latency"]
    assert h["samples"] == 150 and h["executes"] == 30 and h["bound_ms"] == 550.0
    # 3 of 150 stalled: the nearest-rank p99 (the 149th value) is a stalled execute
    assert h["p99_ms"] == 261.0 and h["by_endpoint"]["list"]["p99_ms"] == 11.0
    assert doc["series"]["t"][0] == 0 and doc["series"]["2xx"][0] == 50


def test_a_503_on_execute_is_allowed_only_while_its_replicas_database_was_away() -> None:
    samples = _samples()
    marks = _marks()
    for i, s in enumerate(samples):
        if s.endpoint != "execute":
            continue
        during_outage = marks.db_stop + 0.5 <= s.due < marks.db_stop + 1.5  # documented
        fail_closed = ORIGIN + 4 <= s.due < marks.kill and s.replica == 0  # a limiter refusing on its own
        if during_outage or fail_closed:
            samples[i] = _replace(s, status=503)
    # replica 1 is ready again at +29.6: a 503 sent at +29.55 to replica 1 is still allowed, to replica 0 not
    late = [i for i, s in enumerate(samples) if abs(s.due - (ORIGIN + 29.55)) < 0.011]
    samples[late[0]] = _replace(samples[late[0]], endpoint="execute", replica=1, status=503)
    samples[late[1]] = _replace(samples[late[1]], endpoint="execute", replica=0, status=503)
    doc = _run(samples)

    assert doc["verdict"] == "FAILED" and doc["exit_code"] == EXIT_CRITERION
    assert _status(doc)["no_5xx"] == "fail"
    violations = {(v["phase"], v["endpoint"]): v for v in doc["five_xx"]["violations"]}
    assert violations[("steady", "execute")]["503_outside_db_outage"] == 5
    assert violations[("db-down", "execute")]["503_outside_db_outage"] == 1  # replica 0's late one
    assert doc["five_xx"]["allowed_503_on_execute"] == 10 + 1
    assert any("steady: execute 5 x 503 outside db outage" in r for r in doc["reasons"])
    # the refused executes delivered nothing, and their deliveries are not expected
    assert doc["deliveries"]["executes_503"] == 17 and doc["deliveries"]["delivered_after_503"] == 0


@pytest.mark.parametrize(("status", "column"), [(500, "other_5xx"), (502, "other_5xx"), (0, "no_response")])
def test_any_other_5xx_or_no_answer_fails_wherever_it_happens(status: int, column: str) -> None:
    samples = _samples()
    i = next(i for i, s in enumerate(samples) if s.endpoint == "list" and s.due >= _marks().db_stop + 1)
    samples[i] = _replace(samples[i], status=status)
    doc = _run(samples)
    assert doc["verdict"] == "FAILED" and _status(doc)["no_5xx"] == "fail"
    assert doc["five_xx"]["violations"] == [
        {"phase": "db-down", "endpoint": "list", "503_outside_db_outage": 0, "other_5xx": 0, "no_response": 0}
        | {column: 1}
    ]


def test_the_hang_p99_is_taken_over_requests_due_during_the_hang_and_judged_against_the_bound() -> None:
    samples = _samples()
    # a limiter without a timeout: every execute due during the hang waits until SIGCONT
    stalled = [
        _replace(s, response_ms=(ORIGIN + 19.0 - s.due) * 1000, corrected_ms=(ORIGIN + 19.0 - s.due) * 1000)
        if s.endpoint == "execute" and ORIGIN + 16.0 <= s.due < ORIGIN + 19.0
        else s
        for s in samples
    ]
    doc = _run(stalled)
    assert doc["verdict"] == "FAILED" and _status(doc) == {
        "no_5xx": "pass", "hang_p99": "fail", "recovery_kill": "pass", "recovery_hang": "pass",
        "deliveries_audited": "pass", "faults_injected": "pass",
    }  # fmt: skip
    assert doc["hang_latency"]["p99_ms"] > 2000 and doc["hang_latency"]["passed"] is False
    assert doc["reasons"] == [f"{CRITERIA['hang_p99']}: {_status_detail(doc, 'hang_p99')}"]
    # a request due just before SIGSTOP is not the hang's, however slow
    before = [
        _replace(s, corrected_ms=5000.0) if ORIGIN + 15.9 <= s.due < ORIGIN + 16.0 else s for s in samples
    ]
    assert _run(before)["hang_latency"]["p99_ms"] == 261.0


def test_too_few_requests_during_the_hang_cannot_earn_a_pass_but_a_breach_still_fails() -> None:
    sparse = [s for s in _samples() if not (ORIGIN + 16.0 <= s.due < ORIGIN + 19.0) or s.due < ORIGIN + 16.6]
    doc = _run(sparse)  # 30 requests in the hang, p99 under the bound
    assert doc["verdict"] == "INVALID" and doc["exit_code"] == EXIT_INVALID
    assert _status(doc)["hang_p99"] == "not evidence" and _status(doc)["no_5xx"] == "pass"
    assert any("hang_samples" in r for r in doc["reasons"])

    slow = [_replace(s, corrected_ms=900.0) if ORIGIN + 16.0 <= s.due < ORIGIN + 19.0 else s for s in sparse]
    assert _run(slow)["verdict"] == "FAILED"


def test_a_delivery_without_its_audit_row_fails_and_a_short_read_of_the_receiver_is_not_evidence() -> None:
    captures = _captures(_samples())
    rows = _rows(captures)
    del rows[captures[0]["webhook_id"]]
    failed = _run(rows=rows)
    assert failed["verdict"] == "FAILED" and _status(failed)["deliveries_audited"] == "fail"
    assert failed["deliveries"]["missing_audit_row"] == 1 and failed["deliveries"]["problems"][0]["seq"] == 1

    elsewhere = {w: {**r, "request_id": "another-request"} for w, r in _rows(captures).items()}
    mismatched = _run(rows=elsewhere)
    assert mismatched["verdict"] == "FAILED" and mismatched["deliveries"]["request_id_mismatch"] == len(
        captures
    )

    dropped = _run(captures_expected=len(captures) + 3)  # the receiver lost some: what it lost is unknown
    assert dropped["verdict"] == "INVALID" and _status(dropped)["deliveries_audited"] == "not evidence"


def test_a_delivery_for_an_execute_answered_503_fails_the_audit_criterion() -> None:
    samples = _samples()
    delivered = _captures(samples)  # captured while the execute still looked successful
    i = next(i for i, s in enumerate(samples) if s.endpoint == "execute" and s.due >= ORIGIN + 26)
    samples[i] = _replace(samples[i], status=503)
    doc = _run(samples, captures=delivered, captures_expected=len(delivered), rows=_rows(delivered))
    assert _run()["verdict"] == "PASSED"
    assert doc["deliveries"]["delivered_after_503"] == 1 and _status(doc)["deliveries_audited"] == "fail"
    assert doc["verdict"] == "FAILED"


def test_an_untrustworthy_generator_or_request_log_makes_every_criterion_not_evidence() -> None:
    samples = _samples()
    i = next(i for i, s in enumerate(samples) if s.endpoint == "list")
    samples[i] = _replace(samples[i], status=500)  # a failure that must not be reported as such
    broken = [{"replica": 0, "validity": [{"check": "generator_exceptions", "ok": False, "blocks": "verdict",
                                           "detail": "1 x ZeroDivisionError"}],
               "requests_logged": 10, "requests_measured": 11}]  # fmt: skip
    doc = _run(samples, generators=broken)
    assert doc["verdict"] == "INVALID" and doc["exit_code"] == EXIT_INVALID
    # whether the faults happened does not depend on the generators; everything measured does
    assert {k: v for k, v in _status(doc).items() if k != "faults_injected"} == dict.fromkeys(
        MEASURED, "not evidence"
    )
    assert any("ZeroDivisionError" in r for r in doc["reasons"])
    assert any("10 logged of 11 measured" in r for r in doc["reasons"])


@pytest.mark.parametrize("skipped", PLANNED_FAULTS)
def test_a_planned_fault_that_was_never_injected_fails_the_run(skipped: str) -> None:
    doc = _run(events=[e for e in _events() if e["event"] != skipped])
    assert doc["verdict"] == "FAILED" and doc["exit_code"] == 1
    assert _status(doc)["faults_injected"] == "fail"
    assert any(f"never injected: {skipped}" in r for r in doc["reasons"])


def test_a_fault_that_did_not_take_effect_or_a_replica_that_never_fell_back_earns_no_pass() -> None:
    doc = _run(events=_events(pause_redis="PING right after: no answer within 0.3 s"))
    assert doc["verdict"] == "INVALID"
    assert _status(doc) == {"no_5xx": "not evidence", "hang_p99": "not evidence", "recovery_kill": "pass",
                            "recovery_hang": "not evidence", "deliveries_audited": "pass",
                            "faults_injected": "pass"}  # fmt: skip

    recovery = _recovery()
    recovery[1]["replicas"][1]["on_fallback_at_s"] = None  # replica 1 never left Redis during the hang
    doc = _run(recovery=recovery)
    assert doc["verdict"] == "INVALID" and any("never seen on the fallback" in r for r in doc["reasons"])
    assert _status(doc)["recovery_hang"] == "not evidence" and _status(doc)["recovery_kill"] == "pass"


def test_a_slow_recovery_fails() -> None:
    recovery = _recovery()
    recovery[0].update(recovery_s=5.3, passed=False)
    doc = _run(recovery=recovery)
    assert doc["verdict"] == "FAILED" and _status(doc)["recovery_kill"] == "fail"


def test_nearest_rank() -> None:
    assert nearest_rank([], 99) is None
    assert nearest_rank(range(1, 101), 99) == 99
    assert nearest_rank(range(1, 11), 99) == 10


def test_a_timeline_must_increase() -> None:
    with pytest.raises(ValueError, match="increase"):
        Timeline(kill_redis_at=5, restart_redis_at=4).validate()
    Timeline().validate()


# -- evidence: criteria and the document -----------------------------------------------------------------


def test_without_a_fault_run_every_fault_criterion_is_not_run(tmp_path: Path) -> None:
    criteria = faults_criteria(None)
    assert [c.title for c in criteria] == list(CRITERIA.values())
    assert {c.outcome for c in criteria} == {Outcome.NOT_RUN} and {c.doc for c in criteria} == {"FAULTS"}
    md = _render(tmp_path, None)
    assert "## NOT RUN" in md and "relay-gate faults" in md


def test_recorded_statuses_become_pass_fail_and_invalid() -> None:
    by_title = {c.title: c for c in faults_criteria(_run(events=_events(kill_redis="still answered")))}
    assert by_title[CRITERIA["recovery_kill"]].outcome is Outcome.INVALID
    assert "not valid evidence" in str(by_title[CRITERIA["recovery_kill"]].reason)
    assert by_title[CRITERIA["deliveries_audited"]].outcome is Outcome.PASS
    stalled = [
        _replace(s, corrected_ms=900.0) if ORIGIN + 16.0 <= s.due < ORIGIN + 19.0 else s for s in _samples()
    ]
    assert {c.title: c.outcome for c in faults_criteria(_run(stalled))}[CRITERIA["hang_p99"]] is Outcome.FAIL


def _render(tmp_path: Path, doc: dict[str, Any] | None, run: dict[str, Any] | None = None) -> str:
    charts = tmp_path / "charts"
    charts.mkdir(exist_ok=True)
    res = Results(root=tmp_path, run=run)
    return str(
        _env()
        .get_template("FAULTS.md.j2")
        .render(prov=provenance(res), criteria=faults_criteria(doc), faults=faults_context(doc, charts))
    )


# -- the request log, through load/launch.py ----------------------------------------------------------------


def test_a_distributed_run_logs_every_request_once_per_worker(tmp_path: Path) -> None:
    with fakeserver.answering() as url:
        plan = LocustPlan(
            host=url, users=4, duration_s=3, arrival_rate=40, think_time="0.5-1.5", workers=1,
            slos=slos.DEFAULT_PATH, results=tmp_path / "results", run_id="t", target_name="fake",
            env={"RELAY_API_KEY": "load-test-key-0123456789", "RELAY_LOAD_WEIGHTS": "list=1"},
            request_log=tmp_path / "requests.jsonl",
        )  # fmt: skip
        run = LocustRun(plan)
        run.start()
        deadline = time.monotonic() + run.deadline_s
        while run.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        run.wait_all(timeout=10)
    load = json.loads((tmp_path / "results" / "load" / "load.json").read_text())
    assert not (tmp_path / "requests.jsonl").exists(), "the master sends no requests: it logs none"
    lines = requestlog.read(tmp_path / "requests.worker-0.jsonl")
    assert len(lines) == load["endpoints"]["list"]["requests"] + load["endpoints"]["list"]["unfinished"] > 60
    done = [x for x in lines if not x.get("unfinished")]
    assert all(x["endpoint"] == "list" and x["status"] == 200 for x in done)
    # the corrected latency is the send lag plus the response time, as the histograms have it
    assert all(
        abs(x["corrected_ms"] - ((x["sent"] - x["due"]) * 1000 + x["response_ms"])) < 0.01 for x in done
    )
    assert all(x["due"] <= x["sent"] + 1e-6 for x in done)


# -- real fault runs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``relay-gate faults`` against the clean reference stack, at a modest rate (default timeline)."""
    results = tmp_path_factory.mktemp("faults") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "gate.cli", "faults", "--rate", "50", "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    return proc, results


@pytest.mark.stack
def test_the_reference_stack_survives_every_fault_under_load(
    clean_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, results = clean_run
    output = proc.stdout + proc.stderr
    doc = json.loads((results / "faults" / "faults.json").read_text())
    assert proc.returncode == EXIT_OK, output[-4000:]
    assert doc["schema"] == "relay-gate/faults@1" and doc["verdict"] == "PASSED"
    assert set(_status(doc).values()) == {"pass"}, doc["criteria"]
    assert [e["event"] for e in doc["timeline"]["events"]] == [
        "kill_redis", "restart_redis", "pause_redis", "resume_redis", "stop_postgres", "start_postgres",
    ]  # fmt: skip
    assert all(e["confirmed"] for e in doc["timeline"]["events"] if "confirmed" in e)
    # the bound comes from the stack's settings: 250 ms connect + 250 ms socket + 50 ms
    assert doc["hang_latency"]["bound_ms"] == 550.0 and doc["settings"]["redis_socket_timeout_ms"] == 250
    # the database outage was long enough to see the documented 503, and none delivered anything
    assert doc["five_xx"]["allowed_503_on_execute"] > 0 and doc["deliveries"]["delivered_after_503"] == 0
    assert doc["deliveries"]["audit_rows_found"] == doc["deliveries"]["webhooks"] > 100
    for g in doc["load"]["generators"]:
        assert g["requests_logged"] == g["requests_measured"] > 500
        assert (results / "faults" / g["request_log"]).is_file() and (
            results / "faults" / g["load_json"]
        ).is_file()
    run = json.loads((results / "run.json").read_text())
    assert run["command"] == "faults" and run["exit_code"] == EXIT_OK and run["target"]["versions"]["redis"]
    assert "verdict: PASSED (exit 0)" in proc.stdout and "redis-hung" in proc.stdout


@pytest.mark.stack
def test_the_fault_document_shows_what_was_measured(
    clean_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    _, results = clean_run
    doc = json.loads((results / "faults" / "faults.json").read_text())
    md = _render(tmp_path, doc, json.loads((results / "run.json").read_text()))
    for title in CRITERIA.values():
        assert f"| {cell(title)} | **PASS** |" in md
    assert f"| {doc['hang_latency']['p99_ms']} ms |" in md and "550 ms = 500 ms configured" in md
    assert "**redis-hung**" in md and "`restart_redis`" in md and "Deliveries vs audit rows" in md
    assert (tmp_path / "charts" / "faults-requests.svg").is_file()
    assert re.search(r"\| `execute` \| \d+ \| \d+ \| 0 \| [1-9]\d* \| 0 \|", md), "the db-down 503s"


@pytest.mark.stack
def test_a_redis_call_without_timeout_fails_the_hang_bound(tmp_path: Path) -> None:
    """The proof that the run can fail: the relay's Redis calls wait up to 10 s (gate/proof/catalogue.py), so
    every execute during the hang stalls until SIGCONT. A shorter timeline keeps the test short."""
    timeline = Timeline(kill_redis_at=2, restart_redis_at=4, pause_redis_at=7, resume_redis_at=9.5,
                        stop_postgres_at=12, postgres_down_s=3, end_at=18)  # fmt: skip
    config = FaultConfig(
        results=tmp_path, run_id="defect", rate=50, timeline=timeline, defect="no-redis-timeout"
    )
    doc = FaultRun(config).execute()

    assert doc["verdict"] == "FAILED" and doc["exit_code"] == EXIT_CRITERION, doc["reasons"]
    status = _status(doc)
    assert (
        status["hang_p99"] == "fail" and status["no_5xx"] == "pass" and status["deliveries_audited"] == "pass"
    )
    # the replicas never left Redis during the hang: there was no recovery to time, so no pass either
    assert status["recovery_hang"] == "not evidence"
    hang = doc["hang_latency"]
    assert hang["p99_ms"] > 1500 > hang["bound_ms"] and hang["by_endpoint"]["execute"]["max_ms"] > 1500
    assert doc["reasons"][0].startswith(CRITERIA["hang_p99"])
    assert json.loads((tmp_path / "faults" / "faults.json").read_text())["verdict"] == "FAILED"
