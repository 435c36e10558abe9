"""Where the embedded PostgreSQL comes from: pgserver's binaries, the account they run as, and a cache.

Only pgserver's *binaries* are used (``<site-packages>/pgserver/pginstall/bin``), never its Python API.
PostgreSQL refuses to run as root, so when we are root the server runs as an unprivileged account
(``nobody`` unless ``RELAY_GATE_PG_USER`` or ``user=`` says otherwise). That account may not be able to
reach the binaries (a venv under a mode-700 home): then the install is copied once into a
world-readable cache. The caller's home is never loosened.

Cache layout (``RELAY_GATE_CACHE_DIR``, default ``/var/tmp/relay-gate``, or ``-<uid>`` when not root)::

    pg-16.2-<hash>/pgserver/pginstall/{bin,lib,share}   the copied install (only when needed)
    pg-16.2-<hash>/pgserver.libs/                       libpq etc., found by the binaries' $ORIGIN rpath
    template-16.2-<hash>/                               an initdb'd data dir, copied for every server

Cache entries are built in a temp dir and renamed into place, so concurrent runs never see half a
copy. The server itself is gate/stack/postgres/server.py.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gate.errors import StackError
from gate.stack.postgres.admin import SUPERUSER

COMPONENT = "postgres"
# Bump when the template's initdb options or settings change, so stale templates are not reused.
TEMPLATE_FORMAT = "3"
_INSTALL_FIX = "pip install pgserver (or set RELAY_GATE_PG_BIN to a directory holding initdb and postgres)"

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
class Account:
    """Who the server runs as: ``uid``/``gid`` are None when it runs as ourselves."""

    name: str
    uid: int | None
    gid: int | None


@dataclass(frozen=True)
class Install:
    """A PostgreSQL install the server account can execute."""

    bin_dir: Path
    version: str
    key: str  # identifies this exact install in cache entry names


# -- locating and preparing the install ------------------------------------------------------------


def bundled_bin_dir() -> Path:
    """pgserver's own ``bin``, whatever ``RELAY_GATE_PG_BIN`` says; StackError if pgserver is absent."""
    # find_spec locates the package without importing it: pgserver's own Python API stays unused.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            COMPONENT, "PostgreSQL binaries not found: pgserver is not installed", fix=_INSTALL_FIX
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def source_bin_dir() -> Path:
    """pgserver's ``bin`` (postgres, initdb, pg_dump...), or ``RELAY_GATE_PG_BIN``; StackError if absent."""
    override = os.environ.get("RELAY_GATE_PG_BIN")
    bin_dir = Path(override) if override else bundled_bin_dir()
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


def resolve_account(user: str | None) -> Account:
    """The account to run the server as: ourselves unless root, then ``user`` or an unprivileged one."""
    name = user or os.environ.get("RELAY_GATE_PG_USER") or None
    euid = os.geteuid()
    if euid != 0:
        me = pwd.getpwuid(euid).pw_name
        if name and name != me:
            raise StackError(COMPONENT, f"cannot run PostgreSQL as {name!r}: only root can switch accounts")
        return Account(me, None, None)
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
    return Account(name, entry.pw_uid, entry.pw_gid)


def _run_as(
    account: Account, argv: list[str], *, cwd: Path | str, env: dict[str, str] | None = None
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


def account_can(account: Account, argv: list[str]) -> bool:
    """Run a probe as the account: the only reliable answer to "can it reach this?" (ACLs, mounts...)."""
    try:
        return _run_as(account, argv, cwd="/").returncode == 0
    except OSError:
        return False


def cache_root() -> Path:
    """The cache dir, created if needed; StackError unless it is ours and writable only by us."""
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


def install_for(account: Account) -> Install:
    """The install the account can execute: the source tree if it can reach it, else a cached copy."""
    # Memoised per configuration: probing costs a few subprocesses, and tests change the environment.
    return _install_cached(
        account, os.environ.get("RELAY_GATE_PG_BIN"), os.environ.get("RELAY_GATE_CACHE_DIR")
    )


@functools.lru_cache(maxsize=8)
def _install_cached(account: Account, _bin_env: str | None, _cache_env: str | None) -> Install:
    src_bin = source_bin_dir()
    version = _binary_version(src_bin)
    st = os.stat(src_bin / "postgres")
    fingerprint = f"{src_bin.resolve()}|{st.st_size}|{st.st_mtime_ns}|{version}"
    key = f"{version}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"
    if account_can(account, [str(src_bin / "postgres"), "--version"]):
        return Install(src_bin, version, key)
    copy = cache_root() / f"pg-{key}"
    if not (copy / "pgserver" / "pginstall" / "bin" / "postgres").exists():
        _copy_install(src_bin, copy)
    bin_dir = copy / "pgserver" / "pginstall" / "bin"
    if not account_can(account, [str(bin_dir / "postgres"), "--version"]):
        raise StackError(
            COMPONENT,
            f"account {account.name!r} cannot execute {bin_dir / 'postgres'}",
            fix="set RELAY_GATE_CACHE_DIR to a directory every user can traverse",
        )
    return Install(bin_dir, version, key)


def chown_tree(root: Path, account: Account) -> None:
    """Hand ``root`` and everything under it to the account (nothing to do when it is ourselves)."""
    if account.uid is None or account.gid is None:
        return
    os.lchown(root, account.uid, account.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), account.uid, account.gid)


def template_for(install: Install, account: Account) -> Path:
    """An initdb'd data dir for this install, created once (initdb costs ~0.7 s, a copy ~0.1 s)."""
    tkey = hashlib.sha256(f"{install.key}|{TEMPLATE_FORMAT}".encode()).hexdigest()[:12]
    final = cache_root() / f"template-{install.version}-{tkey}"
    if (final / "PG_VERSION").is_file():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=".template-", dir=final.parent))
    try:
        chown_tree(tmp, account)
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
        chown_tree(data, account)  # files we wrote as root must stay readable by the server
        _publish(data, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
