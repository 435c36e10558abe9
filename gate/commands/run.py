"""``relay-gate run``: the whole gate, one verdict — features, restore drill, SLO load, faults under
load, evidence.

Every step writes into the same ``results/<run-id>/``; the evidence pack is rendered from it at the
end, so a step that could not run shows as NOT RUN there. On the reference stack (the default) each
step gets a fresh stack — a scenario that kills Redis cannot touch the latency figures — and the
drill backs up a database filled by real executes. With ``--target-url`` the same steps run against
a deployment: the drill restores the deployment's own latest backup (``[backups].dir`` in the target
config, gate/drill/deployment.py) into a local embedded PostgreSQL.

Exit: the evidence pack's verdict — gate/verdict.py's one precedence over every criterion the results
prove and every step run.json records (a false criterion 1 > a breached SLO 3 > an infrastructure
failure 5 > anything not run, invalid or missing configuration 4 > a usage error 2 > 0), so the run and
its pack can never disagree. Ctrl-C or SIGTERM stops the current step (which stops what it started),
runs no further step, records the run as interrupted and exits 130 or 143.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from evidence.criteria import step_items
from gate import step_summary
from gate.commands.check import add_target_args, resolve_target
from gate.errors import EXIT_INFRA, EXIT_INVALID, EXIT_OK, EXIT_USAGE
from gate.interrupts import as_interrupted
from gate.paths import default_pack, default_results
from gate.redaction import mask_url_passwords
from gate.results import (
    PLAN_REFUSED_MARKER,
    Redactor,
    check_writable,
    new_run_id,
    provenance,
    utc_now,
    write_json,
)
from gate.verdict import Item, Outcome, Verdict, decide, outcome_of_exit

DEFAULT_LOAD_RATE = 120.0  # 30 s at 120 req/s gives list and preview > 1,000 samples each for p99


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="the whole gate: features, restore drill, SLO load, evidence pack; one verdict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_args(p)
    p.add_argument("--results", type=Path, default=None, help="results folder (default results/<run-id>)")
    p.add_argument("--out", type=Path, default=None, help="evidence pack (default evidence/out/<run-id>)")
    p.add_argument(
        "-m", dest="markexpr", default=None, help="only these scenarios (pytest marker expression)"
    )
    load = p.add_argument_group("the load step (passed to relay-gate load; see its --help)")
    load.add_argument(
        "--duration", "--load-duration", dest="load_duration", default="30s",
        help="length of the SLO load run (default 30s)",
    )  # fmt: skip
    load.add_argument(
        "--rate", "--load-rate", dest="load_rate", type=float, default=DEFAULT_LOAD_RATE,
        help=f"open-model requests/s (default {DEFAULT_LOAD_RATE:g}); against a deployment it is planned "
        "under the keys' rate-limit quota, or the run stops before it starts",
    )  # fmt: skip
    load.add_argument("--weights", default=None, help="journey mix, e.g. list=11,preview=11,execute=2")
    load.add_argument("--slos", type=Path, default=None, help="SLO spec (default load/slos.toml)")
    load.add_argument(
        "--baseline", type=Path, default=None, metavar="PATH",
        help="compare the load with a previous run of the same load (its load.json or results folder): "
        "a p99 regression is a breach",
    )  # fmt: skip
    p.add_argument(
        "--skip",
        action="append",
        choices=("features", "drill", "load", "faults"),
        default=[],
        help="leave a step out (its criteria show as NOT RUN and the verdict is not a pass)",
    )
    p.add_argument(
        "--hmac-key-env", metavar="NAME", help="sign the evidence manifest with HMAC-SHA256 ($NAME)"
    )
    p.set_defaults(run=run)


@dataclass
class Step:
    name: str
    code: int | None = None
    seconds: float = 0.0
    note: str = ""
    outcome: Outcome | None = None  # when the exit code alone would say less (skipped, not applicable)

    def item(self) -> Item:
        return Item(f"step {self.name}", self.outcome or outcome_of_exit(self.code), self.note or None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "exit_code": self.code, "outcome": str(self.item().outcome),
            "seconds": round(self.seconds, 3), "note": self.note,
        }  # fmt: skip


def _cli(argv: list[str]) -> int:
    from gate.cli import main

    return main(argv)


def _target_argv(args: argparse.Namespace) -> list[str]:
    out = ["--backend", args.backend]
    if args.target_url:
        out += ["--target-url", args.target_url]
    if args.target_config:
        out += ["--target-config", str(args.target_config)]
    return out


def _fill_audit(base_url: str, keys: list[str], n: int = 24) -> None:
    """Real executes, so the audit table the drill backs up holds what the service wrote."""
    body = {"action": "notify.send", "params": {"channel": "restore-drill", "message": "backup content"}}
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for i in range(n):
            client.post(
                "/actions/execute", headers={"Authorization": f"Bearer {keys[i % len(keys)]}"}, json=body
            )


def _drill(
    args: argparse.Namespace, results: Path, target: Any
) -> tuple[int, str] | tuple[int, str, Outcome]:
    if target is not None:  # a deployment: its own latest backup, restored on a server of ours
        from gate.drill.deployment import drill_deployment

        return drill_deployment(target, results)
    # the reference stack: a backup of its own database, filled by real executes, taken and drilled
    backups = Path(tempfile.mkdtemp(prefix="relay-gate-backups-"))
    try:
        from gate.stack.reference import Stack, StackConfig

        with Stack(StackConfig(backend=args.backend, replicas=1, rate_limit=1000, window_s=60)) as stack:
            keys = [k.key for k in stack.keys if k.role == "dev"]
            _fill_audit(stack.base_url, keys)
            url = str(stack.database_url)
            code = _cli(["backup", "--database-url", url, "--dir", str(backups), "--no-prune"])
            if code != EXIT_OK:
                return code, "the backup failed"
            drill = ["drill", "--database-url", url, "--dir", str(backups), "--results", str(results)]
            return _cli([*drill, "--backup-taken-by-this-run"]), ""
    finally:
        shutil.rmtree(backups, ignore_errors=True)


STEPS = ("features", "drill", "load", "faults")


def _preflight_load(args: argparse.Namespace, target: Any) -> None:
    """A load that cannot fit the deployment's quota, or a baseline it cannot be compared with, stops
    the run before its first request (exit 2), not after the features and the drill ran."""
    if "load" in args.skip:
        return
    from gate.client import load_quota
    from load import baseline, settings

    weights = settings.parse_weights(args.weights or os.environ.get(settings.WEIGHTS_ENV))
    if args.baseline is not None:
        model = baseline.planned_model(rate=args.load_rate, users=0, think_time=(0, 0), weights=weights)
        baseline.check_comparable(baseline.read(args.baseline), model)
    if target is None:
        return
    load_quota.plan(target, len(load_quota.load_credentials(target)), rate=args.load_rate, weights=weights)


def run(args: argparse.Namespace) -> int:
    target = resolve_target(args)  # usage errors and an unreachable target stop here
    _preflight_load(args, target)
    run_id = new_run_id()
    results = args.results or default_results(run_id)  # both under the caller's folder
    out = args.out or default_pack(results.name)
    check_writable(out, "--out")
    results.mkdir(parents=True, exist_ok=True)
    where = target.name if target else f"the reference stack ({args.backend})"
    print(f"relay-gate run {run_id}: {where}\n  results  {results}\n  evidence {out}", flush=True)

    steps = [Step(name) for name in STEPS]
    t_all = time.monotonic()
    run_doc = provenance(
        run_id=run_id,
        target=target.describe() if target else {"name": where, "backend": args.backend},
        started_at=utc_now(),
        extra={"command": "run"},
    )
    redactor = Redactor(target.secret_values() if target else ())

    def write_run_doc() -> None:
        # run.json describes the whole run (check wrote one for its own step); written before the
        # pack is rendered so the pack's provenance and verdict cover every step
        run_doc.update(finished_at=utc_now(), steps=[s.to_json() for s in steps])
        write_json(results / "run.json", "run", 1, run_doc, redactor=redactor)

    def step(s: Step, fn: Any) -> None:
        if s.name in args.skip:
            s.code, s.outcome, s.note = EXIT_INVALID, Outcome.NOT_RUN, "skipped (--skip): NOT RUN"
            print(f"\n== {s.name}: skipped", flush=True)
            return
        print(f"\n== {s.name} (at {time.monotonic() - t_all:.0f} s)", flush=True)
        t0 = time.monotonic()
        try:
            result = fn()
            s.code, s.note = result[0], result[1]
            s.outcome = result[2] if len(result) > 2 else None
        except Exception as exc:  # a crashed step is an infrastructure failure, never a pass
            s.code, s.note = EXIT_INFRA, mask_url_passwords(f"crashed: {type(exc).__name__}: {exc}")
            print(f"relay-gate run: {s.name} {s.note}", flush=True)
        finally:
            s.seconds = time.monotonic() - t0
        print(f"== {s.name}: exit {s.code} in {s.seconds:.1f} s", flush=True)

    markexpr = ["-m", args.markexpr] if args.markexpr else []
    load_argv = ["load", "--rate", f"{args.load_rate:g}", "--duration", args.load_duration]
    load_argv += ["--weights", args.weights] if args.weights else []
    load_argv += ["--slos", str(args.slos)] if args.slos else []
    load_argv += ["--baseline", str(args.baseline)] if args.baseline else []

    def faults() -> tuple[int, str, Outcome | None]:
        if target is not None:
            why = "a deployment's Redis/PostgreSQL are not ours to kill: not applicable"
            return EXIT_OK, why, Outcome.NOT_APPLICABLE
        return _cli(["faults", "--results", str(results), "--backend", args.backend]), "", None

    plan = {
        "features": lambda: (_cli(["check", "--results", str(results), *_target_argv(args), *markexpr]), ""),
        "drill": lambda: _drill(args, results, target),
        "load": lambda: (_cli([*load_argv, "--results", str(results), *_target_argv(args)]), ""),
        "faults": faults,
    }
    current: Step | None = None
    refused = False
    try:
        for s in steps:
            current = s
            step(s, plan[s.name])
            if s.name == "features" and (results / "features" / PLAN_REFUSED_MARKER).exists():
                refused = True  # the quota plan could not fit: nothing was sent, and nothing more will be
                break
        current = None
        for s in steps:
            if s.code is None:
                s.outcome, s.note = Outcome.NOT_RUN, "not run: the quota plan could not fit (see features)"
    except KeyboardInterrupt as exc:
        stopped = as_interrupted(exc)
        for s in steps:
            if s is current:
                s.code, s.note = stopped.exit_code, f"interrupted by {stopped.name}"
                s.outcome = outcome_of_exit(stopped.exit_code)
            elif s.code is None:
                s.outcome, s.note = Outcome.NOT_RUN, "not reached: the run was interrupted"
        run_doc["interrupted"] = {"signal": stopped.name, "step": current.name if current else None}
        write_run_doc()
        _print_table(steps, time.monotonic() - t_all)
        print(f"verdict: INTERRUPTED by {stopped.name} during {run_doc['interrupted']['step']}; "
              f"results so far: {results}", flush=True)  # fmt: skip
        raise stopped from None
    write_run_doc()
    if refused:  # a usage error, like a bad flag: nothing ran, so there is nothing to render
        _print_table(steps, time.monotonic() - t_all)
        print(f"verdict: USAGE ERROR: the quota plan could not fit (exit {EXIT_USAGE}); results: {results}")
        return EXIT_USAGE

    render = Step("evidence")
    keys = ["--hmac-key-env", args.hmac_key_env] if args.hmac_key_env else []
    step(
        render,
        lambda: (_cli(["evidence", "render", "--results", str(results), "--out", str(out), *keys]), ""),
    )
    total = time.monotonic() - t_all
    _print_table([*steps, render], total)
    decided = _verdict(results, out, render)
    verdict = f"verdict: {decided.line} (exit {decided.exit_code})"  # printed and in the job summary
    print(f"total {total:.1f} s — {verdict}")
    step_summary.for_run([*steps, render], verdict=verdict, results=results, out=out, redactor=redactor)
    index = out / "index.html"
    if index.exists():
        print(f"evidence: {index.resolve()}")
    return decided.exit_code


def _print_table(steps: list[Step], total: float) -> None:
    print("\nstep        exit   seconds  share  outcome")
    for s in steps:
        share = 100 * s.seconds / total if total else 0
        print(f"{s.name:<10} {s.code!s:>5} {s.seconds:9.1f} {share:5.0f} %  {s.item().outcome:<15} {s.note}")


def _verdict(results: Path, out: Path, render: Step) -> Verdict:
    """The run's verdict is the pack's: the same criteria and steps, by the same function. When the
    pack could not be rendered (or says something else), that is an error of the run, named."""
    from evidence.model import ResultsError, load_results
    from evidence.render import all_criteria, judge

    try:
        res = load_results(results)
    except ResultsError as exc:
        return decide([], steps=[render.item(), Item("step results", Outcome.ERROR, str(exc))])
    decided = judge(res)
    try:
        pack = json.loads((out / "manifest.json").read_text())["verdict"]
    except (OSError, ValueError, KeyError):
        pack = None
    if pack == {"code": decided.exit_code, "line": decided.line}:
        return decided
    why = render.note or f"the evidence pack's verdict {pack} differs from the results' ({decided.line})"
    steps = [*step_items(res), Item("step evidence", Outcome.ERROR, why)]
    return decide([c.item() for c in all_criteria(res)], steps=steps)
