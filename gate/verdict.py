"""One verdict model: what a criterion (or a step) ended as, and the one precedence that turns a set
of outcomes into the exit code and the verdict line.

Every verb, ``relay-gate run`` and the evidence pack decide through :func:`decide`, so the pack can
never say more than the run did. The precedence (DESIGN.md, worst first)::

    interrupted (130) / terminated (143)   the run did not finish: never a pass
    fail            1   a criterion is false
    breach          3   an SLO was breached
    error           5   infrastructure: a service did not start, the target did not answer, a crash
    invalid         4   not valid evidence (too few samples, rate not held, results missing) ─┐
    not_run         4   no results for it                                                    │ incomplete
    missing_config  4   skipped: the user did not supply a key, secret or receiver           │
    precondition    4   skipped: a precondition did not hold (a window too long to wait)     ┘
    usage           2   bad usage or configuration
    not_applicable  0   the target cannot have it (no control of a deployment's Redis)
    pass            0

Only ``not_applicable`` may sit beside a pass, and the verdict line says how many there were. An
exit status that is not one of ours (a crash, 137, a negative signal status) is an error, never
ignored: :func:`outcome_of_exit`.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gate.errors import EXIT_CRITERION, EXIT_INFRA, EXIT_INVALID, EXIT_OK, EXIT_SLO, EXIT_USAGE

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    BREACH = "breach"
    INVALID = "invalid"
    NOT_RUN = "not_run"
    NOT_APPLICABLE = "not_applicable"
    MISSING_CONFIG = "missing_config"
    PRECONDITION = "precondition"
    ERROR = "error"
    USAGE = "usage"
    INTERRUPTED = "interrupted"
    TERMINATED = "terminated"


class SkipCategory(StrEnum):
    """Why a scenario was skipped, decided where the skip is raised (never read from its text)."""

    NOT_APPLICABLE = "not_applicable"  # the target cannot have it
    MISSING_CONFIG = "missing_config"  # the user did not supply what it needs
    PRECONDITION = "precondition"  # a precondition did not hold in this run


SKIP_OUTCOME = {
    SkipCategory.NOT_APPLICABLE: Outcome.NOT_APPLICABLE,
    SkipCategory.MISSING_CONFIG: Outcome.MISSING_CONFIG,
    SkipCategory.PRECONDITION: Outcome.PRECONDITION,
}

EXIT_CODE: dict[Outcome, int] = {
    Outcome.PASS: EXIT_OK,
    Outcome.NOT_APPLICABLE: EXIT_OK,
    Outcome.FAIL: EXIT_CRITERION,
    Outcome.BREACH: EXIT_SLO,
    Outcome.ERROR: EXIT_INFRA,
    Outcome.INVALID: EXIT_INVALID,
    Outcome.NOT_RUN: EXIT_INVALID,
    Outcome.MISSING_CONFIG: EXIT_INVALID,
    Outcome.PRECONDITION: EXIT_INVALID,
    Outcome.USAGE: EXIT_USAGE,
    Outcome.INTERRUPTED: EXIT_INTERRUPTED,
    Outcome.TERMINATED: EXIT_TERMINATED,
}

# worst first; outcomes on one line share a rank
PRECEDENCE: tuple[tuple[Outcome, ...], ...] = (
    (Outcome.INTERRUPTED, Outcome.TERMINATED),
    (Outcome.FAIL,),
    (Outcome.BREACH,),
    (Outcome.ERROR,),
    (Outcome.INVALID, Outcome.NOT_RUN, Outcome.MISSING_CONFIG, Outcome.PRECONDITION),
    (Outcome.USAGE,),
    (Outcome.PASS, Outcome.NOT_APPLICABLE),
)
_RANK = {o: i for i, group in enumerate(PRECEDENCE) for o in group}

# how a criterion's outcome reads in a table of the pack or on a terminal
LABEL: dict[Outcome, str] = {
    Outcome.PASS: "PASS",
    Outcome.FAIL: "FAIL",
    Outcome.BREACH: "BREACH",
    Outcome.INVALID: "INVALID",
    Outcome.NOT_RUN: "NOT RUN",
    Outcome.NOT_APPLICABLE: "NOT APPLICABLE",
    Outcome.MISSING_CONFIG: "MISSING CONFIG",
    Outcome.PRECONDITION: "PRECONDITION",
    Outcome.ERROR: "ERROR",
    Outcome.USAGE: "USAGE ERROR",
    Outcome.INTERRUPTED: "INTERRUPTED",
    Outcome.TERMINATED: "TERMINATED",
}


def exit_code(outcome: Outcome) -> int:
    return EXIT_CODE[outcome]


def outcome_of_exit(code: int | None) -> Outcome:
    """The outcome a step's exit status stands for. None (it never ended) and any status that is not
    one of DESIGN.md's codes — a crash, a signal — are errors; SIGINT and SIGTERM are interrupts."""
    if code is None:
        return Outcome.ERROR
    if code in (EXIT_INTERRUPTED, -signal.SIGINT):
        return Outcome.INTERRUPTED
    if code in (EXIT_TERMINATED, -signal.SIGTERM):
        return Outcome.TERMINATED
    return {
        EXIT_OK: Outcome.PASS,
        EXIT_CRITERION: Outcome.FAIL,
        EXIT_USAGE: Outcome.USAGE,
        EXIT_SLO: Outcome.BREACH,
        EXIT_INVALID: Outcome.INVALID,
        EXIT_INFRA: Outcome.ERROR,
    }.get(code, Outcome.ERROR)


