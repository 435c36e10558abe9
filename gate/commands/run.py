"""``relay-gate run``: the whole gate, one verdict — features, restore drill, SLO load, faults under
load, evidence.

Every step writes into the same ``results/<run-id>/``; the evidence pack is rendered from it at the
end, so a step that could not run shows as NOT RUN there. On the reference stack (the default) each
step gets a fresh stack — a scenario that kills Redis cannot touch the latency figures — and the
drill backs up a database filled by real executes. With ``--target-url`` the same steps run against
a deployment: the drill needs ``[database].url_env`` in the target config, and restores into a local
embedded PostgreSQL.

Exit: the worst step — a false criterion (1) over a breached SLO (3) over an infrastructure failure
(5) over anything not run (4) over a usage error (2).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gate.commands.check import add_target_args, resolve_target
from gate.errors import EXIT_CRITERION, EXIT_INFRA, EXIT_INVALID, EXIT_OK, EXIT_SLO, EXIT_USAGE
from gate.redaction import mask_url_passwords
from gate.results import Redactor, new_run_id, provenance, utc_now, write_json

# worst first: what the final exit code is when steps disagree
SEVERITY = (EXIT_CRITERION, EXIT_SLO, EXIT_INFRA, EXIT_INVALID, EXIT_USAGE, EXIT_OK)
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
    p.add_argument("--load-duration", default="30s", help="length of the SLO load run (default 30s)")
    p.add_argument("--load-rate", type=float, default=DEFAULT_LOAD_RATE, help="open-model requests/s (120)")
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


def worst(codes: list[int]) -> int:
    for code in SEVERITY:
        if code in codes:
            return code
    return EXIT_INFRA


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


def _drill(args: argparse.Namespace, results: Path, target: Any) -> tuple[int, str]:
    backups = Path(tempfile.mkdtemp(prefix="relay-gate-backups-"))
    try:
        if target is None:
            from gate.stack import Stack, StackConfig

            with Stack(StackConfig(backend=args.backend, replicas=1, rate_limit=1000, window_s=60)) as stack:
                keys = [k.key for k in stack.keys if k.role == "dev"]
                _fill_audit(stack.base_url, keys)
                url = str(stack.database_url)
                code = _cli(["backup", "--database-url", url, "--dir", str(backups), "--no-prune"])
                if code != EXIT_OK:
                    return code, "the backup failed"
                return _cli(
                    ["drill", "--database-url", url, "--dir", str(backups), "--results", str(results)]
                ), ""
        if not target.database_url:
            return EXIT_INVALID, "the target config names no database ([database].url_env): drill NOT RUN"
        url = target.database_url
        code = _cli(["backup", "--database-url", url, "--dir", str(backups), "--no-prune"])
        if code != EXIT_OK:
            return code, "the backup failed"
        return _cli(
            [
                "drill",
                "--database-url",
                url,
                "--dir",
                str(backups),
                "--results",
                str(results),
                "--restore-to",
                "embedded",
            ]
        ), ""
    finally:
        shutil.rmtree(backups, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    target = resolve_target(args)  # usage errors and an unreachable target stop here
    run_id = new_run_id()
    results = args.results or Path("results") / run_id
    out = args.out or Path("evidence") / "out" / results.resolve().name
    results.mkdir(parents=True, exist_ok=True)
    where = target.name if target else f"the reference stack ({args.backend})"
    print(f"relay-gate run {run_id}: {where}\n  results  {results}\n  evidence {out}", flush=True)

    steps: list[Step] = []
    t_all = time.monotonic()
    started = utc_now()

    def step(name: str, fn: Any) -> None:
        s = Step(name)
        steps.append(s)
        if name in args.skip:
            s.code, s.note = EXIT_INVALID, "skipped (--skip): NOT RUN"
            print(f"\n== {name}: skipped", flush=True)
            return
        print(f"\n== {name} (at {time.monotonic() - t_all:.0f} s)", flush=True)
        t0 = time.monotonic()
        try:
            s.code, s.note = fn()
        except Exception as exc:  # a crashed step is an infrastructure failure, never a pass
            s.code, s.note = EXIT_INFRA, mask_url_passwords(f"crashed: {type(exc).__name__}: {exc}")
            print(f"relay-gate run: {name} {s.note}", flush=True)
        s.seconds = time.monotonic() - t0
        print(f"== {name}: exit {s.code} in {s.seconds:.1f} s", flush=True)

    markexpr = ["-m", args.markexpr] if args.markexpr else []
    step("features", lambda: (_cli(["check", "--results", str(results), *_target_argv(args), *markexpr]), ""))
    step("drill", lambda: _drill(args, results, target))
    step(
        "load",
        lambda: (
            _cli(
                [
                    "load",
                    "--rate",
                    f"{args.load_rate:g}",
                    "--duration",
                    args.load_duration,
                    "--results",
                    str(results),
                    *_target_argv(args),
                ]
            ),
            "",
        ),
    )

    def faults() -> tuple[int, str]:
        if target is not None:
            return EXIT_OK, "a deployment's Redis/PostgreSQL are not ours to kill: not applicable"
        return _cli(["faults", "--results", str(results), "--backend", args.backend]), ""

    step("faults", faults)

    def render() -> tuple[int, str]:
        keys = ["--hmac-key-env", args.hmac_key_env] if args.hmac_key_env else []
        return _cli(["evidence", "render", "--results", str(results), "--out", str(out), *keys]), ""

    # run.json describes the whole run (check wrote one for its own step); written before rendering
    # so the pack's provenance covers every step
    run_doc = provenance(
        run_id=run_id,
        target=target.describe() if target else {"name": where, "backend": args.backend},
        started_at=started,
        extra={"command": "run"},
    )
    run_doc.update(
        finished_at=utc_now(),
        steps=[
            {"name": s.name, "exit_code": s.code, "seconds": round(s.seconds, 3), "note": s.note}
            for s in steps
        ],
    )
    write_json(
        results / "run.json", "run", 1, run_doc, redactor=Redactor(target.secret_values() if target else ())
    )
    step("evidence", render)
    total = time.monotonic() - t_all
    print("\nstep        exit   seconds  share")
    for s in steps:
        share = 100 * s.seconds / total if total else 0
        print(f"{s.name:<10} {s.code!s:>5} {s.seconds:9.1f} {share:5.0f} %  {s.note}")
    code = worst([s.code for s in steps if s.code is not None])
    print(f"total {total:.1f} s — verdict: exit {code}")
    index = out / "index.html"
    if index.exists():
        print(f"evidence: {index.resolve()}")
    return code
