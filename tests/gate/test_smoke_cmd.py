"""``relay-gate smoke``: the @smoke scenarios against a deployment, and the rollback on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.cli import main
from gate.commands import smoke_rollback as rollback_policy
from gate.commands.smoke import KEEP_BYTES, env_secrets, parse_command, run_rollback
from gate.errors import UsageError
from gate.stack.procs import free_port
from gate.stack.reference import Stack, StackConfig

PY = sys.executable


def smoke(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "gate.cli", "smoke", *argv],
        capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}, check=False,
    )  # fmt: skip


def _record(results: Path) -> dict:
    doc = json.loads((results / "smoke" / "rollback.json").read_text())
    assert doc["schema"] == "relay-gate/rollback@1"
    return doc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is gone for our purpose
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


# -- the rollback runner -----------------------------------------------------------------------------------


def test_rollback_records_exit_status_and_output() -> None:
    r = run_rollback([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(7)"],
                     timeout_s=60, env=os.environ)  # fmt: skip
    assert (r.exit_status, r.ok, r.timed_out, r.error) == (7, False, False, None)
    assert r.stdout == "out\n" and r.stderr == "err\n"
    assert run_rollback([PY, "-c", "pass"], timeout_s=60, env=os.environ).ok


def test_rollback_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = (
        # both processes block until killed (the Event is never set); the rollback timeout ends them
        "import subprocess, sys, threading\n"
        f"child = subprocess.Popen([{PY!r}, '-c', 'import threading; threading.Event().wait()'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "threading.Event().wait()\n"
    )
    r = run_rollback([PY, "-c", script], timeout_s=2, env=os.environ)
    assert r.timed_out and not r.ok and "killed" in str(r.error)
    assert r.stdout == "started\n"
    assert not _pid_alive(int(pidfile.read_text())), "the rollback's child outlived the timeout"


def test_rollback_that_cannot_start_is_recorded_not_raised() -> None:
    r = run_rollback(["relay-gate-no-such-platform-cli", "rollback"], timeout_s=5, env=os.environ)
    assert r.exit_status is None and not r.ok and "could not start" in str(r.error)


def test_rollback_output_keeps_the_end() -> None:
    r = run_rollback([PY, "-c", f"print('x' * {KEEP_BYTES * 2}); print('the error')"], timeout_s=60,
                     env=os.environ)  # fmt: skip
    assert r.stdout.startswith("[... ") and r.stdout.endswith("the error\n")
    assert len(r.stdout) < KEEP_BYTES + 100


def test_on_fail_is_split_without_a_shell() -> None:
    assert parse_command("railway redeploy --service 'relay api' --yes") == [
        "railway", "redeploy", "--service", "relay api", "--yes"
    ]  # fmt: skip
    assert parse_command("echo $HOME; rm -rf /") == ["echo", "$HOME;", "rm", "-rf", "/"]  # inert words
    for bad in ("railway 'unbalanced", "  "):
        with pytest.raises(UsageError):
            parse_command(bad)
    assert env_secrets({"RAILWAY_TOKEN": "tok-123456", "HOME": "/root", "ADMIN_KEY": "k" * 20}) == [
        "tok-123456", "k" * 20
    ]  # fmt: skip


# -- the command --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "also", "wanted"),
    [(0, "", False), (1, "", True), (3, "", True), (2, "", False), (4, "", False), (5, "", False),
     (5, "5", True), (4, "4,5", True), (2, "4,5", False), (130, "2,4,5", False), (143, "", False)],
)  # fmt: skip
def test_only_a_judged_failure_rolls_back_unless_asked(code: int, also: str, wanted: bool) -> None:
    decision = rollback_policy.decide(code, rollback_policy.parse_also([also] if also else []))
    assert decision.roll_back is wanted, decision.reason
    if code in (2, 4, 5) and not wanted:
        assert f"could not judge the release (exit {code}" in decision.reason
        assert f"--on-fail-also {code} would" in decision.reason
    assert rollback_policy.rolls_back_on(frozenset({5})) == [1, 3, 5]
    for bad in ("1", "3", "130", "x", "4;5"):
        with pytest.raises(UsageError, match="among 2, 4, 5"):
            rollback_policy.parse_also([bad])


def test_an_unreachable_target_is_not_rolled_back_by_default(tmp_path: Path) -> None:
    marker, results = tmp_path / "rolled-back", tmp_path / "run"
    proc = smoke("--target-url", f"http://127.0.0.1:{free_port()}", "--on-fail", f"touch {marker}",
                 "--results", str(results))  # fmt: skip
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "NOT JUDGED" in proc.stderr and "rolling back" not in proc.stderr
    assert not marker.exists(), "the gate's own failure rolled the release back"
    doc = _record(results)
    assert not doc["triggered"] and not doc["rollback_wanted"] and "rollback" not in doc
    assert doc["rollback_on"] == [1, 3] and "could not judge the release (exit 5" in doc["reason"]


def test_on_fail_also_rolls_back_an_unreachable_target(tmp_path: Path) -> None:
    results = tmp_path / "run"
    url = f"http://127.0.0.1:{free_port()}"
    code = (
        "import os; print('rolled back', os.environ['RELAY_GATE_SMOKE_EXIT'], "
        "os.environ['RELAY_GATE_TARGET_URL'], os.environ['RAILWAY_TOKEN'])"
    )
    proc = smoke("--target-url", url, "--on-fail", f"{PY} -c \"{code}\"", "--on-fail-also", "4,5",
                 "--results", str(results), env={"RAILWAY_TOKEN": "platform-token-abcdef"})  # fmt: skip
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "unreachable" in proc.stderr and "rolling back" in proc.stderr
    doc = _record(results)
    assert doc["triggered"] and doc["smoke_exit_code"] == 5 and doc["rollback_on"] == [1, 3, 4, 5]
    rb = doc["rollback"]
    assert rb["ok"] and rb["exit_status"] == 0
    assert rb["stdout"] == f"rolled back 5 {url} [REDACTED]\n", "the platform token must not be recorded"
    assert "platform-token-abcdef" not in proc.stdout + proc.stderr


def test_a_failed_rollback_still_exits_with_the_smoke_verdict(tmp_path: Path) -> None:
    results = tmp_path / "run"
    proc = smoke("--target-url", f"http://127.0.0.1:{free_port()}", "--on-fail", f"{PY} -c 'exit(9)'",
                 "--on-fail-also", "5", "--results", str(results))  # fmt: skip
    assert proc.returncode == 5
    assert "ROLLBACK FAILED: exit status 9" in proc.stderr
    assert _record(results)["rollback"]["exit_status"] == 9


def test_bad_usage_is_refused_before_the_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["smoke", "--target-url", "http://127.0.0.1:9", "--results", str(tmp_path / "run")]
    assert main([*argv, "--on-fail", "railway 'unbalanced"]) == 2
    assert main([*argv, "--on-fail", "true", "--on-fail-timeout", "0"]) == 2
    assert "quoting" in capsys.readouterr().err
    assert main([*argv, "--on-fail", "true", "--on-fail-also", "1"]) == 2
    assert "--on-fail-also '1': give exit codes among 2, 4, 5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing ran"


@pytest.fixture(scope="module")
def deployment() -> Iterator[Stack]:
    """A running stack the smoke treats as a deployment reached by URL."""
    with Stack(StackConfig(replicas=1)) as s:
        yield s


def _target(tmp_path: Path, stack: Stack) -> Path:
    cfg = tmp_path / "production.toml"
    cfg.write_text(
        '[target]\nname = "production"\n\n[credentials]\n'
        'dev = { env = "PROD_DEV_KEY", workspace = "default" }\n'
        'admin = { env = "PROD_ADMIN_KEY", workspace = "default" }\n'
    )
    return cfg


@pytest.mark.stack
def test_a_passing_smoke_does_not_roll_back(tmp_path: Path, deployment: Stack) -> None:
    marker, results = tmp_path / "rolled-back", tmp_path / "run"
    env = {"PROD_DEV_KEY": deployment.key("dev").key, "PROD_ADMIN_KEY": deployment.key("admin").key}
    proc = smoke("--target-url", deployment.base_url, "--target-config", str(_target(tmp_path, deployment)),
                 "--on-fail", f"touch {marker}", "--results", str(results), env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Post-deploy smoke: 1 passed, 0 failed, 0 skipped" in proc.stdout
    assert not marker.exists()
    doc = _record(results)
    assert not doc["triggered"] and doc["reason"] == "the smoke passed" and "rollback" not in doc
    assert (results / "features" / "summary.json").is_file()


@pytest.mark.stack
def test_a_failing_scenario_rolls_back(tmp_path: Path, deployment: Stack) -> None:
    marker, results = tmp_path / "rolled-back", tmp_path / "run"
    # a key the deployment does not know: the smoke's list step gets 401, a criterion is false
    env = {"PROD_DEV_KEY": "k" * 40, "PROD_ADMIN_KEY": deployment.key("admin").key}
    proc = smoke("--target-url", deployment.base_url, "--target-config", str(_target(tmp_path, deployment)),
                 "--on-fail", f"touch {marker}", "--results", str(results), env=env)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert marker.exists(), "the rollback command did not run"
    doc = _record(results)
    assert doc["triggered"] and doc["smoke_exit_code"] == 1 and doc["rollback"]["ok"]
    assert doc["reason"] == "the smoke did not pass (exit 1: a criterion is false)"
    assert "k" * 40 not in (results / "smoke" / "rollback.json").read_text()


@pytest.mark.stack
def test_scenarios_that_could_not_run_do_not_roll_back(tmp_path: Path, deployment: Stack) -> None:
    """No admin key in the environment: the audit step is skipped (exit 4), the release not judged."""
    marker, results = tmp_path / "rolled-back", tmp_path / "run"
    env = {"PROD_DEV_KEY": deployment.key("dev").key}
    proc = smoke("--target-url", deployment.base_url, "--target-config", str(_target(tmp_path, deployment)),
                 "--on-fail", f"touch {marker}", "--results", str(results), env=env)  # fmt: skip
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert not marker.exists()
    doc = _record(results)
    assert not doc["triggered"] and "could not judge the release (exit 4" in doc["reason"]
