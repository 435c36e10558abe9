"""The promise matrix: every normative statement of the documents the gate holds a service (and
itself) to, with what checks it.

``docs/promises/<doc>.toml`` lists, for one document (``docs/service.md``, ``docs/webhooks.md``,
``docs/drill.md``), each promise it makes — quoted verbatim — with the scenario(s) that check it
against a target, or, where a target cannot show it over HTTP, the reason and the unit test(s) that
cover it, and the catalogue defects that break it. Statements that promise nothing (a description, an
example, advice to the reader) are listed too, as ``[[not_a_promise]]`` with the reason, so that a
test can require every normative statement of the document to be accounted for: one that no entry
quotes is a promise nobody checks. ``docs/promises.md`` is rendered from these files
(``python -m gate.proof.promises --write``; a test keeps it current).

A statement is normative when it says "must", "never", "always", "only", "every", "not"..., or states
a number, a status code or a bound (:data:`NORMATIVE`). Statements are a document's sentences, list
items and table rows, outside code blocks and headings.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # gate/proof/promises.py -> the repository
PROMISES_DIR = ROOT / "docs" / "promises"
MATRIX = ROOT / "docs" / "promises.md"
NORMATIVE = re.compile(
    r"\b(must|never|always|only|every|each|all|any|no|none|not|cannot|refused?|rejects?|at least|at most|"
    r"exactly|unique|same|without|before|after|bounded|within)\b|≥|≤|\d",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z`*(\[])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+")


@dataclass(frozen=True)
class Promise:
    id: str
    doc: str
    quote: str
    scenarios: tuple[str, ...] = ()
    unit_tests: tuple[str, ...] = ()
    why: str = ""  # why a target cannot show it (with unit_tests and no scenarios)
    defects: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotAPromise:
    doc: str
    quote: str
    why: str


@dataclass
class Matrix:
    promises: list[Promise] = field(default_factory=list)
    not_promises: list[NotAPromise] = field(default_factory=list)

    @property
    def docs(self) -> list[str]:
        return sorted({p.doc for p in self.promises} | {n.doc for n in self.not_promises})

    def counts(self) -> dict[str, int]:
        return {
            "promises": len(self.promises),
            "by_scenario": sum(bool(p.scenarios) for p in self.promises),
            "by_unit_tests_only": sum(not p.scenarios and bool(p.unit_tests) for p in self.promises),
            "with_a_defect": sum(bool(p.defects) for p in self.promises),
            "not_promises": len(self.not_promises),
        }


def normalize(text: str) -> str:
    """Markdown to the words a reader sees: no emphasis or code marks, links as their text, one space."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.replace("**", "").replace("`", "")
    return " ".join(text.split())


def statements(markdown: str) -> list[str]:
    """The document's sentences, list items and table rows, normalized, outside code and headings."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            text = normalize(" ".join(block))
            out.extend(s for s in _SENTENCE_END.split(text) if s)
            block.clear()

    fenced = False
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith("```"):
            flush()
            fenced = not fenced
            continue
        if fenced or line.lstrip().startswith(("<!--", "#")) or not line.strip():
            flush()
            continue
        if line.lstrip().startswith("|"):
            flush()
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):  # not the |---| separator
                out.append(normalize(" | ".join(cells)))
            continue
        if _LIST_MARKER.match(line):
            flush()
            line = _LIST_MARKER.sub("", line)
        block.append(line)
    flush()
    return out


def normative(markdown: str) -> list[str]:
    return [s for s in statements(markdown) if NORMATIVE.search(s)]


