"""docs/service.md read as data, for the tests that hold code to it: the security header table.

The table lives under "## Security headers": its header row names the profiles (a code span per
column), each further row a header (several names joined by `` / ``, a leading ``-`` standing for the
first name's prefix: ``Cross-Origin-Opener-Policy / -Resource-Policy``) and, per profile, its value as
a code span (several joined by `` / ``) or ``—`` where the profile does not send it. A cell outside
this grammar raises, so a reworded table fails the tests instead of being half read.
"""

from __future__ import annotations

import re
from pathlib import Path

SERVICE_MD = Path(__file__).resolve().parents[1] / "docs" / "service.md"
_CODE = re.compile(r"`([^`]*)`")


def _section(markdown: str, title: str) -> str:
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _names(cell: str) -> list[str]:
    parts = [p.strip() for p in cell.split(" / ")]
    first = parts[0]
    names = [first]
    for part in parts[1:]:
        if not part.startswith("-"):
            names.append(part)
            continue
        suffix = part[1:].split("-")
        names.append("-".join(first.split("-")[: -len(suffix)] + suffix))
    return names


def header_profiles(markdown: str | None = None) -> dict[str, dict[str, str]]:
    """Profile name -> {header: value}, as the "Security headers" table of docs/service.md states it."""
    text = _section(
        markdown if markdown is not None else SERVICE_MD.read_text(encoding="utf-8"), "Security headers"
    )
    rows = [_cells(line) for line in text.splitlines() if line.lstrip().startswith("|")]
    head, _separator, *body = rows
    profiles = [_CODE.findall(cell) for cell in head[1:]]
    if not all(len(p) == 1 for p in profiles):
        raise ValueError(f"the table's header row must name one profile per column in a code span: {head}")
    out: dict[str, dict[str, str]] = {p[0]: {} for p in profiles}
    for row in body:
        if len(row) != len(head):
            raise ValueError(f"row {row} has {len(row)} cells, the table {len(head)}")
        names = _names(row[0])
        for (profile,), cell in zip(profiles, row[1:], strict=True):
            if cell == "—":
                continue
            values = _CODE.findall(cell)
            if len(values) != len(names):
                raise ValueError(
                    f"{profile!r} cell {cell!r} of {names} has {len(values)} value(s) in code spans"
                )
            out[profile].update(zip(names, values, strict=True))
    return out


def configuration(markdown: str | None = None) -> dict[str, str]:
    """Variable -> its default as the Configuration table of docs/service.md writes it (code marks
    removed; a row naming several variables gives each the same default)."""
    text = _section(
        markdown if markdown is not None else SERVICE_MD.read_text(encoding="utf-8"), "Configuration"
    )
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            continue
        variables, default, *_ = _cells(line)
        names = _CODE.findall(variables)
        if not names or set(default) <= set("-: "):
            continue  # the header row and the separator
        value = default.replace("`", "")
        out.update(dict.fromkeys(names, value))
    return out
