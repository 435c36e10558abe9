"""The PostgreSQL client tools the backup and the drill run: find a ``pg_dump`` or ``pg_restore`` new
enough for the server or the archive, and read what went wrong from their stderr."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from gate.errors import InfrastructureError


def _version_of(tool: Path) -> tuple[int, str]:
    """``(16, "16.2")`` from ``pg_dump --version`` ("pg_dump (PostgreSQL) 16.2")."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise InfrastructureError(f"{tool} cannot run ({exc.strerror}): pass --pg-bin DIR") from None
    m = re.search(r"\)\s*(\d+)(?:\.(\d+))?", out.stdout)
    if out.returncode != 0 or m is None:
        raise InfrastructureError(f"{tool} --version did not report a version: pass --pg-bin DIR")
    return int(m.group(1)), f"{m.group(1)}.{m.group(2) or 0}"


def find_tool(name: str, *, at_least: int, pg_bin: Path | None) -> tuple[Path, str]:
    """The first ``name`` (pg_dump, pg_restore) of major version ``at_least`` or newer.

    Only ``pg_bin`` when given; else ``RELAY_GATE_PG_BIN``, pgserver's bundled binaries, ``PATH``.
    pg_dump cannot dump a newer server and an older pg_restore cannot read a newer archive: that is
    an error here, before anything is written.
    """
    candidates: list[Path] = []
    if pg_bin is not None:
        candidates.append(Path(pg_bin) / name)
    else:
        if os.environ.get("RELAY_GATE_PG_BIN"):
            candidates.append(Path(os.environ["RELAY_GATE_PG_BIN"]) / name)
        with contextlib.suppress(Exception):  # pgserver's 16.2, even when RELAY_GATE_PG_BIN names others
            from gate.stack.postgres.install import bundled_bin_dir

            candidates.append(bundled_bin_dir() / name)
        if on_path := shutil.which(name):
            candidates.append(Path(on_path))
    found = []
    for path in dict.fromkeys(candidates):
        if os.access(path, os.X_OK):
            major, version = _version_of(path)
            if major >= at_least:
                return path, version
            found.append(f"{path} ({version})")
    if not found:
        where = f"in {pg_bin}" if pg_bin else "(RELAY_GATE_PG_BIN, pgserver's binaries, PATH)"
        raise InfrastructureError(f"no {name} found {where}: install PostgreSQL client tools, or --pg-bin")
    raise InfrastructureError(
        f"version mismatch: {name} must be PostgreSQL {at_least} or newer to read this, found only "
        f"{', '.join(found)}; install PostgreSQL {at_least} client tools and pass --pg-bin DIR"
    )


def no_space(text: str) -> bool:
    return "No space left on device" in text or "Disk quota exceeded" in text


def error_line(stderr: str) -> str:
    """The line of a pg tool's stderr that says what went wrong (the first ``error:``, else the last)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    line = next((x for x in lines if "error:" in x or "FATAL" in x), lines[-1] if lines else "no message")
    return line[:300]
