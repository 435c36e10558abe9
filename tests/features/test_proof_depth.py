"""The proof modules' selection (tests/features/proof.py): at the focused depth a defect runs only the
scenarios named to catch it, addressed by node id -- so the ids must be the ones pytest-bdd collects."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.features import proof


def test_every_scenario_maps_to_a_node_id_pytest_collects() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "features"],
        cwd=proof.ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    collected = {line.split("[")[0] for line in out.splitlines() if "::" in line}
    ids = proof.scenario_nodeids()
    assert len(ids) == len(collected), "two scenarios share a title, or a title was not found"
    assert set(ids.values()) == collected


def test_the_depth_is_focused_unless_asked_and_a_typo_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(proof.DEPTH_ENV, raising=False)
    assert proof.depth() == "focused"
    monkeypatch.setenv(proof.DEPTH_ENV, "full")
    assert proof.depth() == "full"
    monkeypatch.setenv(proof.DEPTH_ENV, "fulll")
    with pytest.raises(ValueError, match="use one of focused, full"):
        proof.depth()
