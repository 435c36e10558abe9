"""pytest fixtures for PostgreSQL: real servers from the binaries pgserver ships (see
gate/stack/postgres/server.py).

- ``pg_server``: one server for the whole session. Tests may create databases on it but must leave it
  running and unpaused; a test that stops, kills, pauses or restarts PostgreSQL takes ``fresh_pg``.
- ``fresh_pg``: a server of its own for one test, torn down after it (a start costs well under 1 s).
- ``pg_database``: the URL of a fresh, uniquely named database with the audit migrations applied,
  on ``pg_server``; dropped after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.stack.postgres.server import EmbeddedPostgres


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(tmp_path_factory.mktemp("pg-session")) as server:
        yield server
        # A test that broke the shared server would silently break the ones after it: say so here.
        if not server.running:
            pytest.fail(f"the session PostgreSQL died during the run (log: {server.log_path})")


@pytest.fixture
def fresh_pg(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(tmp_path / "pg") as server:
        yield server


@pytest.fixture(scope="session")
def _pg_migrated_template(pg_server: EmbeddedPostgres) -> str:
    """A database migrated once per session: copying it (CREATE DATABASE ... TEMPLATE) is much faster
    than running Alembic for every test, and yields the same schema."""
    from service.audit import migrate

    name = f"audit_template_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(name)
    migrate(pg_server.url(name))
    return name


@pytest.fixture
def pg_database(pg_server: EmbeddedPostgres, _pg_migrated_template: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:16]}"
    pg_server.create_database(name, template=_pg_migrated_template)
    yield pg_server.url(name)
    pg_server.drop_database(name)
