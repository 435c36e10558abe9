"""Proof that features/rate_limit.feature can fail: each rate-limit defect of gate/defects.py is caught.

Every test runs the feature in a subprocess against a stack started with one deliberate defect
(``--defect NAME``), only the scenarios that matter for it (``-k``), and requires pytest to exit 1
with exactly those scenarios reported as failed in results/features/summary.json. One more run,
without a defect, requires the whole feature to pass: a gate that always fails proves nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_bdd.scenario import make_python_name

from gate.defects import DEFECTS
from tests.features import proof

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]

SMOKE = "A burst past the quota is refused with 429 and rate-limit guidance (seed smoke)"
EXACT = "Exactly the quota is admitted in one window, and the rate-limit headers count down and agree"
SPOOF = "The client cannot choose the workspace an execute is counted against"
KEYS = "Rate-limit keys in Redis name only configured workspaces and always expire"
PARALLEL = "Parallel executes spread over every replica admit exactly the quota"
HUNG = "A hung Redis does not stall executes, and the limiter returns to Redis once it answers"
KILLED = "With Redis killed executes keep succeeding on the in-process fallback, and Redis takes over again"

# defect -> the scenarios that must fail against it (and are the only ones run for it)
CATCHES: dict[str, tuple[str, ...]] = {
    "limiter-keyed-by-client-header": (SPOOF, KEYS),
    "off-by-one-admission": (EXACT, PARALLEL),
    "retry-after-zero": (SMOKE, EXACT),
    "remaining-negative": (SMOKE, EXACT),
    "fallback-fails-closed": (KILLED, HUNG),
    "no-redis-timeout": (HUNG,),
    "limiter-incr-expire-not-atomic": (KEYS,),
    "limiter-not-shared-across-replicas": (PARALLEL,),
}


def _test_name(scenario: str) -> str:
    """pytest-bdd's test function name for a scenario (what ``-k`` matches)."""
    return "test_" + make_python_name(scenario)


def _run(tmp: Path, *args: str) -> tuple[int, dict[str, str], str]:
    run = proof.run_feature("test_rate_limit.py", tmp, *args)
    return run.code, run.outcomes, run.output


def test_every_rate_limit_defect_has_a_catching_scenario() -> None:
    ours = {name for name, d in DEFECTS.items() if d.area == "rate_limit"}
    assert ours == set(CATCHES), f"rate-limit defects without a proof here: {sorted(ours - set(CATCHES))}"


def test_scenario_names_match_the_feature() -> None:
    text = (ROOT / "features" / "rate_limit.feature").read_text()
    names = {
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("Scenario:")
    }
    missing = {s for scenarios in CATCHES.values() for s in scenarios} - names
    assert not missing, f"CATCHES names scenarios the feature does not have: {missing}"


@pytest.mark.parametrize("defect", sorted(CATCHES))
def test_the_feature_catches(defect: str, tmp_path: Path) -> None:
    expected = CATCHES[defect]
    selection = " or ".join(_test_name(s) for s in expected)
    code, outcomes, output = _run(tmp_path, "--defect", defect, "-k", selection)
    failed = {s for s, o in outcomes.items() if o == "failed"}
    assert code == 1, f"--defect {defect}: pytest exited {code}, expected 1\n{output}"
    assert set(expected) <= failed, (
        f"--defect {defect}: expected {sorted(expected)} to fail; outcomes {outcomes}\n{output}"
    )


def test_the_feature_passes_against_the_clean_stack(tmp_path: Path) -> None:
    code, outcomes, output = _run(tmp_path)
    assert code == 0, f"clean run: pytest exited {code}; outcomes {outcomes}\n{output}"
    assert outcomes and set(outcomes.values()) == {"passed"}, f"clean run outcomes: {outcomes}"
