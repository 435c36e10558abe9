"""Webhook delivery against a real HTTP receiver on 127.0.0.1: retries, redirects, timeouts, allowlist,
exact bytes, both signatures -- and the verification examples of docs/webhooks.md run against it.

The receiver is a threaded ``http.server`` in this module (no mock transport): it records the raw body
and headers of every request and answers from a script of replies (status, delay, headers).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import signing_key_bytes
from service.delivery import DeliveryResult, WebhookDeliverer
from service.signing import SignatureError, verify_standard, verify_x_signature

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
# Bytes a re-serialiser would change: spacing, key order, non-ASCII, a trailing newline.
BODY = b'{"z": 1,  "a": "caf\xc3\xa9 \\u00e9", "n": [1.0, 2]}\n'
KEY = b"relay-test-signing-key-0123456789abcdef"
OTHER_KEY = b"relay-test-signing-key-fedcba9876543210"


# -- the receiver ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    # Send the response head one byte every 50 ms for this long (a slow-loris receiver).
    trickle_s: float = 0.0


@dataclass(frozen=True)
class Captured:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class Receiver:
    """A real HTTP server on a free loopback port that records requests and replies from a script."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        # Set at teardown so handlers still "delaying" finish at once.
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.receiver = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}/hook"

    def script(self, *replies: Reply | int) -> None:
        with self._lock:
            self._replies.extend(Reply(r) if isinstance(r, int) else r for r in replies)

    def next_reply(self) -> Reply:
        with self._lock:
            return self._replies.popleft() if self._replies else Reply(200)

    def record(self, captured: Captured) -> None:
        with self._lock:
            self.requests.append(captured)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_POST(self) -> None:
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        receiver.record(Captured(self.command, self.path, headers, body))
        reply = receiver.next_reply()
        if reply.delay_s:
            receiver.release.wait(reply.delay_s)
        try:
            if reply.trickle_s:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
                deadline = time.monotonic() + reply.trickle_s
                while time.monotonic() < deadline and not receiver.release.wait(0.05):
                    self.wfile.write(b"a")
                return
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
        except OSError:
            pass  # the client gave up (timeout test): nothing to answer

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


# -- helpers --------------------------------------------------------------------------------------------


