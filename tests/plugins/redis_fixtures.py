"""pytest fixtures for Redis: a real redis-server (the bundled binary) and fakeredis with Lua.

- ``redis_server``: one server for the whole session. Tests may write to it (use unique keys) but must
  leave it running and unpaused; a test that pauses, kills or restarts Redis takes ``fresh_redis``.
- ``fresh_redis``: a server of its own for one test, torn down after it.
- ``fake_redis``: a ``fakeredis.aioredis.FakeRedis`` (EVAL/EVALSHA through lupa) on a private fake server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gate.stack.redis_server import EmbeddedRedis

if TYPE_CHECKING:
    import fakeredis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-session"))
    with server:
        yield server
        # A test that broke the shared server would silently break the ones after it: say so here.
        if not server.alive():
            pytest.fail(f"the session redis-server died during the run:\n{server.log_tail()}")


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def fake_redis() -> fakeredis.aioredis.FakeRedis:
    """An async fake client; connections open lazily inside the test's event loop (asyncio.run)."""
    import fakeredis

    return fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())
