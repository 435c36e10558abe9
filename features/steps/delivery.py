"""Steps for features/delivery.feature: how the relay answers the receiver's answers.

The gate's receiver is scripted (gate/stack/receiver.py: a status, headers, a delay, a trickled answer, a
dropped connection) and answers 200 again when the scenario ends, whatever happened. What one execute
made the relay do is :class:`features.support.delivery_attempts.Attempts`; signatures are judged by the gate's
own oracle (:mod:`gate.oracles.webhooks`). The backoff scenario's replica steps are in
:mod:`features.steps.delivery_backoff`. Notes for the evidence go to ``recorder.note("delivery", ...)``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from features.support.delivery_attempts import (
    REDIRECTED,
    SLACK_S,
    Attempts,
    backoff_bound,
    collect,
    execute_budget_s,
    execute_through,
    need_attempts,
    reply_for,
    rows,
)
from features.support.executes import message, notify
from features.support.recording import ExchangeRecorder
from features.support.signing_recompute import keys_of
from gate.client.receiver import ReceiverClient
from gate.client.target import Credential, Target
from gate.oracles import webhooks as wh


@pytest.fixture
def delivery_note(recorder: ExchangeRecorder) -> dict[str, Any]:
    note: dict[str, Any] = {}
    recorder.note("delivery", note)
    return note


@pytest.fixture
def scripted(receiver: ReceiverClient) -> Iterator[ReceiverClient]:
    """The receiver, answering 200 again once the scenario is over, whatever it scripted."""
    try:
        yield receiver
    finally:
        receiver.script()


# -- arranging the receiver's answers --------------------------------------------------------------


@given("the receiver answers the next attempts with", target_fixture="script")
def _(
    scripted: ReceiverClient, target: Target, datatable: list[list[str]], delivery_note: dict[str, Any]
) -> list[dict[str, Any]]:
    answers = rows(datatable)
    need_attempts(target, len(answers) + 1)
    replies = [reply_for(r["answer"], target=target) for r in answers]
    scripted.script(replies)
    delivery_note["script"] = [
        {"answer": r["answer"], "reply": rep} for r, rep in zip(answers, replies, strict=True)
    ]
    return replies


@given(parsers.parse("the receiver answers every attempt with {status:d}"), target_fixture="script")
def _(scripted: ReceiverClient, status: int, delivery_note: dict[str, Any]) -> list[dict[str, Any]]:
    scripted.script(default_status=status)
    delivery_note["script"] = f"every attempt answered {status}"
    return []


# -- executing ----------------------------------------------------------------------------------------


@when("the developer executes an action through the scripted receiver", target_fixture="attempts")
def _(
    recorder: ExchangeRecorder,
    dev: Credential,
    scripted: ReceiverClient,
    target: Target,
    delivery_note: dict[str, Any],
) -> Attempts:
    a = execute_through(recorder, target.base_url, dev, scripted, target, notify(message("scripted")))
    delivery_note["deliveries"] = [a.evidence()]
    return a


@when("the developer executes a previewed action through the scripted receiver", target_fixture="attempts")
def _(
    recorder: ExchangeRecorder,
    http: httpx.Client,
    dev: Credential,
    scripted: ReceiverClient,
    target: Target,
    delivery_note: dict[str, Any],
) -> Attempts:
    p = http.post("/actions/preview", headers=dev.authorization, json=notify(message("retried")))
    assert p.status_code == 200, f"preview answered {p.status_code}: {p.text[:300]}"
    preview = p.json()
    a = execute_through(
        recorder, target.base_url, dev, scripted, target, {"preview_id": preview["preview_id"]}
    )
    delivery_note["preview"] = {k: preview.get(k) for k in ("body", "body_sha256")}
    delivery_note["deliveries"] = [a.evidence()]
    a.reply = {"preview_body": preview["body"]}
    return a


@when(
    "the developer executes an action once for each first answer of the receiver",
    target_fixture="table",
)
def _(
    recorder: ExchangeRecorder,
    dev: Credential,
    scripted: ReceiverClient,
    target: Target,
    datatable: list[list[str]],
    delivery_note: dict[str, Any],
) -> list[tuple[dict[str, str], Attempts]]:
    out = []
    for row in rows(datatable):
        reply = reply_for(row["first answer"], target=target)
        scripted.script([reply])
        a = execute_through(
            recorder, target.base_url, dev, scripted, target, notify(message(row["first answer"]))
        )
        a.reply = reply
        scripted.script()
        out.append((row, a))
    delivery_note["deliveries"] = [{**row, **a.evidence()} for row, a in out]
    return out


# -- what the relay made of them --------------------------------------------------------------------


def _status_and_count(a: Attempts, *, status: int, attempts: int, what: str) -> None:
    assert a.status == status, (
        f"{what}: the execute answered {a.status}, expected {status}: {a.execution.response.text[:300]}"
    )
    assert len(a.captures) == attempts, (
        f"{what}: the receiver got {len(a.captures)} attempt(s), expected {attempts} "
        f"(arrivals {[round(c.received_at, 3) for c in a.captures]}, paths {[c.path for c in a.captures]})"
    )
    assert a.reported_attempts == attempts, (
        f"{what}: the execute reports {a.reported_attempts} attempt(s), the receiver got {len(a.captures)}"
    )


@then(parsers.parse("the receiver got {n:d} attempts and the execute answered 200 reporting {m:d} attempts"))
def _(attempts: Attempts, n: int, m: int) -> None:
    assert n == m
    _status_and_count(attempts, status=200, attempts=n, what="after the scripted answers")


@then("every attempt carries the webhook-id and X-Request-ID the execute answered with")
def _(attempts: Attempts) -> None:
    want = (attempts.doc.get("webhook_id"), attempts.doc.get("request_id"))
    got = [(c.header("webhook-id"), c.header("X-Request-ID")) for c in attempts.captures]
    assert want[0] and want[1], f"the execute names no webhook_id or request_id: {attempts.doc}"
    assert all(g == want for g in got), (
        f"the attempts of one event carry other ids than the execute answered with {want}: {got}"
    )


@then("every attempt's body is byte for byte the body the preview announced")
def _(attempts: Attempts) -> None:
    announced = str(attempts.reply["preview_body"]).encode("utf-8")
    differ = [i + 1 for i, c in enumerate(attempts.captures) if c.body != announced]
    assert not differ, (
        f"attempt(s) {differ} carried other bytes than the preview announced (and attempt 1 sent): "
        f"{[c.body[:120] for c in attempts.captures]}"
    )


@then("each attempt's webhook-timestamp is the second it was signed, new on every retry")
def _(attempts: Attempts, delivery_note: dict[str, Any]) -> None:
    caps = attempts.captures
    stamps = [c.header("webhook-timestamp") or "" for c in caps]
    assert all(s.isascii() and s.isdigit() for s in stamps), (
        f"webhook-timestamp not integer seconds: {stamps}"
    )
    first_ts, first_at = int(stamps[0]), caps[0].received_at
    drift = [
        round((int(s) - first_ts) - (c.received_at - first_at), 3) for s, c in zip(stamps, caps, strict=True)
    ]
    delivery_note["timestamps"] = {"webhook_timestamp": stamps, "drift_vs_arrival_s": drift}
    # seconds are floored when signed: one second of rounding, plus the time from signing to arrival
    late = [i + 1 for i, d in enumerate(drift) if abs(d) > 1.5]
    assert not late, (
        f"attempt(s) {late} carry a webhook-timestamp that is not when they were sent: timestamps {stamps}, "
        f"arrivals {[round(c.received_at, 3) for c in caps]} (a retry must be signed afresh)"
    )


@then("each attempt is signed for its own timestamp with the signing secret")
def _(attempts: Attempts, target: Target, delivery_note: dict[str, Any]) -> None:
    assert target.signing_secrets, "needs the signing secret (@needs-signing-secret)"
    keys = keys_of(target.signing_secrets)
    verdicts = []
    for c in attempts.captures:
        std = wh.verify_standard(keys, c.headers, c.body, now=c.received_at)
        xs = wh.verify_x_signature(keys[:1], c.header("X-Signature"), c.body)
        verdicts.append({"webhook-signature": str(std), "X-Signature": str(xs)})
    delivery_note["signatures"] = verdicts
    wrong = [
        (i + 1, v)
        for i, v in enumerate(verdicts)
        if v != {"webhook-signature": "accepted", "X-Signature": "accepted"}
    ]
    assert not wrong, f"attempts the gate's verifier refuses (attempt, verdicts): {wrong}"


@then("every delivery made the attempts its row says, and the execute answered as its row says")
def _(table: list[tuple[dict[str, str], Attempts]]) -> None:
    wrong = []
    for row, a in table:
        try:
            _status_and_count(
                a, status=int(row["execute answers"]), attempts=int(row["attempts"]), what=row["first answer"]
            )
            if a.status == 502:
                detail = str(a.execution.json.get("detail") or "")
                code = re.match(r"\d{3}", row["first answer"])
                assert code is None or code[0] in detail, (
                    f"{row['first answer']}: the 502 does not say why (no {code[0] if code else ''} in "
                    f"{detail!r})"
                )
        except AssertionError as exc:
            wrong.append(str(exc))
    assert not wrong, "\n".join(wrong)


@then("no attempt followed a redirect")
def _(table: list[tuple[dict[str, str], Attempts]]) -> None:
    followed = [
        (row["first answer"], c.method, c.path)
        for row, a in table
        for c in a.captures
        if c.path.startswith(REDIRECTED)
    ]
    assert not followed, f"the relay followed redirects to the Location the receiver named: {followed}"


@then("each retry came WEBHOOK_TIMEOUT_S after the attempt before it, within its backoff")
def _(attempts: Attempts, target: Target, delivery_note: dict[str, Any]) -> None:
    t = target.delivery_timeout_s
    gaps = attempts.gaps()
    bounds = [
        (round(t - 0.25, 3), round(t + backoff_bound(target, n) + SLACK_S, 3))
        for n in range(1, len(gaps) + 1)
    ]
    delivery_note["timeout"] = {"WEBHOOK_TIMEOUT_S": t, "gaps_s": gaps, "bounds_s": bounds}
    wrong = [
        (n + 1, g, b) for n, (g, b) in enumerate(zip(gaps, bounds, strict=True)) if not b[0] <= g <= b[1]
    ]
    assert not wrong, (
        f"attempts the relay did not cut off at WEBHOOK_TIMEOUT_S={t:g} s (attempt, seconds until the next, "
        f"allowed): {wrong}"
    )


@then("the receiver got WEBHOOK_MAX_ATTEMPTS attempts, and none after the execute answered")
def _(attempts: Attempts, scripted: ReceiverClient, target: Target, delivery_note: dict[str, Any]) -> None:
    n = target.delivery_max_attempts
    # a relay making one attempt more would make it within a backoff of the last one
    time.sleep(backoff_bound(target, n) + 0.5)
    late = collect(
        scripted,
        attempts.execution,
        after=attempts.captures[-1].seq if attempts.captures else 0,
        answered_at=attempts.answered_at,
    )
    delivery_note["after_the_answer"] = [c.received_at for c in late.captures]
    assert len(attempts.captures) == n, (
        f"the receiver got {len(attempts.captures)} attempts; WEBHOOK_MAX_ATTEMPTS is {n}"
    )
    assert not late.captures, f"{len(late.captures)} more attempt(s) arrived after the execute answered"


@then("the execute answered 502 naming the failure and reporting WEBHOOK_MAX_ATTEMPTS attempts")
def _(attempts: Attempts, target: Target) -> None:
    n = target.delivery_max_attempts
    assert attempts.status == 502, (
        f"the execute answered {attempts.status}: {attempts.execution.response.text[:300]}"
    )
    detail = str(attempts.execution.json.get("detail") or "")
    assert detail and "500" in detail, f"the 502 does not say why the delivery failed: {detail!r}"
    assert attempts.reported_attempts == n, (
        f"the execute reports {attempts.reported_attempts} attempts, not {n}"
    )


# -- Retry-After -------------------------------------------------------------------------------------


@then("each retry waited as its row says")
def _(table: list[tuple[dict[str, str], Attempts]], target: Target, delivery_note: dict[str, Any]) -> None:
    wrong = []
    for row, a in table:
        gaps = a.gaps()
        said = row["next attempt"]
        m = re.fullmatch(r"not sooner than (\d+) s after", said)
        if m is not None:
            if len(a.captures) < 2:
                wrong.append(f"{row['first answer']}: no retry at all (execute {a.status})")
            elif gaps[0] < float(m[1]) - 0.05:
                wrong.append(f"{row['first answer']}: retried after {gaps[0]:.2f} s, sooner than it asked")
            continue
        m = re.fullmatch(r"none, or within (\d+) s", said)
        assert m is not None, f"unknown 'next attempt' {said!r}"
        limit = float(m[1]) + backoff_bound(target, 1) + SLACK_S
        if len(a.captures) >= 2 and gaps[0] > limit:
            wrong.append(f"{row['first answer']}: waited {gaps[0]:.1f} s, more than {m[1]} s")
        if a.answered_at - a.captures[0].received_at > execute_budget_s(target):
            wrong.append(f"{row['first answer']}: the execute answered only after the Retry-After")
    assert not wrong, "\n".join(wrong)
