"""Webhook signatures: how the relay signs a delivery, and the reference verifier receivers can copy.

Two schemes sign every delivery with the same HMAC-SHA256 keys (see ``config.signing_key_bytes``):

* ``X-Signature: sha256=<hex>`` -- the seed's header, GitHub-compatible: an HMAC of the exact body bytes.
  It does not cover a timestamp, so on its own it cannot stop a replay.
* Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``) -- an HMAC of
  ``{id}.{timestamp}.{body}``, base64, ``v1,`` prefixed; one entry per configured key, so a secret can
  be rotated without downtime. The timestamp bounds how long a captured request can be replayed.

Everything here is pure (no I/O, no logging): the delivery code and receivers share it, and it is
tested against published vectors (RFC 4231, GitHub's docs, the Standard Webhooks libraries).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "ReplayGuard",
    "SignatureError",
    "new_webhook_id",
    "signed_headers",
    "standard_signature",
    "verify_standard",
    "verify_x_signature",
    "x_signature",
]

X_SIGNATURE_PREFIX = "sha256="
SIGNATURE_VERSION = "v1"
# Standard Webhooks' reference libraries use five minutes in both directions.
DEFAULT_TOLERANCE_S = 300

# The signed content is "{id}.{timestamp}.{body}": an id containing "." (or whitespace, which would
# break the header) could shift the field boundaries, so ids we mint or accept for signing are limited
# to this shape. Receivers accept any non-empty id: the signature already covers it.
WEBHOOK_ID_RE = re.compile(r"^[A-Za-z0-9_:\-]{1,255}$")
_TIMESTAMP_RE = re.compile(r"^[0-9]{1,15}$")
_HEX_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
# Bounds on attacker-controlled input, so verification cost stays small whatever is sent.
MAX_SIGNATURE_HEADER_CHARS = 8192
MAX_SIGNATURE_ENTRIES = 32


class SignatureError(ValueError):
    """A delivery failed verification. ``reason`` is a short machine code, ``str(err)`` says why.

    Reasons: ``missing_header``, ``malformed_header``, ``timestamp_too_old``, ``timestamp_too_new``,
    ``no_matching_signature``, ``replayed``. Messages never echo a computed signature: a verifier
    that did would be a signing oracle.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- signing --------------------------------------------------------------------------------------------


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _standard_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def _require_bytes(body: object) -> bytes:
    # A str here almost always means the body was decoded or re-serialised somewhere: refuse loudly
    # rather than sign (or verify) bytes that are not the ones on the wire.
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"body must be the raw request bytes, got {type(body).__name__}")
    return bytes(body)


def x_signature(key: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(key, body)>`` -- the seed's ``X-Signature`` value (GitHub's format)."""
    return X_SIGNATURE_PREFIX + hmac.new(key, _require_bytes(body), hashlib.sha256).hexdigest()


def standard_signature(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>`` per key, space-separated, primary first."""
    content = _standard_content(msg_id, timestamp, _require_bytes(body))
    return " ".join(
        f"{SIGNATURE_VERSION},{base64.b64encode(_hmac_sha256(k, content)).decode('ascii')}" for k in keys
    )


def new_webhook_id() -> str:
    """A fresh webhook id (``msg_`` + 26 random base32 characters, 128 bits). Reuse it for retries."""
    return "msg_" + base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def signed_headers(
    keys: Sequence[bytes], body: bytes, *, request_id: str, webhook_id: str, timestamp: int
) -> dict[str, str]:
    """Headers for one delivery attempt of ``body``.

    With keys: ``X-Signature`` (primary key only, as the seed sends it) and ``webhook-signature`` (every
    key, for rotation). Without keys the delivery goes out unsigned -- the same headers minus both
    signatures -- and the caller is expected to have warned loudly about it at start-up.
    """
    if not WEBHOOK_ID_RE.match(webhook_id):
        raise ValueError(f"webhook_id must match {WEBHOOK_ID_RE.pattern} (no '.', no whitespace)")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative integer of Unix seconds")
    body = _require_bytes(body)
    headers = {
        "Content-Type": "application/json",
        "X-Request-ID": request_id,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
    }
    if keys:
        headers["X-Signature"] = x_signature(keys[0], body)
        headers["webhook-signature"] = standard_signature(keys, webhook_id, timestamp, body)
    return headers


