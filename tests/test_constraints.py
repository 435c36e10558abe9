"""constraints.txt is the lock the README, tox and CI install from: it must pin every dependency
pyproject.toml names (core and the dev extra) at a version pyproject.toml allows, so a release
upstream cannot change what the gate runs on, and a new dependency cannot slip in unpinned."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert m, f"constraints.txt: {line!r} is not an exact pin (name==version)"
        pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return [Requirement(s) for s in specs]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    problems = []
    for req in _requirements():
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name} is not pinned")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} is outside pyproject's {req.specifier}")
    assert not problems, "re-run pip-compile (README, Development): " + "; ".join(problems)


def test_the_project_itself_is_not_pinned() -> None:
    # an editable install of this checkout must not be fought by a pin of an older release of it
    assert "relay-gate" not in _pins()
