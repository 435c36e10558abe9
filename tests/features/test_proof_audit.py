"""Proof that the auth and audit criteria can fail: each audit-area defect of gate/defects.py, switched
into the reference stack, makes the scenarios named below fail and pytest exit 1; the clean stack
passes them. ``webhook-sent-when-audit-failed`` needs control of PostgreSQL, which the reference
stack (embedded backend) has.

Each run is a subprocess (``pytest features/test_audit.py --defect NAME --results DIR``), the same way
CI runs the gate, and the verdict is read from DIR/features/summary.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gate.defects import DEFECTS
from tests.features import proof

pytestmark = pytest.mark.stack


# defect -> the scenario(s) that must fail against it (others may fail too)
CATCHES: dict[str, set[str]] = {
    "dev-key-reads-audit": {"A developer key cannot read the audit log"},
    "unknown-key-accepted": {"A call with an unknown API key is refused with a Bearer challenge"},
    "failed-deliveries-not-audited": {
        "A delivery the receiver refuses is answered 502 and audited as an error"
    },
    "webhook-sent-when-audit-failed": {
        "With the audit database down, execute is refused and no webhook is sent"
    },
    "401-without-bearer-challenge": {
        "A call without an API key is refused with a Bearer challenge",
        "A call with an unknown API key is refused with a Bearer challenge",
    },
    "audit-records-its-own-request-id": {
        "An admin finds the executes just made in the audit log, as the receiver saw them"
    },
}


def run_feature(tmp_path: Path, defect: str | None) -> tuple[int, dict[str, dict[str, Any]], str]:
    """Run the feature against a fresh stack; the exit code, outcomes by scenario name, and the output."""
    run = proof.run_feature("test_audit.py", tmp_path / "results", defect=defect)
    return run.code, run.scenarios, run.output


def test_every_audit_defect_has_a_catching_scenario() -> None:
    assert {d.name for d in DEFECTS.values() if d.area == "audit"} == set(CATCHES)


@pytest.mark.parametrize("defect", sorted(CATCHES))
def test_the_audit_feature_fails_against(defect: str, tmp_path: Path) -> None:
    code, outcomes, output = run_feature(tmp_path, defect)
    failed = {name for name, s in outcomes.items() if s["outcome"] == "failed"}
    assert code == 1, f"pytest exited {code} against defect {defect}, expected 1:\n{output}"
    missing = CATCHES[defect] - failed
    assert not missing, f"against {defect} these scenarios did not fail: {sorted(missing)}\n" + "\n".join(
        f"  {s['outcome']:8} {name}: {s['reason']}" for name, s in outcomes.items()
    )


def test_the_audit_feature_passes_against_the_clean_stack(tmp_path: Path) -> None:
    code, outcomes, output = run_feature(tmp_path, None)
    not_passed = {
        name: (s["outcome"], s["reason"]) for name, s in outcomes.items() if s["outcome"] != "passed"
    }
    assert code == 0 and not not_passed, f"clean run exited {code}; not passed: {not_passed}\n{output}"
    assert set().union(*CATCHES.values()) <= set(outcomes), (
        "a catching scenario is not in the feature any more"
    )