# -- verification ---------------------------------------------------------------------------------------


def _require_keys(keys: Sequence[bytes]) -> None:
    # Not a SignatureError: verifying with no secret is a receiver misconfiguration, not a bad request.
    if not keys:
        raise ValueError("no verification keys configured")


def verify_x_signature(keys: Sequence[bytes], body: bytes, header: str | None) -> None:
    """Check an ``X-Signature: sha256=<hex>`` header against ``body``; any configured key may match.

    Raises ``SignatureError`` on any failure and returns ``None`` on success. Note this scheme has no
    timestamp: prefer ``verify_standard`` where the sender provides it.
    """
    _require_keys(keys)
    body = _require_bytes(body)
    if header is None or (isinstance(header, str) and not header.strip()):
        raise SignatureError("missing_header", "X-Signature header is missing")
    if not isinstance(header, str):
        # e.g. the raw bytes of a header: refused like verify_standard refuses them, not a TypeError
        raise SignatureError("malformed_header", "X-Signature header must be a string")
    value = header.strip()
    hex_part = value[len(X_SIGNATURE_PREFIX) :]
    if not value.lower().startswith(X_SIGNATURE_PREFIX) or not _HEX_SHA256_RE.match(hex_part):
        raise SignatureError("malformed_header", "X-Signature must be 'sha256=' followed by 64 hex digits")
    received = bytes.fromhex(hex_part)
    matched = False
    for key in keys:
        # No early exit: the time taken does not reveal which key (if any) matched.
        matched |= hmac.compare_digest(_hmac_sha256(key, body), received)
    if not matched:
        raise SignatureError("no_matching_signature", "X-Signature does not match the body")


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    try:
        return {str(k).lower(): v for k, v in headers.items()}
    except (AttributeError, TypeError) as exc:
        raise SignatureError("malformed_header", "headers must be a mapping of names to values") from exc


def _parse_timestamp(raw: str) -> int:
    value = raw.strip()
    if not _TIMESTAMP_RE.match(value):
        raise SignatureError("malformed_header", "webhook-timestamp must be integer Unix seconds")
    return int(value)


def _parse_v1_signatures(raw: str) -> list[bytes]:
    if len(raw) > MAX_SIGNATURE_HEADER_CHARS:
        raise SignatureError("malformed_header", "webhook-signature header is too long")
    entries = raw.split()
    if len(entries) > MAX_SIGNATURE_ENTRIES:
        raise SignatureError("malformed_header", "webhook-signature carries too many signatures")
    found: list[bytes] = []
    seen_any = False
    for entry in entries:
        version, sep, sig = entry.partition(",")
        if not sep:
            continue
        seen_any = True
        if version != SIGNATURE_VERSION:
            continue  # other schemes (v1a, future versions) are for other verifiers
        try:
            decoded = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            continue  # a garbled entry cannot match; another entry still may
        found.append(decoded)
    if not seen_any:
        raise SignatureError("malformed_header", "webhook-signature must be '<version>,<base64>' entries")
    return found


def verify_standard(
    keys: Sequence[bytes],
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    replay_guard: ReplayGuard | None = None,
) -> None:
    """Verify a Standard Webhooks delivery: headers present, timestamp fresh, a ``v1`` signature matching.

    ``headers`` is looked up case-insensitively. The timestamp must be within ``tolerance_s`` of ``now``
    in both directions (exactly ``tolerance_s`` passes). Any ``v1`` entry matching any key passes; other
    versions are ignored. With a ``replay_guard``, an id it has remembered is refused as ``replayed``
    -- the guard is only consulted, never updated: call ``replay_guard.remember(...)`` once the delivery
    has been processed (see ``ReplayGuard``). Raises ``SignatureError``; returns ``None`` on success.
    """
    _require_keys(keys)
    body = _require_bytes(body)
    lowered = _lower_headers(headers)
    missing = [n for n in ("webhook-id", "webhook-timestamp", "webhook-signature") if not lowered.get(n)]
    if missing:
        raise SignatureError("missing_header", f"missing header(s): {', '.join(missing)}")
    msg_id, raw_ts, raw_sig = (
        lowered["webhook-id"],
        lowered["webhook-timestamp"],
        lowered["webhook-signature"],
    )
    if not isinstance(msg_id, str) or not isinstance(raw_ts, str) or not isinstance(raw_sig, str):
        raise SignatureError("malformed_header", "webhook headers must be strings")
    timestamp = _parse_timestamp(raw_ts)
    current = time.time() if now is None else now
    if timestamp < current - tolerance_s:
        raise SignatureError("timestamp_too_old", f"webhook-timestamp is more than {tolerance_s} s old")
    if timestamp > current + tolerance_s:
        raise SignatureError("timestamp_too_new", f"webhook-timestamp is more than {tolerance_s} s ahead")
    candidates = _parse_v1_signatures(raw_sig)
    try:
        content = _standard_content(msg_id, timestamp, body)
    except UnicodeEncodeError as exc:  # e.g. a lone surrogate smuggled in by a lenient HTTP stack
        raise SignatureError("malformed_header", "webhook-id is not valid text") from exc
    matched = False
    for key in keys:
        expected = _hmac_sha256(key, content)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("no_matching_signature", "no webhook-signature entry matches the body")
    # Only after the signature is proven: an unauthenticated request must not learn what was seen.
    if replay_guard is not None and replay_guard.seen(msg_id, now=current):
        raise SignatureError("replayed", f"webhook {msg_id} was already processed")


