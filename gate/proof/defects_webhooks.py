"""Deliberate defects of webhook delivery and signing (docs/webhooks.md): the catalogue's ``signing``
area beyond gate/proof/catalogue.py's first six.

Each is the one-to-ten-line change a developer could ship, bending the reference service's
:class:`~service.delivery.WebhookDeliverer` in one of two ways:

- a **bent deliverer**: the app's own deliverer (same keys, client, metrics hook, settings) turned into
  a subclass with one method or attribute changed — how it classifies an answer, waits, counts or
  bounds attempts (:func:`bend`);
- a **delivery hook**: an httpx request hook on the deliverer's client that rewrites what goes on the
  wire — headers signed with another key, joined another way, reused across retries
  (``Variant.delivery_hook``).

``caught_by`` names exactly the scenarios of features/signing.feature and features/delivery.feature
that fail against each (``relay-gate selftest --area signing`` proves it). Nothing here is reachable
from a service setting: only ``python -m gate.stack.relay --defect NAME`` builds them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

import service.delivery
from gate.proof import parts
from gate.proof.catalogue import (
    D_RETRY,
    S_HMAC,
    S_REQUEST_IDS,
    S_ROTATING_RELAY,
    S_SIGNED,
    S_STANDARD,
    Defect,
    Variant,
)
from service.config import Settings, signing_key_bytes
from service.delivery import MAX_BACKOFF_S, WebhookDeliverer
from service.signing import new_webhook_id, standard_signature, x_signature

# -- the scenarios that catch them (features/delivery.feature) --------------------------------------

D_STATUS = "A delivery is retried after a 5xx, a 408 or a 429, and ends at once on any other 4xx"
D_REDIRECT = "A redirect fails the delivery and is not followed, and any 2xx ends it"
D_RETRY_AFTER = "Retry-After on a 429 or a 503 is waited for, up to 30 s"
D_TIMEOUT = "An attempt is cut off at WEBHOOK_TIMEOUT_S however the receiver stalls, and retried"
D_EXHAUSTED = "A delivery the receiver keeps failing ends after WEBHOOK_MAX_ATTEMPTS attempts, answered 502"
D_BACKOFF = "Retries back off exponentially with full jitter, at a WEBHOOK_MAX_ATTEMPTS of 4"
D_REFUSED = "A refused connection is retried up to WEBHOOK_MAX_ATTEMPTS attempts, then answered 502"

# -- bent deliverers ------------------------------------------------------------------------------


def bend(
    cls: type[WebhookDeliverer], edit: Callable[[Any], None] = lambda d: None
) -> Callable[[FastAPI], None]:
    """A ``Variant.patch``: the app's deliverer becomes a ``cls`` with the same state, then ``edit``-ed."""

    def patch(app: FastAPI) -> None:
        relay = app.state.relay
        bent = object.__new__(cls)
        bent.__dict__.update(vars(relay.deliverer))
        edit(bent)
        relay.deliverer = bent

    return patch


class _Classified(WebhookDeliverer):
    """Each attempt's outcome rewritten by :meth:`_bend` (where the status is classified)."""

    def _bend(self, attempt: Any) -> Any:
        return attempt

    async def _attempt(self, url: str, body: bytes, *, request_id: str, webhook_id: str) -> Any:
        result = await super()._attempt(url, body, request_id=request_id, webhook_id=webhook_id)
        return self._bend(result)


class ClientErrorsRetried(_Classified):
    # `retryable = status >= 500 or status >= 400`: "a 4xx may be a deploy in progress on their side"
    def _bend(self, a: Any) -> Any:
        return dataclasses.replace(a, retryable=True) if a.outcome == "client_error" else a


class Only5xxRetried(_Classified):
    # `retryable = status >= 500`: 408 and 429 forgotten
    def _bend(self, a: Any) -> Any:
        return dataclasses.replace(a, retryable=False) if a.http_status in (408, 429) else a


class Only200Delivered(_Classified):
    # `if response.status_code == 200:` where 2xx was meant
    def _bend(self, a: Any) -> Any:
        if a.outcome == "delivered" and a.http_status != 200:
            return dataclasses.replace(
                a, outcome="client_error", error=f"HTTP {a.http_status}", retryable=False
            )
        return a


