"""The ``containers`` backend: Redis and PostgreSQL in Docker containers, started through testcontainers.

:class:`ContainerRedis` and :class:`ContainerPostgres` keep the contract of the embedded servers
(gate/services.py): ``start`` polls a real readiness signal (PING; ``SELECT 1`` over TCP with the password)
until a deadline; ``stop``/``kill``/``restart`` keep the data (``docker stop``/``kill``/``start`` of the same
container); ``pause`` freezes it like SIGSTOP (``docker pause``); ``close`` removes the container.

Every container uses the host network and its server listens on a free 127.0.0.1 port given on its
command line: no bridge, port mapping or iptables is involved (CI machines here have loopback only), and
URLs look exactly like the embedded backend's. Images are the official ``redis:7`` / ``postgres:16``
unless ``RELAY_GATE_REDIS_IMAGE`` / ``RELAY_GATE_PG_IMAGE`` (or ``image=``) name others, such as the
registry-free builds of ``.ci/build-images.sh``.

testcontainers' reaper (Ryuk) is an image pulled from Docker Hub, so it is off unless the environment
asks for it. Its job is done here instead: containers carry an owner label; those of a process that died
are removed when the next one is created, and a process removes its own leftovers when it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import math
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, NoReturn, Self

import docker
import psycopg
import redis
from docker.errors import DockerException, ImageNotFound, NotFound
from psycopg import sql
from requests.exceptions import RequestException
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import get_docker_host
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from gate.errors import StackError
from gate.pg_server import IDENTIFIER_RE, SUPERUSER, _source_bin_dir
from gate.procs import free_port, port_in_use
from gate.redis_server import ping

HOST = "127.0.0.1"
REDIS_IMAGE_ENV = "RELAY_GATE_REDIS_IMAGE"
PG_IMAGE_ENV = "RELAY_GATE_PG_IMAGE"
DEFAULT_REDIS_IMAGE = "redis:7"
DEFAULT_PG_IMAGE = "postgres:16"
LOCAL_IMAGE_PREFIX = "relay-gate-local/"  # built by .ci/build-images.sh, published nowhere
LABEL_OWNER = "dev.relay-gate.owner"
LABEL_COMPONENT = "dev.relay-gate.component"

_DOCKER_FIX = "start a Docker engine (bash .ci/start-docker.sh, or dockerd) or use --backend embedded"
_BUILD_HINT = "bash .ci/build-images.sh (builds relay-gate-local/* images from Debian packages)"
_DOCKER_ERRORS = (DockerException, RequestException)
_GONE = frozenset({"exited", "dead", "removing"})
_UP = frozenset({"running", "paused"})


def _engine() -> tuple[str, dict[str, str]]:
    """Where the engine testcontainers will use is (DOCKER_HOST, ~/.testcontainers.properties, the docker
    context), and the environment that makes docker.from_env() reach the same one."""
    host = get_docker_host()
    env = {**os.environ, "DOCKER_HOST": host} if host else dict(os.environ)
    return host or "unix:///var/run/docker.sock", env


def _engine_client(timeout: float) -> docker.DockerClient:
    return docker.from_env(timeout=max(1, math.ceil(timeout)), environment=_engine()[1])


def docker_available(timeout: float = 2.0) -> tuple[bool, str]:
    """Whether a Docker engine answers a ping within ``timeout``; the text says which one, or why not."""
    where, _env = _engine()
    if where.startswith("unix://"):
        # docker-py leaks the socket of a failed unix connect (a ResourceWarning): knock first ourselves.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            try:
                probe.connect(where.removeprefix("unix://"))
            except OSError as exc:
                return False, f"no Docker engine answered at {where}: {exc.strerror or _short(exc)}"
    try:
        # from_env negotiates the API version: already a round trip to the engine.
        client = _engine_client(timeout)
    except Exception as exc:  # whatever the failure, there is no usable engine; the reason is what matters
        return False, f"no Docker engine answered at {where}: {_short(exc)}"
    try:
        client.ping()
        version = client.version().get("Version", "?")
    except Exception as exc:
        return False, f"the Docker engine at {where} did not answer a ping: {_short(exc)}"
    finally:
        client.close()
    return True, f"Docker {version} at {where}"


def _short(exc: BaseException | None, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- owners: the job Ryuk would do ------------------------------------------------------------------


def _owner_token(pid: int) -> str | None:
    """``<boot id>/<pid namespace>/<pid>/<start time>``: names one process, even once its pid is reused."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.readlink(f"/proc/{pid}/ns/pid")
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
    return f"{boot}/{pidns}/{pid}/{start}"


