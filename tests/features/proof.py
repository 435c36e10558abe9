"""Running a feature in a child pytest, as `relay-gate check` does, to prove what it catches.

The proof modules (``test_proof_<area>.py``) are each a table of which scenarios catch which defect;
the assertions they share live here: :func:`assert_covers`, :func:`assert_caught`,
:func:`assert_clean`, and :func:`prove`, which runs one defect at the depth ``RELAY_GATE_PROOF`` asks:

- ``focused`` (the default, what CI's suite runs): only the scenarios named to catch the defect run
  against it, and every one of them must fail. That the defect is caught by what was written for it
  costs seconds, not the whole feature: with 120-odd service defects the full depth takes over an hour;
- ``full``: the whole feature runs against the defect, and exactly the named scenarios fail (every
  other one passes) -- the catalogue's precision, which ``relay-gate selftest`` also holds it to
  (``tox -e proof`` runs the proof modules at this depth).

Either way the clean stack passes the whole feature, once per area.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_bdd.scenario import make_python_name

from gate.proof.catalogue import DEFECTS

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240
DEPTH_ENV = "RELAY_GATE_PROOF"
DEPTHS = ("focused", "full")


def depth() -> str:
    value = os.environ.get(DEPTH_ENV, "focused")
    if value not in DEPTHS:
        raise ValueError(f"{DEPTH_ENV}={value!r}: use one of {', '.join(DEPTHS)}")
    return value


@functools.cache
def scenario_nodeids() -> dict[str, str]:
    """Every scenario title of features/*.feature -> the pytest node id pytest-bdd gives it (the
    feature ``X.feature`` is bound by ``features/test_X.py``)."""
    ids: dict[str, str] = {}
    for feature in sorted((ROOT / "features").glob("*.feature")):
        for line in feature.read_text(encoding="utf-8").splitlines():
            keyword, _, title = line.strip().partition(":")
            if keyword in ("Scenario", "Scenario Outline"):
                name = make_python_name(title.strip())
                ids[title.strip()] = f"features/test_{feature.stem}.py::test_{name}"
    return ids


@dataclass(frozen=True)
class ProofRun:
    """One proof's child pytest: its exit code, every scenario's record by name, the tail of its output.
    (Not gate/proof/runs.py's FeatureRun, which is the selftest's record of a run.)"""

    code: int
    scenarios: dict[str, dict[str, Any]]  # by scenario name: outcome, reason, ...
    output: str

    def outcome(self, scenario: str) -> str:
        return str(self.scenarios[scenario]["outcome"])

    @property
    def outcomes(self) -> dict[str, str]:
        return {name: str(s["outcome"]) for name, s in self.scenarios.items()}

    def failed(self) -> set[str]:
        return {name for name, s in self.scenarios.items() if s["outcome"] == "failed"}


def run_feature(
    feature: str,
    results: Path,
    *args: str,
    defect: str | None = None,
    env: dict[str, str] | None = None,
) -> ProofRun:
    """Run ``features/<feature>`` in a child pytest (a fresh stack, with ``defect`` when given);
    ``feature`` may also be node ids separated by spaces (see :func:`prove`)."""
    argv = [
        sys.executable, "-m", "pytest", *(f if "::" in f else f"features/{f}" for f in feature.split()),
        # -c pins the config: a --results folder outside the repo would otherwise move pytest's
        # search for it (option values count as paths when pytest looks for its config file)
        "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
        "--results", str(results), "-q", "-p", "no:cacheprovider", *args,
    ]  # fmt: skip
    if defect:
        argv += ["--defect", defect]
    environ = {k: v for k, v in os.environ.items() if k not in ("RELAY_GATE_DEFECT", "PYTEST_ADDOPTS")}
    environ.update(env or {})
    proc = subprocess.run(argv, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    output = proc.stdout[-4000:] + proc.stderr[-2000:]
    summary_path = results / "features" / "summary.json"
    assert summary_path.exists(), f"no summary.json (exit {proc.returncode}):\n{output}"
    summary = json.loads(summary_path.read_text())
    scenarios = {s["scenario"]: s for f in summary["features"] for s in f["scenarios"]}
    return ProofRun(proc.returncode, scenarios, output)


def assert_covers(area: str, catches: Mapping[str, object]) -> None:
    """Every defect of ``area`` in gate/proof/catalogue.py has a row in ``catches``, and no other defect
    has."""
    ours = {d.name for d in DEFECTS.values() if d.area == area}
    assert ours == set(catches), (
        f"{area} defects without a proof here: {sorted(ours - set(catches))}; "
        f"rows for no {area} defect: {sorted(set(catches) - ours)}"
    )


def assert_caught(
    run: ProofRun, defect: str, expected: Iterable[str], *, scenarios: Collection[str] | None = None
) -> None:
    """Against ``defect`` pytest exited 1 and every scenario of ``expected`` failed (others may fail
    too). With ``scenarios``, the run reported exactly those, and each one not ``expected`` passed:
    a defect must not hide behind a skip."""
    failing = set(expected)
    assert run.code == 1, f"pytest exited {run.code} against defect {defect}, expected 1:\n{run.output}"
    missing = failing - run.failed()
    assert not missing, (
        f"against {defect} these scenarios did not fail: {sorted(missing)}\n{_table(run)}\n{run.output}"
    )
    if scenarios is not None:
        want = {s: "failed" if s in failing else "passed" for s in scenarios}
        assert run.outcomes == want, f"against {defect}: outcomes {run.outcomes}, not {want}\n{run.output}"


def assert_clean(
    run: ProofRun, catches: Mapping[str, Iterable[str]], *, scenarios: Collection[str] | None = None
) -> None:
    """Against the clean stack pytest exited 0 and every scenario passed, the catching ones of
    ``catches`` among them (with ``scenarios``: exactly those scenarios ran)."""
    not_passed = {
        name: (s["outcome"], s.get("reason")) for name, s in run.scenarios.items() if s["outcome"] != "passed"
    }
    assert run.code == 0 and run.scenarios and not not_passed, (
        f"clean run exited {run.code}; not passed: {not_passed}\n{run.output}"
    )
    catching = {name for names in catches.values() for name in names}
    assert catching <= set(run.scenarios), (
        f"catching scenarios not in the feature any more: {sorted(catching - set(run.scenarios))}"
    )
    if scenarios is not None:
        assert set(run.scenarios) == set(scenarios), f"clean run outcomes: {run.outcomes}\n{run.output}"


def _table(run: ProofRun) -> str:
    return "\n".join(f"  {s['outcome']:8} {name}: {s.get('reason')}" for name, s in run.scenarios.items())


def prove(
    feature: str,
    results: Path,
    defect: str,
    expected: Collection[str],
    *args: str,
    scenarios: Collection[str] | None = None,
) -> ProofRun:
    """Run ``defect`` against its area at this session's :func:`depth` and assert it is caught:
    focused, the ``expected`` scenarios alone run and each fails; full, ``feature`` (and the feature
    files in ``args``) run whole and :func:`assert_caught` holds with ``scenarios``."""
    if depth() == "full":
        run = run_feature(feature, results, *args, defect=defect)
        assert_caught(run, defect, expected, scenarios=scenarios)
        return run
    ids = scenario_nodeids()
    unknown = sorted(set(expected) - set(ids))
    assert not unknown, f"{defect}: no feature has the scenario(s) {unknown}"
    extra = tuple(a for a in args if not a.startswith("features/"))  # the other features are not needed
    run = run_feature(" ".join(sorted(ids[s] for s in expected)), results, *extra, defect=defect)
    assert_caught(run, defect, expected, scenarios=expected)
    return run
