"""Generated bad input: schemathesis drives every operation of the relay's OpenAPI document.

The service under test is the real one over TCP: uvicorn on a loopback port (``tests.threaded``), the
audit log in a real PostgreSQL, the rate limiter on a real Redis, deliveries to the gate's receiver.
schemathesis's pytest integration generates, for every operation, its examples, coverage and fuzzing
phases in both modes — schema-valid (positive) and schema-violating (negative) requests — and checks
every response with each built-in check but one (below), plus ours:

- ``not_a_server_error``: no 5xx at all. The stack is healthy, so execute's documented 503 (audit
  database down) and 502 (delivery failed) cannot legitimately happen: every allowlisted destination
  the fuzzer generates is one the receiver takes deliveries on (see :func:`destinations`).
- ``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``: every status the service answers is documented, with its media type
  and body schema (RFC 9457 problems included).
- ``negative_data_rejection``, ``missing_required_header``, ``unsupported_method`` (405 with a true
  ``Allow``), ``allow_header_conformance``, ``ignored_auth`` (the declared bearer scheme is enforced).
- ours, ``security_headers_check``: the configured header profile, each header exactly once with
  its exact value, and no ``Server`` / ``X-Powered-By``.

``positive_data_acceptance`` is off: a schema-valid request may still be refused with a 422 for what
a JSON schema cannot say — a ``cursor`` or ``preview_id`` the service did not issue, a ``destination``
off the webhook allowlist, ``since`` later than ``until``.

Three callers, each against a relay of its own header profile: an admin key (every operation,
``/audit`` included), a dev key (``/audit`` must be 403) and no key (401 wherever a key is required,
with generated ``Authorization`` garbage). The document is built at import from the same app factory
the server runs (the test items are made at collection, before any server exists);
:func:`test_the_served_document_is_the_one_fuzzed` proves the served ``/openapi.json`` is identical.
Set ``RELAY_GATE_FUZZ_SEED`` to replay the per-operation tests of a run. The cases generated per
caller and operation are written to the terminal when the module finishes, and
:func:`test_every_fuzzed_execute_was_audited_and_delivered` then checks the audit log against the
receiver: no execute may have left a ``pending`` or ``error`` row behind.
"""

from __future__ import annotations

import asyncio
import copy
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import hypothesis
import psycopg
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, CheckFunction, GenerationMode, HookContext, Response
from schemathesis.generation.meta import TestPhase
from schemathesis.schemas import BaseSchema

from gate.client.receiver import CONTROL, ReceiverClient
from gate.oracles.headercheck import check_headers
from gate.stack.postgres.server import EmbeddedPostgres
from gate.stack.receiver import Receiver
from gate.stack.redis_server import EmbeddedRedis
from service.app import create_app
from service.audit import migrate
from service.config import ApiKey, Settings
from service.headers import PROFILES
from tests.threaded import ThreadedServer

pytestmark = pytest.mark.stack

ADMIN = "fuzz-admin-key-0123456789abcdef"
DEV = "fuzz-dev-key-0123456789abcdef00"
SECRET = "f" * 64
# A workspace of its own: the session Redis is shared, and the rate-limit counters of workspace
# "default" belong to other tests.
WORKSPACE = f"fuzz-{uuid.uuid4().hex[:8]}"
# High enough that the fuzzer's executes are admitted (and so audited and delivered), not all 429s.
RATE_LIMIT = 1_000_000
STATEFUL_SCENARIOS = 40
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
# Generated destinations name the receiver by this stand-in; its real host:port exists only once the
# receiver runs, so the test substitutes it just before sending (same length class, still valid).
RECEIVER_TOKEN = "receiver.fuzz.invalid:1"
SEED = int(os.environ["RELAY_GATE_FUZZ_SEED"]) if os.environ.get("RELAY_GATE_FUZZ_SEED") else None

Profile = Literal["strict", "seed"]


@dataclass(frozen=True)
class Caller:
    """Who the fuzzer calls as, against which header profile, with how many examples per operation."""

    name: str
    key: str | None
    profile: Profile
    max_examples: int

    @property
    def label(self) -> str:
        return f"{self.name} ({self.profile} headers, max {self.max_examples} examples per operation)"


