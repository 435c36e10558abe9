"""A throwaway PostgreSQL server for the embedded stack and the tests, from the binaries pgserver ships.

The lifecycle here is ours: ``postgres -D`` runs as a :class:`~gate.stack.procs.ManagedProcess`, readiness
is a real ``SELECT 1``, teardown leaves no process and no directory behind. The rest lives next door:
the binaries, the account the server runs as, the cache and the initdb'd template in
gate/stack/postgres/install.py; the server's run dirs (and the reaping of dead owners') in
gate/stack/postgres/rundirs.py; signalling its whole process tree in gate/stack/postgres/procs.py; URLs and
databases, shared with ContainerPostgres, in gate/stack/postgres/admin.py.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from gate.errors import PortTaken, StackError
from gate.stack.ports import on_free_port, port_in_use
from gate.stack.postgres.admin import IDENTIFIER_RE, SUPERUSER, SuperuserAdmin, new_password
from gate.stack.postgres.install import (
    COMPONENT,
    TEMPLATE_FORMAT,
    chown_tree,
    install_for,
    resolve_account,
    template_for,
)
from gate.stack.postgres.procs import children, signal_pids, wait_gone, wait_until_stopped
from gate.stack.postgres.rundirs import RUN_PREFIX, reap_orphans, release_sysv_segment, run_base
from gate.stack.procs import ManagedProcess, wait_until

__all__ = ["COMPONENT", "IDENTIFIER_RE", "RUN_PREFIX", "SUPERUSER", "TEMPLATE_FORMAT", "EmbeddedPostgres"]

_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; PostgreSQL appends "/.s.PGSQL.<port>.lock"


def _conf_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- the server ------------------------------------------------------------------------------------


class EmbeddedPostgres(SuperuserAdmin):
    """One PostgreSQL server on 127.0.0.1, its data in a fresh copy of the cached template.

    ``start`` / ``stop`` / ``kill`` / ``restart`` keep the data; ``close`` (also ``with`` exit) stops
    the server and removes every directory it created. The port and password stay the same across
    restarts, so URLs handed out stay valid (unless the port was picked for us and got taken).
    ``url`` / ``password`` / ``create_database`` / ``drop_database`` come from :class:`SuperuserAdmin`.
    """

    def __init__(self, workdir: Path, *, port: int | None = None, user: str | None = None) -> None:
        self.workdir = Path(workdir)
        self._fixed_port = port is not None
        self._port = port
        self._account = resolve_account(user)
        self._install = install_for(self._account)
        self._password = new_password()
        self._own_dir: Path | None = None  # inside workdir: the log
        self._data_root: Path | None = None  # data + socket dirs, owned by the account (see run_base)
        self._sock_dir: Path | None = None
        self._created: list[Path] = []
        self._lock_fd: int | None = None
        self._proc: ManagedProcess | None = None

    # -- facts -------------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """Server version, e.g. ``"16.2"``."""
        return self._install.version

    @property
    def bin_dir(self) -> Path:
        """Directory holding pg_dump, pg_restore, psql... of the same version as the server."""
        return self._install.bin_dir

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server has no port before start()")
        return self._port

    @property
    def pid(self) -> int | None:
        """PID of the postmaster last started (kept after it stops, so callers can check it is gone)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    @property
    def log_path(self) -> Path | None:
        return self._proc.log_path if self._proc is not None else None

    @property
    def socket_dir(self) -> Path | None:
        return self._sock_dir

    def pids(self) -> list[int]:
        """Every process of the running server, postmaster first (empty when it is not running)."""
        if self._proc is None or not self._proc.alive() or self._proc.pid is None:
            return []
        return [self._proc.pid, *children(self._proc.pid)]

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        if self.running:
            return self
        if self._fixed_port and port_in_use(self.port):
            raise StackError(
                COMPONENT,
                f"port {self.port} on 127.0.0.1 is already in use",
                fix="choose another port, or leave it out to get a free one",
            )
        if self._data_root is None:
            self._prepare_dirs()
        # A restart keeps its port, so URLs handed out stay valid, unless someone took it meanwhile.
        keep = self._port is not None and (self._fixed_port or not port_in_use(self._port))
        if self._fixed_port:
            self._launch(self.port, timeout)
        else:
            on_free_port(
                COMPONENT, lambda port: self._launch(port, timeout), first=self._port if keep else None
            )
        return self

    # Every server process is a child of the postmaster, but each one calls setsid(): signalling the
    # postmaster's process group reaches the postmaster alone. Crashes and hangs must reach them all.
    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT): sessions are ended, the data is checkpointed and kept."""
        if self._proc is None:
            return
        if not self._proc.alive():
            self._proc.stop()  # it died on its own: reap it
            return
        kids = children(self._proc.pid)
        signal_pids(kids, signal.SIGCONT)  # a paused backend could not take part in the shutdown
        self._proc.stop(timeout=timeout, sig=signal.SIGINT)
        signal_pids(kids, signal.SIGKILL)  # only if the shutdown timed out and left orphans
        wait_gone(kids, timeout=5.0)

    def kill(self) -> None:
        """SIGKILL the server and its backends: a crash. The next start runs crash recovery."""
        if self._proc is None:
            return
        if not self._proc.alive():
            self._proc.kill()  # it died on its own: reap it
            return
        self._proc.send_signal(signal.SIGSTOP)  # no new children while we collect them
        kids = children(self._proc.pid)
        signal_pids(kids, signal.SIGKILL)
        self._proc.kill()
        # Orphans still attached to shared memory would make the next start refuse to run.
        wait_gone(kids, timeout=5.0)

    def restart(self, timeout: float = 30.0) -> EmbeddedPostgres:
        self.stop()
        return self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP every server process: connections hang instead of failing (a stuck database)."""
        if self._proc is not None and self._proc.alive():
            self._proc.pause()  # the postmaster first, so it forks nothing we would miss
            kids = children(self._proc.pid)
            signal_pids(kids, signal.SIGSTOP)
            # Signals land asynchronously: return only once the server is really frozen.
            wait_until_stopped([self._proc.pid, *kids] if self._proc.pid else kids, timeout=2.0)

    def resume(self) -> None:
        if self._proc is not None and self._proc.alive():
            signal_pids(children(self._proc.pid), signal.SIGCONT)
            self._proc.resume()

    def close(self) -> None:
        """Stop the server and remove every directory this object created."""
        self.stop()
        if self._proc is not None and self._data_root is not None:
            release_sysv_segment(self._data_root / "data")
        for path in reversed(self._created):
            shutil.rmtree(path, ignore_errors=True)
        self._created.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # after the removal: a reaper must never see our dir unlocked
            self._lock_fd = None
        self._own_dir = self._data_root = self._sock_dir = None

    def __enter__(self) -> EmbeddedPostgres:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------
    def _admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """Superuser connection over the unix socket (trust auth: works before the password is set)."""
        if self._sock_dir is None:
            raise RuntimeError("the server is not started")
        return psycopg.connect(
            host=str(self._sock_dir),
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            connect_timeout=2,
            autocommit=True,
        )

    def _log_file(self) -> Path:
        assert self._own_dir is not None
        return self._own_dir / "postgres.log"

    def _mkdtemp(self, parent: Path, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self._created.append(path)
        return path

    def _prepare_dirs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._own_dir = self._mkdtemp(self.workdir, "postgres-")
        base = run_base(self._account, self._own_dir)
        if base != self._own_dir:
            reap_orphans(base)
        self._data_root = self._mkdtemp(base, RUN_PREFIX)
        # Held until close(): a run dir whose lock is free belongs to nobody alive (see reap_orphans).
        self._lock_fd = os.open(
            self._data_root / "owner.lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600
        )
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        data = self._data_root / "data"
        shutil.copytree(template_for(self._install, self._account), data, symlinks=True)
        sock = self._data_root / "sock"
        if len(str(sock)) > _MAX_SOCKET_PATH - len("/.s.PGSQL.65535.lock"):
            sock = self._mkdtemp(Path("/tmp"), "rg-pg-")  # noqa: S108 - short path; mode 700, ours
        sock.mkdir(mode=0o700, exist_ok=True)
        if self._account.uid is not None:
            chown_tree(self._data_root, self._account)
            chown_tree(sock, self._account)
        self._sock_dir = sock

    def _launch(self, port: int, timeout: float) -> int:
        """Start the postmaster on ``port`` and wait until it answers, on its socket and then over TCP,
        as this server; on failure nothing is left running (PortTaken when the port was not ours)."""
        assert self._data_root is not None and self._sock_dir is not None
        self._port = port
        data = self._data_root / "data"
        # Later lines win in postgresql.conf, so per-start settings are appended (a restart on a new
        # port appends again; harmless).
        with open(data / "postgresql.conf", "a") as f:
            f.write(
                "\n# --- relay-gate: this server ---\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = {_conf_quote(str(self._sock_dir))}\n"
            )
        self._proc = ManagedProcess(
            COMPONENT,
            [str(self.bin_dir / "postgres"), "-D", str(data)],
            log_path=self._log_file(),
            env={"PATH": os.defpath, "LC_ALL": "C"},
            cwd=self._data_root,
            user=self._account.uid,
            group=self._account.gid,
        ).start()
        fix = f"see the log at {self._log_file()}"
        try:
            wait_until(
                self._select1_socket,
                timeout=timeout,
                component=COMPONENT,
                what=f"SELECT 1 over the unix socket in {self._sock_dir}",
                fix=fix,
                proc=self._proc,
                port=port,
            )
            self._set_password()
            wait_until(
                self._tcp_is_ours,
                timeout=min(timeout, 10.0),
                component=COMPONENT,
                what=f"SELECT 1 with the password on 127.0.0.1:{port}",
                fix=fix,
                proc=self._proc,
                port=port,
            )
        except BaseException:
            self.kill()
            raise
        return port

    def _select1_socket(self) -> bool:
        # The socket lives in our private dir: whatever answers there is our postmaster.
        with self._admin() as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def _tcp_is_ours(self) -> bool:
        """``SELECT 1`` over TCP with the password, from the server whose data directory is ours.

        The password alone does not prove whose server answers: one that trusts 127.0.0.1 takes any.
        The data directory does: it is a fresh mkdtemp path, and a server runs in one dir at a time.
        """
        assert self._data_root is not None
        with psycopg.connect(self.url(), connect_timeout=2) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        theirs = str(row[0]) if row else "?"
        if os.path.realpath(theirs) != os.path.realpath(self._data_root / "data"):
            raise PortTaken(
                COMPONENT,
                self.port,
                f"another PostgreSQL answers on 127.0.0.1:{self.port} (data directory {theirs})",
            )
        return True

    def _set_password(self) -> None:
        with self._admin() as conn:
            # The SCRAM verifier is computed client-side, so the plain password never reaches the
            # server (or its log, should the statement fail).
            verifier = conn.pgconn.encrypt_password(
                self._password.encode(), SUPERUSER.encode(), b"scram-sha-256"
            )
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(SUPERUSER), sql.Literal(verifier.decode())
                )
            )
