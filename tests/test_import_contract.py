"""The layers, as an import contract (run by `tox -e lint` and the suite):

- service/ imports nothing of the harness (gate, features, load, evidence, tests): the service under test
  must not know how it is tested;
- features/, load/ and evidence/ never import service/: the gate judges with its own oracles, never
  with the code under test;
- gate/oracles imports no I/O library: its judges are pure functions of what a target sent;
- evidence/ renders results files only: no network, database or process library, and none of the
  parts that act on a target or a stack (gate/client, gate/stack, gate/drill, gate/proof,
  gate/commands, the step modules, the Locust runner);
- gate/client talks to a target and starts nothing: it never imports gate/stack at run time (a
  deployment is a Target, never a stack backend; a Target made from the reference stack names the
  Stack type for the type checker only), nor gate/proof or gate/commands;
- gate/stack and gate/drill never import a verb (gate/commands): verbs sit on top. (gate/proof's
  selftest does, on purpose: it runs the scenarios with ``relay-gate check``'s own command line.)

tests/test_import_cycles.py holds the other half of the plan: no module imports itself back.

Imports are read from the source (ast), including imports inside functions, so a lazy import counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ("gate", "features", "load", "evidence", "tests")
IO_LIBRARIES = ("httpx", "requests", "socket", "ssl", "psycopg", "redis", "subprocess", "urllib.request",
                "asyncio", "http.client", "smtplib", "ftplib", "shutil", "tempfile")  # fmt: skip
NETWORK = ("httpx", "requests", "socket", "ssl", "psycopg", "redis", "subprocess", "urllib.request",
           "http.client", "locust", "gevent", "testcontainers", "docker")  # fmt: skip
ACTORS = ("gate.client", "gate.stack", "gate.drill", "gate.proof", "gate.commands", "features.steps",
          "features.support", "features.plugin", "load.launch", "load.locustfile",
          "load.distributed")  # fmt: skip
RULES = (
    ("service", HARNESS, "service/ must not import the harness"),
    ("features", ("service",), "features/ must not import service/ (the gate's own oracles judge)"),
    ("load", ("service",), "load/ must not import service/"),
    ("evidence", ("service",), "evidence/ must not import service/ (it renders results files only)"),
    ("gate/oracles", IO_LIBRARIES, "gate/oracles must stay pure: no I/O library"),
    ("evidence", NETWORK + ACTORS, "evidence/ renders results files only: no network, no actor"),
    ("gate/client", ("gate.stack", "gate.proof", "gate.commands"), "gate/client talks to targets only"),
    ("gate/stack", ("gate.commands",), "gate/stack must not import a verb"),
    ("gate/drill", ("gate.commands",), "gate/drill must not import a verb"),
)
# rules that judge run-time imports only: an import under ``if TYPE_CHECKING:`` never runs
RUNTIME_ONLY = frozenset({"gate/client"})


def typing_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports that never run."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                out.update(id(n) for n in ast.walk(child))
    return out


def imports(path: Path, *, runtime_only: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module) for every import statement of ``path``, at any depth (with ``runtime_only``,
    leaving out those under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = typing_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def violations(root: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imports(path, runtime_only=package in RUNTIME_ONLY):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(root)}:{line} imports {module}")
    return out


@pytest.mark.parametrize(("package", "forbidden", "rule"), RULES, ids=[f"{r[0]}: {r[2]}" for r in RULES])
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


def test_a_typing_only_import_counts_only_where_a_rule_says_so(tmp_path: Path) -> None:
    (tmp_path / "gate" / "client").mkdir(parents=True)
    (tmp_path / "features").mkdir()
    typed = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from {} import X\n"
    (tmp_path / "gate" / "client" / "t.py").write_text(
        typed.format("gate.stack.reference") + "import gate.stack\n"
    )
    (tmp_path / "features" / "f.py").write_text(typed.format("service.app"))
    assert violations(tmp_path, "gate/client", ("gate.stack",)) == ["gate/client/t.py:4 imports gate.stack"]
    assert violations(tmp_path, "features", ("service",)) == ["features/f.py:3 imports service.app"]


def loaded_by(package: str) -> list[str]:
    """Every module loaded once each module of ``package`` (dotted) is imported in a fresh interpreter."""
    code = (
        f"import importlib, pkgutil, sys, {package} as p\n"
        f"for m in pkgutil.iter_modules(p.__path__): importlib.import_module('{package}.' + m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


THIRD_PARTY_NETWORK = tuple(n for n in NETWORK if n not in sys.stdlib_module_names and "." not in n)
LOADS = (
    ("evidence", (*THIRD_PARTY_NETWORK, *ACTORS, "service")),
    ("gate.client", ("gate.stack", "gate.proof", "gate.commands", "psycopg", "redis", "locust", "service")),
)


@pytest.mark.parametrize(("package", "forbidden"), LOADS, ids=[p for p, _ in LOADS])
def test_what_importing_a_layer_loads_keeps_the_rule_too(package: str, forbidden: tuple[str, ...]) -> None:
    """The rules above read each module's own imports; this imports every module of the layer in a
    fresh interpreter and looks at everything that got loaded, so an import that drags an actor in
    through another module or a package ``__init__`` (as ``gate.faults`` once did for evidence/, and
    gate/drill/backup.py for gate/client) is caught too. The standard library's own imports
    (``xml.sax.saxutils`` loads ``urllib.request``, which loads ``socket``) are not the layer's doing
    and are left out: third-party network libraries, the actors and service/ count."""
    dragged = [m for m in loaded_by(package) if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert not dragged, f"importing {package} loads {dragged}"
