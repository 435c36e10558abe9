"""The verdict in a GitHub Actions job summary.

When ``GITHUB_STEP_SUMMARY`` names a file (GitHub sets it in every step), ``relay-gate run`` and
``relay-gate check`` append a Markdown section to it: a table of what ran, the verdict line exactly as
the command printed it (one string, built once, gate/verdict.py's line), and where the results and the
evidence pack are. Secrets are redacted as in every other output. Only the verb the user ran writes:
``relay-gate run`` calls ``check`` for its features step, and the job summary gets one verdict, the
run's. A summary that cannot be written is a warning on stderr, never a change of the verdict.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gate.redaction import Redactor

ENV = "GITHUB_STEP_SUMMARY"
_owner: list[str] = []  # the verb the user ran, while it runs (cli.main)


@contextlib.contextmanager
def owned_by(verb: str, *, outermost: bool) -> Iterator[None]:
    """While the outermost verb runs, the verbs it calls write no summary of their own."""
    if not outermost:
        yield
        return
    _owner.append(verb)
    try:
        yield
    finally:
        _owner.pop()


def _cell(value: object) -> str:
    text = " ".join(str("" if value is None else value).split())
    return text.replace("|", "\\|") or " "


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def section(*, title: str, verdict: str, body: str, paths: Sequence[tuple[str, Path]]) -> str:
    """``verdict`` goes in a code block, character for character as the command printed it."""
    fence = "````" if "```" in verdict else "```"
    where = [f"- {label}: `{path}`" for label, path in paths]
    return "\n".join([f"### {title}", "", fence, verdict, fence, "", body, "", *where, "", ""])


def append(verb: str, text: str, *, redactor: Redactor) -> Path | None:
    """Append ``text`` to the job summary, if there is one and ``verb`` is the one the user ran."""
    target = os.environ.get(ENV)
    if not target or (_owner and _owner[-1] != verb):
        return None
    path = Path(target)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(redactor.text(text))
    except OSError as exc:
        print(f"relay-gate {verb}: warning: could not append to {ENV} ({path}): {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return None
    return path


# -- what each verb puts there ------------------------------------------------------------------------


def for_run(steps: Sequence[Any], *, verdict: str, results: Path, out: Path, redactor: Redactor) -> None:
    """``relay-gate run``: one row per step (gate/commands/run.py's Step), the pack and the results."""
    rows = [(s.name, s.code, f"{s.seconds:.1f}", s.item().outcome, s.note) for s in steps]
    index = out / "index.html"
    paths = [("evidence pack", index if index.exists() else out), ("results", results)]
    body = table(["step", "exit", "seconds", "outcome", "note"], rows)
    append("run", section(title="relay-gate run", verdict=verdict, body=body, paths=paths), redactor=redactor)


def for_check(summary: dict[str, Any] | None, *, verdict: str, results: Path, redactor: Redactor) -> None:
    """``relay-gate check``: one row per feature, then each scenario that did not pass, with why."""
    rows, notes = [], []
    for feat in (summary or {}).get("features", []):
        outcomes = [sc["outcome"] for sc in feat["scenarios"]]
        rows.append(
            [feat["feature"], *(outcomes.count(o) for o in ("passed", "failed", "skipped", "not run"))]
        )
        for sc in feat["scenarios"]:
            if sc["outcome"] != "passed":
                why = f" ({sc['category']})" if sc.get("category") else ""
                notes.append(
                    f"- {sc['outcome'].upper()}{why}: {_cell(sc['scenario'])} — {_cell(sc.get('reason'))}"
                )
    body = table(["feature", "passed", "failed", "skipped", "not run"], rows) if rows else "no scenario ran"
    if notes:
        body += "\n\n" + "\n".join(notes)
    text = section(title="relay-gate check", verdict=verdict, body=body, paths=[("results", results)])
    append("check", text, redactor=redactor)
