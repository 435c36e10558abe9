"""gate/stack/ports.py: a listener whose port was taken before it bound gets another, a bounded number of
times."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from gate.errors import PortTaken, StackError
from gate.stack.ports import BIND_ATTEMPTS, address_in_use, listens, on_free_port


def test_a_taken_port_is_replaced_by_a_fresh_one(monkeypatch: pytest.MonkeyPatch) -> None:
    picks = iter([7001, 7002, 7003])
    monkeypatch.setattr("gate.stack.ports.free_port", lambda host="127.0.0.1": next(picks))
    tried: list[int] = []

    def launch(port: int) -> str:
        tried.append(port)
        if port == 7001:
            raise PortTaken("redis", port, "taken")
        return f"up on {port}"

    assert on_free_port("redis", launch) == "up on 7002"
    assert tried == [7001, 7002]


def test_the_first_port_can_be_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gate.stack.ports.free_port", lambda host="127.0.0.1": 7100)
    assert on_free_port("relay[0]", lambda port: port, first=7050) == 7050


def test_after_the_last_attempt_the_error_names_the_component_and_every_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    picks = iter(range(7200, 7300))
    monkeypatch.setattr("gate.stack.ports.free_port", lambda host="127.0.0.1": next(picks))

    def launch(port: int) -> None:
        raise PortTaken("receiver", port, f"127.0.0.1:{port} was taken", log_tail="[Errno 98] in use")

    with pytest.raises(StackError) as info:
        on_free_port("receiver", launch)
    assert not isinstance(info.value, PortTaken)
    assert info.value.component == "receiver" and "7200, 7201, 7202" in info.value.problem
    assert BIND_ATTEMPTS == 3 and "[Errno 98]" in info.value.log_tail and info.value.fix


def test_other_failures_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gate.stack.ports.free_port", lambda host="127.0.0.1": 7300)
    calls: list[int] = []

    def launch(port: int) -> None:
        calls.append(port)
        raise StackError("postgres", "initdb failed")

    with pytest.raises(StackError, match="initdb failed"):
        on_free_port("postgres", launch)
    assert calls == [7300]


@pytest.mark.parametrize(
    "line",
    [
        "[Errno 98] error while attempting to bind on address ('127.0.0.1', 4): address already in use",
        "# Could not create server TCP listening socket 127.0.0.1:4: bind: Address already in use",
        'LOG:  could not bind IPv4 address "127.0.0.1": Address already in use',
        "The Locust master port (127.0.0.1:4) was busy. (Socket bind failure: Address already in use)",
        "python -m gate.stack.receiver: cannot listen on 127.0.0.1:4: [Errno 98] Address already in use",
    ],
)
def test_bind_failures_are_recognised_in_every_servers_words(line: str) -> None:
    assert address_in_use(f"starting\n{line}\n")


def test_an_ordinary_failure_is_not_a_bind_failure() -> None:
    assert not address_in_use("FATAL: could not load library\nexit status 1")


def test_listens_tells_whose_socket_it_is() -> None:
    with socket.socket() as ours:
        ours.bind(("127.0.0.1", 0))
        ours.listen()
        port = ours.getsockname()[1]
        assert listens(os.getpid(), port)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            assert not listens(child.pid, port), "a process was credited with another's listener"
        finally:
            child.kill()
            child.wait()
    assert not listens(os.getpid(), port)
