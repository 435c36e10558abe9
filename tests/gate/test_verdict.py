"""gate/verdict.py: the one verdict model every verb, relay-gate run and the evidence pack use."""

from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path

import pytest

from gate.commands.check import judge
from gate.results import INFRA_MARKER
from gate.verdict import (
    PRECEDENCE,
    Item,
    Outcome,
    SkipCategory,
    decide,
    earn,
    exit_code,
    outcome_of_exit,
    scenario_outcome,
    worst,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0, Outcome.PASS), (1, Outcome.FAIL), (2, Outcome.USAGE), (3, Outcome.BREACH), (4, Outcome.INVALID),
        (5, Outcome.ERROR), (130, Outcome.INTERRUPTED), (143, Outcome.TERMINATED), (-2, Outcome.INTERRUPTED),
        (-15, Outcome.TERMINATED), (-9, Outcome.ERROR), (137, Outcome.ERROR), (6, Outcome.ERROR),
        (255, Outcome.ERROR), (None, Outcome.ERROR),
    ],
)  # fmt: skip
def test_unknown_and_signal_exit_codes_are_never_ignored(code: int | None, outcome: Outcome) -> None:
    assert outcome_of_exit(code) is outcome
    # whatever a step ended with, it can never make a failing run pass
    assert decide([Item("x", Outcome.PASS)], steps=[Item("step", outcome_of_exit(code))]).exit_code == (
        0 if code == 0 else exit_code(outcome)
    )


def test_the_precedence_is_design_md_s() -> None:
    # interrupted > 1 fail > 3 breach > 5 infrastructure > 4 invalid/not run/missing config > 2 usage > 0
    codes = [exit_code(group[0]) for group in PRECEDENCE]
    assert codes == [130, 1, 3, 5, 4, 2, 0]
    for a, b in itertools.pairwise(PRECEDENCE):
        assert worst([b[0], a[0]]) is a[0]


def test_only_not_applicable_may_sit_beside_a_pass_and_the_line_counts_it() -> None:
    items = [Item("a", Outcome.PASS), Item("b", Outcome.NOT_APPLICABLE), Item("c", Outcome.NOT_APPLICABLE)]
    v = decide(items)
    assert (
        v.exit_code == 0 and v.line == "PASS: every criterion ran and held; 2 not applicable to this target"
    )
    for other in (Outcome.MISSING_CONFIG, Outcome.PRECONDITION, Outcome.NOT_RUN, Outcome.INVALID):
        v = decide([*items, Item("d", other)])
        assert v.exit_code == 4 and v.line.startswith("INCOMPLETE: 1 criterion(s) not proven"), v.line
        assert v.line.endswith("2 not applicable to this target")


def test_nothing_judged_is_not_a_pass() -> None:
    assert decide([]).exit_code == 4


def test_a_step_decides_where_no_criterion_shows_why() -> None:
    v = decide([Item("a", Outcome.PASS)], steps=[Item("step load", Outcome.ERROR, "crashed: OSError")])
    assert v.exit_code == 5 and v.line == "ERROR: step load (crashed: OSError)"
    v = decide(
        [Item("a", Outcome.FAIL)],
        steps=[Item("step load", Outcome.ERROR), Item("step features", Outcome.FAIL)],
    )
    assert v.exit_code == 1 and v.line == "FAIL: 1 criterion(s) false; also step load error"


def test_earn_discounts_a_pass_but_keeps_a_failure() -> None:
    assert earn(Outcome.PASS, untrusted=False, unearned=False) is Outcome.PASS
    assert earn(Outcome.PASS, untrusted=False, unearned=True) is Outcome.INVALID
    assert earn(Outcome.BREACH, untrusted=False, unearned=True) is Outcome.BREACH
    assert earn(Outcome.BREACH, untrusted=True, unearned=False) is Outcome.INVALID
    assert earn(Outcome.FAIL, untrusted=True, unearned=True) is Outcome.INVALID


@pytest.mark.parametrize(
    ("record", "outcome"),
    [
        ({"outcome": "passed"}, Outcome.PASS),
        ({"outcome": "failed"}, Outcome.FAIL),
        ({"outcome": "not run"}, Outcome.NOT_RUN),
        ({"outcome": "skipped", "category": "not_applicable"}, Outcome.NOT_APPLICABLE),
        ({"outcome": "skipped", "category": "missing_config"}, Outcome.MISSING_CONFIG),
        ({"outcome": "skipped", "category": "precondition"}, Outcome.PRECONDITION),
        # a skip raised without a category is not a pass, whatever its reason says
        (
            {"outcome": "skipped", "category": None, "reason": "needs control of the target"},
            Outcome.MISSING_CONFIG,
        ),
    ],
)
def test_a_skip_is_judged_by_its_category_never_by_its_text(record: dict[str, str], outcome: Outcome) -> None:
    assert scenario_outcome(record) is outcome


def test_every_skip_in_features_carries_a_category() -> None:
    """features/support/skips.py is the only way a scenario skips: a bare pytest.skip would have no
    category."""
    bare = []
    for path in sorted((ROOT / "features").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "skip"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "pytest"
            ):
                bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bare, (
        f"skip through features/support/skips.py (not_applicable, missing_config, precondition): {bare}"
    )
    assert {c.value for c in SkipCategory} == {"not_applicable", "missing_config", "precondition"}


# -- relay-gate check's verdict: scenarios and pytest's exit status ---------------------------------


def _summary(tmp_path: Path, *outcomes: tuple[str, str | None]) -> Path:
    scenarios = [
        {"scenario": f"s{i}", "outcome": o, "category": c, "reason": None}
        for i, (o, c) in enumerate(outcomes)
    ]
    path = tmp_path / "features" / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": "relay-gate/features@1", "features": [{"scenarios": scenarios}]}))
    return tmp_path


@pytest.mark.parametrize(
    ("rc", "outcomes", "selection", "expected"),
    [
        (0, [("passed", None)], False, 0),
        (0, [("passed", None), ("skipped", "not_applicable")], False, 0),
        (0, [("passed", None), ("skipped", "missing_config")], False, 4),
        (0, [("passed", None), ("skipped", "precondition")], False, 4),
        (1, [("passed", None), ("failed", None)], False, 1),
        (1, [("passed", None)], False, 5),  # exit 1 and no failed scenario: an error outside them
        (0, [("failed", None)], False, 1),  # pytest and the summary disagree: the failure stands
        (5, [], True, 2),  # nothing matched -m
        (5, [], False, 5),  # nothing collected at all
        (4, [], True, 2),  # pytest refused the options
        (2, [("passed", None), ("not run", None)], False, 5),  # interrupted by someone else
        (3, [("passed", None)], False, 5),  # pytest's internal error
        (-9, [("passed", None)], False, 5),  # killed
        (0, None, False, 4),  # no summary.json: results missing, never a pass
        (1, None, False, 4),
    ],
)
def test_check_judges_scenarios_and_pytest_exit(
    tmp_path: Path, rc: int, outcomes: list[tuple[str, str | None]] | None, selection: bool, expected: int
) -> None:
    results = _summary(tmp_path, *outcomes) if outcomes is not None else tmp_path
    assert judge(rc, results, selection=selection).exit_code == expected


def test_check_reports_an_infrastructure_failure_as_such(tmp_path: Path) -> None:
    results = _summary(tmp_path, ("not run", None))
    (results / "features" / INFRA_MARKER).write_text("target http://127.0.0.1:9 is unreachable\n")
    v = judge(5, results, selection=False)
    assert v.exit_code == 5 and "unreachable" in v.line
