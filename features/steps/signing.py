"""Steps for features/signing.feature: signed webhook delivery, checked on the bytes the receiver got.

Every scenario executes a real action and reads the delivery the receiver captured byte for byte.
Both signatures are recomputed here, independently of the relay's signer (plain ``hmac``):
``X-Signature`` is ``sha256=`` + hex HMAC-SHA256 of the body, ``webhook-signature`` is ``v1,`` +
base64 HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``. The verdicts the criteria name come
from the relay's published reference verifier (``service.signing``, as a receiver would copy it) and
the independent ``standardwebhooks`` package. The negative cases are copies of a real captured
delivery, each altered in exactly one way (re-signed with the real secret where the fault is not the
signature itself). Notes for SIGNING-E2E.md go to ``recorder.note("signing", ...)``: the headers and
body as received, each recomputation step, each verdict — never a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from features.recording import Recorder
from features.steps.common import Delivery, deliver, message
from gate.receiver import ReceiverClient
from gate.target import Credential, Target
from service.config import signing_key_bytes
from service.signing import ReplayGuard, SignatureError, verify_standard, verify_x_signature

STANDARD = "webhook-signature"
X_SIG = "X-Signature"


def keys_of(secrets_: Sequence[str]) -> list[bytes]:
    return [signing_key_bytes(s) for s in secrets_]


def key_form(secret: str) -> str:
    """How the HMAC key is derived from a secret, for the evidence (never the secret)."""
    n = len(signing_key_bytes(secret))
    if secret.startswith("whsec_"):
        return f"base64-decoded bytes of the whsec_ secret ({n} bytes; not shown)"
    return f"UTF-8 bytes of the secret as written ({n} bytes; not shown)"


def secret_like(secret: str) -> str:
    """A fresh random secret of the same form as ``secret`` (for a wrong, next or unrelated secret)."""
    if secret.startswith("whsec_"):
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_hex(32)


def hex_hmac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def standard_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def standard_sign(keys: Sequence[bytes], msg_id: str, timestamp: str, body: bytes) -> str:
    content = standard_content(msg_id, timestamp, body)
    return " ".join(
        "v1," + base64.b64encode(hmac.new(k, content, hashlib.sha256).digest()).decode() for k in keys
    )


def v1_entries(header: str | None) -> list[str]:
    return [e.partition(",")[2] for e in (header or "").split() if e.startswith("v1,")]


def delivery_evidence(d: Delivery) -> dict[str, Any]:
    c = d.capture
    return {
        "receiver_seq": c.seq,
        "method": c.method,
        "path": c.path,
        "received_at": c.received_at,
        "headers": [[k, v] for k, v in c.headers],
        "body": c.body.decode("utf-8", "replace"),
        "body_size": len(c.body),
        "body_sha256": hashlib.sha256(c.body).hexdigest(),
        "attempts": len(d.attempts),
        "execute": {k: d.execution.json.get(k) for k in ("request_id", "webhook_id", "delivery")},
    }


def recompute_x_signature(d: Delivery, secret: str) -> dict[str, Any]:
    computed = "sha256=" + hex_hmac(signing_key_bytes(secret), d.body)
    received = d.header("X-Signature")
    return {
        "scheme": "X-Signature (seed, GitHub-compatible)",
        "step_1_signed_bytes": "the raw body as received (below), nothing prepended",
        "signed_text": d.body.decode("utf-8", "replace"),
        "signed_size": len(d.body),
        "step_2_key": key_form(secret),
        "step_3_hmac": "HMAC-SHA256(key, signed bytes), hex, prefixed 'sha256='",
        "computed": computed,
        "received": received,
        "match": received is not None and hmac.compare_digest(computed, received.strip()),
    }


def recompute_standard(d: Delivery, secrets_: Sequence[str]) -> dict[str, Any]:
    msg_id = d.header("webhook-id") or ""
    ts = d.header("webhook-timestamp") or ""
    content = standard_content(msg_id, ts, d.body)
    received = v1_entries(d.header("webhook-signature"))
    computed = [
        base64.b64encode(hmac.new(k, content, hashlib.sha256).digest()).decode() for k in keys_of(secrets_)
    ]
    return {
        "scheme": "Standard Webhooks v1",
        "step_1_signed_content": "webhook-id + '.' + webhook-timestamp + '.' + raw body, as received",
        "signed_text": content.decode("utf-8", "replace"),
        "signed_size": len(content),
        "step_2_key": [key_form(s) for s in secrets_],
        "step_3_hmac": "HMAC-SHA256(key, signed content), base64 (standard alphabet, padded), prefixed 'v1,'",
        "computed": ["v1," + c for c in computed],
        "received": d.header("webhook-signature"),
        "match": any(hmac.compare_digest(c, r) for c in computed for r in received),
    }


@pytest.fixture
def signing_note(recorder: Recorder) -> dict[str, Any]:
    """The scenario's ``signing`` evidence note, filled in by the steps as they go."""
    note: dict[str, Any] = {}
    recorder.note("signing", note)
    return note


