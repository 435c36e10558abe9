"""Running a feature in a child pytest, as `relay-gate check` does, to prove what it catches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240


@dataclass(frozen=True)
class FeatureRun:
    code: int
    scenarios: dict[str, dict[str, Any]]  # by scenario name: outcome, reason, ...
    output: str

    def outcome(self, scenario: str) -> str:
        return str(self.scenarios[scenario]["outcome"])

    @property
    def outcomes(self) -> dict[str, str]:
        return {name: str(s["outcome"]) for name, s in self.scenarios.items()}

    def failed(self) -> set[str]:
        return {name for name, s in self.scenarios.items() if s["outcome"] == "failed"}


def run_feature(
    feature: str,
    results: Path,
    *args: str,
    defect: str | None = None,
    env: dict[str, str] | None = None,
) -> FeatureRun:
    """Run ``features/<feature>`` in a child pytest (a fresh stack, with ``defect`` when given)."""
    argv = [
        sys.executable, "-m", "pytest", f"features/{feature}",
        # -c pins the config: a --results folder outside the repo would otherwise move pytest's
        # search for it (option values count as paths when pytest looks for its config file)
        "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
        "--results", str(results), "-q", "-p", "no:cacheprovider", *args,
    ]  # fmt: skip
    if defect:
        argv += ["--defect", defect]
    environ = {k: v for k, v in os.environ.items() if k not in ("RELAY_GATE_DEFECT", "PYTEST_ADDOPTS")}
    environ.update(env or {})
    proc = subprocess.run(argv, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    output = proc.stdout[-4000:] + proc.stderr[-2000:]
    summary_path = results / "features" / "summary.json"
    assert summary_path.exists(), f"no summary.json (exit {proc.returncode}):\n{output}"
    summary = json.loads(summary_path.read_text())
    scenarios = {s["scenario"]: s for f in summary["features"] for s in f["scenarios"]}
    return FeatureRun(proc.returncode, scenarios, output)
