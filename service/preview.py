"""Stateless ``preview_id`` tokens: preview has no side effects, yet execute can redeem what it showed.

A token is ``base64url(payload) "." base64url(HMAC-SHA256(key, payload))`` where the payload is the
canonical JSON of the resolved action, its workspace and an expiry. Execute verifies the MAC in
constant time, refuses expired tokens and tokens minted for another workspace, and delivers exactly
the previewed body. Replicas share tokens when they share the key (``PREVIEW_SECRET``, or derived from
the signing secret / admin key); with neither configured each process draws a random key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable

from service.actions import ResolvedAction
from service.config import Settings

_DERIVE_LABEL = b"relay/preview-id/v1"


class PreviewTokenError(ValueError):
    pass


def preview_key(settings: Settings) -> bytes:
    if settings.preview_secret is not None:
        return settings.preview_secret.get_secret_value().encode("utf-8")
    seed = settings.signing_keys[0] if settings.signing_keys else None
    if seed is None and settings.admin_key is not None:
        seed = settings.admin_key.get_secret_value().encode("utf-8")
    if seed is None:
        return os.urandom(32)
    return hmac.new(seed, _DERIVE_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PreviewSigner:
    def __init__(self, key: bytes, *, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self._clock = clock

    def _mac(self, payload_b64: str) -> bytes:
        return hmac.new(self._key, payload_b64.encode("ascii"), hashlib.sha256).digest()

    def mint(self, action: ResolvedAction) -> str:
        payload = {
            "v": 1,
            "a": action.action,
            "p": action.params,
            "w": action.workspace,
            "d": action.destination,
            "exp": int(self._clock()) + self.ttl_s,
        }
        p64 = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8"))
        return f"{p64}.{_b64(self._mac(p64))}"

    def redeem(self, token: str, *, workspace: str) -> ResolvedAction:
        p64, dot, m64 = token.partition(".")
        if not dot or not p64 or not m64:
            raise PreviewTokenError("preview_id is malformed")
        try:
            mac = _unb64(m64)
            payload = json.loads(_unb64(p64))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise PreviewTokenError("preview_id is malformed") from None
        if not hmac.compare_digest(mac, self._mac(p64)):
            raise PreviewTokenError("preview_id is not valid (not issued by this service, or altered)")
        if not isinstance(payload, dict) or payload.get("v") != 1:
            raise PreviewTokenError("preview_id has an unknown version")
        if payload.get("w") != workspace:
            raise PreviewTokenError("preview_id was issued to another workspace")
        if int(payload.get("exp", 0)) < self._clock():
            raise PreviewTokenError(f"preview_id has expired (valid for {self.ttl_s} s); preview again")
        return ResolvedAction(
            action=str(payload["a"]),
            params=dict(payload["p"]),
            workspace=workspace,
            destination=str(payload["d"]),
        )
