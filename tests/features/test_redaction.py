"""features/support/redaction.py in a child pytest: a failing scenario that quotes secrets leaves none in the
terminal output, junit.xml or cucumber.json; what bypasses the terminal writer is redacted by the
parent with the secrets the child handed over."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gate import redacted_output
from gate.redaction import REDACTED, Redactor

SHORT, KEY, PG = "k!7~", "made-up-key-0123456789abcdef", "pgpw"
SECRETS = (SHORT, KEY, PG)

FEATURE = """\
Feature: Leaky
  Scenario: A step fails quoting the secrets
    Given a deployment
    Then its key is what the test expects
"""

STEPS = f"""\
import pytest
from pytest_bdd import given, scenarios, then

scenarios("leaky.feature")


class Deployment:
    receiver_url = "http://gate:{SHORT}@127.0.0.1:9"

    def secret_values(self):
        return [{SHORT!r}, {KEY!r}]  # the database password is not declared: its URL gives it away


@pytest.fixture(scope="session")
def target():
    return Deployment()


@given("a deployment")
def _(target):
    print("captured output:", {KEY!r}, target.receiver_url)


@then("its key is what the test expects")
def _(target):
    key = target.secret_values()[1]
    assert key == "another", f"key {{key}} (short {SHORT}) on postgresql://relay:{PG}@db/relay"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "leaky.feature").write_text(FEATURE)
    (tmp_path / "test_leaky.py").write_text(STEPS)
    return tmp_path


def argv(project: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "-p", "features.support.redaction", "-p", "no:cacheprovider",
        "-c", str(project / "pytest.ini"), "--rootdir", str(project), "-rfEs",
        f"--junitxml={project / 'junit.xml'}", f"--cucumberjson={project / 'cucumber.json'}",
        *extra, str(project / "test_leaky.py"),
    ]  # fmt: skip


def leaks(text: str) -> dict[str, int]:
    return {s: text.count(s) for s in SECRETS if s in text}


def test_a_failing_scenario_leaves_no_secret_in_the_output_or_the_reports(project: Path) -> None:
    proc = subprocess.run(argv(project), capture_output=True, text=True, cwd=project, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "1 failed" in out, out[-3000:]
    assert "AssertionError" in out and REDACTED in out, out[-3000:]
    assert not leaks(out), f"secrets in the terminal output: {leaks(out)}"

    junit = (project / "junit.xml").read_text()
    assert not leaks(junit), f"secrets in junit.xml: {leaks(junit)}"
    failure = ET.parse(project / "junit.xml").getroot().find(".//failure")  # noqa: S314 - our own file
    assert failure is not None and REDACTED in (failure.get("message") or "")

    cucumber = (project / "cucumber.json").read_text()
    assert not leaks(cucumber), f"secrets in cucumber.json: {leaks(cucumber)}"
    (feature,) = json.loads(cucumber)
    step = feature["elements"][0]["steps"][-1]
    assert step["result"]["status"] == "failed" and REDACTED in step["result"]["error_message"]


def test_output_that_bypasses_the_terminal_writer_is_redacted_by_the_parent(
    project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # -s: the step's print goes straight to the child's stdout, past pytest's terminal writer
    raw = subprocess.run(argv(project, "-s"), capture_output=True, text=True, cwd=project, timeout=120)
    assert KEY in raw.stdout, "control: without a parent redacting, the print shows the key"

    code = redacted_output.run(argv(project, "-s"), redactor=Redactor(), cwd=project)
    out, err = capfd.readouterr()
    assert code == 1 and "captured output: [REDACTED]" in out, out[-3000:]
    assert not leaks(out + err), f"secrets reached the parent's output: {leaks(out + err)}"
