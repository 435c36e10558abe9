"""Steps for features/signing.feature: signed webhook delivery, checked on the bytes the receiver got.

Every scenario executes a real action and reads the delivery the receiver captured byte for byte.
Both signatures are recomputed by the gate's own oracle (:mod:`gate.oracles.webhooks`, written from
docs/webhooks.md and checked against published vectors; see :mod:`features.support.signing_recompute` for the
evidence): ``X-Signature`` is ``sha256=`` + hex HMAC-SHA256 of the body, ``webhook-signature`` is
``v1,`` + base64 HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``, the key being what the
secret stands for. The independent ``standardwebhooks`` package verifies beside it. Nothing here
imports the service: code under test never grades itself. Notes for SIGNING-E2E.md go to
``recorder.note("signing", ...)``: the headers and body as received, each recomputation step, each
verdict — never a secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from features.support.executes import Delivery, deliver, message
from features.support.recording import ExchangeRecorder
from features.support.signing_recompute import (
    delivery_evidence,
    keys_of,
    recompute_standard,
    recompute_x_signature,
    secret_like,
    whsec_secret,
)
from gate.client.receiver import ReceiverClient
from gate.client.target import Credential, Target
from gate.oracles import webhooks as wh


@pytest.fixture
def signing_note(recorder: ExchangeRecorder) -> dict[str, Any]:
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


@when(
    parsers.parse("the developer executes the same action {count:d} times across the replicas"),
    target_fixture="deliveries",
)
def _(
    recorder: ExchangeRecorder,
    dev: Credential,
    receiver: ReceiverClient,
    target: Target,
    count: int,
    signing_note: dict[str, Any],
) -> list[Delivery]:
    out: list[Delivery] = []
    clients = [recorder.client(u, timeout=target.request_timeout_s) for u in target.base_urls]
    same = message("the same event, sent again")  # identical bodies: only the ids tell them apart
    try:
        for i in range(count):
            out.append(
                deliver(clients[i % len(clients)], dev, receiver, target, message=same, previewed=False)
            )
    finally:
        for c in clients:
            c.close()
    signing_note["deliveries"] = [
        {
            "replica": target.base_urls[i % len(target.base_urls)],
            "execute_request_id": d.execution.json.get("request_id"),
            "webhook_id": d.execution.json.get("webhook_id"),
            "received_webhook_id": [a.header("webhook-id") for a in d.attempts],
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
    entries = wh.v1_entries(delivery.header("webhook-signature"))
    assert entries, f"webhook-signature has no v1 entry: {delivery.header('webhook-signature')!r}"
    for e in entries:
        assert len(base64.b64decode(e, validate=True)) == 32, f"a v1 entry is not a base64 SHA-256 MAC: {e!r}"


@then("the delivery carries an X-Request-ID")
def _(delivery: Delivery) -> None:
    rid = delivery.header("X-Request-ID")
    assert rid and rid.strip(), (
        "the delivery has no X-Request-ID: it cannot be correlated with the relay's logs"
    )


@then("the delivery is UTF-8 JSON sent as Content-Type application/json")
def _(delivery: Delivery, signing_note: dict[str, Any]) -> None:
    ctype = delivery.header("Content-Type")
    signing_note["content_type"] = ctype
    media = (ctype or "").split(";")[0].strip().lower()
    assert media == "application/json", f"the delivery's Content-Type is {ctype!r}, not application/json"
    try:
        json.loads(delivery.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AssertionError(
            f"the delivered body is not UTF-8 JSON: {exc}: {delivery.body[:120]!r}"
        ) from None


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


@then("each delivery's webhook-id is the webhook id its execute answered with")
def _(deliveries: list[Delivery]) -> None:
    wrong = [
        (d.execution.json.get("webhook_id"), [a.header("webhook-id") for a in d.attempts])
        for d in deliveries
        if any(a.header("webhook-id") != d.execution.json.get("webhook_id") for a in d.attempts)
    ]
    assert not wrong, f"deliveries whose webhook-id is not the one their execute answered with: {wrong}"


@then("no two deliveries share an X-Request-ID or a webhook-id")
def _(deliveries: list[Delivery]) -> None:
    for name in ("X-Request-ID", "webhook-id"):
        ids = [d.header(name) for d in deliveries]
        assert len(set(ids)) == len(ids), (
            f"{name} repeats across {len(ids)} deliveries of the same action (each is its own event): {ids}"
        )


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
    step = recompute_x_signature(delivery.capture, _target_secrets(target)[0])
    signing_note.setdefault("recomputation", {})["x_signature"] = step
    assert step["received"] is not None, "the delivery has no X-Signature header"
    assert step["match"], (
        f"X-Signature {step['received']} is not the HMAC of the received bytes ({step['computed']}): "
        "the relay signed something other than what it sent"
    )


@then("the webhook-signature recomputed over id, timestamp and the received bytes matches")
def _(delivery: Delivery, target: Target, signing_note: dict[str, Any]) -> None:
    step = recompute_standard(delivery.capture, _target_secrets(target))
    signing_note.setdefault("recomputation", {})["webhook_signature"] = step
    assert step["received"], "the delivery has no webhook-signature header"
    assert step["match"], (
        f"no v1 entry of {step['received']!r} is the HMAC of id.timestamp.body ({step['computed']})"
    )


@then("the gate's verifier accepts the delivery at the time it arrived, holding only the signing secret")
def _(delivery: Delivery, target: Target, signing_note: dict[str, Any]) -> None:
    c = delivery.capture
    verdict = wh.verify_standard(keys_of(_target_secrets(target)), c.headers, c.body, now=c.received_at)
    signing_note.setdefault("recomputation", {})["gate_verifier"] = {
        "oracle": "gate.oracles.webhooks.verify_standard, ±300 s of the arrival time at the receiver",
        "webhook_timestamp": c.header("webhook-timestamp"),
        "received_at": c.received_at,
        "verdict": str(verdict),
    }
    assert verdict.accepted, f"the gate's verifier refuses the delivery as it arrived: {verdict}"


@then("the standardwebhooks package accepts the delivery")
def _(delivery: Delivery, target: Target, signing_note: dict[str, Any]) -> None:
    headers = delivery.capture.header_map()
    results: list[str | None] = []
    for secret in _target_secrets(target):
        try:
            # bytes, not str: the package base64-decodes a str secret (docs/webhooks.md, troubleshooting)
            Webhook(wh.signing_key(secret)).verify(delivery.body, headers, json_parse=False)
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


# -- a real relay in the middle of a rotation -------------------------------------------------------


@dataclass(frozen=True)
class RotatingRelay:
    """An extra replica: ACTIONS_SIGNING_SECRET=next (whsec_), ACTIONS_SIGNING_SECRETS_EXTRA=current,older."""

    base_url: str
    next: str = field(repr=False)
    current: str = field(repr=False)
    older: str = field(repr=False)

    @property
    def in_order(self) -> list[tuple[str, str]]:
        return [("next", self.next), ("current", self.current), ("older", self.older)]


@pytest.fixture
def rotating_relay(target: Target) -> Iterator[RotatingRelay]:
    assert target.stack is not None, "needs the reference stack (@needs-control)"
    current = _target_secrets(target)[0]
    # the next secret in the Standard Webhooks form, whatever form the current one has: both key
    # derivations are exercised by one delivery
    nxt, older = whsec_secret(), secret_like(current)
    settings = {"ACTIONS_SIGNING_SECRET": nxt, "ACTIONS_SIGNING_SECRETS_EXTRA": f"{current},{older}"}
    with target.stack.extra_replica(settings) as url:
        yield RotatingRelay(url, nxt, current, older)


@given(
    "a relay replica signing with a whsec_ next secret, and the current and an older secret as extras",
    target_fixture="relay",
)
def _(rotating_relay: RotatingRelay) -> RotatingRelay:
    return rotating_relay


@when("the developer executes a previewed action on that replica", target_fixture="delivery")
def _(
    relay: RotatingRelay,
    recorder: ExchangeRecorder,
    dev: Credential,
    receiver: ReceiverClient,
    target: Target,
    signing_note: dict[str, Any],
) -> Delivery:
    with recorder.client(relay.base_url, timeout=target.request_timeout_s) as client:
        d = deliver(client, dev, receiver, target, message=message("rotation"))
    signing_note["delivery"] = delivery_evidence(d)
    signing_note["relay"] = (
        "extra replica: ACTIONS_SIGNING_SECRET=next (whsec_ form), "
        "ACTIONS_SIGNING_SECRETS_EXTRA=current,older (the target's form)"
    )
    return d


@then(
    "the delivery carries one v1 webhook-signature entry per secret, space-separated, in the configured order"
)
def _(delivery: Delivery, relay: RotatingRelay, signing_note: dict[str, Any]) -> None:
    c = delivery.capture
    header = c.header("webhook-signature") or ""
    ts, msg_id = c.header("webhook-timestamp") or "", c.header("webhook-id") or ""
    expected = [(name, wh.v1_signature(wh.signing_key(s), msg_id, ts, c.body)) for name, s in relay.in_order]
    got = header.split(" ")
    signing_note.setdefault("recomputation", {})["webhook_signature"] = recompute_standard(
        c, [s for _, s in relay.in_order]
    )
    signing_note["rotation_entries"] = [
        {"secret": name, "entry": i, "matches": i < len(got) and got[i] == sig}
        for i, (name, sig) in enumerate(expected)
    ]
    assert got == [sig for _, sig in expected], (
        f"webhook-signature is {header!r}; expected {len(expected)} v1 entries separated by single "
        f"spaces, one per secret in the order next, current, older: "
        f"{[(n, sig) for n, sig in expected]}"
    )


@then(
    "the gate's verifier accepts it holding any one of the secrets, and refuses it holding an unrelated one"
)
def _(delivery: Delivery, relay: RotatingRelay, signing_note: dict[str, Any]) -> None:
    c = delivery.capture
    held = {name: [s] for name, s in relay.in_order}
    held["unrelated"] = [secret_like(relay.current)]
    results = {
        name: str(wh.verify_standard(keys_of(s), c.headers, c.body, now=c.received_at))
        for name, s in held.items()
    }
    signing_note["rotation_verdicts"] = results
    wrong = {
        name: verdict for name, verdict in results.items() if (verdict == "accepted") != (name != "unrelated")
    }
    assert not wrong, f"receivers holding one secret each got these verdicts: {results}"


@then("its X-Signature is made with the next secret alone")
def _(delivery: Delivery, relay: RotatingRelay, signing_note: dict[str, Any]) -> None:
    step = recompute_x_signature(delivery.capture, relay.next)
    signing_note.setdefault("recomputation", {})["x_signature"] = step
    assert step["match"], (
        f"X-Signature {step['received']!r} is not sha256= + the HMAC of the body under the next "
        f"(primary) secret alone ({step['computed']})"
    )