class Sleeps:
    """A fake ``sleep`` that records the backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def deliver(
    url: str,
    body: bytes = BODY,
    *,
    allowed: frozenset[str],
    keys: tuple[bytes, ...] = (KEY,),
    request_id: str = "req-123",
    webhook_id: str = "msg_abc",
    **kwargs: Any,
) -> DeliveryResult:
    options: dict[str, Any] = {
        "timeout_s": 2.0,
        "max_attempts": 3,
        "backoff_base_s": 0.05,
        "sleep": Sleeps(),
    }
    options.update(kwargs)

    async def run() -> DeliveryResult:
        async with WebhookDeliverer(keys=keys, allowed_hosts=allowed, **options) as deliverer:
            return await deliverer.deliver(url, body, request_id=request_id, webhook_id=webhook_id)

    return asyncio.run(run())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def doc_example(name: str) -> str:
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```\w+\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, f"docs/webhooks.md has no example block {name!r}"
    return match.group(1)


def exec_example(name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"docs_example_{name.replace('-', '_')}"}
    exec(compile(doc_example(name), f"docs/webhooks.md:{name}", "exec"), namespace)  # noqa: S102
    return namespace


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


# -- delivery -------------------------------------------------------------------------------------------


def test_delivered_on_200_with_exact_bytes_and_both_signatures(receiver: Receiver) -> None:
    result = deliver(receiver.url, allowed=frozenset({receiver.host}))
    assert result.status == "delivered" and result.delivered
    assert (result.http_status, result.attempts, result.error) == (200, 1, None)
    assert result.duration_s >= 0
    [req] = receiver.requests
    assert (req.method, req.path) == ("POST", "/hook")
    assert req.body == BODY  # byte for byte: nothing re-serialised
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-request-id"] == "req-123"
    assert req.headers["webhook-id"] == "msg_abc"
    assert abs(int(req.headers["webhook-timestamp"]) - time.time()) < 60
    verify_x_signature([KEY], req.body, req.headers["x-signature"])
    verify_standard([KEY], req.body, req.headers)


def test_rotation_signs_with_every_key(receiver: Receiver) -> None:
    deliver(receiver.url, allowed=frozenset({receiver.host}), keys=(KEY, OTHER_KEY))
    [req] = receiver.requests
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    verify_standard([OTHER_KEY], req.body, req.headers)
    verify_standard([KEY], req.body, req.headers)
    verify_x_signature([KEY], req.body, req.headers["x-signature"])
    with pytest.raises(SignatureError):
        verify_x_signature([OTHER_KEY], req.body, req.headers["x-signature"])  # primary only


def test_unsigned_mode_sends_no_signature_headers(receiver: Receiver) -> None:
    result = deliver(receiver.url, allowed=frozenset({receiver.host}), keys=())
    assert result.delivered
    [req] = receiver.requests
    assert "x-signature" not in req.headers and "webhook-signature" not in req.headers
    assert req.headers["webhook-id"] == "msg_abc" and req.headers["x-request-id"] == "req-123"
    assert req.headers["webhook-timestamp"].isdigit()
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], req.body, req.headers)
    assert exc.value.reason == "missing_header"


def test_warn_if_unsigned(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    log = logging.getLogger("test.delivery")

    async def run() -> tuple[bool, bool]:
        common: dict[str, Any] = {
            "allowed_hosts": frozenset(),
            "timeout_s": 1,
            "max_attempts": 1,
            "backoff_base_s": 0,
        }
        async with (
            WebhookDeliverer(keys=[], **common) as unsigned,
            WebhookDeliverer(keys=[KEY], **common) as signed,
        ):
            return unsigned.warn_if_unsigned(log), signed.warn_if_unsigned(log)

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(run()) == (True, False)
    [record] = caplog.records
    assert "UNSIGNED" in record.getMessage()


def test_retries_5xx_with_same_ids_and_fresh_timestamp_and_signature(receiver: Receiver) -> None:
    receiver.script(500, 503, 200)
    ticks = itertools.count(1_728_274_800, 7)
    sleeps = Sleeps()
    outcomes: list[str] = []
    result = deliver(
        receiver.url,
        allowed=frozenset({receiver.host}),
        clock=lambda: float(next(ticks)),
        sleep=sleeps,
        on_attempt=lambda duration, outcome: outcomes.append(outcome),
        backoff_base_s=0.5,
    )
    assert (result.status, result.http_status, result.attempts) == ("delivered", 200, 3)
    assert len(receiver.requests) == 3
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"msg_abc"}
    assert {r.headers["x-request-id"] for r in receiver.requests} == {"req-123"}
    assert {r.body for r in receiver.requests} == {BODY}
    timestamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert len(set(timestamps)) == 3
    assert len({r.headers["webhook-signature"] for r in receiver.requests}) == 3
    for req, ts in zip(receiver.requests, timestamps, strict=True):
        verify_standard([KEY], req.body, req.headers, now=ts)
    assert outcomes == ["server_error", "server_error", "delivered"]
    # Full jitter: attempt n waits uniform(0, base * 2**(n-1)).
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.5 and 0 <= sleeps.delays[1] <= 1.0


def test_the_backoff_bound_is_capped_at_30_s(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/webhooks.md: the bound base · 2^(n-1) is capped at 30 s. With every draw at its bound,
    base 10 s asks for 10, 20, 40, 80, 160 s: the cap must bring the last three down to 30."""

    class AtTheBound:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            return high

    monkeypatch.setattr("service.delivery.random", AtTheBound)
    receiver.script(*[503] * 6)
    sleeps = Sleeps()
    result = deliver(
        receiver.url, allowed=frozenset({receiver.host}), max_attempts=6, backoff_base_s=10, sleep=sleeps
    )
    assert (result.status, result.attempts) == ("failed", 6)
    assert sleeps.delays == [10.0, 20.0, 30.0, 30.0, 30.0]


@pytest.mark.parametrize("status", [501, 502, 505, 599])
def test_every_5xx_is_retried(receiver: Receiver, status: int) -> None:
    receiver.script(status, 200)
    result = deliver(receiver.url, allowed=frozenset({receiver.host}))
    assert (result.status, result.http_status, result.attempts) == ("delivered", 200, 2)


