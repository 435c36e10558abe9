"""Jinja filters that put untrusted text (headers, bodies, reasons) into Markdown safely.

Values from the results files are data, never markup: table cells have pipes and newlines escaped,
inline code picks a fence longer than any backtick run inside, and code blocks do the same. The HTML
pages are made from this Markdown by markdown-it with raw HTML disabled, so a value like
``<script>`` ends up as visible text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from jinja2 import Undefined
from jinja2.exceptions import UndefinedError

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def _missing(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def cell(value: Any) -> str:
    """Plain text for a table cell."""
    if _missing(value):
        return "—"
    text = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", text) or "—"


def code(value: Any) -> str:
    """Inline code, safe inside a table cell."""
    if _missing(value):
        return "—"
    text = " ".join(str(value).split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    # GFM: a pipe inside a code span in a table cell is written \| (and shown as |)
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def fence(value: Any, lang: str = "") -> str:
    """A fenced code block holding ``value`` verbatim."""
    text = "" if _missing(value) else str(value)
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    f = "`" * (longest + 1)
    return f"{f}{lang}\n{text.rstrip()}\n{f}"


def utc(epoch: Any) -> str:
    try:
        return (
            datetime.fromtimestamp(float(epoch), UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
    except (TypeError, ValueError, OSError):
        return "—"


def ms(value: Any, digits: int = 1) -> str:
    try:
        return f"{float(value):.{digits}f} ms"
    except (TypeError, ValueError, UndefinedError):  # a figure the results do not hold (Locust crashed)
        return "—"


def anchor(text: str) -> str:
    """GitHub-style heading anchor."""
    return re.sub(r"[^a-z0-9 -]", "", text.lower()).strip().replace(" ", "-")


FILTERS = {"cell": cell, "code": code, "fence": fence, "utc": utc, "ms": ms, "anchor": anchor}
