"""Regressions for what the generated-input tests found in the relay (tests/service/test_schemathesis.py).

Each section is one defect, named by what was wrong before the fix:

- a ``destination`` that does not parse (``http://[::1``, a host that changes under NFKC) made
  preview and execute answer 500: ``destination_allowed`` let urlsplit's ValueError escape;
- a ``destination`` on the allowlisted host with a control character (``/\\x00``) passed the allowlist,
  then httpx refused it with ``InvalidURL`` (not an ``HTTPError``): execute answered 500 and left its
  audit row ``pending`` for good; the deliverer now also catches it;
- a body that is not UTF-8 JSON got a 400 that the OpenAPI document did not list;
- ``GET /audit?until=0.5`` was accepted: pydantic read Unix seconds (and bare dates) as date-times,
  which the documented ``format: date-time`` does not admit;
- a 405 on ``/_stcore/health`` (served by a GET route and a HEAD route) said ``Allow: HEAD`` only;
- the Problem schema's example carried the request id of whichever request first asked for
  ``/openapi.json``, so the document differed from process to process;
- ``verify_x_signature`` raised TypeError / AttributeError for a header that is not a string (the raw
  bytes of a header, say) where verify_standard raises its documented SignatureError.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.client.receiver import ReceiverClient
from service.app import EXAMPLE_REQUEST_ID
from service.config import Settings, destination_allowed
from service.delivery import WebhookDeliverer
from service.signing import SignatureError, verify_x_signature
from tests.service.serving import serve

ADMIN = "regress-admin-key-0123456789abcdef"
SECRET = "r" * 64
NOTIFY = {"action": "notify.send", "params": {"channel": "ops-alerts", "message": "deploy done"}}
ALLOWED = frozenset({"127.0.0.1:8080", "hooks.example.com"})

UNPARSABLE = [
    "http://[::1",
    "http://::1]/",
    "http://[x]/",
    "https://[::1/hooks",
    "http://a\uff03b/",  # FULLWIDTH NUMBER SIGN: NFKC turns it into '#'
    "http://ex\u2100ample.com/",  # ACCOUNT OF: NFKC turns it into 'a/c'
]
# on the allowlisted host, but carrying what no URI contains raw
UNSENDABLE = [
    "http://127.0.0.1:8080/\x00",
    "http://127.0.0.1:8080/hooks/\x01",
    "http://127.0.0.1:8080/x?\x7f",
    "http://127.0.0.1:8080#\x1f",
    "http://127.0.0.1:8080/\tx",
    "http://127.0.0.1:8080/x\ny",
    " http://127.0.0.1:8080/",
    "http://127.0.0.1:8080/a b",
]
WITH_USERINFO = ["http://:@127.0.0.1:8080/", "http://@127.0.0.1:8080/", "http://u@127.0.0.1:8080/"]


def auth(key: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def settings_for(receiver_url: str, database_url: str | None = None, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "_env_file": None,
        "admin_key": ADMIN,
        "actions_signing_secret": SECRET,
        "webhook_url": f"{receiver_url}/hooks/relay",
        "database_url": database_url,
        "webhook_backoff_base_s": 0.01,
    }
    return Settings(**{**base, **overrides})


# -- destinations that do not parse, or cannot be sent ------------------------------------------------


@pytest.mark.parametrize("url", UNPARSABLE + UNSENDABLE + WITH_USERINFO)
def test_destination_allowed_refuses_without_raising(url: str) -> None:
    assert destination_allowed(url, ALLOWED) is False


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks/relay",
        "HTTP://127.0.0.1:8080",
        "http://127.0.0.1:8080/h\u00e9?q=\u00e9#f",
        "https://hooks.example.com/relay",
        "http://hooks.example.com:9999/any/port/for/a/host-only/entry",
    ],
)
def test_destination_allowed_still_admits_sendable_urls_on_allowed_hosts(url: str) -> None:
    assert destination_allowed(url, ALLOWED) is True
    httpx.URL(url)  # and the client that will send it agrees it is a URL


_url_parts = st.tuples(
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "//", "", "http:"]),
    st.sampled_from(["", "u@", ":@", "@"]),
    st.sampled_from(["127.0.0.1", "hooks.example.com", "HOOKS.example.com", "[::1]", "[::1", "evil.com", ""]),
    st.sampled_from(["", ":8080", ":80", ":0", ":99999", ":x"]),
    st.text(max_size=20),
).map("".join)


@settings(max_examples=400, deadline=None)
@given(url=_url_parts | st.text(max_size=60))
def test_an_allowed_destination_is_sent_where_the_allowlist_looked(url: str) -> None:
    """Never raises; and whatever it admits, httpx parses to an allowlisted host (no parser differential)."""
    if not destination_allowed(url, ALLOWED):
        return
    sent = httpx.URL(url)
    port = sent.port or (443 if sent.scheme == "https" else 80)
    assert f"{sent.host}:{port}" in ALLOWED or sent.host in ALLOWED, (url, sent)


@pytest.mark.stack
def test_malformed_destinations_are_422_with_nothing_delivered_or_audited(
    receiver: ReceiverClient, pg_database: str
) -> None:
    rx_host = receiver.base_url.removeprefix("http://")
    unsendable = [u.replace("127.0.0.1:8080", rx_host) for u in UNSENDABLE + WITH_USERINFO]
    with serve(settings_for(receiver.base_url, pg_database)) as c:
        for destination in UNPARSABLE + unsendable:
            for path in ("/actions/preview", "/actions/execute"):
                r = c.post(path, headers=auth(), json={**NOTIFY, "destination": destination})
                assert r.status_code == 422, (path, destination, r.status_code, r.text)
                assert r.headers["content-type"].startswith("application/problem+json")
                assert "destination" in r.json()["detail"]
    assert receiver.captures() == []
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)


def test_a_url_the_client_refuses_is_a_failed_delivery_not_an_exception() -> None:
    # httpx refuses URLs over 64 KiB; the allowlist has no reason to (the API caps destinations at 2 KiB)
    url = "http://127.0.0.1:8080/" + "a" * 70_000
    assert destination_allowed(url, ALLOWED)

    async def run() -> Any:
        async with WebhookDeliverer(
            keys=[b"k" * 32], allowed_hosts=ALLOWED, timeout_s=2, max_attempts=3, backoff_base_s=0
        ) as deliverer:
            return await deliverer.deliver(url, b"{}", request_id="req-1", webhook_id="msg_1")

    result = asyncio.run(run())
    assert (result.status, result.attempts, result.http_status) == ("failed", 1, None)
    assert result.error == "invalid URL"


# -- statuses the document did not list, inputs it does not admit -------------------------------------


@pytest.mark.stack
def test_a_body_that_is_not_utf8_json_is_a_documented_400(receiver: ReceiverClient) -> None:
    with serve(settings_for(receiver.base_url)) as c:
        doc = c.get("/openapi.json").json()
        for path in ("/actions/preview", "/actions/execute"):
            documented = doc["paths"][path]["post"]["responses"]
            assert "application/problem+json" in documented["400"]["content"]
            r = c.post(
                path, headers={**auth(), "Content-Type": "application/json"}, content=b'{"a": "\xff\xfe"}'
            )
            assert r.status_code == 400, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
    assert receiver.captures() == []


@pytest.mark.stack
def test_audit_time_filters_take_rfc3339_date_times_only(receiver: ReceiverClient, pg_database: str) -> None:
    with serve(settings_for(receiver.base_url, pg_database)) as c:
        for bad in (
            "0.5",
            "1700000000",
            "2020-01-01",
            "yesterday",
            "2020-01-01T00:00",
            "2020-01-01T25:00:00Z",
            "\u0662\u0660\u0662\u0660-01-01T00:00:00Z",  # digits, but not ASCII ones
        ):
            for name in ("since", "until"):
                r = c.get("/audit", headers=auth(), params={name: bad})
                assert r.status_code == 422, (name, bad, r.text)
                assert r.json()["detail"].startswith(f"query.{name}")
        for good in (
            "2020-01-01T00:00:00Z",
            "2020-01-01t00:00:00z",
            "2020-01-01T00:00:00.123456+02:00",
            "2020-01-01T00:00:00",  # no offset: read as UTC, as documented
        ):
            r = c.get("/audit", headers=auth(), params={"since": good})
            assert r.status_code == 200, (good, r.text)


@pytest.mark.stack
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/_stcore/health", "GET, HEAD"),
        ("POST", "/_stcore/health", "GET, HEAD"),
        ("POST", "/actions", "GET"),
        ("DELETE", "/actions/execute", "POST"),
        ("PUT", "/openapi.json", "GET, HEAD"),
    ],
)
def test_405_allow_names_every_method_of_the_path(
    receiver: ReceiverClient, method: str, path: str, allow: str
) -> None:
    with serve(settings_for(receiver.base_url)) as c:
        r = c.request(method, path, headers=auth())
    assert r.status_code == 405
    assert r.headers.get_list("allow") == [allow]
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.stack
def test_the_openapi_document_does_not_depend_on_who_asked_first(receiver: ReceiverClient) -> None:
    documents = []
    for _ in range(2):
        with serve(settings_for(receiver.base_url)) as c:
            r = c.get("/openapi.json")
            documents.append(r.json())
    example = documents[0]["components"]["schemas"]["Problem"]["example"]
    assert example["request_id"] == EXAMPLE_REQUEST_ID != r.headers["x-request-id"]
    assert documents[0] == documents[1]


# -- the X-Signature verifier and headers that are not text --------------------------------------------


@pytest.mark.parametrize("header", [b"sha256=" + b"0" * 64, b"", 123, ["sha256=00"], object()])
def test_x_signature_header_that_is_not_a_string_is_malformed(header: Any) -> None:
    with pytest.raises(SignatureError) as exc:
        verify_x_signature([b"k" * 32], b"{}", header)
    assert exc.value.reason == "malformed_header"
