"""Steps for features/delivery.feature: how the relay answers the receiver's answers.

The gate's receiver is scripted (gate/receiver.py: a status, headers, a delay, a trickled answer, a
dropped connection) and answers 200 again when the scenario ends, whatever happened. Each execute's
attempts are the captures after it that carry its webhook-id or its X-Request-ID (or that arrived at
the path a scripted redirect pointed to); their arrival times on the receiver's clock show how long
the relay waited between them. Signatures are judged by the gate's own oracle
(:mod:`gate.oracles.webhooks`). WEBHOOK_TIMEOUT_S, WEBHOOK_MAX_ATTEMPTS and WEBHOOK_BACKOFF_BASE_S
are the target's (``[deliveries]`` of the target config; the reference stack's own settings).
Notes for the evidence go to ``recorder.note("delivery", ...)``.
"""

from __future__ import annotations

import email.utils
import itertools
import math
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from features import skips
from features.recording import Recorder
from features.signing_recompute import keys_of
from features.steps.common import Execution, admitted_execute, message, notify
from gate.oracles import webhooks as wh
from gate.receiver import Capture, ReceiverClient
from gate.target import Credential, Target

MAX_RETRY_AFTER_S = 30.0  # docs/webhooks.md: Retry-After is honoured up to 30 s
MAX_BACKOFF_S = 30.0  # docs/webhooks.md: the backoff bound is capped at 30 s
REDIRECTED = "/_gate-redirected/"  # where a scripted redirect points (the receiver captures it)
# what scheduling on a busy machine may add to a wait the relay makes (both ends on loopback)
SLACK_S = 1.0


@pytest.fixture
def delivery_note(recorder: Recorder) -> dict[str, Any]:
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


def backoff_bound(target: Target, n: int) -> float:
    """The most the relay may wait before attempt n+1 (docs/webhooks.md, WEBHOOK_BACKOFF_BASE_S)."""
    return min(MAX_BACKOFF_S, target.delivery_backoff_base_s * 2 ** (n - 1))


def execute_budget_s(target: Target) -> float:
    """How long an execute may take before the gate stops waiting: every attempt timing out, every
    backoff at its bound, and one Retry-After at its 30 s limit, plus slack."""
    n = target.delivery_max_attempts
    backoffs = sum(backoff_bound(target, k) for k in range(1, n))
    return n * (target.delivery_timeout_s + SLACK_S) + backoffs + MAX_RETRY_AFTER_S + 5.0


# -- the receiver's answers, in words ---------------------------------------------------------------

_ANSWERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\d{3})"), "status"),
    (re.compile(r"(\d{3}) with Retry-After: (\d+)"), "retry-after"),
    (re.compile(r"(\d{3}) with Retry-After: an HTTP-date (\d+) s ahead"), "retry-after-date"),
    (re.compile(r"(\d{3}) to another path of the receiver"), "redirect"),
    (re.compile(r"the connection closed without an answer"), "drop"),
    (re.compile(r"200 after WEBHOOK_TIMEOUT_S \+ ([\d.]+) s"), "late"),
    (re.compile(r"200 trickled over WEBHOOK_TIMEOUT_S \+ ([\d.]+) s"), "trickle"),
]


def reply_for(answer: str, *, target: Target) -> dict[str, Any]:
    """The receiver reply (gate/receiver.py's script) a table's words ask for."""
    for pattern, kind in _ANSWERS:
        m = pattern.fullmatch(answer.strip())
        if m is None:
            continue
        if kind == "status":
            return {"status": int(m[1])}
        if kind == "retry-after":
            return {"status": int(m[1]), "headers": {"Retry-After": m[2]}}
        if kind == "retry-after-date":
            # whole seconds from the next one on: the date never asks for less than it says
            when_ = email.utils.formatdate(math.ceil(time.time()) + int(m[2]), usegmt=True)
            return {"status": int(m[1]), "headers": {"Retry-After": when_}}
        if kind == "redirect":
            assert target.receiver_url is not None
            location = f"{target.receiver_url}{REDIRECTED}{uuid.uuid4().hex}"
            return {"status": int(m[1]), "headers": {"Location": location}}
        if kind == "drop":
            return {"drop": True}
        if kind == "late":
            return {"status": 200, "delay_s": target.delivery_timeout_s + float(m[1])}
        return {"status": 200, "trickle_s": target.delivery_timeout_s + float(m[1])}
    raise AssertionError(
        f"unknown receiver answer {answer!r}; known forms: {[p.pattern for p, _ in _ANSWERS]}"
    )


