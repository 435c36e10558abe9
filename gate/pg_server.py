"""A throwaway PostgreSQL server for the embedded stack and the tests, from the binaries pgserver ships.

Only pgserver's *binaries* are used (``<site-packages>/pgserver/pginstall/bin``), never its Python API,
so the lifecycle here is ours: ``postgres -D`` runs as a :class:`~gate.procs.ManagedProcess`, readiness
is a real ``SELECT 1``, teardown leaves no process and no directory behind.

PostgreSQL refuses to run as root, so when we are root the server runs as an unprivileged account
(``nobody`` unless ``RELAY_GATE_PG_USER`` or ``user=`` says otherwise). That account may not be able to
reach the binaries (a venv under a mode-700 home): then the install is copied once into a
world-readable cache. The caller's home is never loosened.

Cache layout (``RELAY_GATE_CACHE_DIR``, default ``/var/tmp/relay-gate``, or ``-<uid>`` when not root)::

    pg-16.2-<hash>/pgserver/pginstall/{bin,lib,share}   the copied install (only when needed)
    pg-16.2-<hash>/pgserver.libs/                       libpq etc., found by the binaries' $ORIGIN rpath
    template-16.2-<hash>/                               an initdb'd data dir, copied for every server

Cache entries are built in a temp dir and renamed into place, so concurrent runs never see half a
copy. Each server's data and socket live in a ``relay-gate-pg-*`` run dir owned by the account, in RAM
(``/dev/shm``) when there is room, else in the work dir or the cache (see ``_run_base``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from gate.errors import StackError
from gate.procs import ManagedProcess, free_port, port_in_use, tail, wait_until

COMPONENT = "postgres"
SUPERUSER = "postgres"
# Database names we create or drop: plain lower-case identifiers, so no quoting surprises anywhere.
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Bump when the template's initdb options or settings change, so stale templates are not reused.
TEMPLATE_FORMAT = "3"
_INSTALL_FIX = "pip install pgserver (or set RELAY_GATE_PG_BIN to a directory holding initdb and postgres)"
RUN_PREFIX = "relay-gate-pg-"  # run dirs (data + socket) in shared places: /dev/shm, the cache
# World-writable, but run dirs in it are made with mkdtemp: unique names, mode 700.
_SHM = Path("/dev/shm")  # noqa: S108
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; PostgreSQL appends "/.s.PGSQL.<port>.lock"

# Settings baked into the template. This server holds test data only and is thrown away, so
# durability against a *machine* crash is traded for speed: fsync and full_page_writes only matter
# then. A SIGKILLed server (what kill() rehearses) loses nothing committed, because every commit
# still write()s its WAL to the OS page cache. That is also why synchronous_commit stays on: off, a
# commit could sit in the server's shared memory and die with it, and with fsync off it costs nothing.
_TEMPLATE_CONF = """
# --- relay-gate embedded test server (template) ---
fsync = off
full_page_writes = off
shared_buffers = 32MB
# The data dir may live in RAM (/dev/shm): keep WAL from growing towards the 1 GB default.
max_wal_size = 256MB
max_connections = 100
# Keep dynamic shared memory in files under the data dir, so a SIGKILLed server leaves nothing in
# /dev/shm once its data dir is removed.
dynamic_shared_memory_type = mmap
logging_collector = off
password_encryption = 'scram-sha-256'
"""

# Local (unix socket) connections are trusted: only this account and root can reach the socket dir.
# TCP needs the per-server password, so DATABASE_URLs carry a real secret.
_PG_HBA = """\
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   scram-sha-256
"""


@dataclass(frozen=True)
class _Account:
    """Who the server runs as: ``uid``/``gid`` are None when it runs as ourselves."""

    name: str
    uid: int | None
    gid: int | None


@dataclass(frozen=True)
class _Install:
    bin_dir: Path
    version: str
    key: str  # identifies this exact install in cache entry names


# -- locating and preparing the install ------------------------------------------------------------


def _source_bin_dir() -> Path:
    override = os.environ.get("RELAY_GATE_PG_BIN")
    if override:
        bin_dir = Path(override)
    else:
        # find_spec locates the package without importing it: pgserver's own Python API stays unused.
        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise StackError(
                COMPONENT, "PostgreSQL binaries not found: pgserver is not installed", fix=_INSTALL_FIX
            )
        bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    for exe in ("postgres", "initdb"):
        if not os.access(bin_dir / exe, os.X_OK):
            raise StackError(COMPONENT, f"no executable {exe} in {bin_dir}", fix=_INSTALL_FIX)
    return bin_dir


def _binary_version(bin_dir: Path) -> str:
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    m = re.search(r"(\d+(?:\.\d+)+)", out.stdout)
    if out.returncode != 0 or m is None:
        raise StackError(
            COMPONENT, f"{bin_dir / 'postgres'} --version failed", fix=_INSTALL_FIX, log_tail=out.stderr
        )
    return m.group(1)


def _resolve_account(user: str | None) -> _Account:
    name = user or os.environ.get("RELAY_GATE_PG_USER") or None
    euid = os.geteuid()
    if euid != 0:
        me = pwd.getpwuid(euid).pw_name
        if name and name != me:
            raise StackError(COMPONENT, f"cannot run PostgreSQL as {name!r}: only root can switch accounts")
        return _Account(me, None, None)
    name = name or "nobody"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise StackError(
            COMPONENT,
            f"account {name!r} to run PostgreSQL as does not exist",
            fix="create it (useradd --system pgrunner) or set RELAY_GATE_PG_USER to an unprivileged user",
        ) from None
    if entry.pw_uid == 0:
        raise StackError(
            COMPONENT,
            "PostgreSQL refuses to run as root",
            fix="set RELAY_GATE_PG_USER to an unprivileged account",
        )
    return _Account(name, entry.pw_uid, entry.pw_gid)


def _run_as(
    account: _Account, argv: list[str], *, cwd: Path | str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a short command as ``account``, output captured."""
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        user=account.uid,
        group=account.gid,
        extra_groups=[] if account.uid is not None else None,
    )


