"""Metric names used by PromQL expressions (enough PromQL for the generated rules and dashboard).

Strings, label matchers, ranges and grouping clauses are removed first; what remains that is an
identifier, not a keyword and not a function call, is a metric name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"})


def metric_names(expr: str) -> set[str]:
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in _KEYWORDS}


def all_names(exprs: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for expr in exprs:
        out |= metric_names(expr)
    return out
