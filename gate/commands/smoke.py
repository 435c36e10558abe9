"""``relay-gate smoke``: the post-deploy smoke against a deployment, and a rollback when it fails.

Runs the ``@smoke`` scenarios (health, list, preview -> execute, audit) exactly as
``relay-gate check -m smoke`` does. When the smoke judges the release bad — a scenario failed (1) or an
SLO was breached (3) — and ``--on-fail`` is given, the rollback command runs: the platform's own CLI
(``railway redeploy ...``, ``fly releases rollback ...``, a script). When the gate itself could not
judge — bad usage or config (2), scenarios that could not run (4), an unreachable target (5) — nothing
is rolled back unless ``--on-fail-also`` names that code (e.g. ``--on-fail-also 4,5``): a CI hiccup must
not undo a good release (gate/commands/smoke_rollback.py). The decision is recorded either way.

The command is split like a POSIX shell would split it (shlex) and run **without a shell**, so a
value substituted into it from CI cannot inject commands; when you need pipes, ``&&`` or expansions,
say so: ``--on-fail "sh -c 'railway redeploy --yes && curl -fsS $HOOK'"``. It runs with the
environment of relay-gate (the platform token comes from there) plus RELAY_GATE_SMOKE_EXIT,
RELAY_GATE_RESULTS and RELAY_GATE_TARGET_URL, in its own process group, killed (TERM, then KILL) at
``--on-fail-timeout``. Its exit status and output (secrets redacted, the last 64 KiB of each stream)
go to ``<results>/smoke/rollback.json`` (relay-gate/rollback@1), which is written on every run.

Exit: the smoke's verdict, whatever the rollback did — 0 passed; 1 a scenario failed; 2 bad usage
(an --on-fail or --on-fail-also that cannot be parsed is refused before the smoke runs); 4 scenarios
could not run for missing configuration; 5 target unreachable.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gate.client.target import Target
from gate.commands import check, smoke_rollback
from gate.errors import EXIT_OK, GateError, UsageError
from gate.paths import default_results
from gate.results import Redactor, new_run_id, utc_now, write_json

DEFAULT_TIMEOUT_S = 300.0
KEEP_BYTES = 64 * 1024  # of each output stream: the end is where a CLI says what went wrong
GRACE_S = 5.0  # between TERM and KILL of a rollback that ran out of time
# environment variables whose values are credentials, whatever they are called before the suffix
_SECRET_ENV = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|_KEY|DATABASE_URL)$", re.IGNORECASE)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "smoke",
        help="the post-deploy smoke scenarios; run a rollback command when they fail",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_target_args(p)
    p.add_argument(
        "--on-fail",
        metavar="CMD",
        default=None,
        help="rollback command to run when the smoke does not pass (no shell; see above)",
    )
    p.add_argument(
        "--on-fail-also",
        metavar="CODES",
        action="append",
        default=[],
        help="also roll back when the smoke could not judge the release: exit codes among 2, 4, 5, "
        "comma-separated (default: only 1 and 3 roll back)",
    )
    p.add_argument(
        "--on-fail-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"kill the rollback command after this long (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument("--results", type=Path, default=None, help="results folder (default results/<run-id>)")
    p.set_defaults(run=run)


@dataclass
class Rollback:
    """What the rollback command did; ``ok`` only when it ran to completion with exit status 0."""

    command: list[str]
    timeout_s: float
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    exit_status: int | None = None
    timed_out: bool = False
    error: str | None = None
    stdout: str = ""
    stderr: str = ""
    ok: bool = False


def parse_command(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"--on-fail cannot be parsed ({exc}): check its quoting") from None
    if not argv:
        raise UsageError("--on-fail is empty: give the rollback command, e.g. --on-fail 'railway redeploy'")
    return argv


def _tail(data: bytes) -> str:
    text = data[-KEEP_BYTES:].decode("utf-8", errors="replace")
    return text if len(data) <= KEEP_BYTES else f"[... {len(data) - KEEP_BYTES} bytes cut ...]\n{text}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # the platform CLI may have started children: signal the whole group it leads
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, GRACE_S)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_rollback(argv: list[str], *, timeout_s: float, env: Mapping[str, str]) -> Rollback:
    """Run ``argv`` without a shell, bounded by ``timeout_s``; never raises for the command's failures."""
    result = Rollback(command=list(argv), timeout_s=timeout_s, started_at=utc_now())
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(env), start_new_session=True,
        )  # fmt: skip
    except OSError as exc:  # not found, not executable
        result.error = f"could not start {argv[0]!r}: {exc.strerror or exc}"
    else:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            result.timed_out = True
            result.error = f"did not finish within {timeout_s:g} s; killed"
            _kill_group(proc)
            out, err = proc.communicate()
        result.exit_status = proc.returncode
        result.stdout, result.stderr = _tail(out or b""), _tail(err or b"")
        result.ok = not result.timed_out and proc.returncode == 0
    result.finished_at = utc_now()
    result.duration_s = round(time.monotonic() - start, 3)
    return result