ADMIN_CALLER = Caller("admin", ADMIN, "strict", 100)
DEV_CALLER = Caller("dev", DEV, "seed", 50)
ANONYMOUS_CALLER = Caller("anonymous", None, "strict", 30)
CALLERS = (ADMIN_CALLER, DEV_CALLER, ANONYMOUS_CALLER)


# -- the document and the schemas, one per caller --------------------------------------------------


def _settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "_env_file": None,
        "api_keys": [
            ApiKey(key=ADMIN, role="admin", workspace=WORKSPACE),
            ApiKey(key=DEV, role="dev", workspace=WORKSPACE),
        ],
        "actions_signing_secret": SECRET,
    }
    return Settings(**{**base, **overrides})


def _document() -> dict[str, Any]:
    """The OpenAPI document every relay serves (routes do not depend on settings)."""
    app = create_app(_settings())
    try:
        return app.openapi()
    finally:
        asyncio.run(app.state.relay.deliverer.aclose())  # the app never runs: close what it opened


DOCUMENT = _document()

_URL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "[::1", "::1]", "[x]", "a\uff03b", "ex\u2100ample.com", "")
_URL_TAILS = st.one_of(
    st.sampled_from(["", "/", "/hooks/relay"]),
    # characters no URI contains raw: parsers drop some of them, HTTP clients refuse them
    st.sampled_from(["/\x00", "/\x01", "?\x7f", "#\x1f", "\t/", "/x\ny", " /x y", "/\x0b", "/ "]),
    st.sampled_from(["/%zz", "/\\x", "/../x", "?a=%00", "#%", "/;a", "/\u00e9\u009f"]),
    st.tuples(
        st.sampled_from(["/", "/hooks/", "?q=", "#", "/a?b=c#"]),
        st.text(st.characters(codec="utf-8"), max_size=24),
    ).map("".join),
)


def destinations() -> st.SearchStrategy[str]:
    """Text shaped like URLs: the receiver with odd paths, userinfo and ports, and hosts that break parsers.

    Random strings almost never look like a URL, yet a URL is where parsers disagree and raise. Two
    kinds of destination are left out because they are on the allowlist yet cannot be delivered to,
    which the relay cannot know before trying: ``https://`` to the plaintext receiver's port, and the
    receiver's control paths (it refuses deliveries there). For those, execute's documented 502 is the
    right answer — a delivery failure, not a bug — and they are covered where 502 is the subject
    (tests/service/test_app.py).
    """
    # half of each part is the plain choice, so that many of the receiver's URLs are deliverable
    userinfo = st.just("") | st.sampled_from(["user@", "user:pw@", ":@", "@"])
    port = st.just("") | st.sampled_from([":0", ":65536", ":99999", ":abc", ":-1", ":"])
    receiver = st.tuples(
        st.just("http://") | st.sampled_from(["HTTP://", "ftp://", "http:/", "//", ""]),
        userinfo,
        st.just(RECEIVER_TOKEN),
        port,
        _URL_TAILS,
    )
    elsewhere = st.tuples(
        st.sampled_from(["http://", "https://", "ftp://", "file://", "//", ""]),
        userinfo,
        st.sampled_from(_URL_HOSTS),
        port,
        _URL_TAILS,
    )
    url = st.one_of(receiver, elsewhere).map("".join)
    return url.filter(lambda u: CONTROL.strip("/") not in u)


_DESTINATIONS = destinations()


def flatmap_case(context: HookContext, case: Case) -> st.SearchStrategy[Case]:
    """Give generated schema-valid action requests a URL-shaped ``destination``.

    Only positive cases of the fuzzing phase are touched, and they stay schema-valid (``destination``
    is any string of at most 2048 characters), so what schemathesis expects to be accepted still
    holds. Requests without a destination (delivered to ``WEBHOOK_URL``) still come from the other
    phases, and the stateful test's previews stay executable.
    """
    body = case.body
    meta = case.meta
    fuzzed_positive = (
        meta is not None
        and meta.phase.name is TestPhase.FUZZING
        and meta.generation.mode is GenerationMode.POSITIVE
    )
    if not (fuzzed_positive and isinstance(body, dict) and "action" in body):
        return st.just(case)

    def with_destination(url: str) -> Case:
        case.body = {**body, "destination": url}
        return case

    return _DESTINATIONS.map(with_destination)


