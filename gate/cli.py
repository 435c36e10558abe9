"""``relay-gate``: one CLI, one verdict. Each verb lives in gate/commands/<verb>.py.

Exit codes (every command): 0 everything asked for ran and passed; 1 a criterion is false; 2 usage or
configuration error; 3 an SLO was breached; 4 the run is not valid evidence; 5 infrastructure failure.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gate.commands
from gate import __version__, interrupts, paths, step_summary
from gate.errors import EXIT_INFRA, EXIT_USAGE, GateError
from gate.redaction import mask_url_passwords
from gate.results import check_writable

EPILOG = """\
exit codes: 0 passed | 1 a criterion is false | 2 usage/configuration error |
            3 SLO breached | 4 not valid evidence | 5 infrastructure failure |
            130/143 interrupted by SIGINT/SIGTERM (everything started is stopped first)

examples:
  relay-gate serve                         start the reference stack (embedded Redis + PostgreSQL)
  relay-gate serve --replicas 2            two relay processes sharing Redis and the database
  relay-gate check                         the acceptance scenarios against the reference stack
  relay-gate check --target-url https://staging.example.com --target-config staging.toml -m smoke
"""

# help lists the verbs in this order; any other module of gate/commands with register() follows
ORDER = (
    "run", "serve", "check", "drill", "backup", "load", "faults", "evidence", "rules", "smoke", "selftest",
)  # fmt: skip


def _command_names() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(gate.commands.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def _command_modules(only: str | None = None) -> list[Any]:
    # Importing a verb imports what it runs (Locust helpers, psycopg, httpx...): import only the verb
    # asked for, and all of them only for the overview help.
    names = [only] if only is not None else _command_names()
    modules = [importlib.import_module(f"gate.commands.{n}") for n in names]
    return [m for m in modules if hasattr(m, "register")]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse exits 2 on bad usage already; say what to do next as well
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}\n(see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="relay-gate",
        description="A release gate with evidence for hardened HTTP APIs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"relay-gate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules(only):
        module.register(sub)
    return parser


# output folders the verbs write, checked before anything starts (evidence render reads --results,
# drill reads --dir: only backup writes there)
_OUTPUTS = {"results": "--results", "out": "--out", "dir": "--dir"}
_INPUTS = {("evidence", "results"), ("drill", "dir")}


def main(argv: Sequence[str] | None = None) -> int:
    # relay-gate run calls the other verbs through main(): only the outermost call turns an interrupt
    # into an exit status (gate.interrupts knows which: `python -m gate.cli` is a module of its own)
    with interrupts.handling() as outermost:
        return _main(argv, outermost=outermost)


def _main(argv: Sequence[str] | None, *, outermost: bool) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(verb if verb in _command_names() else None)
    args = parser.parse_args(args_list)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return EXIT_USAGE
    paths.absolutise(args)  # children run elsewhere: every path is the caller's, made absolute here
    try:
        for attr, flag in _OUTPUTS.items():
            path = getattr(args, attr, None)
            if isinstance(path, Path) and (args.command, attr) not in _INPUTS:
                check_writable(path, flag)  # exit 2 naming it, before any request is sent
        with step_summary.owned_by(args.command, outermost=outermost):  # one verdict in a job summary
            return run(args)
    except GateError as exc:
        # messages quote URLs (a bad target URL, an unreachable database): never their passwords
        print(f"relay-gate {args.command}: {mask_url_passwords(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        interrupted = interrupts.as_interrupted(exc)
        if not outermost:
            raise interrupted from None  # the calling verb (relay-gate run) records it and stops
        print(
            f"relay-gate {args.command}: interrupted by {interrupted.name}; everything it started was "
            f"stopped (exit {interrupted.exit_code})",
            file=sys.stderr,
        )
        return interrupted.exit_code
    except OSError as exc:
        print(f"relay-gate {args.command}: {mask_url_passwords(str(exc))}", file=sys.stderr)
        return EXIT_INFRA


if __name__ == "__main__":
    sys.exit(main())
