"""Steps for features/signing.feature: signed webhook delivery, checked on the bytes the receiver got.

Every scenario executes a real action and reads the delivery the receiver captured byte for byte.
Both signatures are recomputed independently of the relay's signer (plain ``hmac``, see
:mod:`features.signing_recompute`): ``X-Signature`` is ``sha256=`` + hex HMAC-SHA256 of the body,
``webhook-signature`` is ``v1,`` + base64 HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``.
The verdicts the criteria name come from the relay's published reference verifier
(``service.signing``, as a receiver would copy it) and the independent ``standardwebhooks`` package.
The negative cases (:mod:`features.signing_cases`) are copies of a real captured delivery, each
altered in exactly one way (re-signed with the real secret where the fault is not the signature
itself). Notes for SIGNING-E2E.md go to ``recorder.note("signing", ...)``: the headers and body as
received, each recomputation step, each verdict — never a secret.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from features.recording import Recorder
from features.signing_cases import STANDARD, Copy, make_probe, negative_cases, rotation_cases, verdict_of
from features.signing_recompute import (
    delivery_evidence,
    keys_of,
    recompute_standard,
    recompute_x_signature,
    secret_like,
    v1_entries,
)
from features.steps.common import Delivery, deliver, message
from gate.receiver import ReceiverClient
from gate.target import Credential, Target
from service.config import signing_key_bytes


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


@when("the reference verifier checks these copies of the delivery", target_fixture="verdicts")
def _(
    delivery: Delivery, target: Target, datatable: list[list[str]], signing_note: dict[str, Any]
) -> list[dict[str, Any]]:
    p = make_probe(delivery, _target_secrets(target)[0])
    out = negative_cases(p, datatable)
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
    p = make_probe(delivery, _target_secrets(target)[0])
    out = rotation_cases(p, datatable)
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
        verdict, why = verdict_of(copy, STANDARD, int(time.time()))
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
