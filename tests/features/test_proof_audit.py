"""Proof that the auth and audit criteria can fail: each audit-area defect of gate/defects.py, switched
into the reference stack, makes the scenarios named below fail and pytest exit 1; the clean stack
passes them. ``webhook-sent-when-audit-failed`` needs control of PostgreSQL, which the reference
stack (embedded backend) has.

Each run is a subprocess (``pytest features/test_audit.py --defect NAME --results DIR``), the same way
CI runs the gate, and the verdict is read from DIR/features/summary.json.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.features import proof

pytestmark = pytest.mark.stack

FEATURE = "test_audit.py"


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


def test_every_audit_defect_has_a_catching_scenario() -> None:
    proof.assert_covers("audit", CATCHES)


@pytest.mark.parametrize("defect", sorted(CATCHES))
def test_the_audit_feature_fails_against(defect: str, tmp_path: Path) -> None:
    run = proof.run_feature(FEATURE, tmp_path / "results", defect=defect)
    proof.assert_caught(run, defect, CATCHES[defect])


def test_the_audit_feature_passes_against_the_clean_stack(tmp_path: Path) -> None:
    proof.assert_clean(proof.run_feature(FEATURE, tmp_path / "results"), CATCHES)
