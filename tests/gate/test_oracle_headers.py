"""gate.oracles.headers: the gate's own expected header sets are docs/service.md's table, and the header
path of the gate (target, header analysis, oracle) imports nothing of the service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gate.client.target import Target
from gate.oracles import headers as oracle
from tests.service_doc import header_profiles

ROOT = Path(__file__).resolve().parents[2]
HEADER_PATH = (
    "gate/oracles/headers.py",
    "gate/oracles/headercheck.py",
    "gate/client/target.py",
    "features/steps/headers.py",
)


def test_the_gates_profiles_are_the_documented_table() -> None:
    documented = header_profiles()
    assert set(oracle.PROFILES) == set(documented)
    for name, headers in documented.items():
        got = dict(oracle.PROFILES[name])
        missing = sorted(set(headers) - set(got))
        extra = sorted(set(got) - set(headers))
        wrong = sorted(h for h in set(got) & set(headers) if got[h] != headers[h])
        assert not (missing or extra or wrong), (
            f"{name}: missing {missing}, extra {extra}, wrong value {wrong}"
        )


@pytest.mark.parametrize("path", HEADER_PATH)
def test_the_header_path_of_the_gate_never_imports_the_service(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m == "service" or m.startswith("service.")], imported


def test_a_target_expects_the_gates_profile() -> None:
    t = Target(name="t", base_urls=["http://127.0.0.1:1"], header_profile="seed")
    assert t.expected() == dict(oracle.PROFILES["seed"])
    got = t.expected()
    assert got is not None
    got["X-XSS-Protection"] = "0"  # a copy: editing it changes nothing the next scenario expects
    assert oracle.PROFILES["seed"]["X-XSS-Protection"] == "1; mode=block"
    with pytest.raises(TypeError):
        oracle.PROFILES["seed"]["X-Frame-Options"] = "SAMEORIGIN"  # type: ignore[index]


def test_profile_names_the_known_ones() -> None:
    assert oracle.profile("strict")["X-XSS-Protection"] == "0"
    with pytest.raises(KeyError, match="known: \\['seed', 'strict'\\]"):
        oracle.profile("lax")


MINI = """
## Security headers

| header | `strict` (default) | `seed` |
|---|---|---|
| X-Frame-Options | `DENY` | `DENY` |
| Cross-Origin-Opener-Policy / -Resource-Policy | `same-origin` / `same-site` | — |

## Next
"""


def test_the_table_reader_expands_abbreviated_names_and_skips_dashes() -> None:
    assert header_profiles(MINI) == {
        "strict": {
            "X-Frame-Options": "DENY",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-site",
        },
        "seed": {"X-Frame-Options": "DENY"},
    }


@pytest.mark.parametrize(
    "row", ["| X-Frame-Options | set | `DENY` |", "| A / -B | `1` | — |", "| X-Frame-Options | `DENY` |"]
)
def test_the_table_reader_refuses_a_cell_it_cannot_read(row: str) -> None:
    with pytest.raises(ValueError):
        header_profiles(MINI.replace("| X-Frame-Options | `DENY` | `DENY` |", row))
