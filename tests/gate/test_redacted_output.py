"""Child output on its way to a terminal or a log file: redacted as it comes, including the secrets
only the child knows, which it hands over on an inherited pipe."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gate import redacted_output
from gate.redacted_output import SECRETS_FD_ENV, spawn, spawn_to_log
from gate.redaction import REDACTED, Redactor
from gate.stack.procs import wait_until

# a child that makes secrets up, hands each over, then prints it at once on both streams
MAKES_UP_SECRETS = textwrap.dedent(
    f"""
    import os, secrets, sys
    from gate.redacted_output import SecretsOutbox

    outbox = SecretsOutbox.from_env()
    assert outbox is not None, "no secrets pipe"
    assert {SECRETS_FD_ENV!r} not in os.environ, "the variable must not reach grandchildren"
    for i in range(200):
        key = secrets.token_urlsafe(3 + i % 20)
        outbox.send([key])
        print(f"key {{i}}: {{key}}", flush=True)
        print(f"again {{key}}", file=sys.stderr, flush=True)
    print("short one: k7!", flush=True)
    """
)


def python(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_secrets_the_child_makes_up_never_reach_the_parent_output() -> None:
    # one stream (stderr merged): a second copier thread draining the pipe too would hide a late drain
    out = io.StringIO()
    redactor = Redactor(["k7!"])
    child = spawn(python(MAKES_UP_SECRETS), redactor=redactor, stdout=out, secrets_from_child=True)
    assert child.wait(timeout=60) == 0, out.getvalue()[-2000:]
    lines = out.getvalue().splitlines()
    assert len(lines) == 401, out.getvalue()[-2000:]
    leaked = [line for line in lines if not line.endswith(REDACTED)]
    assert not leaked, f"{len(leaked)} line(s) printed a secret before the parent knew it: {leaked[:3]}"
    assert len(redactor.secrets) > 100, "the parent learned the child's secrets"


def test_a_log_file_is_written_redacted_while_the_child_runs(tmp_path: Path) -> None:
    log = tmp_path / "locust.log"
    script = (
        "import sys\n"
        "print('connecting to postgresql://relay:hunter2@db/relay with key-0123456789', flush=True)\n"
        "sys.stdin.read()\n"
        "print('done', flush=True)\n"
    )
    child = spawn_to_log(python(script), log, redactor=Redactor(["key-0123456789"]), stdin=subprocess.PIPE)
    try:
        # the line is in the file, redacted, while the child is still running (it waits on stdin)
        wait_until(
            lambda: "connecting" in log.read_text(), timeout=30, component="child", what="its log line"
        )
        assert child.popen.poll() is None
        assert log.read_text() == f"connecting to postgresql://relay:{REDACTED}@db/relay with {REDACTED}\n"
    finally:
        assert child.popen.stdin is not None
        child.popen.stdin.close()
    assert child.wait(timeout=30) == 0
    assert log.read_text().endswith("done\n")


def test_run_returns_the_exit_status_and_prints_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    script = "import sys\nprint('hello s3cr')\nprint('err redis://:pw@h', file=sys.stderr)\nsys.exit(3)\n"
    assert redacted_output.run(python(script), redactor=Redactor(["s3cr"])) == 3
    out, err = capsys.readouterr()
    assert out == f"hello {REDACTED}\n" and err == f"err redis://:{REDACTED}@h\n"


def test_without_a_parent_listening_the_child_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRETS_FD_ENV, raising=False)
    assert redacted_output.SecretsOutbox.from_env() is None
    monkeypatch.setenv(SECRETS_FD_ENV, "not a number")
    assert redacted_output.SecretsOutbox.from_env() is None
    with open(tmp_path / "plain-file", "w") as f:  # an inherited number that is no pipe
        monkeypatch.setenv(SECRETS_FD_ENV, str(f.fileno()))
        assert redacted_output.SecretsOutbox.from_env() is None


SLEEPS = [sys.executable, "-c", "import time; time.sleep(300)"]


def _kill(procs: list[subprocess.Popen[bytes]]) -> None:
    """A failed assertion must not leave its sleeper behind."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_ctrl_c_while_the_child_starts_leaves_no_child_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    # The interrupt lands the instant the child exists, before spawn() returns it to a caller who would
    # stop it: spawn holds it until it owns the child, then stops the child and raises.
    started: list[subprocess.Popen[bytes]] = []

    class InterruptedAtStart(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)
            os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler before the next line

    monkeypatch.setattr(redacted_output.subprocess, "Popen", InterruptedAtStart)
    try:
        with pytest.raises(KeyboardInterrupt):
            spawn(SLEEPS, redactor=Redactor(), stdout=io.StringIO(), start_new_session=True)
        assert len(started) == 1
        assert started[0].poll() is not None, "the child is still running with nobody to stop it"
        assert started[0].returncode == -signal.SIGTERM
    finally:
        _kill(started)


def test_a_child_not_waited_for_is_stopped_when_finished() -> None:
    # finish() on a way out that skipped the wait (an interrupt between spawn and wait) stops the child
    child = spawn(SLEEPS, redactor=Redactor(), stdout=io.StringIO(), start_new_session=True)
    try:
        child.finish()
        assert child.popen.returncode == -signal.SIGTERM
    finally:
        _kill([child.popen])


def test_a_child_in_our_own_process_group_is_stopped_alone_when_finished() -> None:
    # no session of its own: the stop must reach it without signalling our group (this test's process)
    child = spawn(SLEEPS, redactor=Redactor(), stdout=io.StringIO())
    try:
        child.finish()
        assert child.popen.returncode == -signal.SIGTERM
    finally:
        _kill([child.popen])


def test_finishing_an_exited_child_does_not_reap_it_behind_its_owner() -> None:
    # an exited leader stays a zombie until its owner reaps it, so its process-group id stays ours
    child = spawn([sys.executable, "-c", "pass"], redactor=Redactor(), stdout=io.StringIO(),
                  start_new_session=True)  # fmt: skip
    wait_until(
        lambda: os.waitid(os.P_PID, child.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None,
        timeout=30,
        component="child",
        what="its exit",
    )
    child.finish()
    assert child.popen.returncode is None, "finish() reaped a child it did not own the wait of"
    assert Path(f"/proc/{child.popen.pid}").exists()
    assert child.popen.wait(timeout=5) == 0
