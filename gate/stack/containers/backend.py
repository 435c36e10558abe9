"""The ``containers`` backend: Redis and PostgreSQL in Docker containers, started through testcontainers.

:class:`ContainerRedis` and :class:`ContainerPostgres` keep the contract of the embedded servers
(gate/stack/backends.py): ``start`` polls a real readiness signal (PING; ``SELECT 1`` over TCP with the
password) until a deadline; ``stop``/``kill``/``restart`` keep the data (``docker stop``/``kill``/``start``
of the same container); ``pause`` freezes it like SIGSTOP (``docker pause``); ``close`` removes the container.

Every container uses the host network and its server listens on a free 127.0.0.1 port given on its
command line: no bridge, port mapping or iptables is involved (CI machines here have loopback only), and
URLs look exactly like the embedded backend's. Images are the official ``redis:7`` / ``postgres:16``
unless ``RELAY_GATE_REDIS_IMAGE`` / ``RELAY_GATE_PG_IMAGE`` (or ``image=``) name others, such as the
registry-free builds of ``.ci/build-images.sh``.

The shared lifecycle is gate/stack/containers/lifecycle.py; the Docker engine side (is an engine there,
images, whose containers these are and the reaping of orphans, the readiness wait) is
gate/stack/containers/engine.py.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import psycopg
import redis

from gate.stack.containers.engine import (
    LABEL_COMPONENT,
    LABEL_OWNER,
    LOCAL_IMAGE_PREFIX,
    ContainerExited,
    ServerAnswers,
    docker_available,
)
from gate.stack.containers.lifecycle import HOST, ContainerService
from gate.stack.postgres.admin import SUPERUSER, SuperuserAdmin, new_password
from gate.stack.postgres.install import source_bin_dir
from gate.stack.redis_server import ping

__all__ = [
    "DEFAULT_PG_IMAGE",
    "DEFAULT_REDIS_IMAGE",
    "HOST",
    "LABEL_COMPONENT",
    "LABEL_OWNER",
    "LOCAL_IMAGE_PREFIX",
    "PG_IMAGE_ENV",
    "REDIS_IMAGE_ENV",
    "ContainerExited",
    "ContainerPostgres",
    "ContainerRedis",
    "ServerAnswers",
    "docker_available",
]

REDIS_IMAGE_ENV = "RELAY_GATE_REDIS_IMAGE"
PG_IMAGE_ENV = "RELAY_GATE_PG_IMAGE"
DEFAULT_REDIS_IMAGE = "redis:7"
DEFAULT_PG_IMAGE = "postgres:16"


class ContainerRedis(ContainerService):
    """redis-server in a container on a loopback port, without persistence (like EmbeddedRedis)."""

    component = "redis"
    image_env = REDIS_IMAGE_ENV
    default_image = DEFAULT_REDIS_IMAGE
    version_env = "REDIS_VERSION"

    def _command(self, port: int) -> list[str]:
        return [
            "redis-server",
            "--port", str(port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip

    def _readiness(self) -> ServerAnswers:
        return ServerAnswers(lambda: ping(self.port), f"redis-server answering PING on {HOST}:{self.port}")

    def _read_version(self) -> str:
        with redis.Redis(host=HOST, port=self.port, socket_timeout=5) as client:
            return str(client.info("server")["redis_version"])

    def _default_timeout(self) -> float:
        return 10.0

    def start(self, timeout: float = 10.0) -> ContainerRedis:
        """Start (a stopped container: again) and wait for PING; StackError if it does not come up."""
        self._start(timeout)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """``docker stop`` (SIGTERM, SIGKILL after ``timeout``). Nothing persists, as with EmbeddedRedis."""
        self._stop(timeout)

    def restart(self, timeout: float = 10.0) -> ContainerRedis:
        """Stop (if running) and start the same container again: same port, empty data."""
        self.stop()
        return self.start(timeout)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def alive(self) -> bool:
        """Running or paused (a paused server is hung, not dead)."""
        return self._is_up()


class ContainerPostgres(SuperuserAdmin, ContainerService):
    """PostgreSQL in a container on a loopback port with a random password (like EmbeddedPostgres).

    The superuser is ``postgres``; :meth:`url` authenticates over TCP with the per-container password.
    :attr:`bin_dir` holds host-side client tools (pg_dump, pg_restore, psql 16 from pgserver), which
    also work against an older (15) server. ``url`` / ``password`` / ``create_database`` /
    ``drop_database`` come from :class:`~gate.stack.postgres.admin.SuperuserAdmin`.
    """

    component = "postgres"
    image_env = PG_IMAGE_ENV
    default_image = DEFAULT_PG_IMAGE
    version_env = "PG_VERSION"

    def __init__(self, *, image: str | None = None, port: int | None = None) -> None:
        super().__init__(image=image, port=port)
        self._password = new_password()

    def _command(self, port: int) -> list[str]:
        # fsync and full_page_writes only guard against a *machine* crash, and this is throwaway test data
        # (EmbeddedPostgres makes the same trade). A killed container loses nothing committed: each commit
        # still write()s its WAL to the kernel, which outlives the container.
        return [
            "postgres",
            "-p", str(port),
            "-c", f"listen_addresses={HOST}",
            "-c", "fsync=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip

    def _environment(self, port: int) -> dict[str, str]:
        return {
            "POSTGRES_USER": SUPERUSER,
            "POSTGRES_PASSWORD": self._password,
            "POSTGRES_DB": "postgres",
            # The official image's initdb trusts TCP from 127.0.0.1, which on the host network is every
            # local process: require the password there. --no-sync: throwaway data, faster first start.
            "POSTGRES_INITDB_ARGS": "--auth-host=scram-sha-256 --auth-local=trust --no-sync",
            # The official entrypoint's private setup server, and psql in `docker exec`, use PGPORT.
            "PGPORT": str(port),
        }

    def _create_options(self) -> dict[str, Any]:
        # Fast shutdown, like the official image's STOPSIGNAL and EmbeddedPostgres.stop(): on SIGTERM the
        # server would wait for every client (a pool left open) to disconnect.
        return {"stop_signal": "SIGINT"}

    def _readiness(self) -> ServerAnswers:
        return ServerAnswers(self._select1_tcp, f"SELECT 1 with the password on {HOST}:{self.port}")

    def _read_version(self) -> str:
        with psycopg.connect(self.url(), connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else "?"  # "15.18 (Debian 15.18-0+deb12u1)" -> "15.18"

    def _default_timeout(self) -> float:
        return 30.0

    def start(self, timeout: float = 30.0) -> ContainerPostgres:
        """Start (a stopped container: again) and wait for ``SELECT 1`` over TCP with the password."""
        self._start(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT; SIGKILL after ``timeout``): sessions end, the data is checkpointed, kept."""
        self._stop(timeout)

    def restart(self, timeout: float = 30.0) -> ContainerPostgres:
        self.stop()
        return self.start(timeout)

    # -- facts -------------------------------------------------------------------------------------
    @functools.cached_property
    def bin_dir(self) -> Path:
        """Host-side pg_dump, pg_restore, psql... (pgserver's, version 16: they read 15 servers too)."""
        return source_bin_dir()

    @property
    def running(self) -> bool:
        """Running or paused (a paused server is hung, not dead)."""
        return self._is_up()