@functools.cache
def _owner_of(pid: int) -> str:
    return _owner_token(pid) or f"unknown/{pid}"


def _owner() -> str:
    """This process's owner label, per pid: a forked child owns its own containers."""
    return _owner_of(os.getpid())


_atexit_registered = False


def _owner_gone(owner: str) -> bool:
    """True only for an owner that provably ran in our pid namespace during this boot and has exited.

    Containers of other machines, other containers (pid namespaces) or earlier boots are never judged.
    """
    mine, theirs = _owner().split("/"), owner.split("/")
    if len(mine) != 4 or len(theirs) != 4 or mine[:2] != theirs[:2] or not theirs[2].isdigit():
        return False
    return _owner_token(int(theirs[2])) != owner


def _reap_orphans(client: docker.DockerClient) -> None:
    """Remove containers whose owning process died without close() (a SIGKILLed test run)."""
    with contextlib.suppress(*_DOCKER_ERRORS):
        for container in client.containers.list(all=True, filters={"label": LABEL_OWNER}):
            if _owner_gone(container.labels.get(LABEL_OWNER, "")):
                with contextlib.suppress(*_DOCKER_ERRORS):
                    container.remove(force=True, v=True)


def _remove_ours() -> None:
    """At exit: remove the containers this process created and never closed."""
    if not docker_available()[0]:
        return
    with contextlib.suppress(*_DOCKER_ERRORS):
        client = _engine_client(10)
        try:
            for container in client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={_owner()}"}):
                with contextlib.suppress(*_DOCKER_ERRORS):
                    container.remove(force=True, v=True)
        finally:
            client.close()


# -- readiness ----------------------------------------------------------------------------------------


class ContainerExited(Exception):
    """The container stopped running (or was removed) while we waited for its server."""


class ServerAnswers(WaitStrategy):
    """Ready when ``probe()`` returns True (a real PING or query); fails at once if the container exits.

    An exception from ``probe`` means "not yet"; the last one is reported if the deadline passes.
    """

    def __init__(self, probe: Callable[[], bool], what: str) -> None:
        super().__init__()
        self._probe = probe
        self.what = what
        self.last_error: BaseException | None = None
        self.exited = False
        self.with_poll_interval(0.05)

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        def check() -> bool:
            try:
                container.reload()
                self.exited = container.status in _GONE
            except NotFound:
                self.exited = True
            except _DOCKER_ERRORS as exc:
                self.last_error = exc
                return False
            if self.exited:
                raise StopIteration  # the poll loop's "give up now"
            try:
                return self._probe()
            except Exception as exc:  # refused, reset, timed out, auth not set up yet...: not ready
                self.last_error = exc
                return False

        if self._poll(check):
            return
        if self.exited:
            raise ContainerExited(self.what)
        why = f" (last error: {_short(self.last_error)})" if self.last_error else ""
        raise TimeoutError(f"{self.what} did not happen within {self._startup_timeout:g} s{why}")


# -- the services -------------------------------------------------------------------------------------


