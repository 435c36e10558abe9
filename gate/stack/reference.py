"""The stack: real Redis, real PostgreSQL, the relay service over TCP, and the gate's webhook receiver.

Start order: Redis -> PostgreSQL (database created, migrations applied) -> receiver -> N relay
replicas (``python -m service`` under uvicorn, each on a free loopback port, sharing Redis and the
database). Each step waits for a real readiness signal from the very process it started (a per-instance
check: gate/stack/servers.py), on a port picked free and picked again if someone takes it first
(gate/stack/ports.py); a failure half-way tears down what was started and raises :class:`StackError` naming
the component, the fix and its log tail.

Backends: ``embedded`` (bundled binaries) and ``containers`` (testcontainers). Either way the stack
owns what it started, so the fault controls (kill/pause Redis, stop PostgreSQL, restart a replica)
always work on it. A deployment is never a stack: it is a :class:`~gate.client.target.Target` given
by URL and target config, and has no such controls.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from gate import __version__, interrupts
from gate.errors import StackError, UsageError
from gate.stack import ports
from gate.stack.backends import PostgresService, RedisService
from gate.stack.procs import ManagedProcess
from gate.stack.receiver import new_token
from gate.stack.servers import relay_process, start_receiver, wait_relay_ready
from service.config import Settings

Backend = Literal["embedded", "containers"]
BACKENDS: tuple[Backend, ...] = ("embedded", "containers")
STACK_SCHEMA = "relay-gate/stack@1"
FAULT_PATH = "/_gate/fault"  # gate.stack.relay raises an unhandled exception here
DATABASE = "relay"
WEBHOOK_PATH = "/hooks/relay"
STACK_WEBHOOK_TIMEOUT_S = 2.0  # the relay's per-attempt delivery timeout on the reference stack
STACK_WEBHOOK_BACKOFF_BASE_S = 0.05  # short retries, so the delivery scenarios stay fast

# Settings of the relay we pass explicitly; anything the caller's environment says about them is
# dropped, so a stray RATE_LIMIT_ENABLED in a developer's shell cannot change what the gate tests.
_SERVICE_VARS = frozenset(name.upper() for name in Settings.model_fields)


@dataclass(frozen=True)
class KeyInfo:
    name: str
    role: Literal["admin", "dev"]
    workspace: str
    key: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "workspace": self.workspace, "key": self.key}


@dataclass
class StackConfig:
    """What to start. The rate-limit window is short by default so scenarios never wait a minute."""

    backend: Backend = "embedded"
    replicas: int = 1
    rate_limit: int = 10
    window_s: int = 3
    rate_limit_enabled: bool = True
    header_profile: str = "strict"
    extra_workspaces: tuple[str, ...] = ("ws-a", "ws-b")
    service_env: dict[str, str] = field(default_factory=dict)  # extra settings for every replica
    workdir: Path | None = None  # default: a fresh temp dir, removed at stop
    start_timeout_s: float = 30.0
    # run the relay with one of gate/proof/catalogue.py's deliberate defects (proving the gate can fail)
    defect: str | None = None

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            hint = (
                "; a deployment is not a stack: give it with --target-url and --target-config"
                if self.backend == "external"
                else ""
            )
            raise UsageError(f"unknown backend {self.backend!r}: use one of {', '.join(BACKENDS)}{hint}")
        if self.defect is not None:
            from gate.proof.catalogue import DEFECTS

            if self.defect not in DEFECTS:
                raise UsageError(f"unknown defect {self.defect!r}: see gate/proof/catalogue.py")
        if not 1 <= self.replicas <= 16:
            raise UsageError("--replicas must be between 1 and 16")


class Stack:
    """Starts, describes, controls and stops one stack. Use as a context manager."""

    def __init__(
        self, config: StackConfig | None = None, *, progress: Callable[[str], None] | None = None
    ) -> None:
        self.config = config or StackConfig()
        self._progress = progress or (lambda _msg: None)
        self.config.validate()
        self.redis: RedisService | None = None
        self.postgres: PostgresService | None = None
        self.receiver: ManagedProcess | None = None
        self.replicas: list[ManagedProcess] = []
        self.ports: list[int] = []
        self.keys: list[KeyInfo] = []
        self.signing_secret = ""
        self.receiver_url: str | None = None
        # what the receiver's control routes require; made per run for a receiver of ours
        self.receiver_token: str | None = None
        self.started_at: datetime | None = None
        self.workdir: Path | None = None
        self._own_workdir = False
        self._database_url: str | None = None
        self._redis_url: str | None = None

    # -- description ---------------------------------------------------------------------------------
    @property
    def base_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    @property
    def base_url(self) -> str:
        return self.base_urls[0]

    @property
    def redis_url(self) -> str | None:
        return self._redis_url

    @property
    def database_url(self) -> str | None:
        return self._database_url

    @property
    def webhook_timeout_s(self) -> float:
        """The relay's WEBHOOK_TIMEOUT_S on this stack (a scenario watching for "no delivery" needs it)."""
        return float(self.config.service_env.get("WEBHOOK_TIMEOUT_S", STACK_WEBHOOK_TIMEOUT_S))

    @property
    def webhook_max_attempts(self) -> int:
        """The relay's WEBHOOK_MAX_ATTEMPTS on this stack (the service's default unless set)."""
        return int(self.config.service_env.get("WEBHOOK_MAX_ATTEMPTS", 3))

    @property
    def webhook_backoff_base_s(self) -> float:
        """The relay's WEBHOOK_BACKOFF_BASE_S on this stack."""
        return float(self.config.service_env.get("WEBHOOK_BACKOFF_BASE_S", STACK_WEBHOOK_BACKOFF_BASE_S))

    @property
    def webhook_url(self) -> str | None:
        return f"{self.receiver_url}{WEBHOOK_PATH}" if self.receiver_url else None

    def key(self, name: str) -> KeyInfo:
        for k in self.keys:
            if k.name == name:
                return k
        raise KeyError(name)

    def secret_values(self) -> list[str]:
        """Every secret this stack made up: for redaction checks."""
        out = [k.key for k in self.keys]
        if self.signing_secret:
            out.append(self.signing_secret)
        if self.receiver_token:
            out.append(self.receiver_token)
        if self.postgres is not None:
            out.append(self.postgres.password)
        return out

    def versions(self) -> dict[str, str]:
        v = {"relay-gate": __version__, "python": platform.python_version()}
        if self.redis is not None:
            with contextlib.suppress(Exception):
                v["redis"] = self.redis.version
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                v["postgres"] = self.postgres.version
        return v

    def describe(self) -> dict[str, Any]:
        return {
            "schema": STACK_SCHEMA,
            "backend": self.config.backend,
            "base_url": self.base_url,
            "base_urls": self.base_urls,
            "redis_url": self.redis_url,
            "database_url": self.database_url,
            "receiver_url": self.receiver_url,
            "receiver_token": self.receiver_token,
            "webhook_url": self.webhook_url,
            "keys": [k.to_json() for k in self.keys],
            "signing_secret": self.signing_secret or None,
            "rate_limit": {
                "enabled": self.config.rate_limit_enabled,
                "limit": self.config.rate_limit,
                "window_s": self.config.window_s,
            },
            "header_profile": self.config.header_profile,
            "controllable": True,  # a stack owns its Redis and PostgreSQL: it can kill, pause, restart them
            "defect": self.config.defect,
            "fault_path": FAULT_PATH,
            "versions": self.versions(),
            "pids": self.pids(),
            "workdir": str(self.workdir) if self.workdir else None,
            "started_at": self.started_at.isoformat() if self.started_at else None,
        }

    def write_description(self, path: Path) -> None:
        """Write :meth:`describe` as JSON, readable by the owner only (it holds keys and secrets)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.describe(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)

    def pids(self) -> dict[str, Any]:
        out: dict[str, Any] = {"relay": [p.pid for p in self.replicas]}
        if self.receiver is not None:
            out["receiver"] = self.receiver.pid
        redis_pid = getattr(self.redis, "pid", None)
        if redis_pid is not None:
            out["redis"] = redis_pid
        pg_pid = getattr(self.postgres, "pid", None)
        if pg_pid is not None:
            out["postgres"] = pg_pid
        return out

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Stack:
        try:
            self._start_owned()
        except BaseException:
            # half-way failures (and Ctrl-C during start-up) leave nothing behind
            self.stop()
            raise
        return self

    def _start_owned(self) -> None:
        cfg = self.config
        if cfg.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="relay-gate-stack-"))
            self._own_workdir = True
        else:
            self.workdir = Path(cfg.workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.started_at = datetime.now(UTC)
        self._make_keys()

        self.redis, self.postgres = _make_services(cfg.backend, self.workdir)
        with self._step(f"redis ({cfg.backend})"):
            self.redis.start(timeout=cfg.start_timeout_s)
            self._redis_url = self.redis.url
        with self._step(f"postgres ({cfg.backend}), database {DATABASE!r}, migrations"):
            self.postgres.start(timeout=cfg.start_timeout_s)
            self.postgres.create_database(DATABASE)
            self._database_url = self.postgres.url(DATABASE)
            self._migrate()
            from gate.drill.restore import seed_bulk_table  # the restore drill's bulk table (docs/drill.md)

            seed_bulk_table(self._database_url)
        with self._step("webhook receiver"):
            self._start_receiver()
        with self._step(f"relay service x{cfg.replicas}"):
            # all start at once (each spends a second or two importing the service), then each is
            # awaited, and moved to another port if its first was taken
            self.ports = [ports.free_port() for _ in range(cfg.replicas)]
            self.replicas = [self._replica(i) for i in range(cfg.replicas)]
            for proc in self.replicas:
                proc.start()
            for i in range(cfg.replicas):
                self._await_replica(i, started=True)

    def stop(self) -> None:
        """Stop everything this stack started and remove its temp dir. Safe to call more than once.

        A Ctrl-C or SIGTERM arriving meanwhile is held until the stop is complete (gate/interrupts.py):
        a stop cut short would orphan whatever it had not reached."""
        with interrupts.deferred():
            self._stop()

    def _stop(self) -> None:
        for proc in self.replicas:
            proc.stop(timeout=10)
        if self.receiver is not None:
            self.receiver.stop(timeout=5)
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                self.redis.stop()
            close = getattr(self.redis, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._own_workdir = False

    @contextlib.contextmanager
    def _step(self, what: str) -> Iterator[None]:
        t0 = time.monotonic()
        self._progress(f"starting {what} ...")
        yield
        self._progress(f"  {what}: ready in {time.monotonic() - t0:.2f} s")

    # -- controls (a started stack) --------------------------------------------------------------------
    def _owned_redis(self) -> RedisService:
        if self.redis is None:
            raise UsageError("the stack has not started its Redis")
        return self.redis

    def _owned_postgres(self) -> PostgresService:
        if self.postgres is None:
            raise UsageError("the stack has not started its PostgreSQL")
        return self.postgres

    def kill_redis(self) -> None:
        self._owned_redis().kill()

    def pause_redis(self) -> None:
        self._owned_redis().pause()

    def resume_redis(self) -> None:
        self._owned_redis().resume()

    def restart_redis(self) -> None:
        self._owned_redis().restart()

    def stop_postgres(self) -> None:
        self._owned_postgres().stop()

    def start_postgres(self) -> None:
        self._owned_postgres().start(timeout=self.config.start_timeout_s)

    @contextlib.contextmanager
    def extra_replica(self, settings: Mapping[str, str]) -> Iterator[str]:
        """One more relay process on this stack's Redis, database and receiver, with some settings
        changed (e.g. ``{"RATE_LIMIT_ENABLED": "false"}``); yields its base URL, stops it after."""
        started: list[ManagedProcess] = []

        def launch(port: int) -> int:
            proc = self._relay_process(f"relay[extra:{port}]", port, extra_env=settings).start()
            started.append(proc)
            wait_relay_ready(proc, port, timeout=self.config.start_timeout_s)
            return port

        try:
            port = ports.on_free_port("relay[extra]", launch)
            yield f"http://127.0.0.1:{port}"
        finally:
            for proc in started:
                proc.stop(timeout=10)

    def restart_replica(self, index: int) -> None:
        """Stop replica ``index`` and start it again, on the same port unless that was taken meanwhile:
        then on another, and :attr:`base_urls` says which."""
        self.replicas[index].stop(timeout=10)
        self._await_replica(index, started=False)

    # -- internals -----------------------------------------------------------------------------------
    def _make_keys(self) -> None:
        def token() -> str:
            return secrets.token_urlsafe(24)

        self.keys = [
            KeyInfo("admin", "admin", "default", token()),
            KeyInfo("dev", "dev", "default", token()),
        ]
        self.keys += [KeyInfo(f"dev-{ws}", "dev", ws, token()) for ws in self.config.extra_workspaces]
        self.signing_secret = secrets.token_hex(32)
        self._preview_secret = secrets.token_hex(32)  # shared by replicas so preview_ids travel

    def _migrate(self) -> None:
        from service.audit import migrate

        assert self._database_url is not None
        try:
            migrate(self._database_url)
        except Exception as exc:
            raise StackError(
                "postgres",
                f"applying the audit migrations failed: {type(exc).__name__}",
                fix="check the server log below; `alembic -c alembic.ini upgrade head` shows the same error",
                log_tail=_log_tail(self.postgres),
            ) from exc

    def _python_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARS}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start_receiver(self) -> None:
        assert self.workdir is not None
        self.receiver_token = new_token()
        self.receiver, port = start_receiver(
            self.workdir, self._python_env(), token=self.receiver_token, timeout=self.config.start_timeout_s
        )
        self.receiver_url = f"http://127.0.0.1:{port}"

    def service_env(self) -> dict[str, str]:
        """The relay's settings for this stack (every replica gets the same)."""
        cfg = self.config
        api_keys = [
            {"key": k.key, "role": k.role, "workspace": k.workspace}
            for k in self.keys
            if k.name not in ("admin", "dev")
        ]
        env = {
            "ADMIN_KEY": self.key("admin").key,
            "DEV_KEY": self.key("dev").key,
            "API_KEYS": json.dumps(api_keys),
            "ACTIONS_SIGNING_SECRET": self.signing_secret,
            "PREVIEW_SECRET": self._preview_secret,
            "RATE_LIMIT_ENABLED": "true" if cfg.rate_limit_enabled else "false",
            "RATE_LIMIT_EXEC_PER_MIN": str(cfg.rate_limit),
            "RATE_LIMIT_WINDOW_S": str(cfg.window_s),
            "SECURITY_HEADERS_PROFILE": cfg.header_profile,
            "WEBHOOK_URL": str(self.webhook_url),
            "WEBHOOK_TIMEOUT_S": f"{STACK_WEBHOOK_TIMEOUT_S:g}",
            "WEBHOOK_BACKOFF_BASE_S": f"{STACK_WEBHOOK_BACKOFF_BASE_S:g}",
            # 250 ms rather than the service's 100 ms default: two replicas, Redis, PostgreSQL and the
            # scenarios share 2 cores here, and a read that waits for a busy event loop must not count
            # as a Redis outage (which fails open to per-replica limits mid-burst)
            "REDIS_CONNECT_TIMEOUT_MS": "250",
            "REDIS_SOCKET_TIMEOUT_MS": "250",
            "LOG_LEVEL": "INFO",
        }
        if self._redis_url:
            env["REDIS_URL"] = self._redis_url
        if self._database_url:
            env["DATABASE_URL"] = self._database_url
        env.update(cfg.service_env)
        return env

    def _replica(self, index: int) -> ManagedProcess:
        return self._relay_process(f"relay[{index}]", self.ports[index])

    def _relay_process(
        self, name: str, port: int, *, extra_env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        assert self.workdir is not None
        env = {**self._python_env(), **self.service_env(), **(extra_env or {})}
        return relay_process(name, port, workdir=self.workdir, env=env, defect=self.config.defect)

    def _await_replica(self, index: int, *, started: bool) -> None:
        """Replica ``index`` ready on :attr:`ports` ``[index]`` (started there already, or not), or on
        another port when that one was taken."""

        def attempt(port: int) -> None:
            nonlocal started
            if port != self.ports[index]:
                self._progress(f"  relay[{index}]: port {self.ports[index]} was taken; moving to {port}")
                self.ports[index] = port
                self.replicas[index] = self._replica(index)
                started = False
            if not started:
                self.replicas[index].start()
            wait_relay_ready(self.replicas[index], port, timeout=self.config.start_timeout_s)

        ports.on_free_port(f"relay[{index}]", attempt, first=self.ports[index])


def _log_tail(service: object) -> str:
    tail = getattr(service, "log_tail", None)
    if callable(tail):
        with contextlib.suppress(Exception):
            return str(tail())
    path = getattr(service, "log_path", None)
    if isinstance(path, Path):
        from gate.stack.procs import tail as file_tail

        return file_tail(path)
    return ""


def _make_services(backend: Backend, workdir: Path) -> tuple[RedisService, PostgresService]:
    if backend == "embedded":
        from gate.stack.postgres.server import EmbeddedPostgres
        from gate.stack.redis_server import EmbeddedRedis

        return EmbeddedRedis(workdir / "redis"), EmbeddedPostgres(workdir / "pg")
    if backend == "containers":
        from gate.stack.containers.backend import ContainerPostgres, ContainerRedis

        return ContainerRedis(), ContainerPostgres()
    raise UsageError(f"backend {backend!r} does not start services")


def load_description(path: Path) -> Mapping[str, Any]:
    """Read a stack description written by ``relay-gate serve`` (schema relay-gate/stack@1)."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: start a stack with `relay-gate serve` first") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable stack description: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != STACK_SCHEMA:
        raise UsageError(f"{path} is not a {STACK_SCHEMA} document")
    return doc
