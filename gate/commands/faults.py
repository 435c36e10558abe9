"""``relay-gate faults``: kill, hang and restart Redis and PostgreSQL under an open-model load.

Starts a 2-replica reference stack (limiter on, at a quota the load never reaches), runs one Locust
generator per replica (open model, ``--rate`` requests/s in all), and on a fixed timeline kills Redis
and restarts it, hangs it (SIGSTOP) and resumes it (SIGCONT), then stops PostgreSQL and starts it
again. It then judges, from every request's status and timing, the receiver's captures and the
audit table:

  - no 5xx on list, preview or execute, except the documented 503 on execute while the database is down;
  - p99 of requests sent during the Redis hang <= REDIS_CONNECT_TIMEOUT_MS + REDIS_SOCKET_TIMEOUT_MS + 50 ms;
  - every replica's limiter back on Redis <= 5 s after Redis recovers (after the kill and the hang);
  - every webhook delivered has its audit row.

Results: results/<run-id>/faults/faults.json (relay-gate/faults@1), the request logs and each
generator's load.json beside it. See docs/faults.md.

Exit: 0 every criterion held; 1 a criterion is false; 2 bad usage; 4 not valid evidence (a generator
failed or could not hold its rate, too few requests during the hang, a fault that did not take
effect); 5 the stack did not start, a fault control failed, or Locust crashed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gate.errors import UsageError
from gate.faults import DEFAULT_RATE, KIND, MIN_HANG_SAMPLES, FaultConfig, FaultRun, Timeline
from gate.interrupts import as_interrupted
from gate.results import Redactor, existing_run_id, new_run_id, provenance, utc_now, write_json

MAX_RATE = 2_000.0  # two replicas, Redis, PostgreSQL and the generators share the machine


def register(sub: Any) -> None:
    p = sub.add_parser(
        "faults",
        help="kill, hang and restart Redis and PostgreSQL under load; judge 5xx, latency, recovery, audit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"open model: requests/s over both replicas (default {DEFAULT_RATE:g})",
    )
    p.add_argument("--results", type=Path, default=None, help="results folder (default results/<run-id>)")
    p.add_argument(
        "--backend",
        choices=("embedded", "containers"),
        default=os.environ.get("RELAY_GATE_BACKEND", "embedded"),
        help="where the stack's Redis and PostgreSQL come from (the faults need control of both)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.rate <= MAX_RATE:
        raise UsageError(f"--rate must be a positive number of requests per second (at most {MAX_RATE:g})")
    timeline = Timeline()
    hang_s = timeline.resume_redis_at - timeline.pause_redis_at
    if args.rate * hang_s < MIN_HANG_SAMPLES:
        print(
            f"relay-gate faults: warning: ~{args.rate * hang_s:.0f} requests will be due during the "
            f"{hang_s:g} s Redis hang; its p99 needs {MIN_HANG_SAMPLES}, so the run cannot pass "
            f"(use --rate {MIN_HANG_SAMPLES / hang_s:.0f} or more)",
            file=sys.stderr,
        )
    run_id = new_run_id()
    results: Path = args.results or Path("results") / run_id
    if (results / KIND / "faults.json").exists():
        raise UsageError(f"{results} already holds a fault run: choose another --results folder")
    run_id = existing_run_id(results) or run_id

    run_json = results / "run.json"
    own_run_json = not run_json.exists()
    target = {"name": "reference stack", "backend": args.backend, "replicas": 2}
    run_doc = provenance(run_id=run_id, target=target, started_at=utc_now(), extra={"command": "faults"})
    redactor = Redactor([])  # nothing secret in it: the stack's keys are made up later
    if own_run_json:
        write_json(run_json, "run", 1, run_doc, redactor=redactor)

    # Ctrl-C and SIGTERM (gate/interrupts.py) unwind through FaultRun, which stops Locust and the stack
    try:
        print(
            f"relay-gate faults: run {run_id}, {args.rate:g} req/s over 2 replicas ({args.backend}); "
            f"results in {results}",
            flush=True,
        )
        config = FaultConfig(
            results=results, run_id=run_id, rate=args.rate, backend=args.backend, timeline=timeline
        )
        doc = FaultRun(config, progress=lambda msg: print(msg, flush=True)).execute()
    except KeyboardInterrupt as exc:
        stopped = as_interrupted(exc)
        if own_run_json:
            run_doc.update(finished_at=utc_now(), exit_code=stopped.exit_code,
                           interrupted={"signal": stopped.name, "step": "faults"})  # fmt: skip
            write_json(run_json, "run", 1, run_doc, redactor=redactor)
        raise stopped from None
    print(summary(doc))
    print(f"results: {results / KIND / 'faults.json'}")
    code = int(doc["exit_code"])
    if own_run_json:
        # the stack's versions and URLs are known now: the pack's provenance shows them
        run_doc.update(target=doc["target"], finished_at=utc_now(), exit_code=code)
        write_json(run_json, "run", 1, run_doc, redactor=redactor)
    return code


def summary(doc: dict[str, Any]) -> str:
    """The fault run as a reviewer reads it on a terminal: phases, latency, recovery, audit, verdict."""
    lines = ["", "requests per phase (2xx / 429 / 503 / other 5xx / no answer), by the time they were due:"]
    for p in doc["phases"]:
        cells = []
        for ep, row in p["requests"].items():
            cell = f"{row['2xx']}/{row['429']}/{row['503']}/{row['other_5xx']}/{row['no_response']}"
            if row["503_outside_db_outage"]:
                cell += f" ({row['503_outside_db_outage']} x 503 outside the DB outage)"
            cells.append(f"{ep} {cell}")
        lines.append(f"  {p['phase']:<14} {p['start_s']:>7.2f}-{p['end_s']:<7.2f} s  " + "  ".join(cells))
    h, w, d = doc["hang_latency"], doc["hang_latency"]["window"], doc["deliveries"]
    lines.append(
        f"Redis hang {w['start_s']:.2f}-{w['end_s']:.2f} s: p99 {h['p99_ms']} ms corrected, "
        f"{h['uncorrected_p99_ms']} ms uncorrected, max {h['max_ms']} ms over {h['samples']} requests; "
        f"bound {h['bound_ms']:g} ms (steady p99 {h['steady_p99_ms']} ms)"
    )
    for r in doc["recovery"]["faults"]:
        per = ", ".join(f"replica {x['replica']} {x['back_on_redis_after_s']} s" for x in r["replicas"])
        lines.append(
            f"back on Redis after {r['recovered_by']}: {r['recovery_s']} s (bound {r['bound_s']:g} s; {per})"
        )
    lines.append(
        f"deliveries {d['deliveries']} ({d['webhooks']} webhook ids): {d['audit_rows_found']} with their "
        f"audit row, {d['missing_audit_row']} without; {d['executes_503']} executes answered 503, "
        f"{d['delivered_after_503']} of them delivered"
    )
    lines.append("")
    for c in doc["criteria"]:
        lines.append(f"  {c['status'].upper():<12} {c['title']}: {c['detail']}")
    for k in doc["validity"]:
        if not k["ok"]:
            lines.append(f"  invalid: {k['check']}: {k['detail']}")
    lines.append(f"verdict: {doc['verdict']} (exit {doc['exit_code']})")
    lines += [f"  - {r}" for r in doc["reasons"]]
    return "\n".join(lines)
