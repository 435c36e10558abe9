"""The records of a selftest: the defects it can switch in (:class:`Subject`), what one child pytest
did (:class:`FeatureRun`, its :class:`Scenario` outcomes), how each defect was judged
(:class:`DefectResult`) and the whole :class:`Report` with its exit code.

Data only, shared by gate/proof/selftest.py (which runs and judges) and gate/proof/report.py (which
shows and records): both import it, neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gate.results import utc_now
from gate.verdict import Item, decide
from gate.verdict import Outcome as Verdicts

Kind = Literal["service", "tooling"]
RunStatus = Literal["passed", "failed", "infrastructure", "error"]
Outcome = Literal["caught", "escaped", "error"]


@dataclass(frozen=True)
class Subject:
    """A defect the selftest can switch in, whichever catalogue it comes from."""

    name: str
    kind: Kind
    area: str
    summary: str
    caught_by: tuple[str, ...]
    needs_control: bool = False

    def pytest_args(self) -> list[str]:
        if self.kind == "service":
            return ["--defect", self.name]
        return ["-p", "gate.proof.defects_drill", "--drill-defect", self.name]


@dataclass(frozen=True)
class Scenario:
    feature: str
    scenario: str
    outcome: str  # passed | failed | skipped | not run
    reason: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.feature, self.scenario)

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "scenario": self.scenario, "reason": self.reason}


@dataclass
class FeatureRun:
    """What one child pytest did: its status, every scenario's outcome, how long it took."""

    results: Path
    status: RunStatus
    pytest_exit: int | None
    duration_s: float
    scenarios: list[Scenario] = field(default_factory=list)
    message: str | None = None  # why it could not be judged (infrastructure, error)

    def count(self, outcome: str) -> int:
        return sum(s.outcome == outcome for s in self.scenarios)

    def counts(self) -> dict[str, int]:
        return {o: self.count(o) for o in ("passed", "failed", "skipped", "not run")}


@dataclass
class DefectResult:
    subject: Subject
    run: FeatureRun
    outcome: Outcome
    caught_by: list[Scenario]  # failed, and written to catch it
    expected_missing: list[str]  # scenarios written to catch it that did not fail
    # failed although not written to catch it: a scenario that fails for reasons nobody designed
    # (a flaky scenario, a catalogue entry that does not say what its defect breaks) proves nothing
    unrelated: list[Scenario] = field(default_factory=list)


@dataclass
class Report:
    results: Path
    backend: str
    run_id: str = ""
    clean: FeatureRun | None = None
    clean_markexpr: str | None = None
    defects: list[DefectResult] = field(default_factory=list)
    started_at: str = field(default_factory=utc_now)
    duration_s: float = 0.0

    @property
    def escaped(self) -> list[str]:
        return [d.subject.name for d in self.defects if d.outcome == "escaped"]

    @property
    def errors(self) -> list[str]:
        return [d.subject.name for d in self.defects if d.outcome == "error"]

    @property
    def unrelated(self) -> list[str]:
        return [d.subject.name for d in self.defects if d.unrelated]

    @property
    def exit_code(self) -> int:
        """gate/verdict.py's one precedence: 1 when the clean service fails, a defect escaped or an
        unrelated scenario failed; 5 when a run could not be judged; else 0."""
        clean = _RUN_OUTCOME.get(self.clean.status if self.clean else "", Verdicts.ERROR)
        items = [Item("clean service", clean)]
        for d in self.defects:
            items.append(Item(d.subject.name, _DEFECT_OUTCOME.get(d.outcome, Verdicts.ERROR)))
            if d.unrelated:
                items.append(Item(f"{d.subject.name}: unrelated failures", Verdicts.FAIL))
        return decide(items).exit_code


_RUN_OUTCOME = {"passed": Verdicts.PASS, "failed": Verdicts.FAIL}
_DEFECT_OUTCOME = {"caught": Verdicts.PASS, "escaped": Verdicts.FAIL}
