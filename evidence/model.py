"""What a results folder holds, read strictly (evidence/criteria.py says what it proves).

Every document of the pack is rendered from these files and nothing else.

    results/<run-id>/run.json                    relay-gate/run@1
    results/<run-id>/features/summary.json       relay-gate/features@1
    results/<run-id>/features/scenarios/*.json   relay-gate/scenario@1
    results/<run-id>/drill/drill.json            relay-gate/drill@1
    results/<run-id>/load/load.json              relay-gate/load@1
    results/<run-id>/faults/faults.json          relay-gate/faults@1
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the schema versions this relay-gate can read, per kind
SUPPORTED: dict[str, set[int]] = {
    "run": {1},
    "features": {1},
    "scenario": {1},
    "drill": {1},
    "load": {1},
    "faults": {1},
}


class ResultsError(Exception):
    """A results file that cannot be used: missing folder, unreadable, not JSON, unknown schema."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class Results:
    root: Path
    run: dict[str, Any] | None = None
    features: dict[str, Any] | None = None
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)  # by slug
    drill: dict[str, Any] | None = None
    load: dict[str, Any] | None = None
    faults: dict[str, Any] | None = None

    def scenario_notes(self, area: str) -> list[dict[str, Any]]:
        """Scenario records of an area, in feature-file order where known."""
        return [s for s in self.scenarios.values() if area in s.get("tags", [])]

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _read(path: Path, kind: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(path, f"unreadable ({exc.strerror})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(path, f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ResultsError(path, "not a relay-gate results document")
    schema = str(doc.get("schema", ""))
    m = re.fullmatch(r"relay-gate/([a-z_]+)@(\d+)", schema)
    if m is None or m.group(1) != kind:
        raise ResultsError(path, f"expected a relay-gate/{kind}@N document, found {schema or 'no schema'}")
    version = int(m.group(2))
    if version not in SUPPORTED[kind]:
        known = ", ".join(f"@{v}" for v in sorted(SUPPORTED[kind]))
        raise ResultsError(
            path, f"schema {schema} is newer than this relay-gate reads ({kind}{known}); upgrade"
        )
    return doc


def load_results(root: Path) -> Results:
    """Read a results folder; raise :class:`ResultsError` for anything unusable (exit 2)."""
    if not root.is_dir():
        raise ResultsError(root, "results folder does not exist (run relay-gate check/drill/load first)")
    res = Results(root=root)
    optional = {
        "run": root / "run.json",
        "features": root / "features" / "summary.json",
        "drill": root / "drill" / "drill.json",
        "load": root / "load" / "load.json",
        "faults": root / "faults" / "faults.json",
    }
    for kind, path in optional.items():
        if path.exists():
            setattr(res, kind, _read(path, kind))
    scen_dir = root / "features" / "scenarios"
    if scen_dir.is_dir():
        for path in sorted(scen_dir.glob("*.json")):
            doc = _read(path, "scenario")
            res.scenarios[str(doc.get("slug", path.stem))] = doc
    if all(getattr(res, k) is None for k in ("run", "features", "drill", "load", "faults")):
        raise ResultsError(root, "holds no relay-gate results (no run.json, features, drill, load or faults)")
    return res
