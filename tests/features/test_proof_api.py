"""Proof that the API-contract criteria can fail: each api-area defect of gate/proof/defects_api.py, switched
into the reference stack, makes exactly the scenarios named below fail (every other scenario of
features/api.feature passes) and pytest exit 1; the clean stack passes them all. The defects marked
needs-control in the catalogue stop PostgreSQL, kill Redis or start a replica of their own, which the
reference stack (embedded backend) allows.

Each run is a subprocess (``pytest features/test_api.py --defect NAME --results DIR``), the same way CI
runs the gate, and the verdict is read from DIR/features/summary.json.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.proof import defects_api as api
from tests.features import proof

pytestmark = pytest.mark.stack

FEATURE = "test_api.py"

SCENARIOS = {
    api.LIVENESS, api.DEPENDENCIES, api.CATALOGUE, api.OPENAPI, api.PREVIEW_BYTES, api.PREVIEW_FREE,
    api.REDEEM, api.EXPIRY, api.REPLICAS, api.EXECUTE, api.WORKSPACE, api.ALLOWLIST, api.UNKNOWN,
    api.PROBLEMS, api.ALLOW, api.BODY_LIMIT, api.REQUEST_IDS, api.RATE_LIMITED, api.METRICS,
}  # fmt: skip

# defect -> the scenario(s) that must fail against it (and no other)
CATCHES: dict[str, set[str]] = {
    "health-head-not-routed": {api.LIVENESS, api.ALLOW, api.OPENAPI},
    "liveness-checks-the-database": {api.DEPENDENCIES},
    "readiness-requires-redis": {api.DEPENDENCIES},
    "readiness-ignores-the-database": {api.DEPENDENCIES},
    "catalogue-without-parameter-schemas": {api.CATALOGUE},
    "swagger-ui-left-on": {api.OPENAPI},
    "openapi-hides-the-audit-endpoint": {api.OPENAPI},
    "preview-body-ascii-escaped": {api.PREVIEW_BYTES},
    "preview-host-without-port": {api.PREVIEW_BYTES},
    "preview-sends-a-test-webhook": {api.PREVIEW_FREE},
    "preview-writes-an-audit-record": {api.PREVIEW_FREE},
    "preview-spends-execute-quota": {api.PREVIEW_FREE},
    "preview-id-mac-not-checked": {api.REDEEM},
    "preview-id-any-workspace": {api.REDEEM},
    "preview-id-single-use": {api.REDEEM},
    "preview-id-never-expires": {api.EXPIRY},
    "preview-key-per-replica": {api.REPLICAS},
    "execute-reports-another-webhook-id": {api.EXECUTE},
    "workspace-from-query-parameter": {api.WORKSPACE},
    "allowlist-ignores-the-port": {api.ALLOWLIST},
    "destination-userinfo-stripped": {api.ALLOWLIST},
    "destination-controls-stripped": {api.ALLOWLIST},
    "unknown-fields-dropped": {api.UNKNOWN},
    "http-errors-in-fastapi-format": {api.PROBLEMS, api.ALLOW},
    "validation-errors-in-fastapi-format": {api.PROBLEMS},
    "problems-without-request-id": {api.PROBLEMS},
    "debug-body-log-500s-on-non-utf8": {api.PROBLEMS},
    "allow-of-the-first-route-only": {api.ALLOW},
    "body-limit-trusts-content-length": {api.BODY_LIMIT},
    "body-limit-refuses-exactly-the-limit": {api.BODY_LIMIT},
    "body-limit-counted-per-message": {api.BODY_LIMIT},
    "request-id-taken-from-the-client": {api.REQUEST_IDS},
    "request-id-only-on-success": {api.REQUEST_IDS, api.PROBLEMS},
    "rate-limited-executes-audited": {api.RATE_LIMITED},
    "rate-limit-breaches-not-counted": {api.RATE_LIMITED},
    "metrics-route-label-is-the-path": {api.METRICS},
    "metrics-method-label-is-the-method": {api.METRICS},
    "metrics-default-buckets": {api.METRICS},
}


def test_every_api_defect_has_a_catching_scenario() -> None:
    proof.assert_covers("api", CATCHES)


@pytest.mark.parametrize("defect", sorted(CATCHES))
def test_the_api_feature_fails_against(defect: str, tmp_path: Path) -> None:
    proof.prove(FEATURE, tmp_path / "results", defect, CATCHES[defect], scenarios=SCENARIOS)


def test_the_api_feature_passes_against_the_clean_stack(tmp_path: Path) -> None:
    proof.assert_clean(proof.run_feature(FEATURE, tmp_path / "results"), CATCHES, scenarios=SCENARIOS)