def _target_secrets(target: Target) -> list[str]:
    assert target.signing_secrets, "this step needs the target's signing secret (@needs-signing-secret)"
    return list(target.signing_secrets)


# -- executing ----------------------------------------------------------------------------------------


@when("the developer executes a previewed action", target_fixture="delivery")
def _(
    http: httpx.Client,
    dev: Credential,
    receiver: ReceiverClient,
    target: Target,
    signing_note: dict[str, Any],
) -> Delivery:
    d = deliver(http, dev, receiver, target, message=message("signing check"))
    signing_note["delivery"] = delivery_evidence(d)
    return d


@given("a signed delivery captured at the receiver", target_fixture="delivery")
def _(
    http: httpx.Client,
    dev: Credential,
    receiver: ReceiverClient,
    target: Target,
    signing_note: dict[str, Any],
) -> Delivery:
    d = deliver(http, dev, receiver, target, message=message("captured delivery"))
    signing_note["delivery"] = delivery_evidence(d)
    missing = [
        h for h in ("X-Signature", "webhook-id", "webhook-timestamp", "webhook-signature") if not d.header(h)
    ]
    assert not missing, f"the captured delivery is not signed: no {', '.join(missing)}"
    return d


@when(
    parsers.parse("the developer executes {count:d} actions across the replicas"), target_fixture="deliveries"
)
def _(
    recorder: Recorder,
    dev: Credential,
    receiver: ReceiverClient,
    target: Target,
    count: int,
    signing_note: dict[str, Any],
) -> list[Delivery]:
    out: list[Delivery] = []
    clients = [recorder.client(u, timeout=target.request_timeout_s) for u in target.base_urls]
    try:
        for i in range(count):
            out.append(
                deliver(
                    clients[i % len(clients)],
                    dev,
                    receiver,
                    target,
                    message=message(f"#{i + 1}"),
                    previewed=False,
                )
            )
    finally:
        for c in clients:
            c.close()
    signing_note["deliveries"] = [
        {
            "replica": target.base_urls[i % len(target.base_urls)],
            "execute_request_id": d.execution.json.get("request_id"),
            "webhook_id": d.header("webhook-id"),
            "received_x_request_id": [a.header("X-Request-ID") for a in d.attempts],
        }
        for i, d in enumerate(out)
    ]
    return out


# -- the delivery is signed and correlated ------------------------------------------------------------


@then("the delivery carries an X-Signature of the form sha256=<64 hex digits>")
def _(delivery: Delivery) -> None:
    value = delivery.header("X-Signature")
    assert value is not None, "the delivery has no X-Signature header: deliveries go out unsigned"
    assert re.fullmatch(r"sha256=[0-9a-fA-F]{64}", value.strip()), f"X-Signature is malformed: {value!r}"


@then("the delivery carries webhook-id, webhook-timestamp and v1 webhook-signature headers")
def _(delivery: Delivery) -> None:
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not delivery.header(h)]
    assert not missing, (
        f"the delivery lacks {', '.join(missing)}: it cannot be verified as a Standard Webhook"
    )
    ts = delivery.header("webhook-timestamp") or ""
    assert ts.isdigit(), f"webhook-timestamp is not integer Unix seconds: {ts!r}"
    entries = v1_entries(delivery.header("webhook-signature"))
    assert entries, f"webhook-signature has no v1 entry: {delivery.header('webhook-signature')!r}"
    for e in entries:
        assert len(base64.b64decode(e, validate=True)) == 32, f"a v1 entry is not a base64 SHA-256 MAC: {e!r}"


