"""EmbeddedPostgres: a real server from pgserver's binaries, as an unprivileged user, torn down for sure."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from gate.errors import PortTaken, StackError
from gate.stack import ports
from gate.stack.postgres.install import source_bin_dir
from gate.stack.postgres.rundirs import roomy
from gate.stack.postgres.server import EmbeddedPostgres

pytestmark = pytest.mark.stack

IS_ROOT = os.geteuid() == 0


def server_pids(pg: EmbeddedPostgres) -> list[int]:
    pids = pg.pids()
    assert pids and pids[0] == pg.pid
    return pids


def alive(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not (Path("/proc").is_dir() and proc_state(pid) == "Z")


def proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]


def select1(url: str) -> object:
    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute("SELECT 1").fetchone()
        return row[0] if row else None


# Scratch space the server account can traverse (pytest's tmp dirs are mode 700): RAM when possible,
# because these tests copy tens of megabytes.
SCRATCH = "/dev/shm" if roomy(Path("/dev/shm"), 1 << 30) else "/var/tmp"


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache dir the server account can traverse."""
    path = Path(tempfile.mkdtemp(prefix="relay-gate-test-cache-", dir=SCRATCH))
    os.chmod(path, 0o755)  # noqa: S103 - the server account must traverse it
    monkeypatch.setenv("RELAY_GATE_CACHE_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_answers_select_1_over_tcp_with_its_password(pg_server: EmbeddedPostgres) -> None:
    url = pg_server.url()
    assert url == f"postgresql://postgres:{pg_server.password}@127.0.0.1:{pg_server.port}/postgres"
    assert len(pg_server.password) >= 24
    assert select1(url) == 1
    with psycopg.connect(url) as conn:
        assert conn.info.server_version // 10000 == int(pg_server.version.split(".")[0])
    wrong = url.replace(pg_server.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        select1(wrong)


@pytest.mark.skipif(not IS_ROOT, reason="the account switch only happens when running as root")
def test_runs_as_the_unprivileged_account_when_root(pg_server: EmbeddedPostgres) -> None:
    expected = pwd.getpwnam(os.environ.get("RELAY_GATE_PG_USER") or "nobody").pw_uid
    pids = server_pids(pg_server)
    assert len(pids) > 1  # postmaster + background processes
    assert {os.stat(f"/proc/{pid}").st_uid for pid in pids} == {expected}


def test_bin_dir_has_client_tools_of_the_same_version(pg_server: EmbeddedPostgres) -> None:
    out = subprocess.run(
        [str(pg_server.bin_dir / "pg_dump"), "--version"], capture_output=True, text=True, check=True
    )
    assert pg_server.version in out.stdout
    assert (pg_server.bin_dir / "pg_restore").exists()


def test_template_cache_makes_later_starts_fast(
    tmp_path: Path, fresh_cache: Path, record_property: Callable[[str, object], None]
) -> None:
    t0 = time.perf_counter()
    with EmbeddedPostgres(tmp_path / "cold") as cold:
        cold_s = time.perf_counter() - t0
        assert select1(cold.url()) == 1
    assert [p.name for p in fresh_cache.iterdir() if p.name.startswith("template-")]
    t0 = time.perf_counter()
    with EmbeddedPostgres(tmp_path / "warm") as warm:
        warm_s = time.perf_counter() - t0
        assert select1(warm.url()) == 1
    # Timings are noisy on shared runners: report them, assert nothing tight.
    record_property("pg_cold_start_s", round(cold_s, 3))
    record_property("pg_warm_start_s", round(warm_s, 3))
    print(f"EmbeddedPostgres start: cold (initdb) {cold_s:.3f} s, warm (template copy) {warm_s:.3f} s")


def test_kill_then_start_runs_crash_recovery(fresh_pg: EmbeddedPostgres) -> None:
    url = fresh_pg.url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (42)")
        pids = server_pids(fresh_pg)
        fresh_pg.kill()
    assert not any(alive(pid) for pid in pids)
    fresh_pg.start()
    assert fresh_pg.url() == url  # same port and password after the crash
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [(42,)]
    assert "database system was interrupted" in (fresh_pg.log_path or Path()).read_text()


def test_restart_keeps_data_port_and_password(fresh_pg: EmbeddedPostgres) -> None:
    url = fresh_pg.url()
    fresh_pg.create_database("kept")
    old_pid = fresh_pg.pid
    fresh_pg.restart()
    assert fresh_pg.pid != old_pid
    assert select1(fresh_pg.url("kept")) == 1
    assert fresh_pg.url() == url


def test_pause_stops_every_server_process_and_resume_wakes_them(fresh_pg: EmbeddedPostgres) -> None:
    if not Path("/proc").is_dir():
        pytest.skip("reads process states from /proc")
    with psycopg.connect(fresh_pg.url()):  # a backend exists too
        pids = server_pids(fresh_pg)
        fresh_pg.pause()
        try:
            assert {proc_state(pid) for pid in pids} == {"T"}
        finally:
            fresh_pg.resume()
        assert "T" not in {proc_state(pid) for pid in pids}
    assert select1(fresh_pg.url()) == 1


def test_stop_ends_every_process_and_close_removes_every_dir(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "work")
    try:
        pg.start()
        with psycopg.connect(pg.url()):
            pids = server_pids(pg)
        dirs = [p for p in (pg._own_dir, pg._data_root, pg.socket_dir) if p is not None]
        assert all(d.exists() for d in dirs)
        pg.pause()  # a stop must also work on a paused server
        pg.stop()
        assert not pg.running
        assert not any(alive(pid) for pid in pids)
    finally:
        pg.close()
    assert not any(d.exists() for d in dirs)
    assert list((tmp_path / "work").iterdir()) == []


def test_close_after_kill_leaves_nothing(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "work")
    pg.start()
    pids = server_pids(pg)
    data = (pg._data_root or Path()) / "data"
    pg.kill()
    assert (data / "postmaster.pid").exists()  # a crash leaves its lock file behind
    pg.close()
    assert not any(alive(pid) for pid in pids)
    assert not data.exists()


def test_a_port_in_use_is_refused_with_a_fix(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        pg = EmbeddedPostgres(tmp_path, port=port)
        with pytest.raises(StackError) as info:
            pg.start()
        pg.close()
    assert info.value.component == "postgres"
    assert f"port {port}" in info.value.problem
    assert info.value.fix


def test_never_ready_raises_with_the_log_and_leaves_no_process(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    try:
        with pytest.raises(StackError) as info:
            pg.start(timeout=0.0001)
        assert info.value.component == "postgres"
        assert "SELECT 1" in info.value.problem
        assert pg.pid is not None and not alive(pg.pid)
    finally:
        pg.close()


def test_missing_binaries_say_how_to_install_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_GATE_PG_BIN", str(tmp_path))
    with pytest.raises(StackError) as info:
        EmbeddedPostgres(tmp_path)
    assert info.value.component == "postgres"
    assert "pip install pgserver" in info.value.fix


def test_initdb_failure_is_reported_with_its_output(
    tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fresh_cache / "fake-install" / "bin"  # traversable, so no copy is made of it
    fake.mkdir(parents=True)
    # A real postgres (for --version), copied so the server account can run it wherever the venv is.
    shutil.copy2(source_bin_dir() / "postgres", fake / "postgres")
    (fake / "initdb").write_text("#!/bin/sh\necho 'initdb: simulated disk full' >&2\nexit 1\n")
    os.chmod(fake / "initdb", 0o755)  # noqa: S103 - executable by the server account
    os.chmod(fake.parent, 0o755)  # noqa: S103 - traversable by the server account
    monkeypatch.setenv("RELAY_GATE_PG_BIN", str(fake))
    pg = EmbeddedPostgres(tmp_path)
    try:
        with pytest.raises(StackError) as info:
            pg.start()
    finally:
        pg.close()
    assert "initdb failed" in info.value.problem
    assert "simulated disk full" in info.value.log_tail


@pytest.mark.skipif(not IS_ROOT, reason="only root switches to an account that may not reach the venv")
def test_binaries_out_of_the_accounts_reach_are_copied_to_the_cache(
    tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A venv under a mode-700 home, as on CI runners that run as root.
    src = source_bin_dir().parent.parent  # <site-packages>/pgserver
    private = fresh_cache / "home"  # the cache root is traversable, this dir is not
    private.mkdir(mode=0o700)
    shutil.copytree(src / "pginstall", private / "site" / "pgserver" / "pginstall", symlinks=True)
    if (src.parent / "pgserver.libs").is_dir():
        shutil.copytree(src.parent / "pgserver.libs", private / "site" / "pgserver.libs")
    monkeypatch.setenv("RELAY_GATE_PG_BIN", str(private / "site" / "pgserver" / "pginstall" / "bin"))
    with EmbeddedPostgres(tmp_path / "work") as pg:
        assert pg.bin_dir.is_relative_to(fresh_cache) and not pg.bin_dir.is_relative_to(private)
        assert select1(pg.url()) == 1
        dump = subprocess.run(
            [str(pg.bin_dir / "pg_dump"), "--schema-only", pg.url()], capture_output=True, text=True
        )
        assert dump.returncode == 0, dump.stderr
    assert stat.S_IMODE(private.stat().st_mode) == 0o700  # the caller's home was not loosened


def test_database_names_are_strict_identifiers(pg_server: EmbeddedPostgres) -> None:
    for bad in ("Upper", "1starts_with_digit", "semi;colon", 'quo"te', "x" * 64, ""):
        with pytest.raises(ValueError, match="must match"):
            pg_server.url(bad)
        with pytest.raises(ValueError, match="must match"):
            pg_server.create_database(bad)
        with pytest.raises(ValueError, match="must match"):
            pg_server.drop_database(bad)


def test_create_and_drop_database(pg_server: EmbeddedPostgres) -> None:
    pg_server.create_database("scratch_db")
    try:
        held = psycopg.connect(pg_server.url("scratch_db"))  # an open session must not block the drop
        assert select1(pg_server.url("scratch_db")) == 1
    finally:
        pg_server.drop_database("scratch_db")
    held.close()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        select1(pg_server.url("scratch_db"))
    pg_server.drop_database("scratch_db")  # idempotent


def test_a_run_dir_whose_owner_died_is_reaped_with_its_server(tmp_path: Path) -> None:
    orphan = EmbeddedPostgres(tmp_path / "a")
    orphan.start()
    run_dir, pids = orphan._data_root, server_pids(orphan)
    assert run_dir is not None and orphan._lock_fd is not None
    # What a SIGKILLed owner leaves: a running server and its run dir, the owner's flock released.
    os.close(orphan._lock_fd)
    orphan._lock_fd = None
    with EmbeddedPostgres(tmp_path / "b") as other:
        if other._data_root is None or other._data_root.parent != run_dir.parent:
            pytest.skip("the two servers' run dirs are in different places")
        assert not run_dir.exists()
        assert not any(alive(pid) for pid in pids)
    orphan.close()  # harmless after the reaper


def test_a_live_servers_run_dir_is_never_reaped(pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path):
        assert pg_server.running
        assert select1(pg_server.url()) == 1


# -- a port taken before the bind, and a server that is not ours ------------------------------------


def _first_pick(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """free_port() returns ``port`` once, then whatever the kernel says."""
    real, picks = ports.free_port, iter([port])
    monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": next(picks, None) or real(host))


def data_directory(pg: EmbeddedPostgres) -> str:
    with psycopg.connect(pg.url(), connect_timeout=3) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    return str(row[0]) if row else ""


def test_a_port_taken_before_the_bind_gets_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        _first_pick(monkeypatch, taken)
        with EmbeddedPostgres(tmp_path / "pg") as pg:
            assert pg.port != taken and select1(pg.url()) == 1
            assert pg.log_path is not None and "Address already in use" in pg.log_path.read_text()


def test_another_postgres_on_the_port_is_not_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_server: EmbeddedPostgres
) -> None:
    _first_pick(monkeypatch, pg_server.port)
    with EmbeddedPostgres(tmp_path / "pg") as pg:
        assert pg.port != pg_server.port
        assert data_directory(pg) == str((pg._data_root or Path()) / "data") != data_directory(pg_server)


def test_a_server_with_another_data_directory_is_someone_elses(
    fresh_pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    """Readiness over TCP asks the server for its data directory: the password alone proves nothing
    to a server that trusts 127.0.0.1. Seen from an object that expects another directory, this
    server is someone else's."""
    assert fresh_pg._tcp_is_ours()
    ours = fresh_pg._data_root
    try:
        fresh_pg._data_root = tmp_path
        with pytest.raises(PortTaken) as info:
            fresh_pg._tcp_is_ours()
    finally:
        fresh_pg._data_root = ours
    assert info.value.port == fresh_pg.port and "another PostgreSQL" in info.value.problem
