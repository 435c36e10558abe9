"""Provenance of the results folder: the git state a run records."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gate.results import git_state


def git(repo: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=relay-gate", "-c", "user.email=gate@example.invalid", *argv],
        cwd=repo, check=True, capture_output=True,
    )  # fmt: skip


def test_an_untracked_file_makes_the_tree_dirty_and_an_ignored_one_does_not(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("results/\n")
    (repo / "gate.py").write_text("print('gate')\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")

    clean = git_state(repo)
    assert clean["commit"] and clean["dirty"] is False
    (repo / "results").mkdir()
    (repo / "results" / "run.json").write_text("{}")
    assert git_state(repo)["dirty"] is False, "an ignored file is not a change"
    (repo / "extra_step.py").write_text("import os\n")
    assert git_state(repo)["dirty"] is True, "an untracked module changes what runs"
    (repo / "extra_step.py").unlink()
    (repo / "gate.py").write_text("print('edited')\n")
    assert git_state(repo)["dirty"] is True


def test_outside_a_repository_the_state_is_unknown(tmp_path: Path) -> None:
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
