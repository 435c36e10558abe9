"""The `containers` backend against a real Docker engine: ContainerRedis and ContainerPostgres.

Skipped, with the reason, where no engine answers. Images: RELAY_GATE_REDIS_IMAGE / RELAY_GATE_PG_IMAGE
when set; otherwise the official default if the engine has it, else a local build of
.ci/build-images.sh if it has that, else the official default (pulled).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import psycopg
import pytest
import redis
from docker.errors import NotFound

from gate.errors import StackError
from gate.stack.backends import PostgresService, RedisService
from gate.stack.containers.backend import (
    DEFAULT_PG_IMAGE,
    DEFAULT_REDIS_IMAGE,
    LABEL_OWNER,
    PG_IMAGE_ENV,
    REDIS_IMAGE_ENV,
    ContainerPostgres,
    ContainerRedis,
    docker_available,
)
from gate.stack.procs import port_in_use

pytestmark = pytest.mark.containers


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    ok, why = docker_available()
    if not ok:
        pytest.skip(why)
    client = docker.from_env(timeout=30)
    yield client
    client.close()


def _pick_image(client: docker.DockerClient, env: str, default: str, local: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    for candidate in (default, local):
        try:
            client.images.get(candidate)
            return candidate
        except NotFound:
            continue
    return default


@pytest.fixture(scope="session")
def redis_image(docker_client: docker.DockerClient) -> str:
    return _pick_image(docker_client, REDIS_IMAGE_ENV, DEFAULT_REDIS_IMAGE, "relay-gate-local/redis:7")


@pytest.fixture(scope="session")
def pg_image(docker_client: docker.DockerClient) -> str:
    return _pick_image(docker_client, PG_IMAGE_ENV, DEFAULT_PG_IMAGE, "relay-gate-local/postgres:15")


@pytest.fixture
def c_redis(redis_image: str) -> Iterator[ContainerRedis]:
    with ContainerRedis(image=redis_image) as server:
        yield server


@pytest.fixture
def c_pg(pg_image: str) -> Iterator[ContainerPostgres]:
    """A server of its own, for a test that stops, kills or pauses it."""
    with ContainerPostgres(image=pg_image) as server:
        yield server


@pytest.fixture(scope="module")
def shared_pg(pg_image: str) -> Iterator[ContainerPostgres]:
    """One server for the tests that leave it running (a start costs about a second)."""
    with ContainerPostgres(image=pg_image) as server:
        yield server
        assert server.running, "a test broke the shared container PostgreSQL"


def _client(server: ContainerRedis, timeout: float = 5.0) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=timeout, socket_connect_timeout=timeout)


def _scalar(url: str, query: str) -> object:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


# -- both services start and answer -----------------------------------------------------------------


def test_redis_starts_on_the_host_network_and_answers_ping(
    c_redis: ContainerRedis, docker_client: docker.DockerClient
) -> None:
    assert isinstance(c_redis, RedisService)
    assert c_redis.alive()
    assert c_redis.url == f"redis://127.0.0.1:{c_redis.port}/0"
    with _client(c_redis) as client:
        assert client.ping()
        assert client.set("k", "v") and client.get("k") == b"v"
    assert c_redis.version[0].isdigit()
    attrs = docker_client.containers.get(c_redis.container_id).attrs
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert not attrs["HostConfig"].get("PortBindings")


def test_postgres_answers_select_1_over_tcp_with_its_password(shared_pg: ContainerPostgres) -> None:
    assert isinstance(shared_pg, PostgresService)
    assert shared_pg.running
    assert _scalar(shared_pg.url(), "SELECT 1") == 1
    assert shared_pg.password in shared_pg.url() and f"127.0.0.1:{shared_pg.port}/postgres" in shared_pg.url()
    assert shared_pg.version.split(".")[0] in str(_scalar(shared_pg.url(), "SHOW server_version"))
    wrong = shared_pg.url().replace(shared_pg.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5).close()


def test_postgres_can_be_dumped_with_the_host_side_client_tools(shared_pg: ContainerPostgres) -> None:
    pg_dump = shared_pg.bin_dir / "pg_dump"
    assert os.access(pg_dump, os.X_OK)
    with psycopg.connect(shared_pg.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS dumped (id int PRIMARY KEY)")
    out = subprocess.run(
        [str(pg_dump), "--schema-only", "--dbname", shared_pg.url()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "CREATE TABLE public.dumped" in out.stdout


# -- databases -------------------------------------------------------------------------------------


def test_create_and_drop_database(shared_pg: ContainerPostgres) -> None:
    name = f"rg_{uuid.uuid4().hex[:12]}"
    shared_pg.create_database(name)
    with psycopg.connect(shared_pg.url(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('from the template')")
    copy = f"{name}_copy"
    shared_pg.create_database(copy, template=name)
    assert _scalar(shared_pg.url(copy), "SELECT v FROM t") == "from the template"

    held_open = psycopg.connect(shared_pg.url(name), autocommit=True)  # a leftover session (a pool)...
    try:
        shared_pg.drop_database(name)  # ...does not block the drop: it is ended
        with pytest.raises(psycopg.OperationalError):
            held_open.execute("SELECT 1")
    finally:
        held_open.close()
    shared_pg.drop_database(copy)
    shared_pg.drop_database(copy)  # IF EXISTS: dropping twice is fine
    with psycopg.connect(shared_pg.url()) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{name}%"])
        assert left.fetchall() == []


@pytest.mark.parametrize("bad", ["Upper", "semi;colon", "x" * 64, "1starts_with_digit", 'quo"te'])
def test_database_names_are_validated_before_any_sql(shared_pg: ContainerPostgres, bad: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        shared_pg.create_database(bad)
    with pytest.raises(ValueError, match="must match"):
        shared_pg.drop_database(bad)
    with pytest.raises(ValueError, match="must match"):
        shared_pg.url(bad)


# -- stop, kill, restart ----------------------------------------------------------------------------


def test_postgres_stop_and_restart_keep_data_port_and_container(c_pg: ContainerPostgres) -> None:
    with psycopg.connect(c_pg.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    port, container_id, url = c_pg.port, c_pg.container_id, c_pg.url()

    c_pg.stop()
    assert not c_pg.running
    assert not port_in_use(port)

    c_pg.restart()
    assert (c_pg.port, c_pg.container_id, c_pg.url()) == (port, container_id, url)
    assert _scalar(c_pg.url(), "SELECT v FROM kept") == "still here"


def test_postgres_kill_then_start_recovers_committed_data(c_pg: ContainerPostgres) -> None:
    with psycopg.connect(c_pg.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE committed (v int)")
        conn.execute("INSERT INTO committed VALUES (42)")

    c_pg.kill()
    assert not c_pg.running
    c_pg.start()
    assert _scalar(c_pg.url(), "SELECT v FROM committed") == 42


def test_redis_kill_then_start_answers_again_on_the_same_port(c_redis: ContainerRedis) -> None:
    port = c_redis.port
    c_redis.kill()
    assert not c_redis.alive()
    with pytest.raises(redis.ConnectionError), _client(c_redis, timeout=1) as client:
        client.ping()

    c_redis.start()
    assert c_redis.port == port
    with _client(c_redis) as client:
        assert client.ping()

    c_redis.stop()
    assert not c_redis.alive()
    c_redis.restart()
    with _client(c_redis) as client:
        assert client.ping()


# -- pause / resume ---------------------------------------------------------------------------------


def test_redis_pause_makes_calls_time_out_and_resume_restores(c_redis: ContainerRedis) -> None:
    c_redis.pause()
    assert c_redis.alive()  # hung, not dead
    with pytest.raises(redis.TimeoutError), _client(c_redis, timeout=0.5) as client:
        client.ping()

    c_redis.resume()
    with _client(c_redis) as client:
        assert client.ping()


def test_postgres_pause_makes_connects_time_out_and_resume_restores(c_pg: ContainerPostgres) -> None:
    c_pg.pause()
    assert c_pg.running
    with pytest.raises(psycopg.OperationalError, match="timeout"):
        psycopg.connect(c_pg.url(), connect_timeout=2).close()

    c_pg.resume()
    assert _scalar(c_pg.url(), "SELECT 1") == 1


def test_kill_works_on_a_paused_container(c_redis: ContainerRedis) -> None:
    c_redis.pause()
    c_redis.kill()
    assert not c_redis.alive()
    c_redis.start()
    with _client(c_redis) as client:
        assert client.ping()


def test_a_container_removed_behind_our_back_is_replaced(
    c_redis: ContainerRedis, docker_client: docker.DockerClient
) -> None:
    old = c_redis.container_id
    docker_client.containers.get(old).remove(force=True)
    assert not c_redis.alive()
    c_redis.start()
    assert c_redis.container_id not in (None, old)
    with _client(c_redis) as client:
        assert client.ping()


def test_stop_wakes_a_paused_container_first(c_pg: ContainerPostgres) -> None:
    c_pg.pause()
    c_pg.stop(timeout=20)
    assert not c_pg.running
    c_pg.start()
    assert _scalar(c_pg.url(), "SELECT 1") == 1


# -- teardown ---------------------------------------------------------------------------------------


def test_close_leaves_no_container(redis_image: str, docker_client: docker.DockerClient) -> None:
    server = ContainerRedis(image=redis_image).start()
    container_id = server.container_id
    assert container_id is not None
    server.close()
    with pytest.raises(NotFound):
        docker_client.containers.get(container_id)
    assert server.container_id is None
    server.close()  # twice is fine


def test_containers_of_a_dead_process_are_reaped(
    redis_image: str, docker_client: docker.DockerClient
) -> None:
    # A child starts a container and dies without close() or atexit (as SIGKILL would leave it).
    code = textwrap.dedent(f"""
        import os
        from gate.stack.containers.backend import ContainerRedis
        print(ContainerRedis(image={redis_image!r}).start().container_id, flush=True)
        os._exit(0)
    """)
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    orphan = child.stdout.strip()
    assert docker_client.containers.get(orphan).labels[LABEL_OWNER]

    with ContainerRedis(image=redis_image), pytest.raises(NotFound):  # the next start reaps it
        docker_client.containers.get(orphan)


def test_containers_left_open_are_removed_when_their_process_exits(
    redis_image: str, docker_client: docker.DockerClient
) -> None:
    code = textwrap.dedent(f"""
        from gate.stack.containers.backend import ContainerRedis
        print(ContainerRedis(image={redis_image!r}).start().container_id, flush=True)
    """)
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    with pytest.raises(NotFound):
        docker_client.containers.get(child.stdout.strip())


# -- failures say what to do ------------------------------------------------------------------------


def test_a_missing_local_image_names_the_image_and_the_build_script(
    docker_client: docker.DockerClient,
) -> None:
    image = "relay-gate-local/redis:no-such-tag"
    with pytest.raises(StackError) as info:
        ContainerRedis(image=image).start()
    assert info.value.component == "redis"
    assert image in info.value.problem
    assert ".ci/build-images.sh" in info.value.fix


def test_an_image_that_cannot_be_pulled_names_the_image_and_the_fix(
    docker_client: docker.DockerClient,
) -> None:
    image = "relay-gate-test/definitely-not-published:0"
    with pytest.raises(StackError) as info:
        ContainerPostgres(image=image).start(timeout=5)
    assert image in info.value.problem and "pulling it failed" in info.value.problem
    assert f"docker pull {image}" in info.value.fix


def test_the_image_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_IMAGE_ENV, "example/redis:1")
    monkeypatch.delenv(PG_IMAGE_ENV, raising=False)
    assert ContainerRedis().image == "example/redis:1"
    assert ContainerRedis(image="explicit:2").image == "explicit:2"
    assert ContainerPostgres().image == DEFAULT_PG_IMAGE


class _MisconfiguredPostgres(ContainerPostgres):
    def _command(self, port: int) -> list[str]:
        return [*super()._command(port), "-c", "no_such_setting=1"]


def test_a_container_that_exits_early_fails_fast_with_its_log(
    pg_image: str, docker_client: docker.DockerClient
) -> None:
    server = _MisconfiguredPostgres(image=pg_image)
    with pytest.raises(StackError) as info:
        server.start(timeout=60)
    assert "exited with status" in info.value.problem
    assert "no_such_setting" in info.value.log_tail
    assert server.container_id is None  # the failed container was removed


def test_a_fixed_port_in_use_is_refused(redis_image: str, docker_client: docker.DockerClient) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackError, match="already in use"):
            ContainerRedis(image=redis_image, port=port).start()


def test_docker_available_says_why_not(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    ok, why = docker_available()
    assert not ok
    assert "no-docker.sock" in why


def test_an_unreachable_engine_is_a_stack_error_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(StackError) as info:
        ContainerRedis(image="redis:7").start()
    assert "no-docker.sock" in info.value.problem
    assert "start-docker.sh" in info.value.fix and "--backend embedded" in info.value.fix
