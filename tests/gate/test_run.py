"""``relay-gate run``: one command, every step, one verdict — and no secret in what it leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gate.stack import Stack, StackConfig

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parents[2]


def run(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate.cli", "run", *argv],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_a_skipped_step_is_not_run_and_not_a_pass(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "pack"
    proc = run(
        "-m",
        "smoke",
        "--skip",
        "drill",
        "--skip",
        "load",
        "--skip",
        "faults",
        "--results",
        str(results),
        "--out",
        str(out),
    )
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "features       0" in proc.stdout and "drill          4" in proc.stdout
    assert (out / "index.html").is_file() and (out / "manifest.json").is_file()
    run_doc = json.loads((results / "run.json").read_text())
    steps = [s["name"] for s in run_doc["steps"]]
    assert run_doc["command"] == "run" and steps == ["features", "drill", "load", "faults"]
    index = (out / "INDEX.md").read_text()
    assert "NOT RUN" in index
    assert subprocess.run([sys.executable, "-m", "gate.cli", "evidence", "verify", str(out)],
                          capture_output=True, cwd=ROOT).returncode == 0  # fmt: skip


def test_the_whole_gate_leaves_no_secret_in_results_or_evidence(tmp_path: Path) -> None:
    """Every step against a deployment whose secrets we know: none may appear in any file written."""
    with Stack(StackConfig(replicas=1, rate_limit=1000, window_s=60)) as staging:
        secrets = staging.secret_values()
        env = {
            "STG_ADMIN": staging.key("admin").key,
            "STG_DEV": staging.key("dev").key,
            "STG_DEV_B": staging.key("dev-ws-b").key,
            "STG_SIGNING": staging.signing_secret,
            "STG_DB": str(staging.database_url),
            "STG_RECEIVER_TOKEN": str(staging.receiver_token),
            "RELAY_API_KEYS": ",".join(k.key for k in staging.keys if k.role == "dev"),
        }
        config = tmp_path / "staging.toml"
        config.write_text(
            f"""
[target]
name = "staging"
[credentials]
admin = {{ env = "STG_ADMIN", workspace = "default" }}
dev = {{ env = "STG_DEV", workspace = "default" }}
dev-b = {{ env = "STG_DEV_B", workspace = "ws-b" }}
[rate_limit]
limit = 1000
window_s = 60
max_wait_s = 1
[signing]
secret_env = "STG_SIGNING"
[deliveries]
receiver_url = "{staging.receiver_url}"
token_env = "STG_RECEIVER_TOKEN"
[database]
url_env = "STG_DB"
"""
        )
        results, out = tmp_path / "results", tmp_path / "pack"
        proc = run("--target-url", staging.base_url, "--target-config", str(config), "--load-duration", "10s",
                   "--load-rate", "40", "--results", str(results), "--out", str(out), env=env)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert "== evidence: exit" in output, output[-4000:]
    assert (out / "index.html").is_file()
    assert (results / "drill" / "drill.json").is_file() and (results / "load" / "load.json").is_file()
    leaked = []
    for path in [*results.rglob("*"), *out.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            leaked += [f"{path.relative_to(tmp_path)}: {s[:6]}…" for s in secrets if s.encode() in data]
    assert not leaked, "secrets reached files:\n" + "\n".join(leaked)
    for s in secrets:
        assert s not in output, "a secret reached the terminal"