class _ContainerService:
    """One server in one container on the host network: the lifecycle both services share."""

    component: ClassVar[str]
    image_env: ClassVar[str]
    default_image: ClassVar[str]
    version_env: ClassVar[str]  # the image's ENV naming the server version (official images set it)

    def __init__(self, *, image: str | None = None, port: int | None = None) -> None:
        self.image = image or os.environ.get(self.image_env) or self.default_image
        self._fixed_port = port is not None
        self._port = port
        self._container: DockerContainer | None = None
        self._version: str | None = None
        # Ryuk would be pulled from Docker Hub: off unless TESTCONTAINERS_RYUK_DISABLED says otherwise.
        if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:
            testcontainers_config.ryuk_disabled = True

    # -- what a subclass says about its server --------------------------------------------------------
    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _environment(self, port: int) -> dict[str, str]:
        return {}

    def _create_options(self) -> dict[str, Any]:
        return {}

    def _readiness(self) -> ServerAnswers:
        raise NotImplementedError

    def _read_version(self) -> str:
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------------------
    def _start(self, timeout: float) -> None:
        status = self._status()
        if status in _UP:
            return
        if status is not None:
            # Same container, same port, same data: what restart() promises.
            with self._docker_call("starting the container again"):
                self._wrapped().start()
            self._await_ready(timeout, remove_on_failure=False)
            return
        for attempt in range(3):
            if not self._fixed_port and (self._port is None or attempt > 0 or port_in_use(self._port)):
                self._port = free_port(HOST)
            elif port_in_use(self.port):
                raise StackError(
                    self.component,
                    f"port {self.port} on {HOST} is already in use",
                    fix="stop whatever listens there, or let relay-gate pick a free port (omit the port)",
                )
            self._create_and_start(self.port)
            try:
                self._await_ready(timeout, remove_on_failure=True)
                return
            except StackError as exc:
                # A port the kernel called free can be taken before the server binds it: pick again.
                if self._fixed_port or "already in use" not in exc.log_tail or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _create_and_start(self, port: int) -> None:
        global _atexit_registered
        ok, why = docker_available()
        if not ok:
            raise StackError(self.component, why, fix=_DOCKER_FIX)
        with self._docker_call("connecting to the engine"):
            container = (
                DockerContainer(self.image)
                .with_command(self._command(port))
                .with_envs(**self._environment(port))
                .with_name(f"relay-gate-{self.component}-{port}-{secrets.token_hex(3)}")
                .with_kwargs(
                    # `network`, not `network_mode`: then testcontainers does not also try to attach the
                    # container to a Docker-in-Docker runner's network. The engine sets NetworkMode=host.
                    network="host",
                    labels={LABEL_OWNER: _owner(), LABEL_COMPONENT: self.component},
                    **self._create_options(),
                )
            )
        client = container.get_docker_client().client
        try:
            _reap_orphans(client)
            self._ensure_image(client, container.image)
            if not _atexit_registered:
                atexit.register(_remove_ours)
                _atexit_registered = True
            with self._docker_call("creating and starting the container"):
                container.start()  # create + start; readiness is ours (_await_ready), not a strategy here
        except BaseException:
            # Removes a container that was created but did not start, and closes the client (else its
            # socket lingers until garbage collection: a ResourceWarning).
            with contextlib.suppress(*_DOCKER_ERRORS):
                container.stop()
            raise
        self._container = container

    def _ensure_image(self, client: docker.DockerClient, image: str) -> None:
        with self._docker_call("looking up the image"):
            try:
                client.images.get(image)
                return
            except ImageNotFound:
                pass
        if image.startswith(LOCAL_IMAGE_PREFIX):
            # Never published anywhere: asking a registry would only add a confusing second error.
            raise StackError(
                self.component,
                f"image {image} is not in the local Docker engine",
                fix=f"build it: {_BUILD_HINT}; or set {self.image_env} to another image",
            )
        try:
            client.images.pull(image)
        except _DOCKER_ERRORS as exc:
            raise StackError(
                self.component,
                f"image {image} is not in the local Docker engine and pulling it failed: {_short(exc)}",
                fix=f"docker pull {image} where a registry is reachable; or {_BUILD_HINT} and set "
                f"{self.image_env}=relay-gate-local/...; or use --backend embedded",
            ) from exc

    def _await_ready(self, timeout: float, *, remove_on_failure: bool) -> None:
        strategy = self._readiness().with_startup_timeout(timedelta(seconds=max(1, math.ceil(timeout))))
        fix = f"read `docker logs {self._name()}` (image {self.image})"
        try:
            strategy.wait_until_ready(self._tc())
        except ContainerExited:
            code = self._wrapped().attrs.get("State", {}).get("ExitCode", "?")
            self._fail(f"container exited with status {code} before {strategy.what}", fix, remove_on_failure)
        except TimeoutError as exc:
            self._fail(str(exc), fix, remove_on_failure)
        try:
            if self._version is None:
                self._version = self._read_version()
        except Exception as exc:  # it answered a moment ago: a failure here is worth reporting as such
            self._fail(f"answered, then failed to report its version: {_short(exc)}", fix, remove_on_failure)

    def _fail(self, problem: str, fix: str, remove: bool) -> NoReturn:
        log = self.log_tail(20)
        with contextlib.suppress(StackError):
            if remove:
                self.close()
            else:
                self.kill()
        raise StackError(self.component, problem, fix=fix, log_tail=log)

    def _stop(self, timeout: float) -> None:
        status = self._status()
        if status not in _UP:
            return
        with self._docker_call("stopping the container"):
            if status == "paused":
                self._wrapped().unpause()  # a frozen server could not act on the stop signal
            self._wrapped().stop(timeout=max(1, math.ceil(timeout)))

    def kill(self) -> None:
        """``docker kill``: SIGKILL, no shutdown work (a crash). A paused container is killed too."""
        status = self._status()
        if status not in _UP:
            return
        with self._docker_call("killing the container"):
            self._wrapped().kill()
            if status == "paused":
                # Engines differ on whether SIGKILL reaches frozen processes before they are thawed.
                with contextlib.suppress(*_DOCKER_ERRORS):
                    self._wrapped().unpause()
            self._wrapped().wait(timeout=10)

    def pause(self) -> None:
        """``docker pause`` (cgroup freezer): the port still accepts connections but nothing answers."""
        if self._status() == "running":
            with self._docker_call("pausing the container"):
                self._wrapped().pause()

    def resume(self) -> None:
        """``docker unpause`` after :meth:`pause`."""
        if self._status() == "paused":
            with self._docker_call("resuming the container"):
                self._wrapped().unpause()

    def close(self) -> None:
        """Remove the container and its data (``docker rm -f -v``). Safe to call twice."""
        container, self._container = self._container, None
        if container is None:
            return
        try:
            container.stop(force=True, delete_volume=True)  # testcontainers' stop() removes
        except NotFound:
            pass
        except _DOCKER_ERRORS as exc:
            raise StackError(
                self.component, f"Docker failed to remove the container: {_short(exc)}", fix=_DOCKER_FIX
            ) from exc

    # -- facts ----------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise StackError(self.component, "has no port yet: call start() first")
        return self._port

    @property
    def version(self) -> str:
        """The server's version (e.g. ``7.0.15``, ``15.18``): asked of the server once it has started,
        read from the image's metadata before that."""
        if self._version is not None:
            return self._version
        with self._docker_call("reading the image's metadata"):
            client = _engine_client(10)
            try:
                env = client.images.get(self.image).attrs.get("Config", {}).get("Env") or []
            finally:
                client.close()
        for entry in env:
            name, _, value = entry.partition("=")
            if name == self.version_env and value:
                return value.split("-")[0].split("+")[0]  # "16.4-1.pgdg120+2" -> "16.4"
        raise StackError(self.component, f"image {self.image} does not say its version: start it first")

    @property
    def container_id(self) -> str | None:
        """The Docker id of the current container (None before start and after close)."""
        return str(self._wrapped().id) if self._container is not None else None

    def _status(self) -> str | None:
        """created / running / paused / exited / dead; None when there is no container (any more)."""
        if self._container is None:
            return None
        try:
            self._wrapped().reload()
        except NotFound:
            # Removed behind our back: the next start creates a new one.
            self._tc().get_docker_client().client.close()
            self._container = None
            return None
        except _DOCKER_ERRORS as exc:
            raise StackError(
                self.component, f"the Docker engine did not answer: {_short(exc)}", fix=_DOCKER_FIX
            ) from exc
        return str(self._wrapped().status)

    def _is_up(self) -> bool:
        return self._status() in _UP

    def log_tail(self, lines: int = 15) -> str:
        if self._container is None:
            return ""
        try:
            data: bytes = self._wrapped().logs(tail=lines)
        except _DOCKER_ERRORS:
            return ""
        return data.decode("utf-8", "replace").rstrip("\n")

    # -- internals ------------------------------------------------------------------------------------
    def _tc(self) -> DockerContainer:
        if self._container is None:
            raise StackError(self.component, "has no container: call start() first")
        return self._container

    def _wrapped(self) -> Any:
        return self._tc().get_wrapped_container()

    def _name(self) -> str:
        return str(self._wrapped().name) if self._container is not None else "?"

    @contextlib.contextmanager
    def _docker_call(self, action: str) -> Iterator[None]:
        """Turn the Docker SDK's failures into a StackError that says what we were doing."""
        try:
            yield
        except _DOCKER_ERRORS as exc:
            raise StackError(
                self.component, f"Docker failed while {action}: {_short(exc)}", fix=_DOCKER_FIX
            ) from exc

    def __enter__(self) -> Self:
        try:
            self._start(self._default_timeout())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _default_timeout(self) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        try:
            state = self._status() or "no container"
        except StackError:
            state = "unknown"
        return f"<{type(self).__name__} {self.image} {HOST}:{self._port} {state}>"


