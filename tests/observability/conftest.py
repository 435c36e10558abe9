"""Fixtures of the observability tests: the generated outputs, and promtool when it is installed."""

from __future__ import annotations

import shutil

import pytest

from gate.observability import Generated, generate
from load import slos


@pytest.fixture(scope="session")
def generated() -> Generated:
    return generate(slos.load())


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian/Ubuntu: apt-get install prometheus)")
    return path
