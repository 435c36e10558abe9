"""Webhook signatures: published vectors, every way verification must fail, rotation and replay.

Vector sources:
- GitHub, "Validating webhook deliveries" (docs.github.com): secret ``It's a Secret to Everybody``,
  payload ``Hello, World!`` -> ``sha256=757107ea...``.
- RFC 4231 section 4.2 and 4.3 (HMAC-SHA-256 test cases 1 and 2).
- Standard Webhooks, ``standard-webhooks/standard-webhooks`` repository,
  ``libraries/python/tests/test_webhooks.py`` (``test_sign_function``,
  ``test_invalid_signature_raises_error``, ``test_multi_sig_payload_is_valid``):
  secret ``whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw``, id ``msg_p5jXN8AQM9LWM0D4loKWxJek``,
  timestamp 1614265330, payload ``{"test": 2432232314}``
  -> ``v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=``.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.config import signing_key_bytes
from service.signing import (
    ReplayGuard,
    SignatureError,
    new_webhook_id,
    signed_headers,
    standard_signature,
    verify_standard,
    verify_x_signature,
    x_signature,
)

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
BODY = b'{"action":"execute","id":"a1","note":"caf\xc3\xa9"}'
NOW = 1_728_274_800


def sw_headers(signature: str = SW_SIG, ts: int = SW_TS, msg_id: str = SW_ID) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def headers_for(
    keys: list[bytes], body: bytes = BODY, *, ts: int = NOW, msg_id: str = "msg_1"
) -> dict[str, str]:
    return signed_headers(keys, body, request_id="req-1", webhook_id=msg_id, timestamp=ts)


def reason(exc: pytest.ExceptionInfo[SignatureError]) -> str:
    return exc.value.reason


# -- published vectors ------------------------------------------------------------------------------


def test_github_vector() -> None:
    key = b"It's a Secret to Everybody"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert x_signature(key, b"Hello, World!") == expected
    verify_x_signature([key], b"Hello, World!", expected)


@pytest.mark.parametrize(
    ("key", "data", "mac"),
    [
        # RFC 4231 4.2, test case 1
        (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        # RFC 4231 4.3, test case 2 (a key shorter than the output)
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
    ],
    ids=["rfc4231-1", "rfc4231-2"],
)
def test_rfc4231_vectors(key: bytes, data: bytes, mac: str) -> None:
    assert x_signature(key, data) == f"sha256={mac}"


def test_standard_webhooks_sign_vector() -> None:
    key = signing_key_bytes(SW_SECRET)
    assert standard_signature([key], SW_ID, SW_TS, SW_BODY) == SW_SIG


def test_standard_webhooks_verify_vector() -> None:
    key = signing_key_bytes(SW_SECRET)
    verify_standard([key], SW_BODY, sw_headers(), now=SW_TS)


def test_standard_webhooks_invalid_signature_vector() -> None:
    # The library suite's "invalid signature": one base64 character changed.
    key = signing_key_bytes(SW_SECRET)
    bad = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
    with pytest.raises(SignatureError) as exc:
        verify_standard([key], SW_BODY, sw_headers(bad), now=SW_TS)
    assert reason(exc) == "no_matching_signature"


def test_standard_webhooks_multi_signature_vector() -> None:
    # The library suite's multi-signature header: non-matching v1 entries and a v2 entry around the
    # valid one. Entries of other versions are ignored, any matching v1 entry passes.
    key = signing_key_bytes(SW_SECRET)
    noise = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    header = f"v1,{noise} v2,{noise} {SW_SIG} v1,{noise}"
    verify_standard([key], SW_BODY, sw_headers(header), now=SW_TS)


# -- signed_headers ---------------------------------------------------------------------------------


def test_signed_headers_with_keys() -> None:
    h = headers_for([KEY, OTHER_KEY])
    assert h["Content-Type"] == "application/json"
    assert h["X-Request-ID"] == "req-1"
    assert h["webhook-id"] == "msg_1"
    assert h["webhook-timestamp"] == str(NOW)
    assert h["X-Signature"] == x_signature(KEY, BODY)  # primary only
    assert h["webhook-signature"] == standard_signature([KEY, OTHER_KEY], "msg_1", NOW, BODY)
    assert len(h["webhook-signature"].split(" ")) == 2


def test_signed_headers_unsigned() -> None:
    h = headers_for([])
    assert set(h) == {"Content-Type", "X-Request-ID", "webhook-id", "webhook-timestamp"}


@pytest.mark.parametrize("bad_id", ["", "msg.1", "msg 1", "msg\n1", "x" * 256])
def test_signed_headers_refuses_ids_that_break_the_signed_content(bad_id: str) -> None:
    with pytest.raises(ValueError, match="webhook_id"):
        signed_headers([KEY], BODY, request_id="r", webhook_id=bad_id, timestamp=NOW)


def test_signing_refuses_text_bodies() -> None:
    # A str body means someone decoded or re-serialised the bytes: refuse instead of signing other bytes.
    with pytest.raises(TypeError, match="raw request bytes"):
        x_signature(KEY, BODY.decode())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_standard([KEY], BODY.decode(), headers_for([KEY]), now=NOW)  # type: ignore[arg-type]


def test_new_webhook_id_is_unique_and_signable() -> None:
    ids = {new_webhook_id() for _ in range(100)}
    assert len(ids) == 100
    for msg_id in ids:
        signed_headers([KEY], BODY, request_id="r", webhook_id=msg_id, timestamp=NOW)


# -- verify_x_signature -----------------------------------------------------------------------------


def test_x_signature_round_trip_and_failures() -> None:
    header = x_signature(KEY, BODY)
    verify_x_signature([KEY], BODY, header)
    verify_x_signature([KEY], BODY, header.upper().replace("SHA256=", "sha256="))  # hex case-insensitive
    cases: dict[str, list[tuple[bytes, str | None]]] = {
        "no_matching_signature": [(BODY + b" ", header), (BODY, x_signature(OTHER_KEY, BODY))],
        "missing_header": [(BODY, None), (BODY, ""), (BODY, "   ")],
        "malformed_header": [
            (BODY, "sha1=" + "0" * 40),
            (BODY, "sha256=" + "z" * 64),
            (BODY, "sha256=" + "0" * 63),
            (BODY, header[len("sha256=") :]),
        ],
    }
    for expected_reason, attempts in cases.items():
        for body, hdr in attempts:
            with pytest.raises(SignatureError) as exc:
                verify_x_signature([KEY], body, hdr)
            assert reason(exc) == expected_reason, (body, hdr)


def test_x_signature_accepts_any_configured_key() -> None:
    verify_x_signature([KEY, OTHER_KEY], BODY, x_signature(OTHER_KEY, BODY))


def test_verifying_without_keys_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no verification keys") as exc:
        verify_x_signature([], BODY, x_signature(KEY, BODY))
    assert not isinstance(exc.value, SignatureError)
    with pytest.raises(ValueError, match="no verification keys"):
        verify_standard([], BODY, headers_for([KEY]), now=NOW)


# -- verify_standard --------------------------------------------------------------------------------


def test_standard_round_trip_with_case_insensitive_headers() -> None:
    h = headers_for([KEY])
    verify_standard([KEY], BODY, h, now=NOW)
    verify_standard([KEY], BODY, {k.upper(): v for k, v in h.items()}, now=NOW)
    verify_standard([KEY], BODY, httpx.Headers(h), now=NOW)


def test_tampered_body_fails() -> None:
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY.replace(b"a1", b"a2"), headers_for([KEY]), now=NOW)
    assert reason(exc) == "no_matching_signature"


def test_wrong_secret_fails() -> None:
    with pytest.raises(SignatureError) as exc:
        verify_standard([OTHER_KEY], BODY, headers_for([KEY]), now=NOW)
    assert reason(exc) == "no_matching_signature"


def test_signed_metadata_cannot_be_swapped() -> None:
    # The id and timestamp are inside the signature: changing either breaks it.
    h = headers_for([KEY])
    for name, value in (("webhook-id", "msg_2"), ("webhook-timestamp", str(NOW + 1))):
        with pytest.raises(SignatureError) as exc:
            verify_standard([KEY], BODY, {**h, name: value}, now=NOW)
        assert reason(exc) == "no_matching_signature"


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_fails(name: str) -> None:
    h = headers_for([KEY])
    for variant in ({k: v for k, v in h.items() if k != name}, {**h, name: ""}):
        with pytest.raises(SignatureError) as exc:
            verify_standard([KEY], BODY, variant, now=NOW)
        assert reason(exc) == "missing_header"
        assert name in str(exc.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook-timestamp", "hello"),
        ("webhook-timestamp", "-5"),
        ("webhook-timestamp", "1.5"),
        ("webhook-timestamp", "1e9"),
        ("webhook-timestamp", "١٧٢٨٢٧٤٨٠٠"),  # Arabic-Indic digits: int() takes them, we do not
        ("webhook-timestamp", "9" * 16),
        ("webhook-signature", "garbage"),
        ("webhook-signature", "v1 " * 10),
        ("webhook-signature", "v1," + "A" * 9000),
        ("webhook-signature", " ".join(["v1,AAAA"] * 33)),
    ],
)
def test_malformed_header_fails(name: str, value: str) -> None:
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY, {**headers_for([KEY]), name: value}, now=NOW)
    assert reason(exc) == "malformed_header"


def test_undecodable_id_is_malformed() -> None:
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY, {**headers_for([KEY]), "webhook-id": "msg_\ud800"}, now=NOW)
    assert reason(exc) == "malformed_header"


def test_unparseable_entries_are_skipped_not_fatal() -> None:
    h = headers_for([KEY])
    noisy = f"v1,!!!notbase64 v1a,whatever v2,{h['webhook-signature'][3:]} {h['webhook-signature']}"
    verify_standard([KEY], BODY, {**h, "webhook-signature": noisy}, now=NOW)
    only_noise = "v1,!!!notbase64 v1a,whatever"
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY, {**h, "webhook-signature": only_noise}, now=NOW)
    assert reason(exc) == "no_matching_signature"


@pytest.mark.parametrize(
    ("skew", "expected"),
    [
        (300, None),
        (-300, None),
        (301, "timestamp_too_old"),  # signed 301 s before "now"
        (-301, "timestamp_too_new"),  # signed 301 s after "now"
    ],
)
def test_timestamp_tolerance_both_directions(skew: int, expected: str | None) -> None:
    h = headers_for([KEY], ts=NOW)
    if expected is None:
        verify_standard([KEY], BODY, h, now=NOW + skew)
        return
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY, h, now=NOW + skew)
    assert reason(exc) == expected


def test_timestamp_is_checked_before_the_signature() -> None:
    # A stale request is refused as stale even with a bad signature: the cheap check goes first.
    h = {**headers_for([KEY], ts=NOW), "webhook-signature": "v1,AAAA"}
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY, h, now=NOW + 1000)
    assert reason(exc) == "timestamp_too_old"


def test_custom_tolerance() -> None:
    h = headers_for([KEY], ts=NOW)
    verify_standard([KEY], BODY, h, now=NOW + 30, tolerance_s=30)
    with pytest.raises(SignatureError):
        verify_standard([KEY], BODY, h, now=NOW + 31, tolerance_s=30)


def test_default_now_is_the_real_clock() -> None:
    verify_standard([KEY], BODY, headers_for([KEY], ts=int(time.time())))
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY, headers_for([KEY], ts=int(time.time()) - 3600))
    assert reason(exc) == "timestamp_too_old"


@settings(max_examples=300, deadline=None)
@given(
    msg_id=st.one_of(st.none(), st.text(max_size=40)),
    ts=st.one_of(st.none(), st.text(max_size=20), st.integers(-(10**20), 10**20).map(str)),
    sig=st.one_of(
        st.none(),
        st.text(max_size=200),
        st.lists(
            st.tuples(st.sampled_from(["v1", "v1a", "v2", "", "V1"]), st.text(max_size=60)).map(",".join),
            max_size=5,
        ).map(" ".join),
    ),
    body=st.binary(max_size=64),
)
def test_garbage_only_ever_raises_signature_error(
    msg_id: str | None, ts: str | None, sig: str | None, body: bytes
) -> None:
    headers = {
        k: v
        for k, v in (("webhook-id", msg_id), ("webhook-timestamp", ts), ("webhook-signature", sig))
        if v is not None
    }
    try:
        verify_standard([KEY], body, headers, now=NOW)
    except SignatureError as exc:
        assert exc.reason in {
            "missing_header",
            "malformed_header",
            "timestamp_too_old",
            "timestamp_too_new",
            "no_matching_signature",
        }
    else:  # pragma: no cover - would mean hypothesis forged an HMAC
        pytest.fail("garbage verified")


@settings(max_examples=200, deadline=None)
@given(header=st.one_of(st.none(), st.text(max_size=100)), body=st.binary(max_size=32))
def test_x_signature_garbage_only_ever_raises_signature_error(header: str | None, body: bytes) -> None:
    with pytest.raises(SignatureError):
        verify_x_signature([KEY], body, header)


# -- rotation ---------------------------------------------------------------------------------------


def test_rotation_either_secret_verifies_the_multi_entry_header() -> None:
    new, old = b"n" * 32, b"o" * 32
    h = headers_for([new, old])
    assert [e.split(",")[0] for e in h["webhook-signature"].split(" ")] == ["v1", "v1"]
    verify_standard([old], BODY, h, now=NOW)  # receiver not yet updated
    verify_standard([new], BODY, h, now=NOW)  # receiver already switched
    verify_standard([new, old], BODY, h, now=NOW)  # receiver mid-rotation
    # X-Signature carries the primary only: a receiver checking it must hold the new secret.
    verify_x_signature([old, new], BODY, h["X-Signature"])
    with pytest.raises(SignatureError):
        verify_x_signature([old], BODY, h["X-Signature"])


def test_whsec_and_raw_secrets_give_the_documented_keys() -> None:
    raw = os.urandom(32)
    assert signing_key_bytes("whsec_" + base64.b64encode(raw).decode()) == raw
    hex_secret = raw.hex()
    assert signing_key_bytes(hex_secret) == hex_secret.encode()  # the characters, not the decoded bytes


# -- replay -----------------------------------------------------------------------------------------


def test_replay_is_rejected_after_processing() -> None:
    guard = ReplayGuard(clock=lambda: NOW)
    h = headers_for([KEY], msg_id="msg_replay")
    verify_standard([KEY], BODY, h, now=NOW, replay_guard=guard)
    # Verification only consults the guard; a failed processing run could still be retried.
    verify_standard([KEY], BODY, h, now=NOW, replay_guard=guard)
    guard.remember("msg_replay", timestamp=NOW)
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY, h, now=NOW + 10, replay_guard=guard)
    assert reason(exc) == "replayed"
    # Other ids are unaffected.
    verify_standard([KEY], BODY, headers_for([KEY], msg_id="msg_other"), now=NOW, replay_guard=guard)


def test_forged_request_with_known_id_is_refused_for_its_signature_not_as_replay() -> None:
    guard = ReplayGuard(clock=lambda: NOW)
    guard.remember("msg_1", timestamp=NOW)
    h = {**headers_for([KEY]), "webhook-signature": "v1,AAAA"}
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY, h, now=NOW, replay_guard=guard)
    assert reason(exc) == "no_matching_signature"


def test_replay_guard_forgets_after_the_window() -> None:
    guard = ReplayGuard(tolerance_s=300, clock=lambda: NOW)
    guard.remember("msg_a", timestamp=NOW)
    assert guard.seen("msg_a", now=NOW + 300)
    assert not guard.seen("msg_a", now=NOW + 301)
    # By then the timestamp check alone refuses a replay of that request.
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], BODY, headers_for([KEY], msg_id="msg_a"), now=NOW + 301, replay_guard=guard)
    assert reason(exc) == "timestamp_too_old"


def test_replay_guard_keeps_the_latest_expiry_for_a_retried_id() -> None:
    guard = ReplayGuard(tolerance_s=300, clock=lambda: NOW)
    guard.remember("msg_a", timestamp=NOW + 100, now=NOW + 100)
    guard.remember("msg_a", timestamp=NOW, now=NOW)  # an older copy must not shorten it
    assert guard.seen("msg_a", now=NOW + 400)
    assert len(guard) == 1


def test_replay_guard_memory_is_bounded() -> None:
    now = [float(NOW)]
    guard = ReplayGuard(tolerance_s=300, max_entries=100, clock=lambda: now[0])
    for i in range(1000):
        guard.remember(f"msg_{i}", timestamp=NOW + i)
    assert len(guard) == 100
    assert guard.seen("msg_999")
    assert not guard.seen("msg_0")  # the soonest to expire went first
    # Expired entries are purged as time moves on, and the internal heap does not grow without bound.
    now[0] = NOW + 10_000
    for i in range(1000):
        guard.remember("msg_same", timestamp=NOW + 10_000 + i)
    assert len(guard) == 1
    assert len(guard._heap) < 200


def test_replay_guard_is_thread_safe() -> None:
    guard = ReplayGuard(clock=lambda: NOW, max_entries=10_000)

    def work(n: int) -> None:
        for i in range(500):
            guard.remember(f"msg_{n}_{i}", timestamp=NOW)
            guard.seen(f"msg_{n}_{i // 2}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(guard) == 2000
    assert all(guard.seen(f"msg_{n}_{i}") for n in range(4) for i in range(500))


# -- cross-check with the independent standardwebhooks package ------------------------------------


def test_our_signatures_verify_with_the_standardwebhooks_package() -> None:
    # The package's verify uses the real clock, so sign with the real time.
    new, old = os.urandom(32), os.urandom(32)
    h = signed_headers(
        [new, old], BODY, request_id="r", webhook_id=new_webhook_id(), timestamp=int(time.time())
    )
    for key in (new, old):
        assert Webhook(key).verify(BODY, h) == {"action": "execute", "id": "a1", "note": "café"}
    assert Webhook("whsec_" + base64.b64encode(new).decode()).verify(BODY, h)["id"] == "a1"
    with pytest.raises(WebhookVerificationError):
        Webhook(os.urandom(32)).verify(BODY, h)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(BODY + b" ", h)


def test_the_standardwebhooks_package_signatures_verify_with_ours() -> None:
    from datetime import UTC, datetime

    key = os.urandom(32)
    sig = Webhook(key).sign(SW_ID, datetime.fromtimestamp(NOW, UTC), BODY.decode())
    verify_standard([key], BODY, sw_headers(sig, ts=NOW), now=NOW)


# -- the reference verifier against one delivery, altered one way at a time -------------------------
# (these rows were acceptance scenarios once; they test service.signing, not a target, so they live
# here: a delivery signed as the relay signs it, with a hex secret as the stack configures one)

CURRENT = os.urandom(32).hex()
NEXT = "whsec_" + base64.b64encode(os.urandom(32)).decode()
UNRELATED = os.urandom(32).hex()
DELIVERED = (
    '{"action":"notify.send","params":{"message":"déploiement ✓ 5f0c"},"workspace":"default"}'.encode()
)


def _captured(keys: list[bytes] | None = None, *, ts: int = NOW, body: bytes = DELIVERED) -> dict[str, str]:
    h = signed_headers(
        keys or [signing_key_bytes(CURRENT)],
        body,
        request_id="req-1",
        webhook_id="msg_captured",
        timestamp=ts,
    )
    return {k.lower(): v for k, v in h.items()}


def _resigned(offset: int) -> dict[str, str]:
    return _captured(ts=NOW + offset)


def _one_char_changed() -> bytes:
    i = DELIVERED.index(b"notify")
    return DELIVERED[:i] + b"N" + DELIVERED[i + 1 :]


# copy of the delivery -> (body, headers, what the receiver holds)
COPIES: dict[str, tuple[bytes, dict[str, str | None], list[str]]] = {
    "as captured": (DELIVERED, {}, [CURRENT]),
    "body with one character changed": (_one_char_changed(), {}, [CURRENT]),
    "body re-serialised as equivalent JSON": (
        json.dumps(json.loads(DELIVERED)).encode(),
        {},
        [CURRENT],
    ),
    "checked with a wrong secret": (DELIVERED, {}, [UNRELATED]),
    "without webhook-id": (DELIVERED, {"webhook-id": None}, [CURRENT]),
    "without webhook-timestamp": (DELIVERED, {"webhook-timestamp": None}, [CURRENT]),
    "without webhook-signature": (DELIVERED, {"webhook-signature": None}, [CURRENT]),
    "without X-Signature": (DELIVERED, {"x-signature": None}, [CURRENT]),
    "webhook-signature not v1,<base64>": (DELIVERED, {"webhook-signature": "v1:AAAA"}, [CURRENT]),
    "webhook-timestamp not an integer": (
        DELIVERED,
        {"webhook-timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW))},
        [CURRENT],
    ),
    "X-Signature not sha256=<64 hex>": (
        DELIVERED,
        {"x-signature": _captured()["x-signature"].removeprefix("sha256=")},
        [CURRENT],
    ),
    "webhook-timestamp moved 1 s, not re-signed": (DELIVERED, {"webhook-timestamp": str(NOW + 1)}, [CURRENT]),
    "webhook-id changed, not re-signed": (DELIVERED, {"webhook-id": "msg_another"}, [CURRENT]),
    "re-signed 300 s in the past": (DELIVERED, dict(_resigned(-300)), [CURRENT]),
    "re-signed 300 s in the future": (DELIVERED, dict(_resigned(300)), [CURRENT]),
    "re-signed 301 s in the past": (DELIVERED, dict(_resigned(-301)), [CURRENT]),
    "re-signed 301 s in the future": (DELIVERED, dict(_resigned(301)), [CURRENT]),
}


def _verdict(checked_by: str, body: bytes, headers: dict[str, str], held: list[str], **kw: object) -> str:
    keys = [signing_key_bytes(s) for s in held]
    try:
        if checked_by == "webhook-signature":
            verify_standard(keys, body, headers, now=NOW, **kw)  # type: ignore[arg-type]
        else:
            verify_x_signature(keys, body, headers.get("x-signature"))
    except SignatureError as exc:
        return exc.reason
    return "accepted"


@pytest.mark.parametrize(
    ("copy", "checked_by", "expected"),
    [
        ("as captured", "webhook-signature", "accepted"),
        ("as captured", "X-Signature", "accepted"),
        ("body with one character changed", "webhook-signature", "no_matching_signature"),
        ("body with one character changed", "X-Signature", "no_matching_signature"),
        ("body re-serialised as equivalent JSON", "webhook-signature", "no_matching_signature"),
        ("body re-serialised as equivalent JSON", "X-Signature", "no_matching_signature"),
        ("checked with a wrong secret", "webhook-signature", "no_matching_signature"),
        ("checked with a wrong secret", "X-Signature", "no_matching_signature"),
        ("without webhook-id", "webhook-signature", "missing_header"),
        ("without webhook-timestamp", "webhook-signature", "missing_header"),
        ("without webhook-signature", "webhook-signature", "missing_header"),
        ("without X-Signature", "X-Signature", "missing_header"),
        ("webhook-signature not v1,<base64>", "webhook-signature", "malformed_header"),
        ("webhook-timestamp not an integer", "webhook-signature", "malformed_header"),
        ("X-Signature not sha256=<64 hex>", "X-Signature", "malformed_header"),
        ("webhook-timestamp moved 1 s, not re-signed", "webhook-signature", "no_matching_signature"),
        ("webhook-id changed, not re-signed", "webhook-signature", "no_matching_signature"),
        ("re-signed 300 s in the past", "webhook-signature", "accepted"),
        ("re-signed 300 s in the future", "webhook-signature", "accepted"),
        ("re-signed 301 s in the past", "webhook-signature", "timestamp_too_old"),
        ("re-signed 301 s in the future", "webhook-signature", "timestamp_too_new"),
    ],
)
def test_the_reference_verifier_rejects_a_delivery_once_altered_or_stale(
    copy: str, checked_by: str, expected: str
) -> None:
    body, changes, held = COPIES[copy]
    headers: dict[str, str] = _captured()
    for name, value in changes.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    assert _verdict(checked_by, body, headers, held) == expected


def test_the_reference_verifier_rejects_a_delivery_replayed_after_it_was_processed() -> None:
    guard = ReplayGuard(clock=lambda: NOW)
    headers = _captured()
    assert _verdict("webhook-signature", DELIVERED, headers, [CURRENT], replay_guard=guard) == "accepted"
    guard.remember(headers["webhook-id"], timestamp=NOW, now=NOW)
    assert _verdict("webhook-signature", DELIVERED, headers, [CURRENT], replay_guard=guard) == "replayed"


_HOLDS = {
    "current": [CURRENT],
    "next": [NEXT],
    "current and next": [CURRENT, NEXT],
    "next and current": [NEXT, CURRENT],
    "unrelated": [UNRELATED],
}


@pytest.mark.parametrize(
    ("signed_with", "holds", "checked_by", "expected"),
    [
        ("current", "current and next", "webhook-signature", "accepted"),
        ("current", "next and current", "webhook-signature", "accepted"),
        ("current", "current and next", "X-Signature", "accepted"),
        ("next", "current and next", "webhook-signature", "accepted"),
        ("next", "current and next", "X-Signature", "accepted"),
        ("current and next", "current", "webhook-signature", "accepted"),
        ("current and next", "next", "webhook-signature", "accepted"),
        ("current and next", "unrelated", "webhook-signature", "no_matching_signature"),
    ],
)
def test_during_a_rotation_the_reference_verifier_accepts_either_secret(
    signed_with: str, holds: str, checked_by: str, expected: str
) -> None:
    keys = [signing_key_bytes(s) for s in _HOLDS[signed_with]]
    assert _verdict(checked_by, DELIVERED, _captured(keys), _HOLDS[holds]) == expected


# -- the relay's signing configuration (docs/webhooks.md, "Rotating the secret", configuration table) --


@pytest.mark.parametrize(
    ("secret", "accepted"),
    [
        ("a" * 31, False),  # 31 UTF-8 bytes
        ("a" * 32, True),
        ("é" * 16, True),  # 16 characters, 32 UTF-8 bytes: bytes are what count
        ("whsec_" + base64.b64encode(b"k" * 31).decode(), False),  # 48 characters standing for 31 bytes
        ("whsec_" + base64.b64encode(b"k" * 32).decode(), True),
    ],
)
def test_the_relay_refuses_secrets_shorter_than_32_bytes(
    secret: str, accepted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from service.config import Settings

    for name in ("ACTIONS_SIGNING_SECRET", "ACTIONS_SIGNING_SECRETS_EXTRA"):
        monkeypatch.delenv(name, raising=False)
    for field in ("actions_signing_secret", "actions_signing_secrets_extra"):
        value: object = secret if field == "actions_signing_secret" else [secret]
        if accepted:
            Settings(_env_file=None, **{field: value})  # type: ignore[call-arg]
        else:
            with pytest.raises(ValidationError, match="32 bytes"):
                Settings(_env_file=None, **{field: value})  # type: ignore[call-arg]


def test_the_delivery_settings_default_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.config import Settings

    for name in (
        "WEBHOOK_TIMEOUT_S",
        "WEBHOOK_MAX_ATTEMPTS",
        "WEBHOOK_BACKOFF_BASE_S",
        "ACTIONS_SIGNING_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.webhook_timeout_s, s.webhook_max_attempts, s.webhook_backoff_base_s) == (5.0, 3, 0.2)
    assert s.actions_signing_secret is None and s.signing_keys == []  # unsigned (and warned at start-up)


def test_a_webhook_url_off_the_allowlist_keeps_the_relay_from_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from service.config import Settings

    for name in ("WEBHOOK_URL", "WEBHOOK_ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="is not in WEBHOOK_ALLOWED_HOSTS"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            webhook_url="https://hooks.example.com/relay",
            webhook_allowed_hosts=["other.example.com"],
        )
    ok = Settings(_env_file=None, webhook_url="https://hooks.example.com/relay")  # type: ignore[call-arg]
    assert ok.allowed_hosts == frozenset({"hooks.example.com:443"})  # WEBHOOK_URL's own host and port
