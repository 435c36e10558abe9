"""The results folder: ``results/<run-id>/``, versioned JSON, provenance, and redaction.

Every file carries ``"schema": "relay-gate/<kind>@<n>"``. Nothing is written that still holds a
configured secret: :class:`~gate.redaction.Redactor` replaces each known secret value (API keys,
signing secrets, database passwords) with ``[REDACTED]`` wherever it appears, and masks URL passwords,
Authorization values and secret-bearing headers whatever their value.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gate import __version__
from gate.redaction import Redactor


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20261125T233012Z-3f9a1c``."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """The commit the gate ran from and whether the tree had changes: uncommitted edits, or files git
    does not know (an untracked module can change what runs as much as an edit can; ignored files,
    such as results/ and .venv/, do not count)."""
    cwd = cwd or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=normal"],
                cwd=cwd, capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()
        )  # fmt: skip
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def tool_versions() -> dict[str, str]:
    out = {"relay-gate": __version__, "python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("pytest", "pytest-bdd", "locust", "httpx", "fastapi", "jinja2"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out


def write_json(
    path: Path, kind: str, version: int, payload: Mapping[str, Any], *, redactor: Redactor
) -> Path:
    """Write ``payload`` as ``relay-gate/<kind>@<version>`` atomically, with every secret redacted."""
    doc = {"schema": f"relay-gate/{kind}@{version}", **redactor.obj(dict(payload))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_json(path: Path, kind: str) -> dict[str, Any]:
    """Read a results file and check its schema kind; the caller checks the version it supports."""
    doc = json.loads(path.read_text())
    schema = str(doc.get("schema", ""))
    if not schema.startswith(f"relay-gate/{kind}@"):
        raise ValueError(f"{path}: expected a relay-gate/{kind}@N document, found {schema or 'no schema'}")
    return dict(doc)


def existing_run_id(results: Path) -> str | None:
    """The run id of a results folder another verb started (its run.json), so both agree; else None."""
    try:
        doc = read_json(results / "run.json", "run")
    except (OSError, ValueError):
        return None
    return str(doc["run_id"]) if doc.get("run_id") else None


def provenance(
    *, run_id: str, target: Mapping[str, Any], started_at: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started_at": started_at,
        "finished_at": None,
        "git": git_state(),
        "versions": tool_versions(),
        "target": dict(target),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
        **(dict(extra) if extra else {}),
    }


INFRA_MARKER = "infrastructure-error.txt"
# the quota plan could not fit the selected scenarios: nothing was sent (features/support/quota.py, exit 2)
PLAN_REFUSED_MARKER = "plan-refused.txt"


def record_infrastructure_error(
    results: Path | None, message: str, *, redactor: Redactor | None = None
) -> None:
    """Leave the reason a run could not happen where ``relay-gate check`` looks for it (exit 5).

    The reason is often a log tail or a URL: it is redacted like any results file (URL passwords at
    least, and the given redactor's secrets)."""
    if results is not None:
        (results / "features").mkdir(parents=True, exist_ok=True)
        text = (redactor or Redactor()).text(message)
        (results / "features" / INFRA_MARKER).write_text(text + "\n")


def check_writable(path: Path, flag: str = "--results") -> None:
    """Refuse (exit 2, naming it) an output folder that cannot be written, before any request is sent.

    Nothing is created: the nearest existing folder on the way gets a probe file, which is how root
    (for whom permission bits say nothing) finds a read-only file system too."""
    from gate.errors import UsageError

    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"{flag} {path}: {probe} is not a folder; choose another {flag}")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UsageError(
            f"{flag} {path} cannot be written ({exc.strerror or exc}); choose another {flag} or fix its "
            "permissions"
        ) from None
