"""The pack's verdict is the run's verdict, for every combination of step outcomes.

``relay-gate run`` records each step's outcome in run.json and exits with the verdict of its results
folder; the evidence pack states the verdict of the same folder. Every combination of what the four
steps can end with (features 8 x drill 7 x load 7 x faults 8, fewer once an interrupt stops the run)
is written as the verbs write it, then judged: the exit code must be the one precedence of DESIGN.md
over the steps (a step that refused its input also leaves its criteria NOT RUN), and — for a set of
combinations that covers every outcome of every step, and every pair of failures — the rendered pack
and ``relay-gate run`` must print the same verdict line, character for character.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from evidence.model import load_results
from evidence.render import judge, render
from gate.commands.run import Step, _verdict
from gate.verdict import Outcome, exit_code, worst
from tests.evidence.steps_factory import INTERRUPTS, NA, STEP_OUTCOMES, normalise, step_outcome, write_results

ALL = sorted(
    {
        tuple(normalise(dict(zip(STEP_OUTCOMES, c, strict=True))).items())
        for c in itertools.product(*STEP_OUTCOMES.values())
    },
    key=repr,
)


def expected_exit(combo: dict[str, int | str | None]) -> int:
    """DESIGN.md's precedence over the steps, computed here without gate/verdict.decide."""
    outcomes = [step_outcome(v) for v in combo.values()]
    if any(v == 2 for v in combo.values()):
        outcomes.append(Outcome.NOT_RUN)  # check/load/drill refused their input: their criteria did not run
    return exit_code(worst(outcomes))


def test_every_combination_of_step_outcomes_gets_the_precedence_verdict(tmp_path: Path) -> None:
    assert len(ALL) > 1000
    wrong = []
    for i, items in enumerate(ALL):
        combo = dict(items)
        root = tmp_path / f"r{i}"
        write_results(root, combo)
        got = judge(load_results(root))
        if got.exit_code != expected_exit(combo):
            wrong.append(f"{combo}: pack exit {got.exit_code} ({got.line}), expected {expected_exit(combo)}")
    assert not wrong, f"{len(wrong)} of {len(ALL)} combinations judged wrong:\n" + "\n".join(wrong[:20])


def _covering() -> list[dict[str, int | str | None]]:
    """Each outcome of each step with every other step passing, and every pair of two steps failing."""
    ok = {name: 0 for name in STEP_OUTCOMES}
    combos = [dict(ok)]
    for name, values in STEP_OUTCOMES.items():
        combos += [{**ok, name: v} for v in values if v != 0]
    for (a, va), (b, vb) in itertools.combinations(
        [(n, v) for n, vs in STEP_OUTCOMES.items() for v in vs if v not in (0, NA)], 2
    ):
        if a != b and va not in INTERRUPTS:
            combos.append({**ok, a: va, b: vb})
    return [normalise(c) for c in combos]  # type: ignore[arg-type]


COVERING = _covering()


@pytest.mark.parametrize("chunk", range(4))
def test_the_rendered_pack_and_the_run_say_the_same_verdict_line(tmp_path: Path, chunk: int) -> None:
    mismatched = []
    for i, combo in enumerate(COVERING[chunk::4]):
        root, out = tmp_path / f"r{i}", tmp_path / f"p{i}"
        write_results(root, combo)
        rendered = render(root, out)
        run_says = _verdict(root, out, Step("evidence", code=rendered.code))
        pack_says = json.loads((out / "manifest.json").read_text())["verdict"]
        index = (out / "INDEX.md").read_text()
        if (
            pack_says != {"code": run_says.exit_code, "line": run_says.line}
            or run_says.exit_code != expected_exit(combo)
            or run_says.line not in index
        ):
            mismatched.append(f"{combo}: run {run_says.exit_code} {run_says.line!r} / pack {pack_says}")
    assert not mismatched, "\n".join(mismatched)


def test_an_interrupted_run_is_never_a_pass_and_says_which_signal(tmp_path: Path) -> None:
    for code, sig in ((130, "SIGINT"), (143, "SIGTERM")):
        root = tmp_path / sig
        write_results(root, normalise({"features": 0, "drill": code, "load": 0, "faults": 0}))
        got = judge(load_results(root))
        assert got.exit_code == code and got.line.startswith(f"INTERRUPTED by {sig}"), got


def test_not_applicable_alone_may_sit_beside_a_pass_and_is_counted(tmp_path: Path) -> None:
    root = tmp_path / "na"
    write_results(root, normalise({"features": 0, "drill": 0, "load": 0, "faults": NA}))
    got = judge(load_results(root))
    assert got.exit_code == 0
    assert got.line == "PASS: every criterion ran and held; 6 not applicable to this target", got.line
