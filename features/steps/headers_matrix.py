"""Steps for features/headers.feature that vary what one status recipe holds fixed: every method on every
documented path and on an unknown one, CORS preflights, compressed responses and chunked uploads, a
developer's bodies in other encodings, and a replica running the other header profile.

Whatever the target answers is judged — the status is recorded, never required — by the same Then steps
as the status recipes of :mod:`features.steps.headers` (each configured header exactly once with its
value, no Server / X-Powered-By), against the gate's own profiles (:mod:`gate.oracles.headers`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from features.steps.headers import (
    OVER_LIMIT_BYTES,
    RECIPES,
    Provoked,
    _listing,
    _note_received,
    header_problems,
)
from features.support import skips
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, Target
from gate.oracles.headers import PROFILES

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
# docs/service.md's endpoints (GET and HEAD /_stcore/health ... /openapi.json); executes are never sent
# with a key here (@quota-none): without one they are refused before anything is counted
PATHS = (
    "/_stcore/health",
    "/_stcore/ready",
    "/actions",
    "/actions/preview",
    "/actions/execute",
    "/audit",
    "/metrics",
    "/openapi.json",
)
KEYED_PATHS = ("/actions", "/actions/preview", "/actions/execute", "/audit")
ORIGIN = "https://studio.relay-gate.example"
CHUNK = b'{"pad": "' + b"x" * 8183  # 8 KiB a chunk, never a Content-Length


def _unknown_path() -> str:
    return f"/relay-gate/no-such-path-{uuid.uuid4().hex[:12]}"


def _chunked(total: int) -> Iterator[bytes]:
    """A body sent with Transfer-Encoding: chunked (a generator has no length)."""
    sent = 0
    while sent < total:
        yield CHUNK
        sent += len(CHUNK)


@dataclass(frozen=True)
class Ask:
    """One request of a matrix: what it is called in the evidence, and how to send it."""

    how: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    chunked: int = 0  # bytes sent as a chunked body instead of ``content``


def _send(http: httpx.Client, recorder: ExchangeRecorder, asks: list[Ask]) -> list[Provoked]:
    out = []
    for a in asks:
        kwargs: dict[str, object] = {"headers": a.headers}
        if a.chunked:
            kwargs["content"] = _chunked(a.chunked)
        elif a.content is not None:
            kwargs["content"] = a.content
        try:
            response = http.request(a.method, a.path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            # a server may answer 413 and close before the upload is read: once more, then it counts
            recorder.record_error(a.method, f"{http.base_url}{a.path}", f"{type(exc).__name__}: {exc}")
            if a.chunked:
                kwargs["content"] = _chunked(a.chunked)
            response = http.request(a.method, a.path, **kwargs)  # type: ignore[arg-type]
        # the status is whatever the target answered: every one of them must carry the set
        out.append(Provoked(response.status_code, a.how, response))
    _note_matrix(recorder, out)
    return out


def _note_matrix(recorder: ExchangeRecorder, provoked: list[Provoked]) -> None:
    by_status: dict[int, Provoked] = {}
    for p in provoked:
        by_status.setdefault(p.status, p)
    _note_received(recorder, list(by_status.values()))  # one example per status, as curl -I shows it
    recorder.note("requests", [{"how": p.how, "status": p.status} for p in provoked])


# -- every method on every path ---------------------------------------------------------------------


@when(
    "a client without a key sends every method to every documented path and to an unknown one",
    target_fixture="provoked",
)
def _(http: httpx.Client, recorder: ExchangeRecorder) -> list[Provoked]:
    asks = [Ask(f"{m} {p}", m, p) for p in (*PATHS, _unknown_path()) for m in METHODS]
    return _send(http, recorder, asks)


@when(
    "a client without a key sends CORS preflights, asks for compressed responses and uploads chunked bodies",
    target_fixture="provoked",
)
def _(http: httpx.Client, recorder: ExchangeRecorder) -> list[Provoked]:
    unknown = _unknown_path()
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Headers": "authorization, content-type"}
    asks = [
        Ask(
            "CORS preflight OPTIONS /actions/execute",
            "OPTIONS",
            "/actions/execute",
            {**preflight, "Access-Control-Request-Method": "POST"},
        ),
        Ask(
            "CORS preflight OPTIONS /actions",
            "OPTIONS",
            "/actions",
            {**preflight, "Access-Control-Request-Method": "GET"},
        ),
        Ask(
            f"CORS preflight OPTIONS {unknown}",
            "OPTIONS",
            unknown,
            {**preflight, "Access-Control-Request-Method": "PUT"},
        ),
        Ask("cross-origin GET /actions", "GET", "/actions", {"Origin": ORIGIN}),
        Ask(
            "GET /openapi.json, gzip/deflate/br accepted",
            "GET",
            "/openapi.json",
            {"Accept-Encoding": "gzip, deflate, br"},
        ),
        Ask("GET /_stcore/health, gzip accepted", "GET", "/_stcore/health", {"Accept-Encoding": "gzip"}),
        Ask("GET /_stcore/health, identity only", "GET", "/_stcore/health", {"Accept-Encoding": "identity"}),
        Ask(
            f"GET {unknown} as a browser (Accept: text/html)",
            "GET",
            unknown,
            {"Accept": "text/html,*/*;q=0.8"},
        ),
        Ask(
            f"POST {OVER_LIMIT_BYTES} bytes chunked to /actions/preview",
            "POST",
            "/actions/preview",
            {"Content-Type": "application/json"},
            chunked=OVER_LIMIT_BYTES,
        ),
        Ask(
            "POST a gzip-encoded body to /actions/preview",
            "POST",
            "/actions/preview",
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            content=b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xae\x05\x00C\xbf\xa6\xa3\x02\x00\x00\x00",
        ),
    ]
    return _send(http, recorder, asks)


@when(
    "a developer sends every method to the authenticated paths and bodies in other encodings",
    target_fixture="provoked",
)
def _(http: httpx.Client, recorder: ExchangeRecorder, dev: Credential) -> list[Provoked]:
    auth = dev.authorization
    # POST /actions/execute is left out: an execute with a key may be counted against the quota
    asks = [
        Ask(f"{m} {p} with a developer key", m, p, auth)
        for p in KEYED_PATHS
        for m in METHODS
        if (m, p) != ("POST", "/actions/execute")
    ]
    json_ct = {**auth, "Content-Type": "application/json"}
    bodies: list[tuple[str, dict[str, str], bytes]] = [
        ("Latin-1 bytes in a JSON body", json_ct, '{"action": "notify.send", "x": "é"}'.encode("latin-1")),
        ("a gzip-encoded body", {**json_ct, "Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage"),
        (
            "a UTF-16 JSON body (charset=utf-16)",
            {**auth, "Content-Type": "application/json; charset=utf-16"},
            '{"action": "notify.send"}'.encode("utf-16"),
        ),
        ("a form-encoded body", {**auth, "Content-Type": "application/x-www-form-urlencoded"}, b"action=x"),
        ("a text/plain body", {**auth, "Content-Type": "text/plain; charset=utf-8"}, b"notify.send"),
        ("an empty JSON body", json_ct, b""),
        ("malformed JSON", json_ct, b'{"action": "notify.send", "params": {'),
    ]
    asks += [
        Ask(f"POST {what} to /actions/preview", "POST", "/actions/preview", h, c) for what, h, c in bodies
    ]
    asks.append(
        Ask(
            f"POST {OVER_LIMIT_BYTES} bytes chunked to /actions/preview with a developer key",
            "POST",
            "/actions/preview",
            json_ct,
            chunked=OVER_LIMIT_BYTES,
        )
    )
    return _send(http, recorder, asks)


# -- the other profile, on a replica of its own -------------------------------------------------------


@pytest.fixture
def headers_seed_replica(target: Target) -> Iterator[str]:
    if target.stack is None or not target.controllable:
        skips.not_applicable(
            f"{target.name}: needs control of the target to start a replica with other settings"
        )
    with target.stack.extra_replica({"SECURITY_HEADERS_PROFILE": "seed"}) as url:
        yield url


@given(
    parsers.parse("a replica of the target running with SECURITY_HEADERS_PROFILE={profile}"),
    target_fixture="headers_replica",
)
def _(request: pytest.FixtureRequest, profile: str) -> tuple[str, str]:
    if profile != "seed":
        raise ValueError(f"no replica recipe for profile {profile!r}; the reference stack runs strict")
    return request.getfixturevalue("headers_seed_replica"), profile


@when(
    parsers.parse("a client without a key provokes {statuses} responses from that replica"),
    target_fixture="provoked",
)
def _(
    headers_replica: tuple[str, str], target: Target, recorder: ExchangeRecorder, statuses: str
) -> list[Provoked]:
    url, _ = headers_replica
    wanted = [int(s) for s in statuses.replace(",", " ").replace("and", " ").split()]
    out = []
    with recorder.client(url, timeout=target.request_timeout_s) as client:
        for status in wanted:
            how, recipe, needs_key = RECIPES[status]
            if needs_key:
                raise ValueError(f"{status} needs a developer key; this step sends none")
            out.append(Provoked(status, f"{how} (replica {url})", recipe(client, None)))
    _note_received(recorder, out)
    return out


@then(
    parsers.parse(
        "every provoked response carries each header of the {profile} profile exactly once "
        "with its documented value"
    )
)
def _(provoked: list[Provoked], recorder: ExchangeRecorder, profile: str) -> None:
    expected = PROFILES[profile]
    problems = header_problems(provoked, expected)
    recorder.note("header_problems", problems)
    assert not problems, _listing(
        f"security header problem(s) ({profile} profile, docs/service.md)", problems
    )