class Status501NotRetried(_Classified):
    # `if status == 501: return "client_error", False`: "Not Implemented will not be implemented by a retry"
    def _bend(self, a: Any) -> Any:
        if a.http_status == 501:
            return dataclasses.replace(a, outcome="client_error", retryable=False)
        return a


class ConnectErrorsNotRetried(_Classified):
    # `except httpx.ConnectError: retryable = False`: "nothing listens there, a retry will not help"
    def _bend(self, a: Any) -> Any:
        refused = a.outcome == "connection_error" and "(ConnectError)" in (a.error or "")
        return dataclasses.replace(a, retryable=False) if refused else a


class ConnectionErrorsNotRetried(_Classified):
    # "a reset connection means the receiver rejected us": only statuses and timeouts retried
    def _bend(self, a: Any) -> Any:
        return dataclasses.replace(a, retryable=False) if a.outcome == "connection_error" else a


class RetryAfterIgnored(_Classified):
    # the Retry-After is parsed for the log line but the wait is the backoff alone
    def _bend(self, a: Any) -> Any:
        return dataclasses.replace(a, retry_after_s=None)


class NoJitter(WebhookDeliverer):
    # the ceiling itself: every delivery that failed together retries together
    def _backoff_s(self, attempts: int) -> float:
        return float(min(MAX_BACKOFF_S, self._backoff_base_s * 2 ** (attempts - 1)))


class EqualJitter(WebhookDeliverer):
    # "equal jitter" (half the ceiling fixed, half random), mistaken for the full jitter documented
    def _backoff_s(self, attempts: int) -> float:
        ceiling = min(MAX_BACKOFF_S, self._backoff_base_s * 2 ** (attempts - 1))
        return ceiling / 2 + random.uniform(0.0, ceiling / 2)  # noqa: S311


class NoBackoff(WebhookDeliverer):
    # `await asyncio.sleep(0)` left from a test: retries hammer the receiver back to back
    def _backoff_s(self, attempts: int) -> float:
        return 0.0


class _PerAttempt(WebhookDeliverer):
    """What an attempt sends, bent from the second attempt of a webhook on (:meth:`_retry`)."""

    def _retry(self, body: bytes, request_id: str, webhook_id: str) -> tuple[bytes, str, str]:
        return body, request_id, webhook_id

    async def _attempt(self, url: str, body: bytes, *, request_id: str, webhook_id: str) -> Any:
        seen: set[str] = self.__dict__.setdefault("_seen_ids", set())
        if webhook_id in seen:
            body, request_id, webhook_id = self._retry(body, request_id, webhook_id)
        seen.add(webhook_id)
        return await super()._attempt(url, body, request_id=request_id, webhook_id=webhook_id)


class RetryGetsANewWebhookId(_PerAttempt):
    # new_webhook_id() called inside the attempt: every retry is a new event to the receiver
    def _retry(self, body: bytes, request_id: str, webhook_id: str) -> tuple[bytes, str, str]:
        return body, request_id, new_webhook_id()


class RetryGetsANewRequestId(_PerAttempt):
    # "each attempt is its own outbound request": a fresh X-Request-ID, the trail to the API call lost
    def _retry(self, body: bytes, request_id: str, webhook_id: str) -> tuple[bytes, str, str]:
        return body, str(uuid.uuid4()), webhook_id


class RetryBodyRebuilt(_PerAttempt):
    # retries rebuilt from the parsed event (as a queue would store it): same JSON, other bytes
    def _retry(self, body: bytes, request_id: str, webhook_id: str) -> tuple[bytes, str, str]:
        return json.dumps(json.loads(body)).encode(), request_id, webhook_id


def _plus_one_attempt(d: Any) -> None:
    # WEBHOOK_MAX_ATTEMPTS read as the retries after the first: `while attempts <= max_attempts`
    d._max_attempts += 1


def _no_whole_attempt_bound(d: Any) -> None:
    # the asyncio.timeout around the attempt dropped as redundant with httpx's timeouts, which bound
    # each read, not the answer: a receiver sending a byte at a time holds the attempt open
    d._timeout_s = 3600.0


