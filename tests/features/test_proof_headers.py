"""Proof that the @headers scenarios can fail: each header defect of gate/proof/catalogue.py is caught.

Each test runs features/test_headers.py in a subprocess against a reference stack started with one
deliberate defect, and requires pytest to exit 1 with exactly the scenarios of :data:`CATCHES` failed
(and every other scenario passed: a defect must not hide behind a skip). A clean run must pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.features import proof

URL_ONLY = "Responses that need nothing but the URL carry the configured security headers"
DEVELOPER = "Refusals of a developer's requests carry the configured security headers"
RATE_LIMITED = "A rate-limited execute carries the configured security headers"
SERVER_ERROR = "An unhandled server error carries the configured security headers"
POLICY = "The security header policy is sound and grades at least A"
METHODS = (
    "Every method on every documented path and on an unknown one carries the configured security headers"
)
SHAPES = "CORS preflights, compressed responses and chunked uploads carry the configured security headers"
DEV_ENCODINGS = (
    "A developer's requests carry the configured security headers whatever the method and the body's encoding"
)
SEED_PROFILE = "A relay running the seed profile sends the seed's documented header values"
VARIED = {METHODS, SHAPES, DEV_ENCODINGS, SEED_PROFILE}
ALL = {URL_ONLY, DEVELOPER, RATE_LIMITED, SERVER_ERROR, POLICY, *VARIED}

# defect -> the scenarios that must fail with it (all the others must pass)
CATCHES: dict[str, set[str]] = {
    "headers-missing-on-500": {SERVER_ERROR},
    "headers-missing-on-429": {RATE_LIMITED},
    # the exact-value check on every status, and the HSTS criterion of the policy scenario
    "hsts-without-includesubdomains": ALL,
    "server-header-leak": {URL_ONLY, DEVELOPER, RATE_LIMITED, SERVER_ERROR, *VARIED},
    # the exact-value check on every status, and the CSP criterion of the policy scenario
    "csp-loosened-for-swagger-ui": ALL,
    # every scenario that sees a 2xx: the URL-only 200 and the varied ones
    "cache-control-sent-twice": {URL_ONLY, *VARIED},
    # gate/proof/defects_limits.py: what one recipe per status cannot see
    "security-headers-only-on-json": {METHODS},  # GET /metrics, text/plain
    "security-headers-skipped-for-head": {METHODS, DEV_ENCODINGS},
    "cors-preflight-without-security-headers": {SHAPES},
    "method-guard-405-without-security-headers": {METHODS, SHAPES, DEV_ENCODINGS},  # the recipe uses DELETE
    "headers-missing-on-400": {DEV_ENCODINGS},  # bodies that are not UTF-8 JSON
    "seed-profile-xss-protection-zero": {SEED_PROFILE},  # the reference stack runs strict
    "strict-profile-without-cross-origin-headers": {
        URL_ONLY,
        DEVELOPER,
        RATE_LIMITED,
        SERVER_ERROR,
        METHODS,
        SHAPES,
        DEV_ENCODINGS,
    },
    "referrer-policy-browser-default": ALL - {POLICY},  # a safe policy: the grade does not mind
}

pytestmark = pytest.mark.stack


def run_feature(tmp: Path, request: pytest.FixtureRequest, defect: str | None = None) -> proof.ProofRun:
    """Run the feature as CI would, on this session's backend."""
    backend = request.config.getoption("--backend")
    return proof.run_feature("test_headers.py", tmp, "--backend", backend, defect=defect)


def test_every_header_defect_has_a_catching_scenario() -> None:
    proof.assert_covers("headers", CATCHES)


@pytest.mark.parametrize("defect", sorted(CATCHES))
def test_the_defect_fails_the_feature(defect: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    backend = request.config.getoption("--backend")
    proof.prove("test_headers.py", tmp_path, defect, CATCHES[defect], "--backend", backend, scenarios=ALL)


def test_the_clean_stack_passes(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    proof.assert_clean(run_feature(tmp_path, request), CATCHES, scenarios=ALL)