def test_attempts_are_bounded(receiver: Receiver) -> None:
    receiver.script(*[503] * 10)
    result = deliver(receiver.url, allowed=frozenset({receiver.host}), max_attempts=3)
    assert (result.status, result.http_status, result.attempts) == ("failed", 503, 3)
    assert result.error == "HTTP 503"
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_no_retry_on_4xx(receiver: Receiver, status: int) -> None:
    receiver.script(status, 200)
    result = deliver(receiver.url, allowed=frozenset({receiver.host}))
    assert (result.status, result.http_status, result.attempts) == ("failed", status, 1)
    assert len(receiver.requests) == 1


def test_429_is_retried_honouring_retry_after(receiver: Receiver) -> None:
    receiver.script(Reply(429, headers=(("Retry-After", "2"),)), 200)
    sleeps = Sleeps()
    result = deliver(receiver.url, allowed=frozenset({receiver.host}), sleep=sleeps, backoff_base_s=0.01)
    assert (result.status, result.attempts) == ("delivered", 2)
    assert sleeps.delays == [2.0]


def test_429_asking_for_too_long_a_wait_gives_up(receiver: Receiver) -> None:
    receiver.script(Reply(429, headers=(("Retry-After", "3600"),)), 200)
    result = deliver(receiver.url, allowed=frozenset({receiver.host}))
    assert (result.status, result.http_status, result.attempts) == ("failed", 429, 1)
    assert result.error is not None and "Retry-After" in result.error


def test_redirect_is_not_followed(receiver: Receiver) -> None:
    target = f"http://{receiver.host}/elsewhere"
    receiver.script(Reply(302, headers=(("Location", target),)), 200)
    result = deliver(receiver.url, allowed=frozenset({receiver.host}))
    assert (result.status, result.http_status, result.attempts) == ("failed", 302, 1)
    assert result.error is not None and "redirect" in result.error
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_redirect_is_not_followed_even_with_an_injected_client(receiver: Receiver) -> None:
    receiver.script(Reply(307, headers=(("Location", f"http://{receiver.host}/elsewhere"),)), 200)

    async def run() -> DeliveryResult:
        async with httpx.AsyncClient(follow_redirects=True, trust_env=False) as client:
            deliverer = WebhookDeliverer(
                keys=[KEY],
                allowed_hosts=frozenset({receiver.host}),
                timeout_s=2,
                max_attempts=3,
                backoff_base_s=0,
                client=client,
            )
            result = await deliverer.deliver(receiver.url, BODY, request_id="r", webhook_id="msg_1")
            await deliverer.aclose()
            assert not client.is_closed  # not ours to close
            return result

    result = asyncio.run(run())
    assert (result.status, result.http_status) == ("failed", 307)
    assert len(receiver.requests) == 1


def test_timeout_is_honoured(receiver: Receiver) -> None:
    receiver.script(Reply(200, delay_s=5.0), Reply(200, delay_s=5.0))
    outcomes: list[tuple[float, str]] = []
    started = time.monotonic()
    result = deliver(
        receiver.url,
        allowed=frozenset({receiver.host}),
        timeout_s=0.2,
        max_attempts=2,
        on_attempt=lambda d, o: outcomes.append((d, o)),
    )
    elapsed = time.monotonic() - started
    assert (result.status, result.http_status, result.attempts) == ("failed", None, 2)
    assert result.error is not None and "timed out" in result.error
    assert [o for _, o in outcomes] == ["timeout", "timeout"]
    assert len(receiver.requests) == 2
    # Loose on purpose (noisy machine): far below the receiver's 2 x 5 s, so we did not wait it out.
    assert elapsed < 4.5


def test_a_trickling_receiver_cannot_hold_an_attempt_open(receiver: Receiver) -> None:
    # Every byte arrives well within the read timeout; only the whole-attempt deadline stops this.
    receiver.script(Reply(trickle_s=5.0))
    started = time.monotonic()
    result = deliver(receiver.url, allowed=frozenset({receiver.host}), timeout_s=0.3, max_attempts=1)
    assert (result.status, result.attempts) == ("failed", 1)
    assert result.error is not None and "timed out" in result.error
    assert time.monotonic() - started < 4.0  # loose: the receiver would have taken 5 s


