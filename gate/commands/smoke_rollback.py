"""When ``relay-gate smoke --on-fail`` rolls a release back: when the smoke judged it bad.

A false criterion (exit 1) or a breached SLO (3) says the release is bad: the rollback runs. When the
gate itself could not judge — bad usage or target config (2), results that are not valid evidence,
such as keys missing (4), an unreachable target or a crash (5) — the release is neither proven good
nor bad, and rolling back on the gate's own trouble would let a CI hiccup undo good releases: nothing
runs unless ``--on-fail-also`` names those codes (``--on-fail-also 5`` for a platform that reports a
deploy live before it serves, where a crash-looping release looks unreachable). Interrupts (130/143)
never roll back.
"""

from __future__ import annotations

from dataclasses import dataclass

from gate.errors import EXIT_CRITERION, EXIT_INFRA, EXIT_INVALID, EXIT_OK, EXIT_SLO, EXIT_USAGE, UsageError

ALWAYS = frozenset({EXIT_CRITERION, EXIT_SLO})
# the codes that mean the gate could not judge, and what each says
OPTIONAL = {
    EXIT_USAGE: "usage or configuration error",
    EXIT_INVALID: "not valid evidence (scenarios could not run, results missing)",
    EXIT_INFRA: "infrastructure failure (target unreachable, TLS, a crash)",
}
_BAD = {EXIT_CRITERION: "a criterion is false", EXIT_SLO: "an SLO was breached"}


def parse_also(values: list[str]) -> frozenset[int]:
    """``--on-fail-also 4,5`` (repeatable) -> {4, 5}; anything but 2, 4, 5 is refused."""
    codes: set[int] = set()
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit() or int(part) not in OPTIONAL:
                known = ", ".join(str(c) for c in OPTIONAL)
                raise UsageError(
                    f"--on-fail-also {value!r}: give exit codes among {known}, comma-separated "
                    "(1 and 3 always roll back; 130/143 never do)"
                )
            codes.add(int(part))
    return frozenset(codes)


@dataclass(frozen=True)
class Decision:
    roll_back: bool  # the smoke's verdict asks for a rollback (whether a command was given or not)
    reason: str


def decide(code: int, also: frozenset[int]) -> Decision:
    if code == EXIT_OK:
        return Decision(False, "the smoke passed")
    if code in ALWAYS:
        return Decision(True, f"the smoke did not pass (exit {code}: {_BAD[code]})")
    what = OPTIONAL.get(code, "not a verdict of the smoke")
    if code in also:
        return Decision(
            True, f"the smoke could not judge the release (exit {code}: {what}); --on-fail-also {code}"
        )
    return Decision(
        False,
        f"the smoke could not judge the release (exit {code}: {what}); not rolled back: only exit 1 and 3 "
        f"roll back" + (f" (--on-fail-also {code} would)" if code in OPTIONAL else ""),
    )


def rolls_back_on(also: frozenset[int]) -> list[int]:
    return sorted(ALWAYS | also)
