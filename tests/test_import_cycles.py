"""No import cycles between the project's modules.

A cycle makes the import order matter, hides which module is the lower layer, and is how two modules
that "import each other" (as gate/selftest.py and gate/selftest_report.py once did; now gate/proof/selftest.py
and report.py, whose shared records are in gate/proof/runs.py) grow into one. The
graph is read from the source (ast) over service/, gate/, features/, load/ and evidence/: an edge for
every import at module level *and* inside functions, because a lazy import is still a dependency;
``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``. Imports
under ``if TYPE_CHECKING:`` are left out: they never run. A package's ``__init__`` importing its own
submodules is the package's public face, not a cycle, and is left out too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.test_import_contract import typing_only

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "gate", "features", "load", "evidence")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def graph(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    files = {module_name(root, p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    edges: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skip = typing_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files:  # import a.b.c of a module a.b: the edge is to a.b
                    t = t.rpartition(".")[0]
                if t and t != mod and not (is_pkg and t.startswith(mod + ".")):
                    edges[mod].add(t)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        work = [(v, iter(sorted(edges.get(v, ()))))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_module_imports_itself_back() -> None:
    found = cycles(graph(ROOT))
    assert not found, "import cycles (each line a set of modules that reach each other):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_a_cycle_is_caught_even_through_a_lazy_import(tmp_path: Path) -> None:
    pkg = tmp_path / "gate"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from gate import b\n")
    (pkg / "b.py").write_text("def f():\n    from gate.c import x\n")
    (pkg / "c.py").write_text("from gate.a import y\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gate import a\n")
    assert cycles(graph(tmp_path, ("gate",))) == [["gate.a", "gate.b", "gate.c"]]