def test_connection_errors_are_retried() -> None:
    port = free_port()  # nothing listens there once the probe socket is closed
    sleeps = Sleeps()
    result = deliver(f"http://127.0.0.1:{port}/hook", allowed=frozenset({f"127.0.0.1:{port}"}), sleep=sleeps)
    assert (result.status, result.http_status, result.attempts) == ("failed", None, 3)
    assert result.error is not None and result.error.startswith("connection error")
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize(
    ("url_for", "allowed_for"),
    [
        # right host, another port on the list
        (lambda r: r.url, lambda r: {f"127.0.0.1:{r.port + 1}"}),
        # the same machine under a name that is not on the list
        (lambda r: f"http://localhost:{r.port}/hook", lambda r: {r.host}),
        # credentials in the URL, scheme other than http(s)
        (lambda r: f"http://user:pw@{r.host}/hook", lambda r: {r.host}),
        (lambda r: f"ftp://{r.host}/hook", lambda r: {r.host}),
        # nothing configured at all
        (lambda r: r.url, lambda r: set()),
    ],
    ids=["port", "hostname", "userinfo", "scheme", "empty-allowlist"],
)
def test_disallowed_destination_makes_no_request(
    receiver: Receiver,
    url_for: Callable[[Receiver], str],
    allowed_for: Callable[[Receiver], set[str]],
) -> None:
    calls: list[str] = []
    result = deliver(
        url_for(receiver), allowed=frozenset(allowed_for(receiver)), on_attempt=lambda d, o: calls.append(o)
    )
    assert result == DeliveryResult("failed", None, 0, 0.0, "destination not allowed")
    assert receiver.requests == [] and calls == []


def test_a_broken_metrics_hook_does_not_fail_the_delivery(receiver: Receiver) -> None:
    def explode(duration_s: float, outcome: str) -> None:
        raise RuntimeError("metrics backend down")

    result = deliver(receiver.url, allowed=frozenset({receiver.host}), on_attempt=explode)
    assert result.delivered


def test_malformed_webhook_id_is_a_programming_error(receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="webhook_id"):
        deliver(receiver.url, allowed=frozenset({receiver.host}), webhook_id="msg.with.dots")
    assert receiver.requests == []


def test_concurrent_deliveries_share_one_deliverer(receiver: Receiver) -> None:
    async def run() -> list[DeliveryResult]:
        async with WebhookDeliverer(
            keys=[KEY],
            allowed_hosts=frozenset({receiver.host}),
            timeout_s=2,
            max_attempts=1,
            backoff_base_s=0,
        ) as d:
            return await asyncio.gather(
                *(
                    d.deliver(receiver.url, BODY + str(i).encode(), request_id=f"r{i}", webhook_id=f"msg_{i}")
                    for i in range(8)
                )
            )

    results = asyncio.run(run())
    assert all(r.delivered for r in results)
    by_id = {r.headers["webhook-id"]: r for r in receiver.requests}
    for i in range(8):
        req = by_id[f"msg_{i}"]
        assert req.body == BODY + str(i).encode() and req.headers["x-request-id"] == f"r{i}"
        verify_standard([KEY], req.body, req.headers)


# -- the receiver guide's examples, run against real deliveries -----------------------------------------


@pytest.fixture(params=["whsec", "hex"])
def secret(request: pytest.FixtureRequest) -> str:
    raw = os.urandom(32)
    return whsec(raw) if request.param == "whsec" else raw.hex()


def delivered_with(receiver: Receiver, secrets: list[str]) -> Captured:
    keys = tuple(signing_key_bytes(s) for s in secrets)
    assert deliver(receiver.url, allowed=frozenset({receiver.host}), keys=keys).delivered
    return receiver.requests[-1]


