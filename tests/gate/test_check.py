"""``relay-gate check`` end to end: results layout, exit codes, targets given by URL + TOML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.stack.procs import free_port
from gate.stack.reference import Stack, StackConfig

pytestmark = pytest.mark.stack


def check(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate.cli", "check", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def staging() -> Iterator[Stack]:
    """A running stack the check treats as an external deployment (no control over it)."""
    with Stack(StackConfig(replicas=1)) as s:
        yield s


def _config(tmp_path: Path, stack: Stack, *, with_admin: bool = True) -> tuple[Path, dict[str, str]]:
    env = {"STG_DEV_KEY": stack.key("dev").key, "STG_ADMIN_KEY": stack.key("admin").key}
    cfg = tmp_path / "staging.toml"
    cfg.write_text(
        f"""
[target]
name = "staging"

[credentials]
dev = {{ env = "STG_DEV_KEY", workspace = "default" }}
{'admin = { env = "STG_ADMIN_KEY", workspace = "default" }' if with_admin else ""}

[rate_limit]
limit = {stack.config.rate_limit}
window_s = {stack.config.window_s}

[headers]
profile = "strict"
"""
    )
    return cfg, env


def test_reference_stack_smoke_writes_the_results_layout(tmp_path: Path) -> None:
    results = tmp_path / "run"
    proc = check("-m", "smoke", "--results", str(results))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Post-deploy smoke: 1 passed, 0 failed, 0 skipped" in proc.stdout
    for rel in ("run.json", "features/summary.json", "features/cucumber.json", "features/junit.xml"):
        assert (results / rel).is_file(), rel
    run = json.loads((results / "run.json").read_text())
    assert run["schema"] == "relay-gate/run@1" and run["exit_code"] == 0
    assert run["git"]["commit"] and run["totals"]["passed"] == 1
    (scenario,) = (results / "features" / "scenarios").glob("*.json")
    doc = json.loads(scenario.read_text())
    assert doc["schema"] == "relay-gate/scenario@1" and doc["outcome"] == "passed"
    assert doc["exchanges"] and all(
        "[REDACTED]" in dict(e["request_headers"]).get("authorization", "[REDACTED]")
        for e in doc["exchanges"]
    )


def test_external_target_by_url_and_config(tmp_path: Path, staging: Stack) -> None:
    cfg, env = _config(tmp_path, staging)
    results = tmp_path / "run"
    proc = check(
        "--target-url",
        staging.base_url,
        "--target-config",
        str(cfg),
        "-m",
        "smoke or headers",
        "--results",
        str(results),
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((results / "features" / "summary.json").read_text())
    outcomes = {s["scenario"]: s for f in summary["features"] for s in f["scenarios"]}
    fault = [s for name, s in outcomes.items() if "unhandled server error" in name]
    assert fault and fault[0]["outcome"] == "skipped" and "unhandled 500" in fault[0]["reason"]
    assert fault[0]["category"] == "not_applicable"  # decided where the skip was raised
    texts = "".join(p.read_text() for p in results.rglob("*") if p.is_file())
    for secret in staging.secret_values():
        assert secret not in texts, "a secret reached the results"
    assert summary["target"]["name"] == "staging" and not summary["target"]["controllable"]


def test_missing_credentials_are_not_a_pass(tmp_path: Path, staging: Stack) -> None:
    cfg, env = _config(tmp_path, staging, with_admin=False)
    proc = check(
        "--target-url",
        staging.base_url,
        "--target-config",
        str(cfg),
        "-m",
        "smoke",
        "--results",
        str(tmp_path / "run"),
        env=env,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "SKIPPED" in proc.stdout and "admin key" in proc.stdout
    assert "INCOMPLETE" in proc.stdout and "missing config" in proc.stdout
    summary = json.loads((tmp_path / "run" / "features" / "summary.json").read_text())
    skipped = [s for f in summary["features"] for s in f["scenarios"] if s["outcome"] == "skipped"]
    assert skipped and {s["category"] for s in skipped} == {"missing_config"}


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["--target-url", f"http://127.0.0.1:{free_port()}"], 5, "unreachable"),
        (["--target-url", "ftp://example.com"], 2, "not an http(s) URL"),
        (["--target-config", "/nonexistent/staging.toml"], 2, "does not exist"),
        (["-m", "smoke and headers"], 2, "no scenario matched"),
        (["-m", "no_such_marker_anywhere"], 2, "refused the selection"),
    ],
)
def test_check_exit_codes(tmp_path: Path, argv: list[str], code: int, needle: str) -> None:
    proc = check(*argv, "--results", str(tmp_path / "run"))
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert needle in proc.stderr


def test_a_quota_plan_that_cannot_fit_stops_before_any_scenario(tmp_path: Path, staging: Stack) -> None:
    """A window of 60 s to wait for with max_wait_s = 5: exit 2 with the numbers, nothing sent."""
    cfg, env = _config(tmp_path, staging)
    cfg.write_text(
        cfg.read_text().replace(f"window_s = {staging.config.window_s}", "window_s = 60\nmax_wait_s = 5")
    )
    results = tmp_path / "run"
    proc = check(
        "--target-url", staging.base_url, "--target-config", str(cfg), "--results", str(results), env=env
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "quota plan cannot fit" in proc.stderr and "raise it to 60" in proc.stderr
    assert not (results / "features" / "scenarios").exists(), "a scenario ran although the plan was refused"
