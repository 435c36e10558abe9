"""Negative and rotation cases for the reference verifier, made from one real captured delivery.

Each case is a :class:`Copy` of the delivery altered in exactly one way (re-signed with the real
secret where the fault is not the signature itself), checked by ``service.signing``'s
``verify_standard`` or ``verify_x_signature``; the verdict, reason code and message go to the
evidence beside the row of the feature's table that asked for it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from features.signing_recompute import hex_hmac, secret_like, standard_sign
from features.steps.common import Delivery
from service.config import signing_key_bytes
from service.signing import ReplayGuard, SignatureError, verify_standard, verify_x_signature

STANDARD = "webhook-signature"
X_SIG = "X-Signature"


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


def verdict_of(copy: Copy, checked_by: str, now: int, guard: ReplayGuard | None = None) -> tuple[str, str]:
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
        return verdict_of(copy, checked_by, now)
    assert checked_by == STANDARD, "only the Standard Webhooks verifier keeps a replay guard"
    guard = ReplayGuard()
    first, why = verdict_of(copy, checked_by, now, guard)
    if first != "accepted":
        return first, f"first delivery already refused: {why}"
    guard.remember(copy.headers["webhook-id"], timestamp=int(copy.headers["webhook-timestamp"]), now=now)
    return verdict_of(copy, checked_by, now, guard)


def make_probe(delivery: Delivery, current: str) -> Probe:
    """The captured delivery, the keys a receiver may hold (``current`` is the target's signing secret)
    and the verifier's clock, to make the copies from."""
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


def negative_cases(p: Probe, datatable: list[list[str]]) -> list[dict[str, Any]]:
    """Each row's copy of the delivery (``delivery copy``) checked by its verifier (``checked by``)."""
    out = []
    for row in _rows(datatable):
        make = COPIES.get(row["delivery copy"])
        assert make is not None, f"unknown delivery copy {row['delivery copy']!r}; known: {sorted(COPIES)}"
        copy = make(p)
        out.append(_result(row, copy, *_check(copy, row["checked by"], p.now)))
    return out


def rotation_cases(p: Probe, datatable: list[list[str]]) -> list[dict[str, Any]]:
    """Each row's delivery (``signed with`` some secrets) checked by a receiver holding others."""
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
    return out
