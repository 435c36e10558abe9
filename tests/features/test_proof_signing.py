"""Proof that the signing criteria can fail: each signing defect of gate/defects.py, switched into the
reference stack, makes the scenarios named below fail and pytest exit 1; the clean stack passes them.

Each run is a subprocess (``pytest features/test_signing.py --defect NAME --results DIR``), the same
way CI runs the gate, and the verdict is read from DIR/features/summary.json.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.stack import Stack, StackConfig
from tests.features import proof

pytestmark = pytest.mark.stack

FEATURE = "test_signing.py"


# defect -> the scenario(s) that must fail against it (others may fail too: the verifier and rotation
# scenarios also see most of these defects)
CATCHES: dict[str, set[str]] = {
    "signature-over-reserialised-json": {"X-Signature is the HMAC-SHA256 of the exact bytes received"},
    "request-id-reused": {"Each delivery carries the request id of its own execute"},
    "webhook-timestamp-not-signed": {
        "The Standard Webhooks signature covers id, timestamp and body and verifies independently",
    },
    "unsigned-deliveries": {"Every delivery is signed and names the request that caused it"},
    "webhook-timestamp-in-milliseconds": {
        "The Standard Webhooks signature covers id, timestamp and body and verifies independently",
    },
    "rotation-signs-with-one-secret": {
        "A relay in the middle of a rotation signs each delivery with both secrets"
    },
}


def test_every_signing_defect_has_a_catching_scenario() -> None:
    proof.assert_covers("signing", CATCHES)


@pytest.mark.parametrize("defect", sorted(CATCHES))
def test_the_signing_feature_fails_against(defect: str, tmp_path: Path) -> None:
    run = proof.run_feature(FEATURE, tmp_path / "results", defect=defect)
    proof.assert_caught(run, defect, CATCHES[defect])


def test_the_signing_feature_passes_against_the_clean_stack(tmp_path: Path) -> None:
    proof.assert_clean(proof.run_feature(FEATURE, tmp_path / "results"), CATCHES)


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
    signed = run.scenarios["Every delivery is signed and names the request that caused it"]
    assert run.code == 1 and signed["outcome"] == "failed", f"exit {run.code}, {signed}\n{run.output}"
    recomputed = run.scenarios["X-Signature is the HMAC-SHA256 of the exact bytes received"]
    assert recomputed["outcome"] == "skipped" and "signing secret" in recomputed["reason"], recomputed
