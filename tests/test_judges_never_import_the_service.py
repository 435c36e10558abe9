"""DESIGN.md, "Oracles are the gate's own": features/, load/ and evidence/ judge a target with the
gate's code, never the service's. A module there importing service/ would let the code under test
grade itself (as features/signing_cases.py once did with service.signing)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    return names


@pytest.mark.parametrize("package", ["features", "load", "evidence", "gate/oracles"])
def test_no_judge_imports_the_service(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            n for n in _imports(path) if n == "service" or n.startswith("service.")
        )
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{package}/ imports the service under test: {offenders}"
