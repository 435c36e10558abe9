"""Errors of the gate, each carrying what a user needs to act, and the exit code it maps to.

GateError                 exit_code
 ├── UsageError               2   bad flag, bad config file, unknown backend: the message says what to fix
 ├── CriterionFailed          1   an acceptance criterion is false
 ├── SloBreached              3   a latency/error SLO is breached
 ├── InvalidEvidence          4   the run is not valid evidence (too few samples, results missing)
 └── InfrastructureError      5   something we needed did not start or answer
      └── StackError              a stack component (redis, postgres, relay, receiver) failed;
           │                      names the component, the fix, and the tail of its log
           └── PortTaken          the port picked for a listener was taken before it could bind it,
                                  or another server answers there: gate/stack/ports.py tries another
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CRITERION = 1
EXIT_USAGE = 2
EXIT_SLO = 3
EXIT_INVALID = 4
EXIT_INFRA = 5


class GateError(Exception):
    exit_code = EXIT_CRITERION


class UsageError(GateError):
    exit_code = EXIT_USAGE


class CriterionFailed(GateError):
    exit_code = EXIT_CRITERION


class SloBreached(GateError):
    exit_code = EXIT_SLO


class InvalidEvidence(GateError):
    exit_code = EXIT_INVALID


class InfrastructureError(GateError):
    exit_code = EXIT_INFRA


class StackError(InfrastructureError):
    """A stack component did not come up (or went away): what, why, how to fix, and its last log lines."""

    def __init__(self, component: str, problem: str, *, fix: str = "", log_tail: str = "") -> None:
        self.component = component
        self.problem = problem
        self.fix = fix
        self.log_tail = log_tail
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.component}: {self.problem}"]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        if self.log_tail:
            lines.append(f"  last lines of the {self.component} log:")
            lines.extend(f"    | {line}" for line in self.log_tail.splitlines())
        return "\n".join(lines)


class PortTaken(StackError):
    """The port picked for ``component`` was taken between the free-port probe and the bind, or a server
    that is not ours answers on it. Raised only once our process on that port has been stopped."""

    def __init__(self, component: str, port: int, problem: str, *, log_tail: str = "") -> None:
        self.port = port
        super().__init__(
            component,
            problem,
            fix=f"let relay-gate pick another port, or free 127.0.0.1:{port} (`ss -ltnp` shows who holds it)",
            log_tail=log_tail,
        )
