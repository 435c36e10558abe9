"""``relay-gate check``: run the acceptance scenarios against the reference stack or a deployment.

pytest runs in a child process (the same scenarios also run as plain ``pytest features/``); results go
to ``results/<run-id>/``: ``run.json`` (provenance), ``features/summary.json``, one JSON per scenario
with its exchanges, ``features/cucumber.json`` and ``features/junit.xml``. The summary printed at the
end is per feature: passed, failed and skipped with reasons.

Exit (gate/verdict.py's one precedence over the scenarios): 0 every selected scenario passed or is
not applicable to the target; 1 a scenario failed; 2 bad usage/target config, or nothing selected;
4 scenarios skipped for missing configuration (credentials, signing secret, receiver...) or a
precondition, or results missing — not a pass; 5 target unreachable, the stack did not start, or
pytest crashed; 130/143 interrupted (the child pytest stops its stack first).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import features
from gate import redacted_output, step_summary
from gate.client.probe import probe
from gate.client.target import Target
from gate.interrupts import as_interrupted
from gate.paths import absolute, default_results
from gate.results import (
    INFRA_MARKER,
    PLAN_REFUSED_MARKER,
    Redactor,
    new_run_id,
    provenance,
    read_json,
    utc_now,
    write_json,
)
from gate.verdict import LABEL, Item, Outcome, Verdict, decide, scenario_outcome

FEATURES_DIR = Path(features.__file__).resolve().parent
# the folder holding the features package: a source checkout, or site-packages of an installed gate
PACKAGE_ROOT = FEATURES_DIR.parent
# the scenarios' own pytest configuration, shipped with them (an installed gate has no pyproject.toml)
PYTEST_INI = FEATURES_DIR / "pytest-check.ini"
# skip reasons that mean "this target cannot have it" rather than "the config forgot it"
NOT_APPLICABLE = ("needs control of", "needs a path that answers an unhandled 500")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="run the acceptance scenarios (rate limits, signing, headers, audit, smoke)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_args(p)
    p.add_argument(
        "-m", dest="markexpr", default=None, help="pytest marker expression, e.g. 'smoke or headers'"
    )
    p.add_argument("-k", dest="keyword", default=None, help="pytest -k expression on scenario names")
    p.add_argument("--results", type=Path, default=None, help="results folder (default results/<run-id>)")
    p.set_defaults(run=run)


def add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target-url", default=None, help="run against this deployment instead of the reference stack"
    )
    p.add_argument("--target-config", type=Path, default=None, help="TOML target config (see README)")
    p.add_argument(
        "--backend",
        choices=("embedded", "containers"),
        default=os.environ.get("RELAY_GATE_BACKEND", "embedded"),
        help="where the reference stack's Redis and PostgreSQL come from (no --target-url)",
    )


def resolve_target(args: argparse.Namespace) -> Target | None:
    """The external target (validated and reachable), or None for the reference stack."""
    if not args.target_url and not args.target_config:
        return None
    target = Target.from_config(args.target_url, args.target_config)  # UsageError -> exit 2
    # as the scenarios will connect (TLS verified, proxies as configured); exit 5 naming TLS if that fails
    probe(target.base_url, target.transport)
    return target


def pytest_argv(args: argparse.Namespace, results: Path, *, paths: list[str] | None = None) -> list[str]:
    results = absolute(results)
    argv = [
        # -P: the child runs in the caller's folder, whose own features/ or gate/ must not shadow ours
        sys.executable, "-P", "-m", "pytest", *(paths or [str(FEATURES_DIR)]),
        # -c pins the config: pytest looks for it from the common ancestor of every path on the command
        # line, plugin options' values included, so a results folder elsewhere would move the search.
        # The features' own ini (markers, strict options, -p features.plugin) works without a checkout
        "-c", str(PYTEST_INI), "--rootdir", str(PACKAGE_ROOT), "-p", "no:cacheprovider",
        "--results", str(results),
        f"--cucumberjson={results / 'features' / 'cucumber.json'}",
        f"--junitxml={results / 'features' / 'junit.xml'}",
        "--backend", args.backend,
        "-q", "-rfEs", "--no-header",
    ]  # fmt: skip
    if args.target_url:
        argv += ["--target-url", args.target_url]
    if args.target_config:
        argv += ["--target-config", str(absolute(args.target_config))]
    if getattr(args, "markexpr", None):
        argv += ["-m", args.markexpr]
    if getattr(args, "keyword", None):
        argv += ["-k", args.keyword]
    return argv


def summarise(summary: dict[str, Any]) -> tuple[str, dict[str, int]]:
    """The per-feature table (failures and skips with their reason and category) and the totals."""
    totals = {"passed": 0, "failed": 0, "skipped": 0, "not run": 0}
    lines = []
    for feat in summary.get("features", []):
        counts = dict.fromkeys(totals, 0)
        for sc in feat["scenarios"]:
            counts[sc["outcome"]] = counts.get(sc["outcome"], 0) + 1
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        lines.append(
            f"{feat['feature']}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped" + (f", {counts['not run']} not run" if counts["not run"] else "")
        )
        for sc in feat["scenarios"]:
            if sc["outcome"] == "failed":
                lines.append(f"  FAILED   {sc['scenario']}\n           {sc['reason']}")
            elif sc["outcome"] == "skipped":
                label = LABEL[scenario_outcome(sc)].lower()
                lines.append(f"  SKIPPED  {sc['scenario']} ({label})\n           {sc['reason']}")
            elif sc["outcome"] == "not run":
                lines.append(f"  NOT RUN  {sc['scenario']}")
    return "\n".join(lines), totals


def run(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    run_id = new_run_id()
    results = args.results or default_results(run_id)
    (results / "features").mkdir(parents=True, exist_ok=True)
    redactor = Redactor(target.secret_values() if target else ())
    described = (
        target.describe()
        if target
        else {"name": f"reference stack ({args.backend})", "backend": args.backend}
    )
    run_doc = provenance(run_id=run_id, target=described, started_at=utc_now(), extra={"command": "check"})
    write_json(results / "run.json", "run", 1, run_doc, redactor=redactor)

    print(f"relay-gate check: run {run_id} against {described['name']}; results in {results}", flush=True)
    try:
        # the child's output reaches the terminal redacted, with the secrets it hands over (the
        # stack's); it writes to a pipe, so it is told when the terminal takes colours
        argv = [*pytest_argv(args, results), *(["--color=yes"] if sys.stdout.isatty() else [])]
        rc = redacted_output.run(argv, redactor=redactor)  # in the caller's folder, like every path
    except KeyboardInterrupt as exc:
        stopped = as_interrupted(exc)
        run_doc.update(
            finished_at=utc_now(),
            exit_code=stopped.exit_code,
            interrupted={"signal": stopped.name, "step": "check"},
        )
        write_json(results / "run.json", "run", 1, run_doc, redactor=redactor)
        raise stopped from None
    selected = bool(getattr(args, "markexpr", None) or getattr(args, "keyword", None))
    decided = judge(rc, results, selection=selected)

    run_doc.update(finished_at=utc_now(), exit_code=decided.exit_code, verdict=decided.line)
    summary_path = results / "features" / "summary.json"
    summary = read_json(summary_path, "features") if summary_path.exists() else None
    if summary is not None:
        table, totals = summarise(summary)
        run_doc["totals"] = totals
        print("\n" + table)
        print(f"\ntotal: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    write_json(results / "run.json", "run", 1, run_doc, redactor=redactor)
    verdict = f"verdict: {decided.line} (exit {decided.exit_code}); results: {results}"
    print(verdict)
    step_summary.for_check(summary, verdict=verdict, results=results, redactor=redactor)
    return decided.exit_code


def judge(pytest_rc: int, results: Path, *, selection: bool) -> Verdict:
    """The verdict of a features run: every scenario summary.json records, by gate/verdict.py's one
    precedence, plus what pytest's exit status says beyond them. A missing summary.json, a crashed
    pytest or an unreachable target is never a pass, and is reported as what it is."""
    items: list[Item] = []
    steps: list[Item] = []  # what pytest's exit says beyond the scenarios
    infra = results / "features" / INFRA_MARKER
    summary_path = results / "features" / "summary.json"
    scenarios: list[dict[str, Any]] = []
    if summary_path.exists():
        doc = read_json(summary_path, "features")
        scenarios = [sc for f in doc.get("features", []) for sc in f["scenarios"]]
        items += [Item(str(sc["scenario"]), scenario_outcome(sc), sc.get("reason")) for sc in scenarios]
    failed = any(sc["outcome"] == "failed" for sc in scenarios)

    def say(outcome: Outcome, why: str) -> None:
        print(f"relay-gate: {why}", file=sys.stderr)
        steps.append(Item("step pytest", outcome, why))

    refused = results / "features" / PLAN_REFUSED_MARKER
    if refused.exists():  # the quota plan could not fit: nothing was sent, so nothing else counts
        say(Outcome.USAGE, refused.read_text().strip())
        return decide([], steps=steps)
    if infra.exists():
        say(Outcome.ERROR, infra.read_text().strip())
    elif pytest_rc == 5:
        if selection:
            say(Outcome.USAGE, "no scenario matched the selection (-m / -k)")
        else:
            say(
                Outcome.ERROR, "pytest collected no scenario at all: is the features package installed whole?"
            )
    elif pytest_rc == 4:
        say(Outcome.USAGE, "pytest refused the selection or options (see above)")
    elif pytest_rc not in (0, 1):
        say(
            Outcome.ERROR,
            f"pytest ended with exit status {pytest_rc} (interrupted or crashed; see its output)",
        )
    elif not summary_path.exists():
        say(
            Outcome.INVALID, f"pytest exited {pytest_rc} but wrote no {summary_path}: the results are missing"
        )
    elif pytest_rc == 1 and not failed:
        say(
            Outcome.ERROR,
            "pytest exited 1 but no scenario failed: an error outside the scenarios (see above)",
        )
    elif pytest_rc == 0 and failed:
        say(Outcome.ERROR, "pytest exited 0 but summary.json records a failed scenario")
    return decide(items, steps=steps, nothing="no scenario ran")