def _connect_timeout_only(d: Any) -> None:
    # httpx.Timeout(None, connect=timeout_s): "a slow receiver is still working, don't cut it off"
    d._timeout = httpx.Timeout(None, connect=d._timeout_s)
    d._timeout_s = 3600.0


class _FollowingClient(httpx.AsyncClient):
    def stream(self, method: str, url: Any, **kwargs: Any) -> Any:
        kwargs["follow_redirects"] = True
        return super().stream(method, url, **kwargs)


def _follows_redirects(d: Any) -> None:
    # follow_redirects=True "so a receiver that moved keeps getting its webhooks"
    d._client = _FollowingClient(timeout=d._timeout, trust_env=False)
    d._owns_client = True


def _retry_after_unbounded(app: FastAPI) -> None:
    # the cap on Retry-After removed ("the receiver knows best"): a 429 asking for an hour holds the
    # execute for an hour. Module-wide, which is the relay process's one app (python -m gate.stack.relay).
    service.delivery.MAX_RETRY_AFTER_S = math.inf


# -- delivery hooks: what goes on the wire -------------------------------------------------------------


def _secrets(settings: Settings) -> list[str]:
    if settings.actions_signing_secret is None:
        raise RuntimeError("this defect needs ACTIONS_SIGNING_SECRET")
    return [
        s.get_secret_value()
        for s in (settings.actions_signing_secret, *settings.actions_signing_secrets_extra)
    ]


def _resign(request: httpx.Request, keys: list[bytes], *, join: str = " ") -> None:
    ts = int(request.headers["webhook-timestamp"])
    entries = standard_signature(keys, request.headers["webhook-id"], ts, request.content).split(" ")
    request.headers["webhook-signature"] = join.join(entries)
    request.headers["X-Signature"] = x_signature(keys[0], request.content)


_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def hex_secret_decoded(settings: Settings) -> parts.DeliveryHook:
    # "openssl rand -hex 32 is hex, so decode it": bytes.fromhex(secret) for a hex secret
    keys = [bytes.fromhex(s) if _HEX.fullmatch(s) else signing_key_bytes(s) for s in _secrets(settings)]

    async def hook(request: httpx.Request) -> None:
        _resign(request, keys)

    return hook


def whsec_prefix_kept(settings: Settings) -> parts.DeliveryHook:
    # every secret used as its UTF-8 text: a whsec_ secret keeps its prefix and is never base64-decoded
    keys = [s.encode() for s in _secrets(settings)]

    async def hook(request: httpx.Request) -> None:
        _resign(request, keys)

    return hook


def x_signature_last_secret(settings: Settings) -> parts.DeliveryHook:
    keys = [signing_key_bytes(s) for s in _secrets(settings)]

    async def hook(request: httpx.Request) -> None:
        # `for key in keys: headers["X-Signature"] = x_signature(key, body)`: the last key wins
        request.headers["X-Signature"] = x_signature(keys[-1], request.content)

    return hook


def entries_comma_separated(settings: Settings) -> parts.DeliveryHook:
    keys = [signing_key_bytes(s) for s in _secrets(settings)]

    async def hook(request: httpx.Request) -> None:
        # ", ".join(entries), as HTTP list headers are joined: one secret looks right, two do not
        _resign(request, keys, join=", ")

    return hook


def content_type_dropped(settings: Settings) -> parts.DeliveryHook:
    async def hook(request: httpx.Request) -> None:
        # the headers dict rebuilt from the signing helper's, Content-Type left out: httpx sends
        # content= bytes with none
        if "Content-Type" in request.headers:
            del request.headers["Content-Type"]

    return hook


def webhook_id_from_body(settings: Settings) -> parts.DeliveryHook:
    keys = [signing_key_bytes(s) for s in _secrets(settings)]

    async def hook(request: httpx.Request) -> None:
        # "an idempotency key made from the payload": the same action twice is one event to the receiver
        digest = base64.b32encode(hashlib.sha256(request.content).digest()).decode().lower()
        request.headers["webhook-id"] = "msg_" + digest[:26]
        _resign(request, keys)

    return hook


