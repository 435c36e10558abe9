"""Both webhook signatures of a captured delivery recomputed by the gate's own oracle
(:mod:`gate.oracles.webhooks`), and the evidence of each step.

``X-Signature`` is ``sha256=`` + hex HMAC-SHA256 of the body, ``webhook-signature`` is ``v1,`` +
base64 HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``. The evidence shows the signed
bytes, how the key is derived and the MACs computed and received — never a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any

from features.support.executes import Delivery
from gate.client.receiver import Capture
from gate.oracles import webhooks as wh


def keys_of(secrets_: Sequence[str]) -> list[bytes]:
    return [wh.signing_key(s) for s in secrets_]


def key_form(secret: str) -> str:
    """How the HMAC key is derived from a secret, for the evidence (never the secret)."""
    n = len(wh.signing_key(secret))
    if secret.startswith(wh.WHSEC_PREFIX):
        return f"base64-decoded bytes of the whsec_ secret ({n} bytes; not shown)"
    return f"UTF-8 bytes of the secret as written ({n} bytes; not shown)"


def secret_like(secret: str) -> str:
    """A fresh random secret of the same form as ``secret`` (for a wrong, next or unrelated secret)."""
    if secret.startswith(wh.WHSEC_PREFIX):
        return whsec_secret()
    return secrets.token_hex(32)


def whsec_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return wh.WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


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


def recompute_x_signature(capture: Capture, secret: str) -> dict[str, Any]:
    computed = wh.x_signature(wh.signing_key(secret), capture.body)
    received = capture.header("X-Signature")
    return {
        "scheme": "X-Signature (seed, GitHub-compatible)",
        "step_1_signed_bytes": "the raw body as received (below), nothing prepended",
        "signed_text": capture.body.decode("utf-8", "replace"),
        "signed_size": len(capture.body),
        "step_2_key": key_form(secret),
        "step_3_hmac": "HMAC-SHA256(key, signed bytes), hex, prefixed 'sha256='",
        "computed": computed,
        "received": received,
        "match": received is not None and hmac.compare_digest(computed, received.strip()),
    }


def recompute_standard(capture: Capture, secrets_: Sequence[str]) -> dict[str, Any]:
    msg_id = capture.header("webhook-id") or ""
    ts = capture.header("webhook-timestamp") or ""
    content = wh.signed_content(msg_id, ts, capture.body)
    received = wh.v1_entries(capture.header("webhook-signature"))
    computed = [wh.v1_signature(k, msg_id, ts, capture.body) for k in keys_of(secrets_)]
    return {
        "scheme": "Standard Webhooks v1",
        "step_1_signed_content": "webhook-id + '.' + webhook-timestamp + '.' + raw body, as received",
        "signed_text": content.decode("utf-8", "replace"),
        "signed_size": len(content),
        "step_2_key": [key_form(s) for s in secrets_],
        "step_3_hmac": "HMAC-SHA256(key, signed content), base64 (standard alphabet, padded), prefixed 'v1,'",
        "computed": computed,
        "received": capture.header("webhook-signature"),
        "match": any(hmac.compare_digest(c, "v1," + r) for c in computed for r in received),
    }
