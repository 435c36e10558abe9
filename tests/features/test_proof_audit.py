"""Proof that the auth and audit criteria can fail: each audit-area defect of gate/proof/catalogue.py,
switched into the reference stack, makes the scenarios named below fail and pytest exit 1; the clean stack
passes them. ``webhook-sent-when-audit-failed`` needs control of PostgreSQL, which the reference
stack (embedded backend) has. The defects of gate/proof/defects_api.py's audit area (the exact key, the
listing's order, cursor, limit and filters, the record written before the webhook) are here too.

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
    "dev-key-reads-own-workspace-audit": {"A developer key cannot read the audit log"},
    "unknown-key-accepted": {
        "A call with an unknown API key is refused with a Bearer challenge",
        "Only the exact API key authenticates, whatever the case of the Bearer scheme",
    },
    "failed-deliveries-not-audited": {
        "A delivery the receiver refuses is answered 502 and audited as an error",
        "An execute's audit record is on file, pending, before its webhook leaves",
    },
    "refused-delivery-audited-ok": {
        "A delivery the receiver refuses for good with a 4xx is answered 502 and audited as an error"
    },
    "failed-execute-without-ratelimit-headers": {
        "A delivery the receiver refuses is answered 502 and audited as an error",
        "A delivery the receiver refuses for good with a 4xx is answered 502 and audited as an error",
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
    # gate/proof/defects_api.py: the exact key, the listing, the record before the webhook
    "key-matched-by-its-prefix": {
        "Only the exact API key authenticates, whatever the case of the Bearer scheme"
    },
    "bearer-scheme-case-sensitive": {
        "Only the exact API key authenticates, whatever the case of the Bearer scheme"
    },
    "audit-lists-oldest-first": {
        "The audit log lists newest first, and its cursor pages through every record once"
    },
    "audit-cursor-repeats-a-row": {
        "The audit log lists newest first, and its cursor pages through every record once"
    },
    "audit-limit-clamped": {"The audit log takes a limit from 1 to 500, and refuses 0 and 501"},
    "audit-time-offset-dropped": {
        "Each audit filter narrows the records, and a date-time without an offset is read as UTC"
    },
    "audit-time-without-offset-refused": {
        "Each audit filter narrows the records, and a date-time without an offset is read as UTC"
    },
    "audit-action-filter-ignored": {
        "Each audit filter narrows the records, and a date-time without an offset is read as UTC"
    },
    "audit-row-written-after-delivery": {
        "An execute's audit record is on file, pending, before its webhook leaves",
        "With the audit database down, execute is refused and no webhook is sent",
    },
}


def test_every_audit_defect_has_a_catching_scenario() -> None:
    proof.assert_covers("audit", CATCHES)


@pytest.mark.parametrize("defect", sorted(CATCHES))
def test_the_audit_feature_fails_against(defect: str, tmp_path: Path) -> None:
    proof.prove(FEATURE, tmp_path / "results", defect, CATCHES[defect])


def test_the_audit_feature_passes_against_the_clean_stack(tmp_path: Path) -> None:
    proof.assert_clean(proof.run_feature(FEATURE, tmp_path / "results"), CATCHES)
