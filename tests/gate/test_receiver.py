"""gate/stack/receiver.py: control routes need the run's bearer token; deliveries and health need none."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gate.client.receiver import TOKEN_ENV, ReceiverClient
from gate.errors import StackError
from gate.stack import ports
from gate.stack.procs import free_port, wait_until
from gate.stack.receiver import INSTANCE_ENV, Receiver
from gate.stack.servers import start_receiver

TOKEN = "receiver-token-for-tests-0123456789"
CONTROL_CALLS = [
    ("GET", "/_receiver/captures", None),
    ("DELETE", "/_receiver/captures", None),
    ("POST", "/_receiver/script", {"responses": [{"status": 500}]}),
    ("GET", "/_receiver/no-such-route", None),
]


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver(token=TOKEN) as receiver:
        yield receiver


def call(url: str, method: str, path: str, doc: object, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, f"{url}{path}", json=doc, headers=headers, timeout=5)


@pytest.mark.parametrize(("method", "path", "doc"), CONTROL_CALLS)
def test_control_without_a_token_is_401_with_a_bearer_challenge(
    rx: Receiver, method: str, path: str, doc: object
) -> None:
    r = call(rx.url, method, path, doc, None)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "invalid_token" not in r.headers["WWW-Authenticate"]


@pytest.mark.parametrize(("method", "path", "doc"), CONTROL_CALLS)
def test_control_with_a_wrong_token_is_401(rx: Receiver, method: str, path: str, doc: object) -> None:
    for wrong in (TOKEN[:-1] + "x", TOKEN + "x", "short"):
        r = call(rx.url, method, path, doc, wrong)
        assert r.status_code == 401, wrong
        assert (
            r.headers["WWW-Authenticate"].startswith("Bearer")
            and "invalid_token" in r.headers["WWW-Authenticate"]
        )
    for header in ({"Authorization": "Bearer"}, {"Authorization": f"Basic {TOKEN}"}):
        r = httpx.request(method, f"{rx.url}{path}", json=doc, headers=header, timeout=5)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_control_with_the_token_works_and_a_refusal_changes_nothing(rx: Receiver) -> None:
    assert (
        call(rx.url, "POST", "/_receiver/script", {"default": {"status": 503}}, "wrong-token").status_code
        == 401
    )
    assert httpx.post(f"{rx.url}/hooks/relay", content=b"one", timeout=5).status_code == 200, "script changed"
    assert call(rx.url, "DELETE", "/_receiver/captures", None, None).status_code == 401
    r = call(rx.url, "GET", "/_receiver/captures", None, TOKEN)
    assert r.status_code == 200 and [c["body_b64"] for c in r.json()["captures"]] == ["b25l"]
    assert call(rx.url, "GET", "/_receiver/no-such-route", None, TOKEN).status_code == 404
    assert call(rx.url, "POST", "/_receiver/script", {"default": {"status": 503}}, TOKEN).status_code == 200
    assert httpx.post(f"{rx.url}/hooks/relay", content=b"two", timeout=5).status_code == 503


def test_deliveries_and_health_need_no_token(rx: Receiver) -> None:
    r = httpx.post(f"{rx.url}/hooks/relay", content=b'{"a": 1}', timeout=5)
    assert r.status_code == 200
    health = httpx.get(f"{rx.url}/_receiver/health", timeout=5)
    assert health.status_code == 200 and health.json() == {"ok": True, "instance": rx.instance}
    assert "captures" not in health.text


def test_the_client_sends_the_token(rx: Receiver) -> None:
    httpx.post(f"{rx.url}/hooks/relay", content=b"x", timeout=5)
    with_token = ReceiverClient(rx.url, token=rx.token)
    without = ReceiverClient(rx.url)
    try:
        assert [c.body for c in with_token.captures()] == [b"x"] and with_token.last_seq() == 1
        with_token.script(default_status=202)
        with_token.clear()
        assert with_token.captures() == [] and with_token.instance() == rx.instance
        with pytest.raises(httpx.HTTPStatusError) as info:
            without.captures()
        assert info.value.response.status_code == 401
        assert without.healthy()
    finally:
        with_token.close()
        without.close()


def test_an_in_process_receiver_makes_up_a_token_when_given_none() -> None:
    with Receiver() as a, Receiver() as b:
        assert len(a.token) >= 32 and a.token != b.token and a.instance != b.instance


# -- python -m gate.stack.receiver ------------------------------------------------------------------------


def receiver_cli(port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, INSTANCE_ENV)}
    return subprocess.Popen(
        [sys.executable, "-m", "gate.stack.receiver", "--port", str(port)],
        env={**environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("token", [None, "", "too-short"])
def test_standalone_it_refuses_to_start_without_a_token(token: str | None) -> None:
    proc = receiver_cli(free_port(), {} if token is None else {TOKEN_ENV: token})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert TOKEN_ENV in err and "export" in err


def test_standalone_it_takes_the_token_from_the_environment() -> None:
    port = free_port()
    proc = receiver_cli(port, {TOKEN_ENV: TOKEN, INSTANCE_ENV: "nonce-1"})
    try:
        client = ReceiverClient(f"http://127.0.0.1:{port}", token=TOKEN)
        wait_until(client.healthy, timeout=60, component="receiver", what="health", proc=proc)  # type: ignore[arg-type]
        assert client.instance() == "nonce-1" and client.captures() == []
        assert call(client.base_url, "GET", "/_receiver/captures", None, None).status_code == 401
        client.close()
        assert TOKEN not in " ".join(proc.args), "the token reached the command line"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_standalone_a_port_in_use_is_said_plainly() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        proc = receiver_cli(squatter.getsockname()[1], {TOKEN_ENV: TOKEN})
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "cannot listen" in err and "Address already in use" in err


# -- the stack's receiver: started on a free port, adopted only with its own nonce -----------------


def test_the_stacks_receiver_gets_another_port_when_its_first_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real, picks = ports.free_port, iter([taken])
        monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": next(picks, None) or real(host))
        proc, port = start_receiver(tmp_path, dict(os.environ), token=TOKEN, timeout=60)
    try:
        assert port != taken
        client = ReceiverClient(f"http://127.0.0.1:{port}", token=TOKEN)
        assert client.captures() == [] and client.instance() == (proc.env or {})[INSTANCE_ENV]
        client.close()
        assert TOKEN not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
    finally:
        proc.stop()


def test_the_stack_refuses_a_receiver_that_answers_with_another_nonce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver(token=TOKEN, instance="another-stacks-receiver") as impostor:
        monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": impostor.port)
        with pytest.raises(StackError) as info:
            start_receiver(tmp_path, dict(os.environ), token=TOKEN, timeout=600)
    problem = info.value.problem
    assert info.value.component == "receiver" and f"{impostor.port}, {impostor.port}" in problem
    assert "within" not in problem, "it waited out the clock instead of refusing"


# -- scripted answers: what the delivery scenarios make the receiver do ------------------------------


def test_it_fails_n_times_then_answers_the_default_and_records_arrival_times(rx: Receiver) -> None:
    client = ReceiverClient(rx.url, token=rx.token)
    try:
        client.script([{"status": 503, "headers": {"Retry-After": "2"}}, {"status": 500}])
        before = time.time()
        answers = [httpx.post(f"{rx.url}/hooks/relay", content=b"x", timeout=5) for _ in range(3)]
        assert [a.status_code for a in answers] == [503, 500, 200]
        assert answers[0].headers["Retry-After"] == "2"
        caps = client.captures()
        assert all(before <= c.received_at <= time.time() for c in caps)
        assert [c.received_at for c in caps] == sorted(c.received_at for c in caps)
        client.script()  # back to 200
        assert httpx.post(f"{rx.url}/hooks/relay", content=b"y", timeout=5).status_code == 200
    finally:
        client.close()


def test_it_redirects_answers_2xx_without_a_body_and_refuses_a_bad_script(rx: Receiver) -> None:
    client = ReceiverClient(rx.url, token=rx.token)
    try:
        client.script([{"status": 307, "headers": [["Location", "/elsewhere"]]}, {"status": 204}])
        moved = httpx.post(f"{rx.url}/hooks/relay", content=b"x", timeout=5)
        assert moved.status_code == 307 and moved.headers["Location"] == "/elsewhere"
        with httpx.Client(timeout=5) as c:  # one connection: a stray 204 body would break the next answer
            empty = c.post(f"{rx.url}/hooks/relay", content=b"x")
            assert empty.status_code == 204 and empty.content == b""
            assert c.post(f"{rx.url}/hooks/relay", content=b"x").status_code == 200
        bad = call(rx.url, "POST", "/_receiver/script", {"responses": [{"stauts": 500}]}, TOKEN)
        assert bad.status_code == 400 and "stauts" in bad.text
    finally:
        client.close()


def test_it_drops_the_connection_and_trickles_an_answer(rx: Receiver) -> None:
    client = ReceiverClient(rx.url, token=rx.token)
    try:
        client.script([{"drop": True}, {"trickle_s": 0.6, "status": 202}, {"delay_s": 0.3}])
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(f"{rx.url}/hooks/relay", content=b"x", timeout=5)
        # each read gets a byte long before a 0.3 s read timeout: only a bound on the whole answer ends it
        started = time.monotonic()
        trickled = httpx.post(f"{rx.url}/hooks/relay", content=b"x", timeout=httpx.Timeout(0.3))
        assert trickled.status_code == 202 and time.monotonic() - started >= 0.6
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{rx.url}/hooks/relay", content=b"x", timeout=httpx.Timeout(0.1))
        assert len(client.captures()) == 3
    finally:
        client.close()
