"""Durations on the command line and in feature files: ``900``, ``90s``, ``15m``, ``1h30m``, ``1.5d``."""

from __future__ import annotations

import re

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms]?)\s*")


def parse_duration(text: str) -> float:
    """Seconds from a number with an optional unit (s, m, h, d), or several, largest first: ``1h30m``.

    A ValueError says what was wrong; each verb turns it into its own usage error.
    """
    stripped = text.strip()
    parts = _PART.findall(stripped)
    units = [u for _, u in parts]
    order = [u or "s" for u in units]
    if (
        not stripped
        or _PART.sub("", stripped)
        or len(set(order)) != len(order)
        or order != sorted(order, key=lambda u: -_UNITS[u])
    ):
        raise ValueError(f"{text!r} is not a duration: use seconds, or numbers with d, h, m, s (e.g. 1h30m)")
    return sum(float(n) * _UNITS[u] for n, u in parts)