def _rows(datatable: list[list[str]]) -> list[dict[str, str]]:
    head, *rows = datatable
    return [dict(zip([h.strip() for h in head], (c.strip() for c in r), strict=True)) for r in rows]


# -- what one execute made the relay do -------------------------------------------------------------


@dataclass
class Attempts:
    """One execute and the attempts the receiver captured for it, oldest first."""

    execution: Execution
    captures: list[Capture]
    answered_at: float  # when the execute's answer arrived (Unix seconds, the gate's clock)
    reply: dict[str, Any] = field(default_factory=dict)  # the first scripted answer, for tables

    @property
    def doc(self) -> dict[str, Any]:
        """The execute's result: its JSON, or the ``execution`` a 502 problem carries."""
        body = self.execution.json
        inner = body.get("execution")
        return inner if isinstance(inner, dict) else body

    @property
    def reported_attempts(self) -> int | None:
        value = (self.doc.get("delivery") or {}).get("attempts")
        return int(value) if isinstance(value, int) else None

    @property
    def status(self) -> int:
        return self.execution.response.status_code

    def gaps(self) -> list[float]:
        """Seconds between the arrivals of consecutive attempts."""
        t = [c.received_at for c in self.captures]
        return [round(b - a, 3) for a, b in itertools.pairwise(t)]

    def evidence(self) -> dict[str, Any]:
        return {
            "execute_status": self.status,
            "execute": {k: self.doc.get(k) for k in ("request_id", "webhook_id", "delivery")},
            "detail": self.execution.json.get("detail"),
            "attempts": [
                {
                    "seq": c.seq,
                    "path": c.path,
                    "method": c.method,
                    "received_at": c.received_at,
                    "webhook_id": c.header("webhook-id"),
                    "x_request_id": c.header("X-Request-ID"),
                    "webhook_timestamp": c.header("webhook-timestamp"),
                    "body_bytes": len(c.body),
                }
                for c in self.captures
            ],
            "gaps_s": self.gaps(),
        }


def _belongs(c: Capture, doc: dict[str, Any]) -> bool:
    return (
        c.header("webhook-id") == doc.get("webhook_id")
        or c.header("X-Request-ID") == doc.get("request_id")
        or c.path.startswith(REDIRECTED)
    )


def collect(receiver: ReceiverClient, execution: Execution, *, after: int, answered_at: float) -> Attempts:
    a = Attempts(execution, [], answered_at)
    a.captures = sorted((c for c in receiver.captures(after) if _belongs(c, a.doc)), key=lambda c: c.seq)
    return a


def execute_through(
    recorder: Recorder,
    base_url: str,
    dev: Credential,
    receiver: ReceiverClient,
    target: Target,
    body: dict[str, Any],
) -> Attempts:
    """Execute ``body`` on ``base_url`` and collect the attempts the receiver saw for it."""
    after = receiver.last_seq()
    with recorder.client(base_url, timeout=execute_budget_s(target)) as client:
        try:
            ex = admitted_execute(client, dev, body, target=target)
        except httpx.TimeoutException:
            raise AssertionError(
                f"the execute did not answer within {execute_budget_s(target):.0f} s: every attempt "
                f"bounded by WEBHOOK_TIMEOUT_S ({target.delivery_timeout_s:g} s), every Retry-After by "
                f"{MAX_RETRY_AFTER_S:g} s, at most {target.delivery_max_attempts} attempts"
            ) from None
    return collect(receiver, ex, after=after, answered_at=time.time())


def _need_attempts(target: Target, n: int) -> None:
    if target.delivery_max_attempts < n:
        skips.not_applicable(
            f"{target.name}: the scenario needs {n} attempts of one delivery and the target makes "
            f"{target.delivery_max_attempts} at most ([deliveries].max_attempts)"
        )


# -- arranging the receiver's answers --------------------------------------------------------------