def _account_can(account: _Account, argv: list[str]) -> bool:
    """Run a probe as the account: the only reliable answer to "can it reach this?" (ACLs, mounts...)."""
    try:
        return _run_as(account, argv, cwd="/").returncode == 0
    except OSError:
        return False


def _cache_root() -> Path:
    env = os.environ.get("RELAY_GATE_CACHE_DIR")
    euid = os.geteuid()
    # A shared, predictable path is deliberate (the cache outlives runs); ownership is checked below.
    default = "/var/tmp/relay-gate" if euid == 0 else f"/var/tmp/relay-gate-{euid}"  # noqa: S108
    root = Path(env) if env else Path(default)
    if not root.exists():
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)  # noqa: S103 - the server account must traverse it, whatever our umask
    st = os.lstat(root)
    # Root executes binaries from here: a cache someone else owns or can write to could plant them.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != euid or st.st_mode & 0o022:
        raise StackError(
            COMPONENT,
            f"cache dir {root} is not a directory owned by uid {euid} and writable only by it",
            fix="remove it, or set RELAY_GATE_CACHE_DIR to a directory of your own",
        )
    return root


def _publish(tmp: Path, final: Path) -> None:
    """Rename a finished temp dir into place; if another process won the race, keep theirs."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_install(src_bin: Path, dest: Path) -> None:
    """Copy ``pginstall`` (and the ``pgserver.libs`` its $ORIGIN rpath points at) world-readable."""
    tmp = Path(tempfile.mkdtemp(prefix=".pg-", dir=dest.parent))
    try:
        pginstall = src_bin.parent
        shutil.copytree(pginstall, tmp / "pgserver" / "pginstall", symlinks=True)
        libs = pginstall.parent.parent / "pgserver.libs"
        if libs.is_dir():
            shutil.copytree(libs, tmp / "pgserver.libs", symlinks=True)
        # Our own copy, so making it world-readable loosens nothing of the caller's.
        for dirpath, _dirnames, filenames in os.walk(tmp):
            os.chmod(dirpath, 0o755)  # noqa: S103 - see above
            for name in filenames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    mode = os.stat(path).st_mode
                    os.chmod(path, mode | 0o444 | (0o111 if mode & 0o100 else 0))
        _publish(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install_for(account: _Account) -> _Install:
    """The install the account can execute: the source tree if it can reach it, else a cached copy."""
    # Memoised per configuration: probing costs a few subprocesses, and tests change the environment.
    return _install_cached(
        account, os.environ.get("RELAY_GATE_PG_BIN"), os.environ.get("RELAY_GATE_CACHE_DIR")
    )


@functools.lru_cache(maxsize=8)
def _install_cached(account: _Account, _bin_env: str | None, _cache_env: str | None) -> _Install:
    src_bin = _source_bin_dir()
    version = _binary_version(src_bin)
    st = os.stat(src_bin / "postgres")
    fingerprint = f"{src_bin.resolve()}|{st.st_size}|{st.st_mtime_ns}|{version}"
    key = f"{version}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"
    if _account_can(account, [str(src_bin / "postgres"), "--version"]):
        return _Install(src_bin, version, key)
    copy = _cache_root() / f"pg-{key}"
    if not (copy / "pgserver" / "pginstall" / "bin" / "postgres").exists():
        _copy_install(src_bin, copy)
    bin_dir = copy / "pgserver" / "pginstall" / "bin"
    if not _account_can(account, [str(bin_dir / "postgres"), "--version"]):
        raise StackError(
            COMPONENT,
            f"account {account.name!r} cannot execute {bin_dir / 'postgres'}",
            fix="set RELAY_GATE_CACHE_DIR to a directory every user can traverse",
        )
    return _Install(bin_dir, version, key)


def _chown_tree(root: Path, account: _Account) -> None:
    if account.uid is None or account.gid is None:
        return
    os.lchown(root, account.uid, account.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), account.uid, account.gid)


def _template_for(install: _Install, account: _Account) -> Path:
    """An initdb'd data dir for this install, created once (initdb costs ~0.7 s, a copy ~0.1 s)."""
    tkey = hashlib.sha256(f"{install.key}|{TEMPLATE_FORMAT}".encode()).hexdigest()[:12]
    final = _cache_root() / f"template-{install.version}-{tkey}"
    if (final / "PG_VERSION").is_file():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=".template-", dir=final.parent))
    try:
        _chown_tree(tmp, account)
        data = tmp / "data"
        argv = [
            str(install.bin_dir / "initdb"),
            *("-D", str(data), "-U", SUPERUSER, "-E", "UTF8", "--locale=C"),
            *("--auth-local=trust", "--auth-host=scram-sha-256"),
            "-N",  # no fsync: the template is rebuilt if it is ever lost
        ]
        res = _run_as(account, argv, cwd=tmp, env={"PATH": os.defpath, "LC_ALL": "C"})
        if res.returncode != 0:
            raise StackError(
                COMPONENT,
                f"initdb failed with status {res.returncode}",
                fix=f"check that {account.name!r} can write to {tmp.parent}, or set RELAY_GATE_CACHE_DIR",
                log_tail="\n".join((res.stdout + res.stderr).splitlines()[-15:]),
            )
        (data / "pg_hba.conf").write_text(_PG_HBA)
        with open(data / "postgresql.conf", "a") as f:
            f.write(_TEMPLATE_CONF)
        _chown_tree(data, account)  # files we wrote as root must stay readable by the server
        _publish(data, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _conf_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _check_identifier(name: str) -> str:
    if not IDENTIFIER_RE.match(name):
        raise ValueError(f"database name {name!r} must match {IDENTIFIER_RE.pattern}")
    return name


# -- the server ------------------------------------------------------------------------------------


class EmbeddedPostgres:
    """One PostgreSQL server on 127.0.0.1, its data in a fresh copy of the cached template.

    ``start`` / ``stop`` / ``kill`` / ``restart`` keep the data; ``close`` (also ``with`` exit) stops
    the server and removes every directory it created. The port and password stay the same across
    restarts, so URLs handed out stay valid (unless the port was picked for us and got taken).
    """

    def __init__(self, workdir: Path, *, port: int | None = None, user: str | None = None) -> None:
        self.workdir = Path(workdir)
        self._fixed_port = port is not None
        self._port = port
        self._account = _resolve_account(user)
        self._install = _install_for(self._account)
        self._password = secrets.token_urlsafe(24)  # URL-safe: goes into DATABASE_URLs unquoted
        self._own_dir: Path | None = None  # inside workdir: the log
        self._data_root: Path | None = None  # data + socket dirs, owned by the account (see _run_base)
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
    def password(self) -> str:
        return self._password

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
        return [self._proc.pid, *_children(self._proc.pid)]

    def url(self, dbname: str = "postgres") -> str:
        """``postgresql://postgres:<password>@127.0.0.1:<port>/<dbname>`` (TCP, password auth)."""
        return f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{self.port}/{_check_identifier(dbname)}"

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
        for attempt in range(3):
            if not self._fixed_port and (self._port is None or attempt > 0 or port_in_use(self._port)):
                self._port = free_port()
            try:
                self._launch(timeout)
                return self
            except StackError:
                # Another process can grab a port between free_port() and bind(): pick again.
                lost_race = "already in use" in tail(self._log_file(), 40)
                if self._fixed_port or not lost_race or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # Every server process is a child of the postmaster, but each one calls setsid(): signalling the
    # postmaster's process group reaches the postmaster alone. Crashes and hangs must reach them all.
    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT): sessions are ended, the data is checkpointed and kept."""
        if self._proc is None or not self._proc.alive():
            return
        kids = _children(self._proc.pid)
        _signal_pids(kids, signal.SIGCONT)  # a paused backend could not take part in the shutdown
        self._proc.stop(timeout=timeout, sig=signal.SIGINT)
        _signal_pids(kids, signal.SIGKILL)  # only if the shutdown timed out and left orphans
        _wait_gone(kids, timeout=5.0)

    def kill(self) -> None:
        """SIGKILL the server and its backends: a crash. The next start runs crash recovery."""
        if self._proc is None or not self._proc.alive():
            return
        self._proc.send_signal(signal.SIGSTOP)  # no new children while we collect them
        kids = _children(self._proc.pid)
        _signal_pids(kids, signal.SIGKILL)
        self._proc.kill()
        # Orphans still attached to shared memory would make the next start refuse to run.
        _wait_gone(kids, timeout=5.0)

    def restart(self, timeout: float = 30.0) -> EmbeddedPostgres:
        self.stop()
        return self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP every server process: connections hang instead of failing (a stuck database)."""
        if self._proc is not None and self._proc.alive():
            self._proc.pause()  # the postmaster first, so it forks nothing we would miss
            kids = _children(self._proc.pid)
            _signal_pids(kids, signal.SIGSTOP)
            # Signals land asynchronously: return only once the server is really frozen.
            _wait_until_stopped([self._proc.pid, *kids] if self._proc.pid else kids, timeout=2.0)

    def resume(self) -> None:
        if self._proc is not None and self._proc.alive():
            _signal_pids(_children(self._proc.pid), signal.SIGCONT)
            self._proc.resume()

    def close(self) -> None:
        """Stop the server and remove every directory this object created."""
        self.stop()
        if self._proc is not None and self._data_root is not None:
            _release_sysv_segment(self._data_root / "data")
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

    # -- databases ---------------------------------------------------------------------------------
    def create_database(self, name: str, *, template: str | None = None) -> None:
        """CREATE DATABASE ``name`` (a copy of ``template`` when given: much faster than migrating)."""
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

    # -- internals ---------------------------------------------------------------------------------
    def _admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
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
        base = self._run_base()
        if base != self._own_dir:
            _reap_orphans(base)
        self._data_root = self._mkdtemp(base, RUN_PREFIX)
        # Held until close(): a run dir whose lock is free belongs to nobody alive (see _reap_orphans).
        self._lock_fd = os.open(
            self._data_root / "owner.lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600
        )
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        data = self._data_root / "data"
        shutil.copytree(_template_for(self._install, self._account), data, symlinks=True)
        sock = self._data_root / "sock"
        if len(str(sock)) > _MAX_SOCKET_PATH - len("/.s.PGSQL.65535.lock"):
            sock = self._mkdtemp(Path("/tmp"), "rg-pg-")  # noqa: S108 - short path; mode 700, ours
        sock.mkdir(mode=0o700, exist_ok=True)
        if self._account.uid is not None:
            _chown_tree(self._data_root, self._account)
            _chown_tree(sock, self._account)
        self._sock_dir = sock

    def _run_base(self) -> Path:
        """Where the data and socket dirs go: the account must be able to traverse to them.

        RAM first (``/dev/shm`` with room to spare): the data is throwaway, and on a slow disk the
        ~1000-file template copy is most of a start (0.8 s against 0.1 s measured on a CI VM).
        Then the caller's work dir, unless it is closed to the account (pytest's tmp dirs are mode
        700 and root's; we never loosen them), then the cache. ``RELAY_GATE_PG_RUN_DIR`` overrides.
        """
        assert self._own_dir is not None
        candidates = [Path(p) for p in [os.environ.get("RELAY_GATE_PG_RUN_DIR")] if p]
        if not candidates:
            if _roomy(_SHM, 1 << 30):
                candidates.append(_SHM)
            candidates += [self._own_dir, _cache_root()]
        for base in candidates:
            if self._account.uid is None or _account_can(
                self._account, ["/bin/sh", "-c", 'cd "$1"', "sh", str(base)]
            ):
                return base
        raise StackError(
            COMPONENT,
            f"account {self._account.name!r} cannot reach any of {', '.join(map(str, candidates))}",
            fix="set RELAY_GATE_PG_RUN_DIR to a directory every user can traverse",
        )

    def _launch(self, timeout: float) -> None:
        assert self._data_root is not None and self._sock_dir is not None
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
                log=self._log_file(),
                proc=self._proc.proc,
            )
            self._set_password()
            wait_until(
                self._select1_tcp,
                timeout=min(timeout, 10.0),
                component=COMPONENT,
                what=f"SELECT 1 with the password on 127.0.0.1:{self.port}",
                fix=fix,
                log=self._log_file(),
                proc=self._proc.proc,
            )
        except BaseException:
            self.kill()
            raise

    def _select1_socket(self) -> bool:
        with self._admin() as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def _select1_tcp(self) -> bool:
        with psycopg.connect(self.url(), connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

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


def _children(pid: int | None) -> list[int]:
    """PIDs whose parent is ``pid``, from /proc (``pgrep -P`` where there is no /proc)."""
    if pid is None:
        return []
    proc = Path("/proc")
    if not proc.is_dir():
        res = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
        return [int(x) for x in res.stdout.split()]
    kids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
        fields = text.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            kids.append(int(entry.name))
    return kids


def _signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat (R, S, T, Z...), None when unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return None


def _wait_until_stopped(pids: list[int], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {_proc_state(p) for p in pids}
        if states <= {"T", "t", "Z", None}:
            return
        time.sleep(0.005)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie (exited, not yet reaped by whoever adopted it) holds no resources any more.
    return _proc_state(pid) == "Z"


def _wait_gone(pids: list[int], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


def _roomy(path: Path, free_bytes: int) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= free_bytes


def _reap_orphans(base: Path) -> None:
    """Remove run dirs (and servers) left by owners that died without close(): a SIGKILLed test run
    must not leak RAM in /dev/shm or a postmaster forever. A run dir's owner holds an flock on its
    ``owner.lock`` for as long as it lives; a dir without one is left alone for a minute (it may
    be being set up right now)."""
    for run in base.glob(f"{RUN_PREFIX}*"):
        lock = run / "owner.lock"
        try:
            if run.is_symlink() or not run.is_dir():
                continue
            if not lock.exists():
                if time.time() - run.stat().st_mtime < 60:
                    continue
            else:
                fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its owner is alive
                finally:
                    os.close(fd)
            _kill_orphan_server(run / "data")
            _release_sysv_segment(run / "data")
            shutil.rmtree(run, ignore_errors=True)
        except OSError:
            continue  # another user's dir, or gone meanwhile: not ours to judge


def _kill_orphan_server(data: Path) -> None:
    """SIGKILL the postmaster recorded in ``data`` (and its children), if it is really that server."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        # PIDs get reused: only kill a process whose command line names this data dir.
        if str(data).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        os.kill(pid, signal.SIGSTOP)
        kids = _children(pid)
        _signal_pids([pid, *kids], signal.SIGKILL)
        _wait_gone([pid, *kids], timeout=5.0)


def _release_sysv_segment(data: Path) -> None:
    """After a SIGKILL, the server's small SysV shared memory segment outlives it: remove it.

    ``postmaster.pid`` line 7 holds "<key> <shmid>"; a clean shutdown removes the file (and segment).
    Best effort: this only frees a few bytes of kernel memory.
    """
    with contextlib.suppress(OSError, IndexError, ValueError):
        lines = (data / "postmaster.pid").read_text().splitlines()
        shmid = int(lines[6].split()[1])
        import ctypes  # only needed on this rare path

        libc = ctypes.CDLL(None, use_errno=True)
        ipc_rmid = 0
        # Only an unattached segment is removed: the kernel keeps it while anything maps it.
        libc.shmctl(shmid, ipc_rmid, None)