def _schema(caller: Caller) -> BaseSchema:
    config: dict[str, Any] = {
        "generation": {"mode": "all", "max-examples": caller.max_examples},
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            # What counts as refusing a schema-violating request: schemathesis's default list plus 413,
            # since a body over MAX_BODY_BYTES is refused before anything parses it, whatever else is
            # wrong with it. (A 5xx is listed by schemathesis here; not_a_server_error fails it.)
            "negative_data_rejection": {"expected-statuses": REJECTIONS},
        },
        # Hypothesis's health check on how fast data is *generated*: on a loaded 2-core CI runner it
        # says something about the runner, nothing about the service.
        "suppress-health-check": ["too_slow"],
    }
    if SEED is not None:
        config["seed"] = SEED
    if caller.key is not None:
        # Credentials for the OpenAPI security scheme by its name: schemathesis then knows which
        # operations need them, and ignored_auth can prove they are really required.
        config["auth"] = {"openapi": {"apiKey": {"bearer": caller.key}}}
    # a copy: schemathesis writes the links it infers for stateful testing into the document it gets
    document = copy.deepcopy(DOCUMENT)
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config.from_dict(config))
    schema.hook(flatmap_case)
    return schema


ADMIN_SCHEMA = _schema(ADMIN_CALLER)
DEV_SCHEMA = _schema(DEV_CALLER)
ANONYMOUS_SCHEMA = _schema(ANONYMOUS_CALLER)


# -- the real service --------------------------------------------------------------------------------


@dataclass
class FuzzStats:
    """Cases sent and statuses answered, per caller and operation."""

    cases: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def record(self, who: str, operation: str, status: int) -> None:
        self.cases[who, operation] += 1
        self.statuses[who, status] += 1

    def summary(self) -> list[str]:
        lines = [f"schemathesis: {sum(self.cases.values())} generated cases sent"]
        for name in dict.fromkeys(who for who, _ in self.cases):
            per_op = {op: n for (who, op), n in sorted(self.cases.items()) if who == name}
            codes = {code: n for (who, code), n in sorted(self.statuses.items()) if who == name}
            lines.append(f"  {name}: {sum(per_op.values())} cases; statuses {codes}")
            lines += [f"    {n:5d}  {op}" for op, n in per_op.items()]
        return lines


@dataclass(frozen=True)
class Relays:
    """The running relays by header profile, and where deliveries land."""

    urls: dict[Profile, str]
    receiver_url: str
    receiver_token: str

    @property
    def receiver_host(self) -> str:
        return self.receiver_url.removeprefix("http://")


@pytest.fixture(scope="module")
def fuzz_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"fuzz_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name)
    url = pg_server.url(name)
    migrate(url)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(scope="module")
def relays(fuzz_database: str, redis_server: EmbeddedRedis) -> Iterator[Relays]:
    """A relay per header profile, sharing the database, Redis and one receiver."""
    with Receiver() as rx:
        servers: list[ThreadedServer] = []
        try:
            urls: dict[Profile, str] = {}
            for profile in ("strict", "seed"):
                settings = _settings(
                    webhook_url=f"{rx.url}/hooks/relay",
                    database_url=fuzz_database,
                    redis_url=redis_server.url,
                    rate_limit_exec_per_min=RATE_LIMIT,
                    security_headers_profile=profile,
                    webhook_backoff_base_s=0.01,
                )
                servers.append(ThreadedServer(create_app(settings)).start())
                urls[profile] = servers[-1].url
            yield Relays(urls, rx.url, rx.token)
        finally:
            for server in servers:
                server.stop()


@pytest.fixture(scope="module")
def fuzz_stats(request: pytest.FixtureRequest) -> Iterator[FuzzStats]:
    stats = FuzzStats()
    yield stats
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not stats.cases:
        return
    with capture.global_and_fixture_disabled():  # this is for the CI log, not the captured output
        reporter.write_line("")
        for line in stats.summary():
            reporter.write_line(line)


# -- the checks --------------------------------------------------------------------------------------


