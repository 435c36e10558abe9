"""The pytest plugin the scenarios need, importable from an installed gate (no source checkout).

``relay-gate check`` loads it with ``-p features.plugin`` (features/pytest-check.ini, the scenarios' own
configuration, shipped as package data); in a source checkout the root conftest.py lists it in
``pytest_plugins``, so ``pytest`` and ``pytest features/`` work as before. It holds:

- the options: ``--backend`` (or RELAY_GATE_BACKEND) picks where Redis and PostgreSQL come from for
  the one stack a session boots — ``embedded`` (default, bundled binaries) or ``containers``
  (testcontainers); ``--defect``; ``--target-url``, ``--target-config``, ``--results``;
- the Gherkin tags as registered markers (run with ``--strict-markers``);
- the session ``stack`` fixture, and the step definitions every feature's test module sees.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

import pytest

from features.support import skips
from gate.errors import StackError
from gate.results import record_infrastructure_error
from gate.stack.reference import Stack, StackConfig

FIRST_STEP_MODULE = "common"  # the fixtures and steps every feature shares


def step_modules(package: str = "features.steps") -> list[str]:
    """Every module of the step package, as a dotted name: ``common`` first, then the others sorted.

    Found through the package's ``__path__`` (a source checkout or an installed wheel alike), so a
    module dropped into features/steps is registered with nothing else to edit. No step is defined
    twice (each feature step matches exactly one definition), so the order decides nothing but is
    kept stable."""
    pkg = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__))
    names.sort(key=lambda n: n != FIRST_STEP_MODULE)
    return [f"{package}.{n}" for n in names]


# step definitions are plugins so every feature's test module sees them. A step module may import
# another (api_actions imports headers) before that one's turn to be registered: marked for assertion
# rewriting beforehand, every one of them is rewritten whichever imports it first.
pytest.register_assert_rewrite("features.steps")
pytest_plugins = step_modules()

# every Gherkin tag is a marker (pytest-bdd turns each into one); --strict-markers refuses any other
MARKERS = (
    # areas
    "smoke: the post-deploy smoke (health, list, preview -> execute, audit)",
    "rate_limit: per-workspace rate limiting",
    "signing: webhook signing",
    "headers: security headers",
    "audit: authentication and the audit log",
    "drill: backup and restore drill",
    "api: the API contract (errors, request bodies, previews, request ids)",
    "drill-tooling: a check of relay-gate's drill tooling (damages a copy of a backup), not of the target",
    # what a scenario needs of the target (skipped with the reason otherwise)
    "needs-control: control of the target's Redis/PostgreSQL (reference stack only)",
    "needs-receiver: a webhook receiver to read deliveries from",
    "needs-signing-secret: the signing secret, to recompute signatures",
    "needs-fault-route: a path that answers an unhandled 500",
    "needs-dev-key: a dev key",
    "needs-admin-key: an admin key",
    "needs-second-workspace: keys for two workspaces",
    "needs-rate-limit-policy: the rate-limit policy (limit, window)",
    "needs-database: a database URL",
    # what a scenario spends of the workspace quota (gate/client/quota.py plans them)
    "quota-none: sends no execute",
    "quota-1: one execute from a workspace with room left",
    "quota-3: three executes from a workspace with room left",
    "quota-6: six executes from a workspace with room left",
    "quota-7: seven executes from a workspace with room left",
    "quota-exhausts: uses a workspace's quota up in the current window",
    "quota-fresh: needs a workspace untouched in the current window, and uses it up",
    "quota-fresh-two: needs two workspaces untouched in the current window",
    "quota-rollover: uses a workspace up, waits for the next window, spends one there",
)


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
        help="start the session stack with this deliberate defect of gate/proof/catalogue.py (proves "
        "the gate fails; selftest and the proof tests pass it; the results and the evidence say so)",
    )
    g = parser.getgroup("relay-gate target")
    g.addoption("--target-url", default=None, help="run the scenarios against this deployment")
    g.addoption(
        "--target-config", type=Path, default=None, help="TOML target config (see gate/client/target.py)"
    )
    g.addoption("--results", type=Path, default=None, help="write scenario records and summary here")


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
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
    from gate.stack.containers.backend import docker_available

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
        from gate.stack.containers.backend import docker_available

        ok, why = docker_available()
        if not ok:
            skips.precondition(f"--backend containers, but {why}")
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