def headers_signed_once(settings: Settings) -> parts.DeliveryHook:
    first: dict[str, tuple[str, str]] = {}

    async def hook(request: httpx.Request) -> None:
        # the signed headers computed once, before the retry loop: every retry repeats the first
        # attempt's webhook-timestamp and signatures
        wid = request.headers["webhook-id"]
        ts, sig = first.setdefault(
            wid, (request.headers["webhook-timestamp"], request.headers["webhook-signature"])
        )
        request.headers["webhook-timestamp"], request.headers["webhook-signature"] = ts, sig

    return hook


def _date_retry_after_ignored(d: Any) -> None:
    # Retry-After read as `int(value)` when it is digits, else ignored: the HTTP-date form
    # (RFC 9110 §10.2.3) never waited for
    async def drop_dates(response: httpx.Response) -> None:
        value = response.headers.get("Retry-After")
        if value is not None and not value.strip().isdigit():
            del response.headers["Retry-After"]

    d._client = httpx.AsyncClient(
        timeout=d._timeout, trust_env=False, follow_redirects=False, event_hooks={"response": [drop_dates]}
    )
    d._owns_client = True


# -- the catalogue ---------------------------------------------------------------------------------

DEFECTS = (
    # what counts as delivered, what is retried
    Defect("redirects-followed", "signing",
           "follow_redirects=True: a 3xx is followed to its Location instead of failing the delivery",
           lambda: Variant(patch=bend(WebhookDeliverer, _follows_redirects)),
           caught_by=(D_REDIRECT,)),
    Defect("client-errors-retried", "signing",
           "every 4xx is retried like a 5xx (\"a deploy may be in progress on their side\")",
           lambda: Variant(patch=bend(ClientErrorsRetried)),
           caught_by=(D_STATUS,)),
    Defect("only-5xx-retried", "signing",
           "retryable = status >= 500: a 408 or a 429 fails the delivery at once",
           lambda: Variant(patch=bend(Only5xxRetried)),
           caught_by=(D_STATUS, D_RETRY_AFTER)),
    Defect("501-not-retried", "signing",
           "501 Not Implemented is classified as final like a 4xx (\"a retry will not implement it\")",
           lambda: Variant(patch=bend(Status501NotRetried)),
           caught_by=(D_STATUS,)),
    Defect("only-200-delivered", "signing",
           "`if status == 200` where 2xx was meant: a 201 or 204 fails the delivery",
           lambda: Variant(patch=bend(Only200Delivered)),
           caught_by=(D_REDIRECT,)),
    Defect("connection-errors-not-retried", "signing",
           "a connection closed without an answer ends the delivery instead of being retried",
           lambda: Variant(patch=bend(ConnectionErrorsNotRetried)),
           caught_by=(D_RETRY, D_REFUSED)),
    Defect("connect-errors-not-retried", "signing",
           "a refused connection (httpx.ConnectError) ends the delivery: \"nothing listens there\"",
           lambda: Variant(patch=bend(ConnectErrorsNotRetried)),
           caught_by=(D_REFUSED,)),
    # how long it waits
    Defect("retry-after-ignored", "signing",
           "Retry-After is read but the wait before the retry is the backoff alone",
           lambda: Variant(patch=bend(RetryAfterIgnored)),
           caught_by=(D_RETRY_AFTER,)),
    Defect("retry-after-http-date-ignored", "signing",
           "Retry-After is read only as delay-seconds: an HTTP-date is never waited for",
           lambda: Variant(patch=bend(WebhookDeliverer, _date_retry_after_ignored)),
           caught_by=(D_RETRY_AFTER,)),
    Defect("retry-after-unbounded", "signing",
           "the 30 s cap on Retry-After removed: a 429 asking for an hour holds the execute for an hour",
           lambda: Variant(patch=_retry_after_unbounded),
           caught_by=(D_RETRY_AFTER,)),
    Defect("backoff-without-jitter", "signing",
           "the backoff is the exponential ceiling itself: deliveries that failed together retry together",
           lambda: Variant(patch=bend(NoJitter)),
           caught_by=(D_BACKOFF,)),
    Defect("retries-without-backoff", "signing",
           "retries go out back to back, with no backoff at all",
           lambda: Variant(patch=bend(NoBackoff)),
           caught_by=(D_BACKOFF,)),
    Defect("backoff-equal-jitter", "signing",
           "equal jitter: the wait is half the backoff bound plus a random half, never in its lower half",
           lambda: Variant(patch=bend(EqualJitter)),
           caught_by=(D_BACKOFF,)),
    Defect("max-attempts-counts-retries", "signing",
           "WEBHOOK_MAX_ATTEMPTS read as retries after the first: one attempt more than configured",
           lambda: Variant(patch=bend(WebhookDeliverer, _plus_one_attempt)),
           caught_by=(D_EXHAUSTED, D_BACKOFF, D_REFUSED)),
    Defect("no-whole-attempt-timeout", "signing",
           "only httpx's per-read timeouts bound an attempt: a receiver trickling its answer holds it open",
           lambda: Variant(patch=bend(WebhookDeliverer, _no_whole_attempt_bound)),
           caught_by=(D_TIMEOUT,)),
    Defect("attempt-timeout-connect-only", "signing",
           "WEBHOOK_TIMEOUT_S bounds the connect only: a receiver answering late is waited for",
           lambda: Variant(patch=bend(WebhookDeliverer, _connect_timeout_only)),
           caught_by=(D_TIMEOUT,)),
    # what each retry carries
    Defect("retry-gets-a-new-webhook-id", "signing",
           "the webhook-id is minted per attempt: each retry is a new event to the receiver",
           lambda: Variant(patch=bend(RetryGetsANewWebhookId)),
           caught_by=(D_RETRY,)),
    Defect("retry-gets-a-new-request-id", "signing",
           "each retry carries a fresh X-Request-ID: the trail to the API request is lost",
           lambda: Variant(patch=bend(RetryGetsANewRequestId)),
           caught_by=(D_RETRY,)),
    Defect("retry-keeps-the-first-timestamp", "signing",
           "the signed headers are made once before the retry loop: retries repeat the first timestamp",
           lambda: Variant(delivery_hook=headers_signed_once),
           caught_by=(D_RETRY,)),
    Defect("retry-body-rebuilt-from-json", "signing",
           "retries are rebuilt from the parsed event: the same JSON, other bytes than the first attempt",
           lambda: Variant(patch=bend(RetryBodyRebuilt)),
           caught_by=(D_RETRY,)),
    # keys, signatures and headers
    Defect("hex-secret-hex-decoded", "signing",
           "a hex ACTIONS_SIGNING_SECRET is hex-decoded to 32 bytes instead of used as its 64 characters",
           lambda: Variant(delivery_hook=hex_secret_decoded),
           caught_by=(S_HMAC, S_STANDARD, S_ROTATING_RELAY, D_RETRY)),
    Defect("whsec-prefix-kept", "signing",
           "a whsec_ secret is used as its text, prefix and all, not its base64-decoded bytes",
           lambda: Variant(delivery_hook=whsec_prefix_kept),
           caught_by=(S_ROTATING_RELAY,)),
    Defect("x-signature-with-the-last-secret", "signing",
           "X-Signature is set in the loop over the secrets: mid-rotation it is made with the last one",
           lambda: Variant(delivery_hook=x_signature_last_secret),
           caught_by=(S_ROTATING_RELAY,)),
    Defect("signature-entries-comma-separated", "signing",
           "webhook-signature entries joined with ', ' like an HTTP list: right with one secret, "
           "unparseable with two",
           lambda: Variant(delivery_hook=entries_comma_separated),
           caught_by=(S_ROTATING_RELAY,)),
    Defect("content-type-missing", "signing",
           "the delivery goes out without Content-Type: application/json",
           lambda: Variant(delivery_hook=content_type_dropped),
           caught_by=(S_SIGNED,)),
    Defect("webhook-id-derived-from-the-body", "signing",
           "the webhook-id is a hash of the payload: the same action twice is one event to the receiver",
           lambda: Variant(delivery_hook=webhook_id_from_body),
           caught_by=(S_REQUEST_IDS, D_RETRY)),
)  # fmt: skip