def test_doc_python_stdlib_example(receiver: Receiver, secret: str) -> None:
    ex = exec_example("python-stdlib")
    req = delivered_with(receiver, [secret])
    assert ex["verify_standard_webhook"]([secret], req.headers, req.body) == "msg_abc"
    assert ex["verify_standard_webhook"]([secret], {k.upper(): v for k, v in req.headers.items()}, req.body)
    ex["verify_x_signature"]([secret], req.headers["x-signature"], req.body)

    invalid = ex["InvalidWebhook"]
    wrong = whsec(os.urandom(32))
    for args in (
        ([secret], req.headers, req.body + b" "),
        ([wrong], req.headers, req.body),
        ([secret], {**req.headers, "webhook-id": "msg_other"}, req.body),
        ([secret], {k: v for k, v in req.headers.items() if k != "webhook-signature"}, req.body),
    ):
        with pytest.raises(invalid):
            ex["verify_standard_webhook"](*args)
    ts = int(req.headers["webhook-timestamp"])
    ex["verify_standard_webhook"]([secret], req.headers, req.body, now=ts + 300)
    with pytest.raises(invalid, match="tolerance"):
        ex["verify_standard_webhook"]([secret], req.headers, req.body, now=ts + 301)
    with pytest.raises(invalid):
        ex["verify_x_signature"]([secret], req.headers["x-signature"], req.body[:-1])
    with pytest.raises(TypeError):
        ex["verify_standard_webhook"]([secret], req.headers, req.body.decode())


def test_doc_python_stdlib_example_during_rotation(receiver: Receiver) -> None:
    ex = exec_example("python-stdlib")
    old, new = whsec(os.urandom(32)), os.urandom(32).hex()
    req = delivered_with(receiver, [new, old])  # relay: new primary, old extra
    assert ex["verify_standard_webhook"]([old], req.headers, req.body) == "msg_abc"
    assert ex["verify_standard_webhook"]([new], req.headers, req.body) == "msg_abc"
    ex["verify_x_signature"]([old, new], req.headers["x-signature"], req.body)


def test_doc_standardwebhooks_example(receiver: Receiver, secret: str) -> None:
    from standardwebhooks.webhooks import WebhookVerificationError

    ex = exec_example("python-standardwebhooks")
    req = delivered_with(receiver, [secret])  # the library checks against the real clock
    assert ex["verify_with_library"]([whsec(os.urandom(32)), secret], req.headers, req.body) == json.loads(
        BODY
    )
    with pytest.raises(WebhookVerificationError):
        ex["verify_with_library"]([secret], req.headers, req.body.replace(b"caf", b"CAF"))


NODE_DRIVER = """
const v = require("./verify-webhook.js");
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const body = Buffer.from(input.body_b64, "base64");
const out = {};
try { out.id = v.verifyStandardWebhook(input.secrets, input.headers, body, input.now); }
catch (e) { out.standard_error = e.message; }
try { v.verifyXSignature(input.secrets, input.headers["x-signature"], body); out.x = "ok"; }
catch (e) { out.x_error = e.message; }
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_doc_node_example(receiver: Receiver, secret: str, tmp_path: Path) -> None:
    (tmp_path / "verify-webhook.js").write_text(doc_example("node"))
    (tmp_path / "driver.js").write_text(NODE_DRIVER)
    req = delivered_with(receiver, [secret])
    ts = int(req.headers["webhook-timestamp"])

    def run_node(body: bytes, now: float, secrets: list[str]) -> dict[str, str]:
        payload = {
            "secrets": secrets,
            "headers": req.headers,
            "body_b64": base64.b64encode(body).decode(),
            "now": now,
        }
        proc = subprocess.run(
            [shutil.which("node") or "node", "driver.js"],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            check=True,
        )
        return json.loads(proc.stdout)

    assert run_node(req.body, ts + 300, [secret]) == {"id": "msg_abc", "x": "ok"}
    tampered = run_node(req.body + b"x", ts, [secret])
    assert "id" not in tampered and "x" not in tampered
    assert "no webhook-signature entry matches" in tampered["standard_error"]
    stale = run_node(req.body, ts + 301, [secret])
    assert "tolerance" in stale["standard_error"]
    rotated = run_node(req.body, ts, [whsec(os.urandom(32)), secret])
    assert rotated == {"id": "msg_abc", "x": "ok"}