@then("the delivery carries an X-Request-ID")
def _(delivery: Delivery) -> None:
    rid = delivery.header("X-Request-ID")
    assert rid and rid.strip(), (
        "the delivery has no X-Request-ID: it cannot be correlated with the relay's logs"
    )


@then("each delivery's X-Request-ID is the request id its execute answered with")
def _(deliveries: list[Delivery]) -> None:
    wrong = [
        (d.execution.json.get("request_id"), [a.header("X-Request-ID") for a in d.attempts])
        for d in deliveries
        if any(a.header("X-Request-ID") != d.execution.json.get("request_id") for a in d.attempts)
    ]
    assert not wrong, (
        f"deliveries whose X-Request-ID is not their execute's request id (execute, received): {wrong}"
    )


@then("no two deliveries share an X-Request-ID")
def _(deliveries: list[Delivery]) -> None:
    ids = [d.header("X-Request-ID") for d in deliveries]
    assert len(set(ids)) == len(ids), f"X-Request-ID repeats across deliveries: {ids}"


# -- recomputation ------------------------------------------------------------------------------------


@then("the delivered body is byte for byte the body the preview announced")
def _(delivery: Delivery, signing_note: dict[str, Any]) -> None:
    assert delivery.preview is not None
    announced = delivery.preview["body"].encode("utf-8")
    signing_note["preview"] = {
        k: delivery.preview.get(k) for k in ("body", "body_sha256", "destination_host")
    }
    assert delivery.body == announced, (
        f"the receiver got other bytes than the preview announced: "
        f"{delivery.body[:200]!r} vs {announced[:200]!r}"
    )
    assert hashlib.sha256(delivery.body).hexdigest() == delivery.preview["body_sha256"]


@then("the X-Signature recomputed over the received bytes with the signing secret matches")
def _(delivery: Delivery, target: Target, signing_note: dict[str, Any]) -> None:
    step = recompute_x_signature(delivery, _target_secrets(target)[0])
    signing_note.setdefault("recomputation", {})["x_signature"] = step
    assert step["received"] is not None, "the delivery has no X-Signature header"
    assert step["match"], (
        f"X-Signature {step['received']} is not the HMAC of the received bytes ({step['computed']}): "
        "the relay signed something other than what it sent"
    )


@then("the webhook-signature recomputed over id, timestamp and the received bytes matches")
def _(delivery: Delivery, target: Target, signing_note: dict[str, Any]) -> None:
    step = recompute_standard(delivery, _target_secrets(target))
    signing_note.setdefault("recomputation", {})["webhook_signature"] = step
    assert step["received"], "the delivery has no webhook-signature header"
    assert step["match"], (
        f"no v1 entry of {step['received']!r} is the HMAC of id.timestamp.body ({step['computed']})"
    )


@then("the standardwebhooks package accepts the delivery")
def _(delivery: Delivery, target: Target, signing_note: dict[str, Any]) -> None:
    headers = delivery.capture.header_map()
    results: list[str | None] = []
    for secret in _target_secrets(target):
        try:
            # bytes, not str: the package base64-decodes a str secret (docs/webhooks.md, troubleshooting)
            Webhook(signing_key_bytes(secret)).verify(delivery.body, headers, json_parse=False)
            results.append(None)
        except WebhookVerificationError as exc:
            results.append(str(exc))
    accepted = any(r is None for r in results)
    signing_note.setdefault("recomputation", {})["standardwebhooks"] = {
        "package": f"standardwebhooks {version('standardwebhooks')}",
        "call": "Webhook(key_bytes).verify(raw_body, headers)  # real clock, ±5 min",
        "verified": accepted,
        "errors": [r for r in results if r is not None],
    }
    assert accepted, f"the standardwebhooks package rejects the delivery: {results}"


# -- negative cases from the captured delivery --------------------------------------------------------


@dataclass
class Copy:
    """A copy of the captured delivery with one fault, and the keys the receiver holds."""

    body: bytes
    headers: dict[str, str]
    keys: list[bytes]
    change: str
    replay: bool = False