def _security_headers_check(profile: Profile) -> CheckFunction:
    expected = PROFILES[profile]

    def security_headers_check(ctx: CheckContext, response: Response, case: Case) -> bool | None:
        """The relay's configured profile, each header exactly once with its exact value; no Server."""
        received = [(name, value) for name, values in response.headers.items() for value in values]
        problems = check_headers(received, expected)
        assert not problems, f"security headers ({profile} profile): " + "; ".join(
            p.describe() for p in problems
        )
        return True

    return security_headers_check


SECURITY_HEADERS_CHECKS: dict[Profile, CheckFunction] = {
    "strict": _security_headers_check("strict"),
    "seed": _security_headers_check("seed"),
}


def _aim_at_receiver(case: Case, relays: Relays) -> None:
    body = case.body
    destination = body.get("destination") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(destination, str):
        case.body = {**body, "destination": destination.replace(RECEIVER_TOKEN, relays.receiver_host)}


def _exercise(case: Case, caller: Caller, relays: Relays, stats: FuzzStats) -> None:
    _aim_at_receiver(case, relays)
    response = case.call(base_url=relays.urls[caller.profile])
    stats.record(caller.label, case.operation.label, response.status_code)
    case.validate_response(response, additional_checks=[SECURITY_HEADERS_CHECKS[caller.profile]])


@ADMIN_SCHEMA.parametrize()
def test_admin_key(case: Case, relays: Relays, fuzz_stats: FuzzStats) -> None:
    _exercise(case, ADMIN_CALLER, relays, fuzz_stats)


@DEV_SCHEMA.parametrize()
def test_dev_key(case: Case, relays: Relays, fuzz_stats: FuzzStats) -> None:
    _exercise(case, DEV_CALLER, relays, fuzz_stats)


@ANONYMOUS_SCHEMA.parametrize()
def test_no_key(case: Case, relays: Relays, fuzz_stats: FuzzStats) -> None:
    _exercise(case, ANONYMOUS_CALLER, relays, fuzz_stats)


def test_stateful_sequences_with_the_admin_key(relays: Relays, fuzz_stats: FuzzStats) -> None:
    """Sequences of calls following the document's links (a preview's ``preview_id`` into execute)."""
    base_url = relays.urls[ADMIN_CALLER.profile]
    check = SECURITY_HEADERS_CHECKS[ADMIN_CALLER.profile]

    class Workflow(ADMIN_SCHEMA.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case) -> None:
            _aim_at_receiver(case, relays)

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": base_url}

        def after_call(self, response: Response, case: Case) -> None:
            super().after_call(response, case)
            fuzz_stats.record("admin, stateful", case.operation.label, response.status_code)

        def validate_response(
            self,
            response: Response,
            case: Case,
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            super().validate_response(response, case, [*(additional_checks or []), check], **kwargs)

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=6,
            deadline=None,  # no timed asserts: a scenario is several real HTTP calls and deliveries
            suppress_health_check=[hypothesis.HealthCheck.too_slow],
        )
    )


# -- after the fuzzing ---------------------------------------------------------------------------------


def test_the_served_document_is_the_one_fuzzed(relays: Relays) -> None:
    for url in relays.urls.values():
        served = httpx.get(f"{url}/openapi.json", timeout=10)
        assert served.status_code == 200
        assert served.json() == DOCUMENT


def test_every_fuzzed_execute_was_audited_and_delivered(fuzz_database: str, relays: Relays) -> None:
    """No audit row left pending or failed, and exactly one delivery per completed row.

    An execute that crashed between writing its audit row and completing it would leave a ``pending``
    row behind; a delivery the relay could not make would be an ``error`` row (and a 502).
    """
    with psycopg.connect(fuzz_database) as conn:
        rows = conn.execute("SELECT status, count(*) FROM audit_log GROUP BY status").fetchall()
    by_status = {str(status): int(n) for status, n in rows}
    assert set(by_status) <= {"ok"}, f"audit rows by status: {by_status}"
    client = ReceiverClient(relays.receiver_url, token=relays.receiver_token)
    try:
        deliveries = client.captures()
    finally:
        client.close()
    assert len(deliveries) == by_status.get("ok", 0)
