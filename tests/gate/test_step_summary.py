"""GitHub's job summary: ``relay-gate run`` and ``check`` append their verdict table, the verdict line
they print (character for character) and where the results and the evidence pack are."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate import step_summary
from gate.redaction import Redactor
from gate.stack.reference import Stack, StackConfig

PREVIOUS = "## an earlier step's summary\n\n"


def test_cells_are_escaped_and_only_the_verb_the_user_ran_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        step_summary.table(["a", "b"], [["x|y", "two\nlines"]])
        == "| a | b |\n|---|---|\n| x\\|y | two lines |"
    )
    out = tmp_path / "summary.md"
    redactor = Redactor(["s3cret-token-value"])
    monkeypatch.delenv(step_summary.ENV, raising=False)
    assert step_summary.append("check", "text", redactor=redactor) is None  # not in GitHub Actions
    monkeypatch.setenv(step_summary.ENV, str(out))
    with step_summary.owned_by("run", outermost=True):
        with step_summary.owned_by("check", outermost=False):
            assert step_summary.append("check", "nested\n", redactor=redactor) is None
        assert step_summary.append("run", "mine: s3cret-token-value\n", redactor=redactor) == out
    assert out.read_text() == "mine: [REDACTED]\n"
    monkeypatch.setenv(step_summary.ENV, str(tmp_path / "no-such-dir" / "summary.md"))
    assert step_summary.append("check", "text", redactor=redactor) is None
    assert "warning: could not append to GITHUB_STEP_SUMMARY" in capsys.readouterr().err


# -- the commands -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def staging() -> Iterator[Stack]:
    with Stack(StackConfig(replicas=1)) as s:
        yield s


def _printed_verdict(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if "verdict: " in line]
    assert lines, stdout[-3000:]
    return lines[-1][lines[-1].index("verdict: ") :]


def _sections(text: str) -> list[str]:
    return re.findall(r"^### (relay-gate \w+)$", text, flags=re.MULTILINE)


@pytest.mark.stack
def test_check_appends_its_verdict_table(tmp_path: Path, staging: Stack) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text(PREVIOUS)
    results = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "gate.cli", "check", "-m", "headers", "--target-url", staging.base_url,
         "--results", str(results)],
        capture_output=True, text=True, timeout=300, env={**os.environ, step_summary.ENV: str(summary)},
    )  # fmt: skip
    text = summary.read_text()
    assert text.startswith(PREVIOUS), "the summary is appended to, never replaced"
    verdict = _printed_verdict(proc.stdout)
    assert f"```\n{verdict}\n```" in text and f"(exit {proc.returncode})" in verdict
    assert _sections(text) == ["relay-gate check"]
    assert "| feature | passed | failed | skipped | not run |" in text
    assert re.search(
        r"^\| Security headers on every response \| \d+ \| 0 \| \d+ \| 0 \|$", text, re.MULTILINE
    ), text
    assert "SKIPPED (missing_config)" in text and f"- results: `{results}`" in text  # the dev-key scenarios
    for secret in staging.secret_values():
        assert secret not in text


@pytest.mark.stack
def test_run_appends_one_verdict_its_own(tmp_path: Path, staging: Stack) -> None:
    summary, results, out = tmp_path / "step-summary.md", tmp_path / "results", tmp_path / "pack"
    config = tmp_path / "staging.toml"
    config.write_text(
        '[credentials]\ndev = { env = "STG_DEV", workspace = "default" }\n'
        'admin = { env = "STG_ADMIN", workspace = "default" }\n'
    )
    env = {
        step_summary.ENV: str(summary),
        "STG_DEV": staging.key("dev").key,
        "STG_ADMIN": staging.key("admin").key,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "gate.cli", "run", "-m", "smoke", "--target-url", staging.base_url,
         "--target-config", str(config), "--skip", "drill", "--skip", "load", "--skip", "faults",
         "--results", str(results), "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, **env},
    )  # fmt: skip
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr[-2000:]  # skipped steps: not a pass
    text = summary.read_text()
    verdict = _printed_verdict(proc.stdout)
    assert verdict.endswith("(exit 4)") and f"```\n{verdict}\n```" in text
    assert _sections(text) == ["relay-gate run"], "the features step's check wrote a verdict of its own"
    assert "| step | exit | seconds | outcome | note |" in text
    assert re.search(r"^\| features \| 0 \| [\d.]+ \| pass \|", text, re.MULTILINE), text
    assert re.search(
        r"^\| drill \| 4 \| [\d.]+ \| not_run \| skipped \(--skip\): NOT RUN \|$", text, re.MULTILINE
    )
    assert f"- evidence pack: `{out / 'index.html'}`" in text and f"- results: `{results}`" in text
