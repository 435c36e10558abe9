"""Proof that the signing and delivery criteria can fail: each signing defect of gate/proof/catalogue.py and
gate/proof/defects_webhooks.py, switched into the reference stack, makes the scenarios named below fail and
pytest exit 1; the clean stack passes them.

Each run is a subprocess (``pytest features/test_signing.py features/test_delivery.py --defect NAME
--results DIR``), the same way CI runs the gate, and the verdict is read from DIR/features/summary.json.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.stack.reference import Stack, StackConfig
from tests.features import proof

pytestmark = pytest.mark.stack

FEATURE = "test_signing.py"
ALSO = ("features/test_delivery.py",)  # the delivery scenarios are of the signing area too

SIGNED = "Every delivery is signed and names the request that caused it"
HMAC = "X-Signature is the HMAC-SHA256 of the exact bytes received"
STANDARD = "The Standard Webhooks signature covers id, timestamp and body and verifies independently"
REQUEST_IDS = "Each delivery carries the request id and webhook id of its own execute"
ROTATING = "A relay in the middle of a rotation signs each delivery with every secret, primary first"
RETRY = "Every retry is the same event, with a fresh timestamp and fresh signatures"
STATUS = "A delivery is retried after a 5xx, a 408 or a 429, and ends at once on any other 4xx"
REDIRECT = "A redirect fails the delivery and is not followed, and any 2xx ends it"
RETRY_AFTER = "Retry-After on a 429 or a 503 is waited for, up to 30 s"
TIMEOUT = "An attempt is cut off at WEBHOOK_TIMEOUT_S however the receiver stalls, and retried"
EXHAUSTED = "A delivery the receiver keeps failing ends after WEBHOOK_MAX_ATTEMPTS attempts, answered 502"
BACKOFF = "Retries back off exponentially with full jitter, at a WEBHOOK_MAX_ATTEMPTS of 4"
REFUSED = "A refused connection is retried up to WEBHOOK_MAX_ATTEMPTS attempts, then answered 502"


# defect -> the scenario(s) that must fail against it (others may fail too: the rotating relay and the
# retry scenarios also see most signature defects)
CATCHES: dict[str, set[str]] = {
    "signature-over-reserialised-json": {HMAC},
    "request-id-reused": {REQUEST_IDS},
    "webhook-timestamp-not-signed": {STANDARD},
    "unsigned-deliveries": {SIGNED},
    "webhook-timestamp-in-milliseconds": {STANDARD},
    "rotation-signs-with-one-secret": {ROTATING},
    "redirects-followed": {REDIRECT},
    "client-errors-retried": {STATUS},
    "only-5xx-retried": {STATUS},
    "501-not-retried": {STATUS},
    "only-200-delivered": {REDIRECT},
    "connection-errors-not-retried": {RETRY, REFUSED},
    "connect-errors-not-retried": {REFUSED},
    "retry-after-ignored": {RETRY_AFTER},
    "retry-after-http-date-ignored": {RETRY_AFTER},
    "retry-after-unbounded": {RETRY_AFTER},
    "backoff-without-jitter": {BACKOFF},
    "retries-without-backoff": {BACKOFF},
    "backoff-equal-jitter": {BACKOFF},
    "max-attempts-counts-retries": {EXHAUSTED, REFUSED},
    "no-whole-attempt-timeout": {TIMEOUT},
    "attempt-timeout-connect-only": {TIMEOUT},
    "retry-gets-a-new-webhook-id": {RETRY},
    "retry-gets-a-new-request-id": {RETRY},
    "retry-keeps-the-first-timestamp": {RETRY},
    "retry-body-rebuilt-from-json": {RETRY},
    "hex-secret-hex-decoded": {HMAC, STANDARD},
    "whsec-prefix-kept": {ROTATING},
    "x-signature-with-the-last-secret": {ROTATING},
    "signature-entries-comma-separated": {ROTATING},
    "content-type-missing": {SIGNED},
    "webhook-id-derived-from-the-body": {REQUEST_IDS},
}


def test_every_signing_defect_has_a_catching_scenario() -> None:
    proof.assert_covers("signing", CATCHES)


@pytest.mark.parametrize("defect", sorted(CATCHES))
def test_the_signing_feature_fails_against(defect: str, tmp_path: Path) -> None:
    proof.prove(FEATURE, tmp_path / "results", defect, CATCHES[defect], *ALSO)


def test_the_signing_feature_passes_against_the_clean_stack(tmp_path: Path) -> None:
    proof.assert_clean(proof.run_feature(FEATURE, tmp_path / "results", *ALSO), CATCHES)


def test_unsigned_deliveries_fail_even_when_the_target_config_gives_no_secret(tmp_path: Path) -> None:
    """Without [signing].secret_env the HMAC scenarios skip, but an unsigned delivery still fails the gate."""
    config = tmp_path / "target.toml"
    with Stack(StackConfig(replicas=1, defect="unsigned-deliveries", extra_workspaces=())) as stack:
        config.write_text(
            "[credentials]\n"
            'dev = { env = "PROOF_DEV_KEY", workspace = "default" }\n'
            "[deliveries]\n"
            f'receiver_url = "{stack.receiver_url}"\n'
            'token_env = "PROOF_RECEIVER_TOKEN"\n'
        )
        run = proof.run_feature(
            FEATURE,
            tmp_path / "results",
            "--target-url",
            stack.base_url,
            "--target-config",
            str(config),
            env={"PROOF_DEV_KEY": stack.key("dev").key, "PROOF_RECEIVER_TOKEN": str(stack.receiver_token)},
        )
    signed = run.scenarios[SIGNED]
    assert run.code == 1 and signed["outcome"] == "failed", f"exit {run.code}, {signed}\n{run.output}"
    recomputed = run.scenarios[HMAC]
    assert recomputed["outcome"] == "skipped" and "signing secret" in recomputed["reason"], recomputed
