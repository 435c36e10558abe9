"""Both webhook signatures recomputed independently of the relay's signer (plain ``hmac``), and the
evidence of each step.

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

from features.steps.common import Delivery
from service.config import signing_key_bytes


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