@dataclass
class Probe:
    body: bytes
    headers: dict[str, str]  # lower-case names, as received
    current: bytes
    next: bytes
    unrelated: bytes
    now: int  # the verifier's clock for this check (Unix seconds)

    def copy(
        self,
        change: str,
        *,
        body: bytes | None = None,
        keys: list[bytes] | None = None,
        headers: dict[str, str | None] | None = None,
    ) -> Copy:
        """This delivery with ``change``: another body, other receiver keys, headers set (None removes)."""
        out = dict(self.headers)
        for name, value in (headers or {}).items():
            if value is None:
                out.pop(name.lower(), None)
            else:
                out[name.lower()] = value
        return Copy(
            self.body if body is None else body, out, [self.current] if keys is None else keys, change
        )


def _one_char_changed(p: Probe) -> Copy:
    i = max(i for i, b in enumerate(p.body) if chr(b).isascii() and chr(b).isalpha())
    ch = chr(p.body[i])
    body = p.body[:i] + ch.swapcase().encode() + p.body[i + 1 :]
    return p.copy(f"body byte {i} changed from {ch!r} to {ch.swapcase()!r}", body=body)


def _reserialised(p: Probe) -> Copy:
    body = json.dumps(json.loads(p.body)).encode()
    assert body != p.body, "re-serialising the body gave the same bytes: this case shows nothing"
    return p.copy(
        "body parsed and re-serialised with json.dumps defaults (same JSON, other bytes)", body=body
    )


def _resigned(offset: int) -> Callable[[Probe], Copy]:
    def make(p: Probe) -> Copy:
        ts = str(p.now + offset)
        sig = standard_sign([p.current], p.headers["webhook-id"], ts, p.body)
        when_ = f"{abs(offset)} s {'in the past' if offset < 0 else 'in the future'}"
        return p.copy(
            f"webhook-timestamp set {when_} of the verifier's clock, re-signed with the real secret",
            headers={"webhook-timestamp": ts, "webhook-signature": sig},
        )

    return make


def _unsigned_change(name: str, value: Callable[[Probe], str], change: str) -> Callable[[Probe], Copy]:
    return lambda p: p.copy(change, headers={name: value(p)})


COPIES: dict[str, Callable[[Probe], Copy]] = {
    "as captured": lambda p: p.copy("none"),
    "body with one character changed": _one_char_changed,
    "body re-serialised as equivalent JSON": _reserialised,
    "checked with a wrong secret": lambda p: p.copy(
        "receiver holds another secret of the same form", keys=[p.unrelated]
    ),
    "without webhook-id": lambda p: p.copy("webhook-id removed", headers={"webhook-id": None}),
    "without webhook-timestamp": lambda p: p.copy(
        "webhook-timestamp removed", headers={"webhook-timestamp": None}
    ),
    "without webhook-signature": lambda p: p.copy(
        "webhook-signature removed", headers={"webhook-signature": None}
    ),
    "without X-Signature": lambda p: p.copy("X-Signature removed", headers={"X-Signature": None}),
    "webhook-signature not v1,<base64>": _unsigned_change(
        "webhook-signature",
        lambda p: p.headers["webhook-signature"].replace(",", ":"),
        "',' after v1 replaced by ':'",
    ),
    "webhook-timestamp not an integer": _unsigned_change(
        "webhook-timestamp",
        lambda p: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(p.headers["webhook-timestamp"]))),
        "webhook-timestamp written as an ISO 8601 date",
    ),
    "X-Signature not sha256=<64 hex>": _unsigned_change(
        "X-Signature", lambda p: p.headers["x-signature"].removeprefix("sha256="), "'sha256=' prefix dropped"
    ),
    "webhook-timestamp moved 1 s, not re-signed": _unsigned_change(
        "webhook-timestamp",
        lambda p: str(int(p.headers["webhook-timestamp"]) + 1),
        "webhook-timestamp + 1, signature kept",
    ),
    "webhook-id changed, not re-signed": _unsigned_change(
        "webhook-id", lambda p: "msg_" + uuid.uuid4().hex, "another webhook-id, signature kept"
    ),
    "re-signed 300 s in the past": _resigned(-300),
    "re-signed 300 s in the future": _resigned(300),
    "re-signed 301 s in the past": _resigned(-301),
    "re-signed 301 s in the future": _resigned(301),
    "replayed after it was processed": lambda p: replace(
        p.copy("the same delivery verified again after ReplayGuard.remember(webhook-id)"), replay=True
    ),
}