def env_secrets(env: Mapping[str, str]) -> list[str]:
    """Values of credential-looking variables (platform tokens, keys): redacted from what is recorded."""
    return [value for name, value in env.items() if _SECRET_ENV.search(name) and len(value) >= 6]


def run(args: argparse.Namespace) -> int:
    argv = parse_command(args.on_fail) if args.on_fail is not None else None
    also = smoke_rollback.parse_also(args.on_fail_also)
    if args.on_fail_timeout <= 0:
        raise UsageError("--on-fail-timeout must be greater than 0")
    results: Path = args.results or default_results(new_run_id())
    check_args = argparse.Namespace(
        target_url=args.target_url, target_config=args.target_config, backend=args.backend,
        markexpr="smoke", keyword=None, results=results,
    )  # fmt: skip
    target_secrets: list[str] = []
    try:
        if args.target_url or args.target_config:  # its keys, to redact; check.run probes it
            target_secrets = Target.from_config(args.target_url, args.target_config).secret_values()
        code = check.run(check_args)
    except GateError as exc:  # unreachable target, bad target config: not a pass either
        print(f"relay-gate smoke: {exc}", file=sys.stderr)
        code = exc.exit_code

    redactor = Redactor([*target_secrets, *env_secrets(os.environ)])
    decision = smoke_rollback.decide(code, also)
    doc: dict[str, Any] = {
        "smoke_exit_code": code, "target_url": args.target_url, "triggered": False,
        "rollback_on": smoke_rollback.rolls_back_on(also), "rollback_wanted": decision.roll_back,
        "reason": decision.reason,
    }  # fmt: skip
    if code == EXIT_OK:
        pass
    elif not decision.roll_back:
        print(f"relay-gate smoke: NOT JUDGED: {decision.reason}", file=sys.stderr)
    elif argv is None:
        doc["reason"] = f"{decision.reason}, and no --on-fail command was given"
        print("relay-gate smoke: FAILED; no --on-fail command given, nothing rolled back", file=sys.stderr)
    else:
        doc["triggered"] = True
        print(f"relay-gate smoke: FAILED (exit {code}); rolling back: {redactor.text(shlex.join(argv))} "
              f"(timeout {args.on_fail_timeout:g} s)", file=sys.stderr)  # fmt: skip
        env = {**os.environ, "RELAY_GATE_SMOKE_EXIT": str(code), "RELAY_GATE_RESULTS": str(results),
               "RELAY_GATE_TARGET_URL": args.target_url or ""}  # fmt: skip
        rollback = run_rollback(argv, timeout_s=args.on_fail_timeout, env=env)
        doc["rollback"] = asdict(rollback)
        _report(rollback, redactor)
    path = write_json(results / "smoke" / "rollback.json", "rollback", 1, doc, redactor=redactor)
    print(f"relay-gate smoke: exit {code}; rollback record: {path}")
    return code


def _report(rollback: Rollback, redactor: Redactor) -> None:
    for name, text in (("stdout", rollback.stdout), ("stderr", rollback.stderr)):
        lines = redactor.text(text).strip().splitlines()
        if lines:
            print(f"rollback {name} (last lines):", file=sys.stderr)
            for line in lines[-20:]:
                print(f"  | {line}", file=sys.stderr)
    if rollback.ok:
        print(f"rollback: done (exit 0 in {rollback.duration_s:g} s)", file=sys.stderr)
    else:
        status = rollback.error or f"exit status {rollback.exit_status}"
        print(f"ROLLBACK FAILED: {status}; roll back by hand now", file=sys.stderr)
