"""Proof that features/rate_limit.feature can fail: each rate-limit defect of gate/proof/catalogue.py is
caught.

Every test runs the feature in a subprocess against a stack started with one deliberate defect
(``--defect NAME``), only the scenarios that matter for it (``-k``), and requires pytest to exit 1
with exactly those scenarios reported as failed in results/features/summary.json. One more run,
without a defect, requires the whole feature to pass: a gate that always fails proves nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.features import proof

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
FEATURE = "test_rate_limit.py"

SMOKE = "A burst past the quota is refused with 429 and rate-limit guidance (seed smoke)"
EXACT = "Exactly the quota is admitted in one window, and the rate-limit headers count down and agree"
IETF = "The IETF RateLimit and RateLimit-Policy fields agree with the X-RateLimit headers"
SPOOF = "The client cannot choose the workspace an execute is counted against"
ADMIN = "A workspace's admin key is counted against the same quota as its developer keys"
KEYS = "Rate-limit keys in Redis name only configured workspaces and always expire"
PARALLEL = "Parallel executes spread over every replica admit exactly the quota"
HUNG = "A hung Redis does not stall executes, and the limiter returns to Redis once it answers"
KILLED = "With Redis killed executes keep succeeding on the in-process fallback, and Redis takes over again"
DISABLED = "With RATE_LIMIT_ENABLED=false no execute is refused at any rate"
LONG = "Over a long window the rate-limit headers state the exact window end, quota and wait"
NO_TTL = "A rate-limit counter found without a TTL gets its expiry back from the next execute"
FALLBACK_BOUND = (
    "On the in-process fallback each replica limits on its own, "
    "N replicas admit at most N x quota, never a 5xx"
)
REPROBE = (
    "After a Redis failure a replica re-probes with its backoff capped at REDIS_REPROBE_MAX_S "
    "and returns to Redis"
)
DEFAULTS = (
    "A relay started without rate-limit settings allows 60 executes per 60 s per workspace "
    "on its in-process limiter"
)

# defect -> the scenarios that must fail against it (and are the only ones run for it)
CATCHES: dict[str, tuple[str, ...]] = {
    "limiter-keyed-by-client-header": (SPOOF, KEYS),
    "admin-key-not-rate-limited": (ADMIN,),
    "off-by-one-admission": (EXACT, PARALLEL, LONG, FALLBACK_BOUND),
    "retry-after-zero": (SMOKE, EXACT, IETF, LONG),
    "retry-after-fractional": (SMOKE, EXACT, LONG),
    "remaining-negative": (SMOKE, EXACT, LONG),
    "ratelimit-policy-unquoted": (IETF, LONG, DEFAULTS),
    "fallback-fails-closed": (KILLED, HUNG, FALLBACK_BOUND, REPROBE),
    "fallback-reset-on-the-monotonic-clock": (KILLED,),
    "no-redis-timeout": (HUNG,),
    "limiter-incr-expire-not-atomic": (KEYS, NO_TTL),
    # gate/proof/catalogue.py names every scenario that may fail against it (no window, no Redis); the
    # parallel burst always does, the scenarios that align a burst only when no probe lands late in a second
    "limiter-not-shared-across-replicas": (PARALLEL, LONG, NO_TTL, REPROBE),
    # gate/proof/defects_limits.py. Masked on the 3 s window (the catalogue also names the 3 s scenarios a
    # burst in the last second of its window makes fail): only the long window always sees them
    "retry-after-one-window": (LONG,),
    "retry-after-rounded-down": (LONG,),
    "ratelimit-t-is-the-window": (LONG,),
    "ratelimit-reset-as-delta": (LONG,),
    "ratelimit-headers-only-on-429": (LONG, SMOKE, EXACT, IETF, NO_TTL, DEFAULTS),
    "rate-limited-response-cacheable": (LONG, EXACT),
    "rate-limited-response-plain-text": (LONG, EXACT),
    "lua-script-without-ttl-repair": (NO_TTL,),
    "fallback-without-limit": (FALLBACK_BOUND, DEFAULTS),
    "reprobe-backoff-uncapped": (REPROBE,),
    "default-limit-not-the-seeds": (DEFAULTS,),
    "no-rate-limit-without-redis-url": (DEFAULTS,),
    "default-window-not-a-minute": (DEFAULTS,),
    "backend-gauge-not-wired": (KILLED, HUNG, FALLBACK_BOUND, REPROBE),
    "rate-limit-enabled-ignored": (DISABLED,),
}


def test_every_rate_limit_defect_has_a_catching_scenario() -> None:
    proof.assert_covers("rate_limit", CATCHES)


def test_scenario_names_match_the_feature() -> None:
    text = (ROOT / "features" / "rate_limit.feature").read_text()
    names = {
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("Scenario:")
    }
    missing = {s for scenarios in CATCHES.values() for s in scenarios} - names
    assert not missing, f"CATCHES names scenarios the feature does not have: {missing}"


@pytest.mark.parametrize("defect", sorted(CATCHES))
def test_the_feature_catches(defect: str, tmp_path: Path) -> None:
    proof.prove(FEATURE, tmp_path, defect, CATCHES[defect])


def test_the_feature_passes_against_the_clean_stack(tmp_path: Path) -> None:
    proof.assert_clean(proof.run_feature(FEATURE, tmp_path), CATCHES)
