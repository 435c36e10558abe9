"""Paths given on the command line, resolved once, in the parent, against the caller's folder.

relay-gate hands paths to child processes (the scenarios' pytest, Locust) that may run elsewhere, and
an installed gate has no source checkout to run them from: a relative ``staging.toml`` must mean the
file beside the caller, in every process. So :func:`absolutise` turns every path option into an
absolute one before a verb runs, and the default folders are made under the caller's working
directory, never under the package's.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# argparse destinations that name a file or folder of the caller (every verb that has them)
CALLER_PATHS = ("target_config", "results", "out", "dir", "pack", "slos", "recompute")


def absolute(path: Path) -> Path:
    """``path`` against the current folder, ``..`` folded, symlinks kept (what the caller typed)."""
    return Path(os.path.abspath(path))


def absolutise(args: argparse.Namespace) -> None:
    for name in CALLER_PATHS:
        value = getattr(args, name, None)
        if isinstance(value, Path):
            setattr(args, name, absolute(value))


def default_results(run_id: str) -> Path:
    """``results/<run-id>`` under the caller's folder."""
    return Path.cwd() / "results" / run_id


def default_pack(name: str) -> Path:
    """``evidence/out/<name>`` under the caller's folder."""
    return Path.cwd() / "evidence" / "out" / name
