"""Signed webhook deliveries judged from what a receiver got: the key a secret stands for, both
signatures, the Standard Webhooks checks. Written from docs/webhooks.md and the Standard Webhooks
specification (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md), never
imported from the service under test.

Key derivation (docs/webhooks.md, "What the relay sends")
    a secret ``whsec_<base64>`` stands for its base64-decoded bytes; any other secret for its UTF-8
    bytes as written (``openssl rand -hex 32`` gives 64 hex *characters*: the key is those 64 bytes).
``X-Signature`` (the seed's scheme, GitHub's ``X-Hub-Signature-256`` format)
    ``sha256=`` + lower-case hex HMAC-SHA256(key, body).
Standard Webhooks ``v1``
    HMAC-SHA256(key, ``{webhook-id}.{webhook-timestamp}.{body}``), base64 (standard alphabet, padded),
    ``v1,`` prefixed; ``webhook-signature`` is a space-separated list of such entries, entries of other
    versions ignored. A delivery verifies when any ``v1`` entry equals the MAC under any key held
    (compared in constant time) and ``webhook-timestamp`` is integer seconds within ±300 s of the
    verifier's clock.

Verification returns a :class:`Verdict` — accepted, or the reason it was not (``missing``,
``malformed``, ``too_old``, ``too_new``, ``no_match``) with a message that never echoes a computed
MAC — so a scenario can say exactly what a target got wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

WHSEC_PREFIX = "whsec_"
X_SIGNATURE_PREFIX = "sha256="
TOLERANCE_S = 300
_TIMESTAMP = re.compile(r"[0-9]+", re.ASCII)
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)

Reason = Literal["accepted", "missing", "malformed", "too_old", "too_new", "no_match"]
Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True)
class Verdict:
    reason: Reason
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.reason == "accepted"

    def __str__(self) -> str:
        return self.reason if not self.detail else f"{self.reason}: {self.detail}"


ACCEPTED = Verdict("accepted")


# -- keys and MACs -------------------------------------------------------------------------------------


def signing_key(secret: str) -> bytes:
    """The HMAC key ``secret`` stands for: ``whsec_<base64>`` decoded, anything else its UTF-8 bytes.

    Raises ``ValueError`` for a ``whsec_`` secret whose rest is not base64: such a secret stands for
    no key at all (the relay would refuse it at start-up).
    """
    if secret.startswith(WHSEC_PREFIX):
        try:
            return base64.b64decode(secret[len(WHSEC_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret must be whsec_ followed by base64") from None
    return secret.encode("utf-8")


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def x_signature(key: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(key, body)>``."""
    return X_SIGNATURE_PREFIX + hmac_sha256(key, body).hex()


def signed_content(webhook_id: str, timestamp: str, body: bytes) -> bytes:
    """What a ``v1`` signature covers: the id and timestamp exactly as sent, dots, the raw body."""
    return f"{webhook_id}.{timestamp}.".encode() + body


def v1_signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """One ``v1,<base64>`` entry."""
    mac = hmac_sha256(key, signed_content(webhook_id, timestamp, body))
    return "v1," + base64.b64encode(mac).decode("ascii")


def webhook_signature(keys: Sequence[bytes], webhook_id: str, timestamp: str, body: bytes) -> str:
    """A ``webhook-signature`` value: one ``v1`` entry per key, in order, space-separated."""
    return " ".join(v1_signature(k, webhook_id, timestamp, body) for k in keys)


def entries(header: str | None) -> list[tuple[str, str]]:
    """``webhook-signature`` split into ``(version, signature)`` pairs (an entry without a comma has
    an empty signature)."""
    out = []
    for entry in (header or "").split(" "):
        if entry:
            version, _, sig = entry.partition(",")
            out.append((version, sig))
    return out


def v1_entries(header: str | None) -> list[str]:
    """The signatures of the ``v1`` entries, as sent (base64 text)."""
    return [sig for version, sig in entries(header) if version == "v1"]


# -- verification --------------------------------------------------------------------------------------


def _lower(headers: Headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k).lower(): str(v) for k, v in items}


def verify_standard(
    keys: Sequence[bytes], headers: Headers, body: bytes, *, now: float, tolerance_s: int = TOLERANCE_S
) -> Verdict:
    """The Standard Webhooks check of a delivery (docs/webhooks.md, "Verifying: Standard Webhooks")."""
    if not keys:
        raise ValueError("verifying needs at least one key")
    h = _lower(headers)
    absent = [n for n in ("webhook-id", "webhook-timestamp", "webhook-signature") if not h.get(n)]
    if absent:
        return Verdict("missing", f"no {', '.join(absent)}")
    timestamp = h["webhook-timestamp"]
    if not _TIMESTAMP.fullmatch(timestamp):
        return Verdict("malformed", f"webhook-timestamp {timestamp!r} is not integer Unix seconds")
    age = now - int(timestamp)
    if age > tolerance_s:
        return Verdict("too_old", f"webhook-timestamp is {age:.0f} s behind the verifier's clock")
    if -age > tolerance_s:
        return Verdict("too_new", f"webhook-timestamp is {-age:.0f} s ahead of the verifier's clock")
    content = signed_content(h["webhook-id"], timestamp, body)
    expected = [hmac_sha256(k, content) for k in keys]
    received = []
    for sig in v1_entries(h["webhook-signature"]):
        try:
            received.append(base64.b64decode(sig, validate=True))
        except binascii.Error:
            continue  # an entry that is not base64 matches nothing; the others may still
    if not received:
        return Verdict("malformed", "webhook-signature has no v1,<base64> entry")
    if any(hmac.compare_digest(r, e) for r in received for e in expected):
        return ACCEPTED
    return Verdict("no_match", f"none of {len(received)} v1 entries is the MAC under the {len(keys)} key(s)")


def verify_x_signature(keys: Sequence[bytes], header: str | None, body: bytes) -> Verdict:
    """``X-Signature: sha256=<hex>`` against the body under any of ``keys``."""
    if not keys:
        raise ValueError("verifying needs at least one key")
    if not header:
        return Verdict("missing", "no X-Signature")
    hexpart = header.removeprefix(X_SIGNATURE_PREFIX)
    # lower case only, as docs/webhooks.md's verifiers compare it: theirs refuse upper-case hex
    if hexpart == header or not _HEX64.fullmatch(hexpart):
        return Verdict("malformed", f"X-Signature {header[:80]!r} is not sha256=<64 lower-case hex digits>")
    received = bytes.fromhex(hexpart)
    if any(hmac.compare_digest(received, hmac_sha256(k, body)) for k in keys):
        return ACCEPTED
    return Verdict("no_match", f"not the HMAC of the body under the {len(keys)} key(s)")
