"""The layers, as an import contract (run by `tox -e lint` and the suite):

- service/ imports nothing of the harness (gate, features, load, evidence): the service under test
  must not know how it is tested;
- features/, load/ and evidence/ never import service/: the gate judges with its own oracles, never
  with the code under test;
- gate/oracles imports no I/O library: its judges are pure functions of what a target sent.

Imports are read from the source (ast), including imports inside functions, so a lazy import counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ("gate", "features", "load", "evidence", "tests")
IO_LIBRARIES = ("httpx", "requests", "socket", "ssl", "psycopg", "redis", "subprocess", "urllib.request",
                "asyncio", "http.client", "smtplib", "ftplib", "shutil", "tempfile")  # fmt: skip
RULES = (
    ("service", HARNESS, "service/ must not import the harness"),
    ("features", ("service",), "features/ must not import service/ (the gate's own oracles judge)"),
    ("load", ("service",), "load/ must not import service/"),
    ("evidence", ("service",), "evidence/ must not import service/ (it renders results files only)"),
    ("gate/oracles", IO_LIBRARIES, "gate/oracles must stay pure: no I/O library"),
)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import statement of ``path``, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def violations(root: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imports(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(root)}:{line} imports {module}")
    return out


@pytest.mark.parametrize(("package", "forbidden", "rule"), RULES, ids=[r[0] for r in RULES])
def test_the_layers_hold(package: str, forbidden: tuple[str, ...], rule: str) -> None:
    found = violations(ROOT, package, forbidden)
    assert not found, f"{rule}:\n" + "\n".join(found)


def test_an_added_import_is_caught(tmp_path: Path) -> None:
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "steps.py").write_text("def f():\n    from service.signing import sign\n")
    (tmp_path / "gate" / "oracles").mkdir(parents=True)
    (tmp_path / "gate" / "oracles" / "x.py").write_text("import httpx\n")
    assert violations(tmp_path, "features", ("service",)) == ["features/steps.py:2 imports service.signing"]
    assert violations(tmp_path, "gate/oracles", IO_LIBRARIES) == ["gate/oracles/x.py:1 imports httpx"]
