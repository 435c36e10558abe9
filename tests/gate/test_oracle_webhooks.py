"""The webhook oracle (gate/oracles/webhooks.py) against published vectors and an independent
implementation, never against the service it judges.

Vector sources:
- GitHub, "Validating webhook deliveries", section "Testing the webhook payload validation"
  (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries; source
  github/docs, content/webhooks/using-webhooks/validating-webhook-deliveries.md): secret
  "It's a Secret to Everybody", payload "Hello, World!" ->
  sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17.
- Standard Webhooks, github.com/standard-webhooks/standard-webhooks,
  libraries/python/tests/test_webhooks.py: ``test_sign_function`` (secret
  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330,
  payload {"test": 2432232314} -> v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=),
  ``test_invalid_signature_raises_error`` (the same MAC with its last base64 digit changed),
  ``test_multi_sig_payload_is_valid`` (v2 entries and wrong v1 entries beside the right one),
  ``test_old_timestamp_fails`` / ``test_new_timestamp_fails`` (5 minutes + 1 s either way).
  spec/standard-webhooks.md: signed content ``{msg_id}.{timestamp}.{payload}``, a space-delimited
  list of signatures, ``whsec_`` + base64 secrets.
- The independent implementation: the ``standardwebhooks`` package (PyPI), the Standard Webhooks
  project's own Python library.
"""

from __future__ import annotations

import ast
import base64
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gate.oracles import webhooks as wh

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_PAYLOAD = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = "1614265330"
SW_PAYLOAD = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SW_WRONG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
SW_OTHER = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
SW_NOW = int(SW_TS)


def sw_headers(signature: str = SW_SIGNATURE, ts: str = SW_TS) -> dict[str, str]:
    return {"webhook-id": SW_ID, "webhook-timestamp": ts, "webhook-signature": signature}


# -- published vectors ------------------------------------------------------------------------------


def test_github_documented_example() -> None:
    key = wh.signing_key(GITHUB_SECRET)  # not whsec_: its UTF-8 bytes as written
    assert key == GITHUB_SECRET.encode()
    assert wh.x_signature(key, GITHUB_PAYLOAD) == GITHUB_SIGNATURE
    assert wh.verify_x_signature([key], GITHUB_SIGNATURE, GITHUB_PAYLOAD).accepted
    assert wh.verify_x_signature([key], GITHUB_SIGNATURE, b"Hello, World?").reason == "no_match"


def test_standard_webhooks_sign_vector() -> None:
    key = wh.signing_key(SW_SECRET)
    assert key == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert wh.v1_signature(key, SW_ID, SW_TS, SW_PAYLOAD) == SW_SIGNATURE
    assert wh.webhook_signature([key], SW_ID, SW_TS, SW_PAYLOAD) == SW_SIGNATURE


def test_standard_webhooks_verify_and_invalid_vectors() -> None:
    key = wh.signing_key(SW_SECRET)
    assert wh.verify_standard([key], sw_headers(), SW_PAYLOAD, now=SW_NOW).accepted
    assert wh.verify_standard([key], sw_headers(SW_WRONG), SW_PAYLOAD, now=SW_NOW).reason == "no_match"


def test_standard_webhooks_multi_signature_vector_ignores_other_versions() -> None:
    key = wh.signing_key(SW_SECRET)
    header = " ".join([SW_OTHER, SW_OTHER.replace("v1,", "v2,"), SW_SIGNATURE, SW_OTHER])
    assert wh.verify_standard([key], sw_headers(header), SW_PAYLOAD, now=SW_NOW).accepted
    # the right MAC under another version is not a v1 signature
    only_v2 = SW_SIGNATURE.replace("v1,", "v2,")
    assert wh.verify_standard([key], sw_headers(only_v2), SW_PAYLOAD, now=SW_NOW).reason == "malformed"


@pytest.mark.parametrize(
    ("skew", "reason"),
    [(0, "accepted"), (300, "accepted"), (-300, "accepted"), (301, "too_old"), (-301, "too_new")],
)
def test_the_tolerance_is_300_s_both_ways(skew: int, reason: str) -> None:
    key = wh.signing_key(SW_SECRET)
    assert wh.verify_standard([key], sw_headers(), SW_PAYLOAD, now=SW_NOW + skew).reason == reason


# -- key derivation -----------------------------------------------------------------------------------


def test_a_hex_secret_is_its_characters_and_near_misses_are_other_keys() -> None:
    raw = os.urandom(32)
    secret = raw.hex()
    key = wh.signing_key(secret)
    assert key == secret.encode() and len(key) == 64
    body = b'{"a":"\xc3\xa9"}'
    header = wh.x_signature(key, body)
    near_misses = [raw, secret.upper().encode(), (secret + "\n").encode(), ("whsec_" + secret).encode()]
    for near in near_misses:
        assert wh.verify_x_signature([near], header, body).reason == "no_match"


def test_a_whsec_secret_is_its_decoded_bytes_never_the_text() -> None:
    raw = os.urandom(32)
    secret = "whsec_" + base64.b64encode(raw).decode()
    assert wh.signing_key(secret) == raw
    assert wh.signing_key(secret) not in (secret.encode(), secret[len("whsec_") :].encode())
    with pytest.raises(ValueError, match="base64"):
        wh.signing_key("whsec_not base64!")


# -- every way a check can fail, with its reason ----------------------------------------------------


