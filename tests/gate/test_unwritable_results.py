"""Every verb that writes refuses a results (or pack, or backup) folder it cannot write — exit 2, naming
it — before it starts anything or sends a single request.

Root ignores permission bits, so the folders here are ones nobody can write: inside /proc (a file
system that takes no new files) and below a regular file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ProcessWatcher

ROOT = Path(__file__).resolve().parents[2]


def _argv(verb: str, bad: str, tmp_path: Path) -> list[str]:
    db = "postgresql://u@127.0.0.1:1/db"
    existing = tmp_path / "results"
    (existing / "features").mkdir(parents=True, exist_ok=True)
    return {
        "check": ["check", "--results", bad],
        "run": ["run", "--results", bad],
        "run --out": ["run", "--results", str(tmp_path / "ok"), "--out", bad],
        "load": ["load", "--results", bad],
        "faults": ["faults", "--results", bad],
        "drill": ["drill", "--database-url", db, "--dir", str(tmp_path), "--results", bad],
        "backup": ["backup", "--database-url", db, "--dir", bad],
        "selftest": ["selftest", "--area", "headers", "--results", bad],
        "smoke": ["smoke", "--target-url", "http://127.0.0.1:9", "--results", bad],
        "evidence render": ["evidence", "render", "--results", str(existing), "--out", bad],
        "rules": ["rules", "--out", bad],
    }[verb]  # fmt: skip


@pytest.mark.parametrize(
    "verb",
    ["check", "run", "run --out", "load", "faults", "drill", "backup", "selftest", "smoke", "evidence render",
     "rules"],
)  # fmt: skip
@pytest.mark.parametrize("where", ["proc", "under-a-file"])
def test_an_unwritable_output_folder_is_refused_before_anything_starts(
    tmp_path: Path, verb: str, where: str
) -> None:
    if where == "proc":
        bad = "/proc/relay-gate-results/run"
    else:
        (tmp_path / "a-file").write_text("not a folder\n")
        bad = str(tmp_path / "a-file" / "results")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gate.cli", *_argv(verb, bad, tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watcher = ProcessWatcher(proc.pid).start()
    out, err = proc.communicate(timeout=60)
    watcher.stop()
    assert proc.returncode == 2, out + err
    assert bad in err and ("cannot be written" in err or "is not a folder" in err), err
    assert not watcher.seen, f"{verb} started {list(watcher.seen.values())} before refusing its output folder"