class ContainerRedis(_ContainerService):
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


class ContainerPostgres(_ContainerService):
    """PostgreSQL in a container on a loopback port with a random password (like EmbeddedPostgres).

    The superuser is ``postgres``; :meth:`url` authenticates over TCP with the per-container password.
    :attr:`bin_dir` holds host-side client tools (pg_dump, pg_restore, psql 16 from pgserver), which
    also work against an older (15) server.
    """

    component = "postgres"
    image_env = PG_IMAGE_ENV
    default_image = DEFAULT_PG_IMAGE
    version_env = "PG_VERSION"

    def __init__(self, *, image: str | None = None, port: int | None = None) -> None:
        super().__init__(image=image, port=port)
        self._password = secrets.token_urlsafe(24)  # URL-safe: goes into DATABASE_URLs unquoted

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
        return ServerAnswers(self._select1, f"SELECT 1 with the password on {HOST}:{self.port}")

    def _select1(self) -> bool:
        with psycopg.connect(self.url(), connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

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
    @property
    def password(self) -> str:
        return self._password

    @functools.cached_property
    def bin_dir(self) -> Path:
        """Host-side pg_dump, pg_restore, psql... (pgserver's, version 16: they read 15 servers too)."""
        return _source_bin_dir()

    @property
    def running(self) -> bool:
        """Running or paused (a paused server is hung, not dead)."""
        return self._is_up()

    def url(self, dbname: str = "postgres") -> str:
        """``postgresql://postgres:<password>@127.0.0.1:<port>/<dbname>`` (TCP, password auth)."""
        return f"postgresql://{SUPERUSER}:{self._password}@{HOST}:{self.port}/{_check_identifier(dbname)}"

    # -- databases ---------------------------------------------------------------------------------
    def create_database(self, name: str, *, template: str | None = None) -> None:
        """CREATE DATABASE ``name`` (a copy of ``template`` when given)."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_check_identifier(name)))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(_check_identifier(template)))
        with self._admin() as conn:
            conn.execute(query)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS, ending its sessions first (pools left open must not block teardown)."""
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(_check_identifier(name))
        )
        with self._admin() as conn:
            conn.execute(query)

    def _admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.url(), connect_timeout=5, autocommit=True)


def _check_identifier(name: str) -> str:
    """The same rule as EmbeddedPostgres: plain lower-case identifiers, so no quoting surprises anywhere."""
    if not IDENTIFIER_RE.match(name):
        raise ValueError(f"database name {name!r} must match {IDENTIFIER_RE.pattern}")
    return name
