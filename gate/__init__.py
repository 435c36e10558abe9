"""relay-gate: a release gate with evidence for hardened HTTP APIs (docs/architecture.md).

The root holds what every part of the gate shares and nothing else: the CLI (``cli``), errors and their
exit codes (``errors``), the one verdict model (``verdict``), the results folder (``results``),
durations, caller-relative paths, interrupts (Ctrl-C/SIGTERM), redaction of secrets and of child
output (``redaction``, ``redacted_output``) and the GitHub job summary (``step_summary``). Everything
else lives in a room named for what it is: ``commands`` (the verbs), ``client`` (talking to a target),
``oracles`` (pure judges), ``stack`` (the reference stack), ``drill`` (backups and restore drills),
``proof`` (the defect catalogue and the selftest), ``faults`` and ``observability``. A new module goes
into one of them, not here.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # resolved on first use: importlib.metadata costs ~70 ms, and most commands never ask
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("relay-gate")
        except PackageNotFoundError:  # running from a source tree that was never installed
            value = "0.0.0+source"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'gate' has no attribute {name!r}")
