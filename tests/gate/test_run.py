"""``relay-gate run``: one command, every step, one verdict — and no secret in what it leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from gate.drill.backup import take_backup
from gate.stack.reference import Stack, StackConfig

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


def _deployment(tmp_path: Path, staging: Stack, *, receiver_url: str) -> tuple[Path, dict[str, str]]:
    """A target config for ``staging`` as a deployment: credentials, signing secret and database URL
    in environment variables (returned), as a real deployment's would be, and the folder its scheduled
    backup writes (one backup in it), which the drill restores."""
    take_backup(str(staging.database_url), tmp_path / "staging-backups")
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
limit = {staging.config.rate_limit}
window_s = {staging.config.window_s}
[signing]
secret_env = "STG_SIGNING"
[deliveries]
receiver_url = "{receiver_url}"
token_env = "STG_RECEIVER_TOKEN"
[database]
url_env = "STG_DB"
[backups]
dir = "staging-backups"
"""
    )
    return config, env


def _secret_counts(secrets: list[str], folders: list[Path], output: str, root: Path) -> dict[str, int]:
    """Occurrences of each secret (shown by its first characters) per file, and in the output."""
    counts: dict[str, int] = {}
    for s in secrets:
        needle = s.encode()
        for path in [p for folder in folders for p in folder.rglob("*") if p.is_file()]:
            n = path.read_bytes().count(needle)
            if n:
                counts[f"{path.relative_to(root)}: {s[:3]}…"] = n
        if output.count(s):
            counts[f"stdout/stderr: {s[:3]}…"] = output.count(s)
    return counts


def test_the_whole_gate_leaves_no_secret_in_results_or_evidence(tmp_path: Path) -> None:
    """Every step against a deployment whose secrets we know: none may appear in any file written."""
    with Stack(StackConfig(replicas=1, rate_limit=20, window_s=5)) as staging:
        secrets = staging.secret_values()
        config, env = _deployment(tmp_path, staging, receiver_url=str(staging.receiver_url))
        results, out = tmp_path / "results", tmp_path / "pack"
        proc = run("--target-url", staging.base_url, "--target-config", str(config), "--load-duration", "10s",
                   "--load-rate", "20", "--results", str(results), "--out", str(out), env=env)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert "== evidence: exit" in output, output[-4000:]
    assert (out / "index.html").is_file()
    assert (results / "drill" / "drill.json").is_file() and (results / "load" / "load.json").is_file()
    counts = _secret_counts(secrets, [results, out], output, tmp_path)
    assert not counts, f"{sum(counts.values())} occurrence(s) of secrets: {counts}"


# a receiver token shorter than the 6 characters the redactor once ignored; '!' and '~' never occur in
# the random tokens and base64 blobs of a results folder, so a hit is a leak, not a coincidence
SHORT_PASSWORD = "k!7~"  # shorter than any key: a redactor with a minimum length would let it through


def _short_password_url(staging: Stack) -> str:
    """A database URL of ``staging`` whose role has a 4-character password (what the drill connects
    with; the Target's database URL is a secret carrier like any other)."""
    assert staging.database_url is not None
    with psycopg.connect(staging.database_url, connect_timeout=5, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE gate_reader LOGIN SUPERUSER PASSWORD '{SHORT_PASSWORD}'")
    parts = urlsplit(staging.database_url)
    netloc = f"gate_reader:{quote(SHORT_PASSWORD, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def test_a_failing_gate_leaves_no_secret_either(tmp_path: Path) -> None:
    """Failures print the most (assertion reprs, locals, the Target with its URLs): the same scan on a
    deployment with a deliberate signing defect and a database URL whose password is 4 characters
    long, given in the config's environment. With the Redactor switched off, secrets show in the
    terminal, junit.xml, cucumber.json and the pack's copies of both."""
    defect = StackConfig(replicas=1, rate_limit=1000, window_s=5, defect="signature-over-reserialised-json")
    with Stack(defect) as staging:
        secrets = [*staging.secret_values(), SHORT_PASSWORD]
        config, env = _deployment(tmp_path, staging, receiver_url=str(staging.receiver_url))
        env["STG_DB"] = _short_password_url(staging)
        # what a developer sets to debug a red run: every local of the failing frames, reprs in full
        env["PYTEST_ADDOPTS"] = "--showlocals -vvvv"
        results, out = tmp_path / "results", tmp_path / "pack"
        proc = run("--target-url", staging.base_url, "--target-config", str(config), "-m", "signing or smoke",
                   "--skip", "load", "--skip", "faults", "--results", str(results), "--out", str(out),
                   env=env)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-4000:]
    assert "AssertionError" in output and "FAILED" in output, "the failures must have printed their reprs"
    assert "X-Signature is the HMAC-SHA256 of the exact bytes received" in output
    assert (out / "index.html").is_file() and (results / "features" / "junit.xml").is_file()
    assert (results / "drill" / "drill.json").is_file()
    counts = _secret_counts(secrets, [results, out], output, tmp_path)
    assert not counts, f"{sum(counts.values())} occurrence(s) of secrets: {counts}"