def scenario_outcome(scenario: Mapping[str, Any]) -> Outcome:
    """A scenario's outcome as ``features/summary.json`` records it; a skip by the category it was
    raised with — a skip without one is not a pass (missing configuration)."""
    outcome = str(scenario.get("outcome"))
    if outcome == "passed":
        return Outcome.PASS
    if outcome == "failed":
        return Outcome.FAIL
    if outcome == "skipped":
        try:
            return SKIP_OUTCOME[SkipCategory(str(scenario.get("category")))]
        except ValueError:
            return Outcome.MISSING_CONFIG
    return Outcome.NOT_RUN


def rank(outcome: Outcome) -> int:
    """Position in :data:`PRECEDENCE`: lower decides first."""
    return _RANK[outcome]


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    """The outcome that decides: the first by :data:`PRECEDENCE`; PASS when there is none."""
    found = list(outcomes)
    return min(found, key=_RANK.__getitem__) if found else Outcome.PASS


@dataclass(frozen=True)
class Item:
    """One thing judged: a criterion of the pack, or a step of a run."""

    name: str
    outcome: Outcome
    reason: str | None = None


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    exit_code: int
    line: str
    counts: dict[str, int] = field(default_factory=dict)


def earn(outcome: Outcome, *, untrusted: bool, unearned: bool) -> Outcome:
    """A measured outcome, discounted by the validity checks of its run: when a check that makes any
    verdict untrustworthy failed, INVALID; when a check that a pass needs failed, a PASS is INVALID (a
    failure or breach it shows still counts). load/verdict.py, gate/faults and the pack all use this."""
    if untrusted:
        return Outcome.INVALID
    if unearned and outcome is Outcome.PASS:
        return Outcome.INVALID
    return outcome


_HEADLINE = {
    Outcome.FAIL: ("FAIL", "criterion(s) false"),
    Outcome.BREACH: ("FAIL", "SLO(s) breached"),
    Outcome.ERROR: ("ERROR", "could not run (infrastructure failure)"),
    Outcome.USAGE: ("USAGE ERROR", "refused their input"),
}
_INCOMPLETE = (Outcome.NOT_RUN, Outcome.INVALID, Outcome.MISSING_CONFIG, Outcome.PRECONDITION)


def _group(outcome: Outcome) -> tuple[Outcome, ...]:
    return next(g for g in PRECEDENCE if outcome in g)


def decide(
    items: Iterable[Item], *, steps: Iterable[Item] = (), nothing: str = "nothing was judged"
) -> Verdict:
    """The verdict of ``items`` (criteria) and ``steps`` (what ``relay-gate run`` recorded of each
    step): the exit code by the one precedence, and one line that says it.

    Both count for the exit code; the line counts criteria and names a step only where it decides
    the verdict and no criterion shows why (a crashed step, an interrupt). Nothing at all is not a
    pass: NOT RUN, exit 4, ``nothing`` says what.
    """
    items, steps = list(items), list(steps)
    if not items and not steps:
        return Verdict(Outcome.NOT_RUN, EXIT_INVALID, f"INCOMPLETE: {nothing}", {})
    top = worst(i.outcome for i in [*items, *steps])
    counts = Counter(i.outcome for i in items)
    group = _group(top)
    in_top = sum(counts[o] for o in group)

    if top in (Outcome.INTERRUPTED, Outcome.TERMINATED):
        which = "SIGINT" if top is Outcome.INTERRUPTED else "SIGTERM"
        where = next((s.reason for s in steps if s.outcome is top and s.reason), None)
        head = f"INTERRUPTED by {which}" + (f" ({where})" if where else "")
        line = f"{head}: the run did not finish, so it proves nothing it did not reach"
    elif top in (Outcome.PASS, Outcome.NOT_APPLICABLE):
        line = "PASS: every criterion ran and held"
    else:
        steps_said = ", ".join(s.name.removeprefix("step ") + (f" ({s.reason})" if s.reason else "")
                               for s in steps if s.outcome in group)  # fmt: skip
        if top in _INCOMPLETE:
            word = "INCOMPLETE"
            parts = [f"{counts[o]} {LABEL[o].lower()}" for o in _INCOMPLETE if counts[o]]
            what = f"{in_top} criterion(s) not proven ({', '.join(parts)})"
        else:
            word, noun = _HEADLINE[top]
            what = f"{in_top} {noun}"
        line = f"{word}: {what}" if in_top else f"{word}: step {steps_said}"
    others = [
        f"{counts[o]} {LABEL[o].lower()}"
        for g in PRECEDENCE
        if g is not group
        for o in g
        if counts[o] and o not in (Outcome.PASS, Outcome.NOT_APPLICABLE)
    ]
    others += [
        f"step {s.name.removeprefix('step ')} {LABEL[s.outcome].lower()}"
        for s in steps
        if s.outcome not in group and s.outcome not in (Outcome.PASS, Outcome.NOT_APPLICABLE)
    ]
    if others:
        line += f"; also {', '.join(others)}"
    na = counts[Outcome.NOT_APPLICABLE]
    if na:
        line += f"; {na} not applicable to this target"
    return Verdict(top, EXIT_CODE[top], line, {str(o): c for o, c in counts.items()})