@given("the receiver answers the next attempts with", target_fixture="script")
def _(
    scripted: ReceiverClient, target: Target, datatable: list[list[str]], delivery_note: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = _rows(datatable)
    _need_attempts(target, len(rows) + 1)
    replies = [reply_for(r["answer"], target=target) for r in rows]
    scripted.script(replies)
    delivery_note["script"] = [
        {"answer": r["answer"], "reply": rep} for r, rep in zip(rows, replies, strict=True)
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
    recorder: Recorder,
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
    recorder: Recorder,
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
    recorder: Recorder,
    dev: Credential,
    scripted: ReceiverClient,
    target: Target,
    datatable: list[list[str]],
    delivery_note: dict[str, Any],
) -> list[tuple[dict[str, str], Attempts]]:
    out = []
    for row in _rows(datatable):
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


# -- backoff and jitter, on a replica of the gate's ----------------------------------------------


@dataclass(frozen=True)
class Replica:
    base_url: str
    max_attempts: int
    backoff_base_s: float


@given(
    parsers.parse(
        "a relay replica with WEBHOOK_MAX_ATTEMPTS={attempts:d} and WEBHOOK_BACKOFF_BASE_S={base:f}"
    ),
    target_fixture="replica",
)
def _(target: Target, attempts: int, base: float, request: pytest.FixtureRequest) -> Replica:
    assert target.stack is not None, "needs the reference stack (@needs-control)"
    settings = {"WEBHOOK_MAX_ATTEMPTS": str(attempts), "WEBHOOK_BACKOFF_BASE_S": f"{base:g}"}
    cm = target.stack.extra_replica(settings)
    url = cm.__enter__()
    request.addfinalizer(lambda: cm.__exit__(None, None, None))
    return Replica(url, attempts, base)


@when(parsers.parse("the developer executes {count:d} actions on that replica"), target_fixture="series")
def _(
    replica: Replica,
    recorder: Recorder,
    dev: Credential,
    scripted: ReceiverClient,
    target: Target,
    count: int,
    delivery_note: dict[str, Any],
) -> list[Attempts]:
    out = [
        execute_through(
            recorder, replica.base_url, dev, scripted, target, notify(message(f"backoff #{i + 1}"))
        )
        for i in range(count)
    ]
    delivery_note["replica"] = {
        "WEBHOOK_MAX_ATTEMPTS": replica.max_attempts,
        "WEBHOOK_BACKOFF_BASE_S": replica.backoff_base_s,
    }
    delivery_note["deliveries"] = [a.evidence() for a in out]
    return out


@then(parsers.parse("each delivery made exactly {n:d} attempts"))
def _(series: list[Attempts], n: int) -> None:
    got = [len(a.captures) for a in series]
    assert got == [n] * len(series), f"attempts per delivery: {got}, expected {n} each (WEBHOOK_MAX_ATTEMPTS)"


def _ratios(series: list[Attempts], replica: Replica) -> list[tuple[int, float, float]]:
    """(n, wait before attempt n+1, its bound) for every retry of every delivery."""
    out = []
    for a in series:
        for n, gap in enumerate(a.gaps(), start=1):
            out.append((n, gap, min(MAX_BACKOFF_S, replica.backoff_base_s * 2 ** (n - 1))))
    return out


@then("every wait before attempt n+1 was within its bound base · 2^(n-1), give or take 0.3 s of overhead")
def _(series: list[Attempts], replica: Replica, delivery_note: dict[str, Any]) -> None:
    waits = _ratios(series, replica)
    delivery_note["backoff"] = [
        {"n": n, "wait_s": g, "bound_s": b, "fraction": round(g / b, 3)} for n, g, b in waits
    ]
    over = [(n, g, b) for n, g, b in waits if g > b + 0.3]
    assert waits and not over, f"waits longer than their backoff bound (n, wait, bound): {over}"


@then("the waits were spread across their bounds, neither all at the bound nor all near zero")
def _(series: list[Attempts], replica: Replica) -> None:
    fractions = [round(g / b, 3) for _, g, b in _ratios(series, replica)]
    # full jitter draws each wait uniformly from [0, bound]: six draws all at >= 97 % of their bounds
    # (no jitter: a wait is the bound plus overhead, always >= 1) or all below 20 % (no backoff at all)
    # happen by chance with odds below 1e-6 and 1e-4
    assert min(fractions) < 0.97, f"every wait sat at its bound: no jitter ({fractions} of the bound)"
    assert max(fractions) > 0.2, f"every wait was near zero: no backoff ({fractions} of the bound)"
