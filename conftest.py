"""Root conftest: fixture plugins shared by tests/ and features/, and the session's stack.

``--backend`` (or RELAY_GATE_BACKEND) picks where Redis and PostgreSQL come from for the one stack a
test session boots: ``embedded`` (default, bundled binaries) or ``containers`` (testcontainers).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

import pytest

from gate.errors import StackError
from gate.results import record_infrastructure_error
from gate.stack import Stack, StackConfig

pytest_plugins = [
    "tests.plugins.redis_fixtures",
    "tests.plugins.pg_fixtures",
    # step definitions are plugins so every feature's test module sees them
    "features.steps.common",
    "features.steps.rate_limit",
    "features.steps.rate_limit_workspaces",
    "features.steps.rate_limit_replicas",
    "features.steps.rate_limit_outage",
    "features.steps.signing",
    "features.steps.audit",
    "features.steps.headers",
    "features.steps.drill",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("relay-gate")
    group.addoption(
        "--backend",
        choices=("embedded", "containers"),
        default=os.environ.get("RELAY_GATE_BACKEND", "embedded"),
        help="where the session stack's Redis and PostgreSQL come from (default: embedded)",
    )
    group.addoption(
        "--defect",
        default=None,
        help="start the session stack with this deliberate defect of gate/defects.py (proves the gate "
        "fails; selftest and the proof tests pass it; the results and the evidence say so)",
    )
    g = parser.getgroup("relay-gate target")
    g.addoption("--target-url", default=None, help="run the scenarios against this deployment")
    g.addoption("--target-config", type=Path, default=None, help="TOML target config (see gate/target.py)")
    g.addoption("--results", type=Path, default=None, help="write scenario records and summary here")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("RELAY_GATE_DEFECT"):
        # a defect switched on by the environment would change what every run tests, silently
        raise pytest.UsageError(
            "RELAY_GATE_DEFECT is set: a deliberate defect is never switched on through the environment; "
            "unset it, and use `relay-gate selftest --defect NAME` (or pytest --defect NAME) instead"
        )
    _sigterm_as_interrupt()
    _prefer_present_images()


def _sigterm_as_interrupt() -> None:
    """SIGTERM ends the session like Ctrl-C: pytest then tears down its fixtures, and with them every
    stack they started (their processes live in sessions of their own and would outlive us)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # somebody (an embedding program) decided already

    def on_term(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second one must not cut the teardown
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_term)


def _prefer_present_images() -> None:
    """On a machine without a registry, point the containers backend at images the engine has.

    Only when RELAY_GATE_*_IMAGE are unset and the official image is absent: then a locally built
    relay-gate-local/* image (.ci/build-images.sh) is used instead of a pull that cannot succeed.
    """
    if not any(os.environ.get(v) is None for v in ("RELAY_GATE_REDIS_IMAGE", "RELAY_GATE_PG_IMAGE")):
        return
    from gate.containers import docker_available

    if not docker_available()[0]:
        return  # no engine (or a stale socket): the containers tests skip, saying so
    try:
        import docker

        client = docker.from_env(timeout=2)
        present = {tag for image in client.images.list() for tag in image.tags}
        client.close()
    except Exception:
        return  # no engine: the containers tests skip, saying so
    for var, official, local in (
        ("RELAY_GATE_REDIS_IMAGE", "redis:7", "relay-gate-local/redis:7"),
        ("RELAY_GATE_PG_IMAGE", "postgres:16", "relay-gate-local/postgres:15"),
    ):
        if var not in os.environ and official not in present and local in present:
            os.environ[var] = local


@pytest.fixture(scope="session")
def stack_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.config.getoption("--backend")
    if backend == "containers":
        from gate.containers import docker_available

        ok, why = docker_available()
        if not ok:
            pytest.skip(f"--backend containers, but {why}")
    return backend


@pytest.fixture(scope="session")
def stack(stack_backend: str, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """One reference stack for the whole session: 2 relay replicas sharing Redis and PostgreSQL."""
    config = StackConfig(backend=stack_backend, replicas=2, defect=request.config.getoption("--defect"))  # type: ignore[arg-type]
    stack = Stack(config)
    try:
        stack.start()
    except StackError as exc:
        infrastructure_failure(request.config, f"the reference stack did not start:\n{exc}")
    try:
        yield stack
    finally:
        stack.stop()


def infrastructure_failure(config: pytest.Config, message: str) -> NoReturn:
    """Stop the session with exit status 5, leaving the reason where `relay-gate check` looks for it."""
    record_infrastructure_error(config.getoption("--results", default=None), message)
    pytest.exit(message, returncode=5)