def _signed_with(p: Probe, which: str) -> tuple[dict[str, str | None], str]:
    """Headers re-signed as a relay holding ``which`` secrets would sign (primary first)."""
    keys = {"current": [p.current], "next": [p.next], "current and next": [p.current, p.next]}[which]
    ts = p.headers["webhook-timestamp"]
    sig = standard_sign(keys, p.headers["webhook-id"], ts, p.body)
    return {"webhook-signature": sig, "X-Signature": "sha256=" + hex_hmac(keys[0], p.body)}, (
        f"re-signed with the {which} secret(s), same id and timestamp; X-Signature with the first"
    )


_HOLDS = {
    "current": lambda p: [p.current],
    "next": lambda p: [p.next],
    "current and next": lambda p: [p.current, p.next],
    "next and current": lambda p: [p.next, p.current],
    "unrelated": lambda p: [p.unrelated],
}


def _verdict(copy: Copy, checked_by: str, now: int, guard: ReplayGuard | None = None) -> tuple[str, str]:
    try:
        if checked_by == STANDARD:
            verify_standard(copy.keys, copy.body, copy.headers, now=now, replay_guard=guard)
        elif checked_by == X_SIG:
            verify_x_signature(copy.keys, copy.body, copy.headers.get("x-signature"))
        else:
            raise AssertionError(f"unknown verifier {checked_by!r}: use {STANDARD} or {X_SIG}")
    except SignatureError as exc:
        return exc.reason, str(exc)
    return "accepted", ""


def _check(copy: Copy, checked_by: str, now: int) -> tuple[str, str]:
    if not copy.replay:
        return _verdict(copy, checked_by, now)
    assert checked_by == STANDARD, "only the Standard Webhooks verifier keeps a replay guard"
    guard = ReplayGuard()
    first, why = _verdict(copy, checked_by, now, guard)
    if first != "accepted":
        return first, f"first delivery already refused: {why}"
    guard.remember(copy.headers["webhook-id"], timestamp=int(copy.headers["webhook-timestamp"]), now=now)
    return _verdict(copy, checked_by, now, guard)


def _probe(delivery: Delivery, target: Target) -> Probe:
    current = _target_secrets(target)[0]
    return Probe(
        body=delivery.body,
        headers=delivery.capture.header_map(),
        current=signing_key_bytes(current),
        next=signing_key_bytes(secret_like(current)),
        unrelated=signing_key_bytes(secret_like(current)),
        now=int(time.time()),
    )


def _result(row: dict[str, str], copy: Copy, verdict: str, why: str) -> dict[str, Any]:
    """One case for the evidence: the row's words, what was altered, and the verifier's verdict."""
    out = {k.replace(" ", "_"): v for k, v in row.items() if k != "verdict"}
    return {
        **out,
        "change": copy.change,
        "expected": row["verdict"],
        "outcome": "accepted" if verdict == "accepted" else "rejected",
        "reason_code": None if verdict == "accepted" else verdict,
        "message": why or None,
        "as_expected": verdict == row["verdict"],
    }


def _rows(datatable: list[list[str]]) -> list[dict[str, str]]:
    head, *rows = datatable
    return [dict(zip(head, (c.strip() for c in r), strict=True)) for r in rows]


@when("the reference verifier checks these copies of the delivery", target_fixture="verdicts")
def _(
    delivery: Delivery, target: Target, datatable: list[list[str]], signing_note: dict[str, Any]
) -> list[dict[str, Any]]:
    p = _probe(delivery, target)
    out = []
    for row in _rows(datatable):
        make = COPIES.get(row["delivery copy"])
        assert make is not None, f"unknown delivery copy {row['delivery copy']!r}; known: {sorted(COPIES)}"
        copy = make(p)
        out.append(_result(row, copy, *_check(copy, row["checked by"], p.now)))
    signing_note["verifier"] = (
        "service.signing.verify_standard / verify_x_signature (docs/webhooks.md), ±300 s"
    )
    signing_note["verifier_clock"] = p.now
    signing_note["negative_cases"] = out
    return out


