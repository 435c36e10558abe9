"""The promise matrix (gate/proof/promises.py, docs/promises/*.toml) is complete and true: every normative
statement of each document is accounted for, every promise is checked — by a scenario against a
target, or, with the reason none can, by unit tests — every name it gives exists, and
docs/promises.md is what the TOML files render to."""

from __future__ import annotations

import pytest

from evidence.criteria import catalogue
from gate.proof import promises
from gate.proof.catalogue import DEFECTS
from gate.proof.defects_drill import DRILL_DEFECTS

DOCS = ("docs/service.md", "docs/webhooks.md", "docs/drill.md")


@pytest.fixture(scope="module")
def matrix() -> promises.Matrix:
    return promises.load()


@pytest.mark.parametrize("doc", DOCS)
def test_every_normative_statement_is_accounted_for_and_every_promise_checked(
    matrix: promises.Matrix, doc: str
) -> None:
    assert doc in matrix.docs, f"docs/promises/ has no file for {doc}"
    mine = promises.Matrix(
        [p for p in matrix.promises if p.doc == doc], [n for n in matrix.not_promises if n.doc == doc]
    )
    found = promises.problems(
        mine, scenario_titles=[e.title for e in catalogue()], defect_names=[*DEFECTS, *DRILL_DEFECTS]
    )
    assert not found, f"{len(found)} problem(s):\n" + "\n".join(found[:40])


def test_every_promise_a_scenario_checks_is_broken_by_a_catalogue_defect(matrix: promises.Matrix) -> None:
    """A scenario no defect has been shown to fail cannot be trusted to catch anything."""
    missing = [p.id for p in matrix.promises if p.scenarios and not p.defects]
    assert not missing, f"promises checked by a scenario but broken by no catalogue defect: {missing}"


def test_the_rendered_matrix_is_current(matrix: promises.Matrix) -> None:
    assert promises.MATRIX.read_text(encoding="utf-8") == promises.render(matrix), (
        "docs/promises.md is stale: run `python -m gate.proof.promises --write`"
    )


def test_a_promise_nobody_checks_or_a_statement_nobody_quotes_is_found(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "docs" / "x.md"
    doc.parent.mkdir()
    doc.write_text("The relay never sends a webhook twice.\n\nIt answers 404 for unknown paths.\n")
    m = promises.Matrix([promises.Promise("x.twice", "docs/x.md", "never sends a webhook twice")], [])
    found = promises.problems(m, scenario_titles=[], defect_names=[], root=tmp_path)
    assert any("checked by no scenario and no unit test" in f for f in found)
    assert any("It answers 404 for unknown paths." in f for f in found)
