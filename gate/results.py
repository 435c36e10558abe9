"""The results folder: ``results/<run-id>/``, versioned JSON, provenance, and redaction.

Every file carries ``"schema": "relay-gate/<kind>@<n>"``. Nothing is written that still holds a
configured secret: :class:`Redactor` replaces each known secret value (API keys, signing secrets,
database passwords) with ``[REDACTED]`` wherever it appears, and masks Authorization values and
secret-bearing headers whatever their value.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gate import __version__

REDACTED = "[REDACTED]"
# headers whose value is a credential, whatever it is
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})


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


class Redactor:
    def __init__(self, secret_values: Iterable[str]) -> None:
        # longest first, so a secret that contains another is replaced whole; very short values would
        # redact ordinary text and are not secrets worth the name
        self.secrets = sorted({s for s in secret_values if s and len(s) >= 6}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for s in self.secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        return value

    def headers(self, headers: Iterable[tuple[str, str]]) -> list[list[str]]:
        out = []
        for name, value in headers:
            if name.lower() in SECRET_HEADERS:
                scheme = value.split(" ", 1)[0] if " " in value else ""
                value = f"{scheme} {REDACTED}".strip()
            out.append([name, self.text(value)])
        return out

    def obj(self, value: Any) -> Any:
        """Redact every string inside a JSON-like structure."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.obj(v) for v in value]
        return value


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


def record_infrastructure_error(results: Path | None, message: str) -> None:
    """Leave the reason a run could not happen where ``relay-gate check`` looks for it (exit 5)."""
    if results is not None:
        (results / "features").mkdir(parents=True, exist_ok=True)
        (results / "features" / INFRA_MARKER).write_text(message + "\n")
