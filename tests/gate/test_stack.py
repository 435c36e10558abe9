"""The stack: up and down on each backend, replicas sharing Redis, Redis faults, clean teardown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from gate.client.receiver import ReceiverClient
from gate.errors import StackError, UsageError
from gate.stack.reference import Stack, StackConfig, ports
from tests.windows import wait_for_window_room

pytestmark = pytest.mark.stack

NOTIFY = {"action": "notify.send", "params": {"channel": "ops", "message": "stack test"}}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _all_pids(description: dict) -> list[int]:
    pids = description["pids"]
    out = list(pids.get("relay", []))
    for name in ("receiver", "redis", "postgres"):
        if isinstance(pids.get(name), int):
            out.append(pids[name])
    return out


@pytest.fixture(params=["embedded", pytest.param("containers", marks=pytest.mark.containers)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "containers":
        from gate.stack.containers.backend import docker_available

        ok, why = docker_available()
        if not ok:
            pytest.skip(why)
    return str(request.param)


def _execute(base: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{base}/actions/execute", headers={"Authorization": f"Bearer {key}"}, json=NOTIFY, timeout=10
    )


def _metric(base: str, line_prefix: str) -> float | None:
    for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_stack_up_serves_and_tears_down_without_leftovers(backend: str) -> None:
    stack = Stack(StackConfig(backend=backend, replicas=1))  # type: ignore[arg-type]
    with stack:
        d = stack.describe()
        assert d["schema"] == "relay-gate/stack@1" and d["backend"] == backend
        assert {"redis", "postgres", "relay-gate", "python"} <= set(d["versions"])
        ready = httpx.get(f"{stack.base_url}/_stcore/ready", timeout=5)
        assert ready.status_code == 200 and ready.json()["checks"]["rate_limiter"] == "redis"
        r = _execute(stack.base_url, stack.key("dev").key)
        assert r.status_code == 200, r.text
        rx = ReceiverClient(str(stack.receiver_url), token=stack.receiver_token)
        (cap,) = rx.wait_for(1)
        assert cap.path == "/hooks/relay" and str(cap.header("X-Signature")).startswith("sha256=")
        rx.close()
        workdir = stack.workdir
        pids = _all_pids(d)
    assert workdir is not None and not workdir.exists(), "the stack's temp dir survived teardown"
    deadline = time.monotonic() + 10
    while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _pid_alive(p)], "processes survived teardown"


def test_replicas_share_the_rate_limit_counters() -> None:
    with Stack(StackConfig(replicas=2, rate_limit=5, window_s=3600)) as stack:
        key = stack.key("dev-ws-a").key
        wait_for_window_room(3600, need_s=30)
        statuses = [_execute(base, key).status_code for _ in range(5) for base in stack.base_urls]
        assert statuses.count(200) == 5 and statuses.count(429) == 5, statuses


def test_redis_killed_falls_back_and_returns_when_restarted() -> None:
    with Stack(StackConfig(replicas=1, rate_limit=1000, window_s=60)) as stack:
        base, key = stack.base_url, stack.key("dev").key
        assert _metric(base, 'rate_limiter_backend{backend="redis"}') == 1.0
        stack.kill_redis()
        for _ in range(5):
            assert _execute(base, key).status_code == 200  # fails open to the in-process limiter
        assert _metric(base, 'rate_limiter_backend{backend="memory"}') == 1.0
        stack.restart_redis()
        t0 = time.monotonic()
        while _metric(base, 'rate_limiter_backend{backend="redis"}') != 1.0:
            _execute(base, key)
            assert time.monotonic() - t0 < 5, "the limiter did not return to Redis within 5 s"
            time.sleep(0.1)


def test_failure_half_way_through_start_up_leaves_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "stack"
    # an invalid setting makes the relay exit at start-up, after Redis, PostgreSQL and the receiver
    bad = {"RATE_LIMIT_EXEC_PER_MIN": "0"}
    stack = Stack(StackConfig(workdir=workdir, service_env=bad, start_timeout_s=20))
    with pytest.raises(StackError) as err:
        stack.start()
    assert "relay[0]" in str(err.value) and "RATE_LIMIT_EXEC_PER_MIN" in str(err.value)
    leftovers = [p for p in _all_pids(stack.describe()) if p and _pid_alive(p)]
    assert not leftovers
    assert stack.postgres is not None and not stack.postgres.running


def test_bad_configuration_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        Stack(StackConfig(backend="bare-metal"))  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        Stack(StackConfig(backend="external"))  # type: ignore[arg-type]  # a deployment is a Target
    with pytest.raises(UsageError):
        Stack(StackConfig(replicas=0))


@pytest.fixture
def serve_cli(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    stack_file = tmp_path / "stack.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gate.cli", "serve", "--replicas", "2", "--stack-file", str(stack_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    yield proc, stack_file
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_writes_the_description_and_cleans_up_on_signal(
    serve_cli: tuple[subprocess.Popen[str], Path], sig: int
) -> None:
    proc, stack_file = serve_cli
    deadline = time.monotonic() + 60
    while not stack_file.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "serve did not write its stack file"
        time.sleep(0.05)
    d = json.loads(stack_file.read_text())
    assert oct(stack_file.stat().st_mode & 0o777) == "0o600"
    assert len(d["base_urls"]) == 2 and {k["role"] for k in d["keys"]} == {"admin", "dev"}
    assert httpx.get(f"{d['base_urls'][1]}/_stcore/ready", timeout=5).status_code == 200
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err  # stopped by the signal: 130 / 143, never 0
    assert "relay-gate stack is up" in out and "Ctrl-C" in out
    assert d["keys"][0]["key"] not in out + err, "a key was printed to the terminal"
    assert not stack_file.exists()
    assert not Path(d["workdir"]).exists()
    deadline = time.monotonic() + 10
    while any(_pid_alive(p) for p in _all_pids(d)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in _all_pids(d) if _pid_alive(p)]


@pytest.mark.parametrize(
    ("argv", "env", "code", "needle"),
    [
        (["serve", "--backend", "bare-metal"], {}, 2, "invalid choice"),
        (["serve", "--backend", "external"], {}, 2, "invalid choice"),  # a deployment is a Target
        (["serve", "--replicas", "99"], {}, 2, "replicas"),
        (["serve"], {"RELAY_GATE_PG_BIN": "/nonexistent/bin"}, 5, "postgres"),
    ],
)
def test_serve_exit_codes(
    tmp_path: Path, argv: list[str], env: dict[str, str], code: int, needle: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gate.cli", *argv, "--stack-file", str(tmp_path / "s.json")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr
    assert not (tmp_path / "s.json").exists()


def test_cli_help_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "gate.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "serve" in out.stdout and "exit codes" in out.stdout
    ver = subprocess.run([sys.executable, "-m", "gate.cli", "--version"], capture_output=True, text=True)
    assert ver.returncode == 0 and ver.stdout.startswith("relay-gate ")
    bare = subprocess.run([sys.executable, "-m", "gate.cli"], capture_output=True, text=True)
    assert bare.returncode == 2


def test_the_session_stack_is_gone_when_pytest_ends(tmp_path: Path) -> None:
    """The root conftest's session `stack` fixture: every process and the temp dir end with the session."""
    probe = tmp_path / "test_probe.py"
    out = tmp_path / "stack.json"
    probe.write_text(
        "import json, pathlib\n"
        "def test_probe(stack):\n"
        f"    pathlib.Path({str(out)!r}).write_text(json.dumps(stack.describe()))\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        # the probe lives outside the repo, so the root conftest is loaded as a plugin by name
        [sys.executable, "-m", "pytest", str(probe), "-c", str(root / "pyproject.toml"),
         "--rootdir", str(root), "-p", "conftest", "-p", "no:cacheprovider", "-q"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    d = json.loads(out.read_text())
    assert len(d["base_urls"]) == 2
    assert not Path(d["workdir"]).exists()
    deadline = time.monotonic() + 10
    while any(_pid_alive(p) for p in _all_pids(d)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in _all_pids(d) if _pid_alive(p)]


# -- ports taken before the bind, and servers that are not ours ------------------------------------


class Squatter:
    """A free_port() whose every other answer is a port it holds open itself: the first port each
    listener of a stack is given is taken before it can bind it."""

    def __init__(self) -> None:
        self.real = ports.free_port
        self.held: list[socket.socket] = []
        self.calls = 0

    def __call__(self, host: str = "127.0.0.1") -> int:
        self.calls += 1
        return self.squat() if self.calls % 2 else self.real(host)

    def squat(self, port: int = 0) -> int:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        self.held.append(s)
        return int(s.getsockname()[1])

    @property
    def taken(self) -> set[int]:
        return {int(s.getsockname()[1]) for s in self.held}

    def close(self) -> None:
        for s in self.held:
            s.close()


class _Impostor(BaseHTTPRequestHandler):
    """Another stack's relay and receiver: ready, healthy, and some other instance."""

    def do_GET(self) -> None:
        body = json.dumps({"ok": True, "instance": "another-stacks-server"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_every_listener_comes_up_when_its_first_port_was_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    squatter = Squatter()
    monkeypatch.setattr(ports, "free_port", squatter)
    try:
        with Stack(StackConfig(replicas=2, start_timeout_s=60)) as stack:
            assert stack.workdir is not None and stack.redis is not None and stack.postgres is not None
            used = {stack.redis.port, stack.postgres.port, *stack.ports}
            assert stack.receiver_url is not None and not used & squatter.taken
            logs = {
                "redis": stack.workdir / "redis" / "redis.log",
                "postgres": stack.postgres.log_path,
                "receiver": stack.workdir / "receiver.log",
                "relay[0]": stack.workdir / "relay-0.log",
            }
            for name, log in logs.items():
                assert log is not None and "already in use" in log.read_text().lower(), (
                    f"{name} never lost a port"
                )
            for base in stack.base_urls:
                assert httpx.get(f"{base}/_stcore/ready", timeout=5).status_code == 200
            rx = ReceiverClient(stack.receiver_url, token=stack.receiver_token)
            assert rx.captures() == [] and rx.instance() is not None
            rx.close()

            # a restart finds its port taken meanwhile: the replica moves, and base_urls says where
            old = stack.ports[1]
            replica = stack.replicas[1]
            stop = replica.stop

            def stop_and_take_the_port(*args: object, **kwargs: object) -> None:
                stop(*args, **kwargs)  # type: ignore[arg-type]
                if old not in squatter.taken:
                    squatter.squat(old)

            monkeypatch.setattr(replica, "stop", stop_and_take_the_port)
            stack.restart_replica(1)
            assert stack.ports[1] != old and stack.base_urls[1].endswith(f":{stack.ports[1]}")
            assert httpx.get(f"{stack.base_urls[1]}/_stcore/ready", timeout=5).status_code == 200

            with stack.extra_replica({"RATE_LIMIT_ENABLED": "false"}) as extra:
                assert int(extra.rsplit(":", 1)[1]) not in squatter.taken
                assert httpx.get(f"{extra}/_stcore/ready", timeout=5).status_code == 200
    finally:
        squatter.close()


def test_a_relay_answering_with_another_nonce_is_refused_not_adopted(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Impostor) as impostor:
        threading.Thread(target=impostor.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        port = impostor.server_address[1]
        monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": port)
        monkeypatch.setattr(stack.config, "start_timeout_s", 600)
        try:
            with pytest.raises(StackError) as info, stack.extra_replica({}):
                pytest.fail("adopted a relay that is not ours")
        finally:
            impostor.shutdown()
    assert info.value.component == "relay[extra]" and f"{port}, {port}, {port}" in info.value.problem
    assert "within" not in info.value.problem, "it waited out the clock instead of refusing"


def test_the_receiver_token_is_a_secret_of_the_stack_and_never_on_a_command_line(stack: Stack) -> None:
    token = stack.receiver_token
    assert token and len(token) >= 32
    assert token in stack.secret_values() and stack.describe()["receiver_token"] == token
    assert stack.receiver is not None and stack.receiver.pid is not None
    assert token not in Path(f"/proc/{stack.receiver.pid}/cmdline").read_bytes().decode()
    assert not [p.name for p in [stack.receiver, *stack.replicas] if token in " ".join(p.argv)]
    assert httpx.get(f"{stack.receiver_url}/_receiver/captures", timeout=5).status_code == 401