@when(
    "the reference verifier checks the delivery signed and held with these secrets", target_fixture="verdicts"
)
def _(
    delivery: Delivery, target: Target, datatable: list[list[str]], signing_note: dict[str, Any]
) -> list[dict[str, Any]]:
    p = _probe(delivery, target)
    out = []
    for row in _rows(datatable):
        signed, holds = row["signed with"], row["receiver holds"]
        assert holds in _HOLDS, f"unknown 'receiver holds' {holds!r}; known: {sorted(_HOLDS)}"
        if signed == "current (as captured)":
            copy = p.copy("none", keys=_HOLDS[holds](p))
        else:
            headers, change = _signed_with(p, signed)
            copy = p.copy(change, keys=_HOLDS[holds](p), headers=headers)
        out.append(_result(row, copy, *_check(copy, row["checked by"], p.now)))
    signing_note["verifier"] = (
        "service.signing.verify_standard / verify_x_signature (docs/webhooks.md), ±300 s"
    )
    signing_note["secrets"] = (
        "current = the target's signing secret; next, unrelated = fresh random secrets of its form"
    )
    signing_note["rotation_cases"] = out
    return out


@then("every copy gets the verdict in its row")
def _(verdicts: list[dict[str, Any]]) -> None:
    wrong = [
        f"{ {k: v for k, v in r.items() if k not in ('outcome', 'as_expected')} }"
        for r in verdicts
        if not r["as_expected"]
    ]
    assert not wrong, "verdicts differ from the criteria:\n" + "\n".join(wrong)


# -- a real relay in the middle of a rotation -------------------------------------------------------


@dataclass(frozen=True)
class RotatingRelay:
    base_url: str
    current: str = field(repr=False)
    next: str = field(repr=False)


@pytest.fixture
def rotating_relay(target: Target) -> Iterator[RotatingRelay]:
    """One extra relay replica with ACTIONS_SIGNING_SECRET=<next> and the current secret as extra."""
    assert target.stack is not None, "needs the reference stack (@needs-control)"
    current = _target_secrets(target)[0]
    nxt = secret_like(current)
    settings = {"ACTIONS_SIGNING_SECRET": nxt, "ACTIONS_SIGNING_SECRETS_EXTRA": current}
    with target.stack.extra_replica(settings) as url:
        yield RotatingRelay(url, current, nxt)


@given("a relay replica signing with a next secret and the current one as extra", target_fixture="relay")
def _(rotating_relay: RotatingRelay) -> RotatingRelay:
    return rotating_relay


@when("the developer executes a previewed action on that replica", target_fixture="delivery")
def _(
    relay: RotatingRelay,
    recorder: Recorder,
    dev: Credential,
    receiver: ReceiverClient,
    target: Target,
    signing_note: dict[str, Any],
) -> Delivery:
    with recorder.client(relay.base_url, timeout=target.request_timeout_s) as client:
        d = deliver(client, dev, receiver, target, message=message("rotation"))
    signing_note["delivery"] = delivery_evidence(d)
    signing_note["relay"] = (
        "extra replica: ACTIONS_SIGNING_SECRET=next, ACTIONS_SIGNING_SECRETS_EXTRA=current"
    )
    return d


@then("the delivery carries one v1 webhook-signature entry per secret")
def _(delivery: Delivery) -> None:
    entries = v1_entries(delivery.header("webhook-signature"))
    assert len(entries) == 2, (
        f"expected 2 v1 entries (next, current), got {delivery.header('webhook-signature')!r}"
    )


@then("the reference verifier accepts it holding the current secret, the next secret or both")
def _(delivery: Delivery, relay: RotatingRelay, signing_note: dict[str, Any]) -> None:
    held = {"current": [relay.current], "next": [relay.next], "current and next": [relay.current, relay.next]}
    results = {}
    for name, secrets_ in held.items():
        copy = Copy(delivery.body, delivery.capture.header_map(), keys_of(secrets_), "none")
        verdict, why = _verdict(copy, STANDARD, int(time.time()))
        results[name] = {"verdict": verdict, "message": why or None}
    signing_note["rotation_verdicts"] = results
    signing_note.setdefault("recomputation", {})["webhook_signature"] = recompute_standard(
        delivery, [relay.next, relay.current]
    )
    refused = {k: v for k, v in results.items() if v["verdict"] != "accepted"}
    assert not refused, f"during a rotation, receivers holding these secrets refuse the delivery: {refused}"


@then("its X-Signature is made with the next secret")
def _(delivery: Delivery, relay: RotatingRelay, signing_note: dict[str, Any]) -> None:
    step = recompute_x_signature(delivery, relay.next)
    signing_note.setdefault("recomputation", {})["x_signature"] = step
    assert step["match"], f"X-Signature {step['received']} is not the HMAC with the next (primary) secret"
