"""``relay-gate load --master`` / ``--worker`` as a user types them: options that do not go together
are exit 2 before anything starts, and a master nobody joins ends at its join timeout as INVALID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gate.errors import EXIT_INVALID, EXIT_USAGE
from gate.stack.procs import free_port
from tests.load import fakeserver

KEY = "load-test-key-0123456789"


def gate_load(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate.cli", "load", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RELAY_API_KEY": "", "RELAY_API_KEYS": "", **(env or {})},
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--master"], "--master needs --expect-workers N"),
        (["--expect-workers", "2"], "--expect-workers goes with --master"),
        (["--master", "--expect-workers", "2", "--workers", "2"], "choose one"),
        (["--master", "--expect-workers", "2", "--join-timeout", "0"], "--join-timeout must be more than 0"),
        (["--master", "--expect-workers", "2", "--master-bind-port", "70000"], "--master-bind-port"),
        (["--master", "--expect-workers", "2"], "--master needs --target-url"),
        (
            ["--master", "--expect-workers", "20", "--rate", "50", "--target-url", "http://127.0.0.1:9"],
            "10 users cannot be spread over 20 workers",
        ),
        (["--master", "--worker"], "not allowed with argument"),
        (["--worker"], "--worker needs --master-host"),
        (["--worker", "--master-host", "127.0.0.1"], "no API key"),
    ],
)
def test_options_that_do_not_go_together_are_exit_2(argv: list[str], message: str) -> None:
    proc = gate_load(*argv)
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    assert message in proc.stderr


def test_a_master_nobody_joins_is_invalid_at_its_join_timeout(tmp_path: Path) -> None:
    results = tmp_path / "results"
    with fakeserver.answering() as url:
        proc = gate_load(
            "--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(free_port()), "--join-timeout", "2", "--target-url", url,
            "--rate", "20", "--duration", "30s", "--results", str(results),
            env={"RELAY_API_KEY": KEY},
        )  # fmt: skip
    assert proc.returncode == EXIT_INVALID, proc.stdout + proc.stderr
    assert "waiting 2 s for 2 workers" in proc.stdout
    doc = json.loads((results / "load" / "load.json").read_text())
    assert doc["facts"]["workers"]["timed_out"] and doc["facts"]["workers"]["joined"] == []
    assert "2 of 2 expected workers never joined within the 2 s join timeout" in proc.stdout


def test_a_worker_given_a_target_config_without_a_set_key_says_which_variables(tmp_path: Path) -> None:
    cfg = tmp_path / "target.toml"
    cfg.write_text(
        '[target]\nbase_url = "http://127.0.0.1:9"\n[credentials]\ndev = { env = "LT_UNSET_KEY" }\n'
    )
    proc = gate_load(
        "--worker", "--master-host", "127.0.0.1", "--target-config", str(cfg), env={"LT_UNSET_KEY": ""}
    )
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    assert f"--target-config {cfg} gives no API key" in proc.stderr
