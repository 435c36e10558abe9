"""How backups lie on disk, and the recovery objectives a drill holds them to by default: what the
backup writes, the drill reads, and a target config's ``[backups]`` checks (gate/client/target_backups.py).

Nothing here starts a process or opens a connection: the layout is shared by the side that writes
backups (gate/drill/backup.py), the side that restores them (gate/drill/restore.py) and the target
model, which only looks whether a folder holds any.

    <dir>/YYYY-MM-DD/<db>-<UTC stamp>[-n].dump            pg_dump -Fc
    <dir>/YYYY-MM-DD/<db>-<UTC stamp>[-n].manifest.json   relay-gate/backup-manifest@1
    <dir>/YYYY-MM-DD/<db>-<UTC stamp>[-n].verified.json   relay-gate/backup-verified@1 (a drill passed)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import CriterionFailed

MANIFEST_SCHEMA = "relay-gate/backup-manifest@1"
VERIFIED_SCHEMA = "relay-gate/backup-verified@1"
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# <db>-<YYYYMMDDTHHMMSSZ>[-<n>]: n tells apart backups taken within the same second
STEM_RE = re.compile(r"^(?P<db>.+)-(?P<ts>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?$")
DEFAULT_RTO_S = 900.0  # 15 minutes from "restore it" to a restored database
DEFAULT_RPO_S = 26 * 3600.0  # a nightly backup, plus two hours of slack for the job itself


@dataclass(frozen=True)
class Backup:
    """One backup: the dump and its manifest (and the verified marker a passing drill writes)."""

    stem: str
    day: str
    dump: Path
    manifest_path: Path

    @property
    def stamp(self) -> tuple[str, int]:
        m = STEM_RE.match(self.stem)
        return (m.group("ts"), int(m.group("n") or 1)) if m else ("", 0)

    @property
    def verified_path(self) -> Path:
        return self.manifest_path.with_name(f"{self.stem}.verified.json")

    @property
    def verified(self) -> bool:
        return self.verified_path.is_file()

    def manifest(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise CriterionFailed(f"manifest {self.manifest_path} is unreadable ({exc})") from None
        if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA:
            raise CriterionFailed(f"{self.manifest_path} is not a {MANIFEST_SCHEMA} document")
        missing = [k for k in ("database", "dump", "taken_at", "tables", "versions") if doc.get(k) is None]
        if missing:
            raise CriterionFailed(f"manifest {self.manifest_path} lacks {', '.join(missing)}")
        return doc


def list_backups(backup_dir: Path) -> list[Backup]:
    """Every backup (a manifest in a ``YYYY-MM-DD`` folder), oldest first; one whose dump is gone is
    listed too, so that the drill can say so."""
    root = Path(backup_dir)
    out = []
    for day_dir in root.iterdir() if root.is_dir() else []:
        if day_dir.is_dir() and DAY_RE.match(day_dir.name):
            for manifest in day_dir.glob("*.manifest.json"):
                stem = manifest.name.removesuffix(".manifest.json")
                if STEM_RE.match(stem):
                    out.append(Backup(stem, day_dir.name, day_dir / f"{stem}.dump", manifest))
    return sorted(out, key=lambda b: b.stamp)