def test_missing_and_malformed_are_told_apart() -> None:
    key = wh.signing_key(SW_SECRET)
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        h = sw_headers()
        del h[name]
        assert wh.verify_standard([key], h, SW_PAYLOAD, now=SW_NOW).reason == "missing"
    for ts in ("1614265330.5", "-1", "2021-02-25T15:02:10Z", "１６"):
        assert wh.verify_standard([key], sw_headers(ts=ts), SW_PAYLOAD, now=SW_NOW).reason == "malformed"
    assert wh.verify_standard([key], sw_headers("v1:abc"), SW_PAYLOAD, now=SW_NOW).reason == "malformed"
    assert wh.verify_x_signature([key], None, SW_PAYLOAD).reason == "missing"
    digest = GITHUB_SIGNATURE.removeprefix("sha256=")
    for bad in (digest, "sha1=" + digest, "sha256=" + digest[:-1], "sha256=" + "g" * 64):
        assert wh.verify_x_signature([key], bad, SW_PAYLOAD).reason == "malformed"


def test_an_upper_case_x_signature_is_refused_as_the_documented_verifiers_refuse_it() -> None:
    """docs/webhooks.md's verifiers compare the header's text with a lower-case hexdigest (Python) or
    match /^sha256=[0-9a-f]{64}$/ (Node): the right MAC in upper-case hex fails both, so the gate
    must not accept it either."""
    key = wh.signing_key(GITHUB_SECRET)
    upper = "sha256=" + GITHUB_SIGNATURE.removeprefix("sha256=").upper()
    assert upper != GITHUB_SIGNATURE
    assert wh.verify_x_signature([key], upper, GITHUB_PAYLOAD).reason == "malformed"
    one_letter = GITHUB_SIGNATURE.replace("ea", "Ea", 1)  # a single upper-case digit is enough
    assert one_letter != GITHUB_SIGNATURE
    assert wh.verify_x_signature([key], one_letter, GITHUB_PAYLOAD).reason == "malformed"


def test_the_signature_binds_id_timestamp_and_body() -> None:
    key = wh.signing_key(SW_SECRET)
    h = sw_headers()
    assert wh.verify_standard([key], {**h, "webhook-id": SW_ID + "x"}, SW_PAYLOAD, now=SW_NOW).reason == (
        "no_match"
    )
    moved = str(SW_NOW + 1)
    assert wh.verify_standard([key], {**h, "webhook-timestamp": moved}, SW_PAYLOAD, now=SW_NOW).reason == (
        "no_match"
    )
    assert wh.verify_standard([key], h, SW_PAYLOAD + b" ", now=SW_NOW).reason == "no_match"


def test_any_key_may_match_any_entry_and_header_names_are_case_insensitive() -> None:
    a, b, c = os.urandom(32), os.urandom(32), os.urandom(32)
    header = wh.webhook_signature([a, b], "msg_1", "1700000000", b"{}")
    headers = [("Webhook-Id", "msg_1"), ("WEBHOOK-TIMESTAMP", "1700000000"), ("webhook-signature", header)]
    for held in ([a], [b], [c, b], [b, a]):
        assert wh.verify_standard(held, headers, b"{}", now=1_700_000_000).accepted
    assert wh.verify_standard([c], headers, b"{}", now=1_700_000_000).reason == "no_match"
    assert wh.entries(header) == [("v1", e) for e in wh.v1_entries(header)]


# -- cross-checked against the standardwebhooks package ---------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=64),
    msg_id=st.from_regex(r"[A-Za-z0-9_]{1,40}", fullmatch=True),
    ts=st.integers(min_value=0, max_value=10**10),
    body=st.binary(max_size=300),
    skew=st.integers(min_value=-400, max_value=400),
)
def test_the_oracle_agrees_with_the_standardwebhooks_package(
    key: bytes, msg_id: str, ts: int, body: bytes, skew: int
) -> None:
    lib = Webhook(key)  # bytes: used as the key as is
    signature = lib.sign(msg_id, datetime.fromtimestamp(ts, UTC), body)
    assert wh.v1_signature(key, msg_id, str(ts), body) == signature
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}
    ours = wh.verify_standard([key], headers, body, now=ts + skew)
    # the package reads its own clock: move the timestamp instead of the clock
    now = int(datetime.now(UTC).timestamp())
    shifted_ts = str(now - skew)
    shifted = {
        "webhook-id": msg_id,
        "webhook-timestamp": shifted_ts,
        "webhook-signature": wh.v1_signature(key, msg_id, shifted_ts, body),
    }
    try:
        lib.verify(body, shifted, json_parse=False)
        theirs = True
    except WebhookVerificationError:
        theirs = False
    if abs(abs(skew) - 300) > 2:  # the package's clock moves while we compare: stay off the edge
        assert ours.accepted == theirs, (skew, ours)
    tampered = wh.verify_standard([key], headers, body + b"x", now=ts)
    assert tampered.reason == "no_match"


@settings(max_examples=50, deadline=None)
@given(raw=st.binary(min_size=1, max_size=64))
def test_whsec_keys_agree_with_the_standardwebhooks_package(raw: bytes) -> None:
    secret = "whsec_" + base64.b64encode(raw).decode()
    assert wh.signing_key(secret) == raw
    signature = Webhook(secret).sign("msg_x", datetime.fromtimestamp(1_700_000_000, UTC), b"{}")
    assert wh.v1_signature(wh.signing_key(secret), "msg_x", "1700000000", b"{}") == signature


def test_the_oracle_is_pure_and_never_imports_the_service() -> None:
    tree = ast.parse(Path(wh.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"service", "httpx", "socket", "os", "time", "pathlib"}, imported