class ReplayGuard:
    """Remembers processed webhook ids for as long as a replay of them could still pass verification.

    Use it like this::

        verify_standard(keys, body, headers, replay_guard=guard)  # raises "replayed" for a known id
        process(body)                                              # idempotent on webhook-id!
        guard.remember(headers["webhook-id"], timestamp=int(headers["webhook-timestamp"]))

    Why remember only *after* processing: a sender retries a failed delivery with the same webhook-id
    (and a fresh timestamp). Remembering on arrival would refuse the retry of a delivery whose
    processing failed, and the event would be lost. The consequence is that two copies arriving at the
    same instant can both pass the guard -- which is why processing must be idempotent on webhook-id
    (e.g. a unique constraint on it in your database). The guard is the cheap front door; the
    idempotency key is the lock.

    An entry lives until ``timestamp + tolerance_s`` (after that the timestamp check refuses a replay of
    that request on its own). Memory is bounded by ``max_entries``: when full, the entries closest to
    expiry are dropped first. Methods are safe to call from several threads.
    """

    def __init__(
        self,
        *,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if tolerance_s < 0 or max_entries < 1:
            raise ValueError("tolerance_s must be >= 0 and max_entries >= 1")
        self._tolerance_s = tolerance_s
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: dict[str, float] = {}
        # (expires_at, id) min-heap; may hold stale pairs for ids remembered twice, skipped on pop.
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def seen(self, msg_id: str, *, now: float | None = None) -> bool:
        """True when ``msg_id`` was remembered and has not expired."""
        current = self._clock() if now is None else now
        with self._lock:
            expires_at = self._expiry.get(msg_id)
            return expires_at is not None and expires_at >= current

    def remember(self, msg_id: str, *, timestamp: int, now: float | None = None) -> None:
        """Record ``msg_id`` as processed; ``timestamp`` is the delivery's ``webhook-timestamp``."""
        current = self._clock() if now is None else now
        # A later retry carries a later timestamp: keep whichever expiry is furthest away.
        expires_at = max(timestamp, current) + self._tolerance_s
        with self._lock:
            self._purge(current)
            if expires_at <= self._expiry.get(msg_id, float("-inf")):
                return
            while len(self._expiry) >= self._max_entries and msg_id not in self._expiry:
                self._pop_soonest()
            self._expiry[msg_id] = expires_at
            heapq.heappush(self._heap, (expires_at, msg_id))

    def _pop_soonest(self) -> None:
        while self._heap:
            expires_at, msg_id = heapq.heappop(self._heap)
            if self._expiry.get(msg_id) == expires_at:
                del self._expiry[msg_id]
                return

    def _purge(self, current: float) -> None:
        while self._heap and self._heap[0][0] < current:
            expires_at, msg_id = heapq.heappop(self._heap)
            if self._expiry.get(msg_id) == expires_at:
                del self._expiry[msg_id]
        # Stale pairs (ids re-remembered with a later expiry) would otherwise let the heap outgrow the
        # dict; rebuild when they dominate.
        if len(self._heap) > 2 * len(self._expiry) + 64:
            self._heap = [(e, i) for i, e in self._expiry.items()]
            heapq.heapify(self._heap)
