"""``relay-gate load`` without Locust: usage errors, unreachable targets, recompute, and how the exit
status of the Locust processes is trusted (or not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gate.commands import load as cmd
from gate.errors import EXIT_INFRA, EXIT_INVALID, EXIT_SLO, EXIT_USAGE, InfrastructureError, UsageError
from gate.stack.procs import free_port
from tests.load.factory import document, healthy, record, roundtrip


def gate_load(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate.cli", "load", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1m5s", 65)]
)
def test_durations(text: str, seconds: int) -> None:
    assert cmd.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "5x", "m", "-3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="--duration"):
        cmd.parse_duration(text)


def test_an_invalid_spec_is_exit_2_naming_the_key_before_anything_starts(tmp_path: Path) -> None:
    spec = tmp_path / "slos.toml"
    spec.write_text("[endpoints.checkout]\nerror_rate_max_pct = 1\n")
    proc = gate_load("--slos", str(spec), "--duration", "5s")
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "endpoints.checkout" in proc.stderr and "known: list, preview, execute" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "10", "--users", "5"], "not allowed with argument"),
        (["--rate", "-1"], "--rate must be a positive"),
        (["--users", "3", "--concurrency", "5"], "--concurrency is the open model's pool"),
        (["--weights", "list=1,checkout=2"], "RELAY_LOAD_WEIGHTS"),
        (["--duration", "soon"], "--duration"),
        (["--workers", "3", "--concurrency", "2"], "cannot be spread over 3 workers"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    proc = gate_load(*argv)
    assert proc.returncode == EXIT_USAGE
    assert message in proc.stderr


def test_an_unreachable_target_is_exit_5_within_the_stated_timeout() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = gate_load("--target-url", url, "--duration", "5s", env={"RELAY_API_KEY": "k" * 24})
    assert proc.returncode == EXIT_INFRA, proc.stderr
    assert f"target {url} is unreachable" in proc.stderr and "within 5 s" in proc.stderr


def test_a_target_without_keys_is_a_usage_error() -> None:
    env = {k: "" for k in ("RELAY_API_KEY", "RELAY_API_KEYS")}
    proc = gate_load("--target-url", "http://127.0.0.1:9", "--duration", "5s", env=env)
    assert proc.returncode == EXIT_USAGE
    assert "needs an API key" in proc.stderr


def _write(tmp_path: Path, doc: dict[str, Any], name: str = "load.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(roundtrip(doc)))
    return path


def test_recompute_prints_the_verdict_with_the_same_exit_code(tmp_path: Path) -> None:
    rec = healthy()
    record(rec, "execute", 60, ms=1249.0)
    path = _write(tmp_path, document(rec))
    proc = gate_load("--recompute", str(path))
    assert proc.returncode == EXIT_SLO, proc.stderr
    assert "execute   p95 latency <= 1200 ms" in proc.stdout and "FAIL" in proc.stdout
    assert "verdict: BREACH (exit 3)" in proc.stdout


def test_recompute_against_another_spec(tmp_path: Path) -> None:
    rec = healthy()
    record(rec, "execute", 60, ms=1249.0)
    path = _write(tmp_path, document(rec))
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(
        "[endpoints.execute]\nerror_rate_max_pct = 1\nlatency = [{ percentile = 95, max_ms = 1300 }]\n"
    )
    proc = gate_load("--recompute", str(path), "--slos", str(lenient))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_recompute_of_a_missing_or_foreign_or_corrupt_file(tmp_path: Path) -> None:
    assert gate_load("--recompute", str(tmp_path / "nope.json")).returncode == EXIT_USAGE
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"schema": "relay-gate/run@1"}))
    proc = gate_load("--recompute", str(run_json))
    assert proc.returncode == EXIT_INVALID and "expected a relay-gate/load@1" in proc.stderr
    doc = roundtrip(document(healthy()))
    doc["endpoints"]["list"]["hdr"]["corrected"] = "SElTVEZBQUFB"
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(json.dumps(doc))
    proc = gate_load("--recompute", str(corrupt))
    assert proc.returncode == EXIT_INVALID and "corrupt" in proc.stderr


class _FakeRun:
    """Just enough of LocustRun for the exit-status rules."""

    def __init__(self, codes: dict[str, int | None]) -> None:
        self._codes = codes

    def exit_codes(self) -> dict[str, int | None]:
        return dict(self._codes)

    def log_tail(self, name: str | None = None, lines: int = 20) -> str:
        return f"(log of {name or 'master'})"


def _plan(results: Path, workers: int = 0) -> Any:
    return SimpleNamespace(results=results, workers=workers)


def test_a_verdict_is_trusted_only_when_every_process_agrees(tmp_path: Path) -> None:
    rec = healthy()
    record(rec, "execute", 60, ms=1249.0)
    (tmp_path / "load").mkdir()
    _write(tmp_path / "load", document(rec))
    assert cmd._verdict(_FakeRun({"locust": 3}), _plan(tmp_path)) == EXIT_SLO  # type: ignore[arg-type]
    # the process failed after writing its verdict: a crash is never masked by a 3 (or a 0)
    with pytest.raises(InfrastructureError, match="not trusted"):
        cmd._verdict(_FakeRun({"locust": 1}), _plan(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(InfrastructureError, match="worker-1 \\(exit 5\\)"):
        cmd._verdict(_FakeRun({"master": 3, "worker-0": 0, "worker-1": 5}), _plan(tmp_path, 2))  # type: ignore[arg-type]


def test_no_results_means_a_crash_or_a_refusal(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match="without a verdict"):
        cmd._verdict(_FakeRun({"locust": -9}), _plan(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="refused"):
        cmd._verdict(_FakeRun({"locust": 2}), _plan(tmp_path))  # type: ignore[arg-type]


def test_the_cli_never_imports_locust_or_gevent() -> None:
    """Locust monkey-patches whatever process imports it: the CLI must only ever start it."""
    code = (
        "import sys, gate.cli, gate.commands.load, load.report, load.verdict, load.launch; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