def _tuple(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(value)


def load(directory: Path = PROMISES_DIR) -> Matrix:
    matrix = Matrix()
    for path in sorted(directory.glob("*.toml")):
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        source = str(doc["doc"])
        for entry in doc.get("promise", []):
            matrix.promises.append(
                Promise(
                    id=str(entry["id"]),
                    doc=source,
                    quote=normalize(str(entry["quote"])),
                    scenarios=_tuple(entry.get("scenarios", []), f"{path.name} {entry['id']}.scenarios"),
                    unit_tests=_tuple(entry.get("unit_tests", []), f"{path.name} {entry['id']}.unit_tests"),
                    why=str(entry.get("why", "")),
                    defects=_tuple(entry.get("defects", []), f"{path.name} {entry['id']}.defects"),
                )
            )
        for entry in doc.get("not_a_promise", []):
            matrix.not_promises.append(NotAPromise(source, normalize(str(entry["quote"])), str(entry["why"])))
    return matrix


def _claims(quote: str, statement: str) -> bool:
    return quote in statement or statement in quote


def problems(
    matrix: Matrix,
    *,
    scenario_titles: Iterable[str],
    defect_names: Iterable[str],
    root: Path = ROOT,
) -> list[str]:
    """What makes the matrix untrue: a promise nobody checks, a name that does not exist, a quote the
    document no longer says, a normative statement no entry accounts for."""
    titles, defects = set(scenario_titles), set(defect_names)
    out: list[str] = []
    ids = [p.id for p in matrix.promises]
    out += [f"promise id {i!r} used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for p in matrix.promises:
        if not p.scenarios and not p.unit_tests:
            out.append(f"{p.id}: checked by no scenario and no unit test")
        if not p.scenarios and not p.why:
            out.append(f"{p.id}: no scenario checks it against a target, and no `why` says why none can")
        out += [f"{p.id}: no scenario is called {s!r}" for s in p.scenarios if s not in titles]
        out += [f"{p.id}: {t} does not exist" for t in p.unit_tests if not _test_exists(root, t)]
        out += [f"{p.id}: no catalogue defect is called {d!r}" for d in p.defects if d not in defects]
    for doc in matrix.docs:
        said = normative((root / doc).read_text(encoding="utf-8"))
        quotes = [p.quote for p in matrix.promises if p.doc == doc]
        quotes += [n.quote for n in matrix.not_promises if n.doc == doc]
        everything = statements((root / doc).read_text(encoding="utf-8"))
        out += [
            f"{doc}: {q[:80]!r} is not in the document (any more)"
            for q in quotes
            if not any(_claims(q, s) for s in everything)
        ]
        out += [
            f"{doc}: no promise or not_a_promise accounts for {s[:100]!r}"
            for s in said
            if not any(_claims(q, s) for q in quotes)
        ]
    return out


def _test_exists(root: Path, node: str) -> bool:
    path, _, name = node.partition("::")
    file = root / path
    if not file.is_file():
        return False
    name = name.split("[")[0].split("::")[-1]
    return (
        not name
        or re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b", file.read_text(), re.M)
        is not None
    )


def render(matrix: Matrix) -> str:
    c = matrix.counts()
    lines = [
        "# Promise matrix",
        "",
        "<!-- generated by `python -m gate.proof.promises --write` from docs/promises/*.toml: edit those -->",
        "",
        "Every normative statement of the documents below — every *must*, *never*, *always*, *only*, "
        "number, status code, header and bound — with the acceptance scenario(s) that check it against a "
        "target, or, where a target cannot show it over HTTP, why not and the unit test(s) that cover it; "
        "and the deliberate defects of the catalogue that break it (`relay-gate selftest` proves each is "
        "caught). Statements that promise nothing are listed in the TOML files with the reason.",
        "",
        f"**{c['promises']} promises**: {c['by_scenario']} checked by a scenario against the target, "
        f"{c['by_unit_tests_only']} by unit tests only (with the reason), {c['with_a_defect']} broken by at "
        f"least one catalogue defect; {c['not_promises']} statements that promise nothing.",
    ]
    for doc in matrix.docs:
        lines += [
            "",
            f"## [{doc}]({Path(doc).name})",
            "",
            "| id | promise | checked by | defects |",
            "|---|---|---|---|",
        ]
        for p in (p for p in matrix.promises if p.doc == doc):
            if p.scenarios:
                checked = "<br>".join(f"scenario: {s}" for s in p.scenarios)
                if p.unit_tests:
                    checked += "<br>" + "<br>".join(f"unit: `{t}`" for t in p.unit_tests)
            else:
                checked = f"*not black-box:* {p.why}<br>" + "<br>".join(f"unit: `{t}`" for t in p.unit_tests)
            cells = [
                f"`{p.id}`",
                _cell(p.quote),
                _cell(checked),
                _cell(", ".join(f"`{d}`" for d in p.defects)),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gate.proof.promises", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--write", action="store_true", help=f"write {MATRIX.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    text = render(load())
    if args.write:
        MATRIX.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
