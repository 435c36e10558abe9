"""A small, deterministic YAML emitter for the generated Prometheus files (no PyYAML at run time).

It writes the subset those files need — mappings, sequences, strings, numbers, booleans — in block
style, with multi-line strings (PromQL) as literal blocks. Strings are left plain only when they
cannot be read back as anything else; all others are double-quoted with JSON escapes, which YAML's
double-quoted style accepts unchanged. Floats never use exponent notation, so a threshold reads the
same in the rule file, in PromQL and in the docs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ./-]*$")
# words YAML 1.1 parsers (Go's yaml.v2 among them) read as booleans or null
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})


def number(value: float) -> str:
    """A float without exponent or binary noise: 14.4 * 0.005 -> ``0.072``; 3.0 -> ``3``."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return number(value)
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _RESERVED and not value.endswith(" "):
            return value
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _is_block(value: Any) -> bool:
    return isinstance(value, str) and "\n" in value.strip("\n")


def _block(value: str, pad: str) -> list[str]:
    # "|-": the value is exactly these lines, without a trailing newline
    return [f"{pad}{line}".rstrip() for line in value.strip("\n").splitlines()]


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            k = scalar(str(key))
            if _is_block(item):
                out.append(f"{pad}{k}: |-")
                out.extend(_block(item, pad + "  "))
            elif isinstance(item, Mapping | list | tuple):
                if not item:
                    out.append(f"{pad}{k}: {'{}' if isinstance(item, Mapping) else '[]'}")
                else:
                    out.append(f"{pad}{k}:")
                    out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{pad}{k}: {scalar(item)}")
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if isinstance(item, Mapping | list | tuple) and item:
                nested = _lines(item, indent + 2)
                nested[0] = f"{pad}- {nested[0][indent + 2 :]}"
                out.extend(nested)
            elif _is_block(item):
                out.append(f"{pad}- |-")
                out.extend(_block(item, pad + "  "))
            elif isinstance(item, Mapping | list | tuple):
                out.append(f"{pad}- {'{}' if isinstance(item, Mapping) else '[]'}")
            else:
                out.append(f"{pad}- {scalar(item)}")
        return out
    return [f"{pad}{scalar(value)}"]


def dump(doc: Mapping[str, Any], *, header: str = "") -> str:
    """The document as YAML text, preceded by ``header`` as comment lines."""
    comments = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    return "\n".join([*comments, *_lines(doc, 0)]) + "\n"
