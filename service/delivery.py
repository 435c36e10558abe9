"""Signed webhook delivery: one POST of exact body bytes to an allowlisted URL, with bounded retries.

Policy (each rule is a reason a receiver or an operator can rely on):

* The destination host must be allowlisted (``config.destination_allowed``); otherwise no request is made.
* Redirects are never followed: a 3xx is a failure and is not retried (a redirect to an internal host
  would bypass the allowlist; the fix is to update ``WEBHOOK_URL``).
* Each attempt is bounded by ``timeout_s`` for connect, write, read and pool wait, and in total.
* Retried: 5xx, 408, 429, timeouts and connection errors. 429/503 ``Retry-After`` (seconds or an HTTP
  date) is honoured up to ``MAX_RETRY_AFTER_S``; asked to wait longer, we give up rather than hold the
  caller. Every other status (4xx, 3xx) fails at once: sending the same request again will not help.
* Backoff is exponential with full jitter: attempt ``n`` (from 1) waits ``uniform(0, base * 2**(n-1))``,
  capped at ``MAX_BACKOFF_S``.
* Every attempt reuses the same ``webhook-id`` and ``X-Request-ID`` (receivers deduplicate on the id)
  with a fresh ``webhook-timestamp`` and signatures. Delivery is at-least-once: a timeout after the
  receiver got the request leads to a second copy.
* The bytes sent are exactly ``body`` -- signed as given, never re-serialised.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx

from service.config import destination_allowed
from service.signing import signed_headers

__all__ = ["DeliveryResult", "WebhookDeliverer"]

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 30.0
USER_AGENT = "relay-webhooks/1"

# Low-cardinality outcome labels passed to ``on_attempt`` (a histogram label, so keep the set fixed).
Outcome = Literal[
    "delivered", "redirect", "client_error", "rate_limited", "server_error", "timeout", "connection_error"
]

_RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What became of one webhook. ``error`` is short and never carries a URL, header or secret."""

    status: Literal["delivered", "failed"]
    http_status: int | None
    attempts: int
    duration_s: float
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"


@dataclass(frozen=True, slots=True)
class _Attempt:
    outcome: Outcome
    http_status: int | None
    error: str | None
    retryable: bool
    retry_after_s: float | None = None


def _classify_status(status: int) -> tuple[Outcome, bool]:
    if 200 <= status < 300:
        return "delivered", False
    if 300 <= status < 400:
        return "redirect", False
    if status == 429:
        return "rate_limited", True
    if status >= 500:
        return "server_error", True
    return "client_error", status in _RETRYABLE_STATUS


def _retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.fromtimestamp(now, UTC)).total_seconds())


class WebhookDeliverer:
    """Delivers signed webhooks. One instance per process; ``deliver`` may run concurrently.

    ``client`` lets the app share a pool or route through an egress proxy; redirects and timeouts are
    set per request, so an injected client cannot loosen them. A client we create ignores proxy and
    netrc environment variables (``trust_env=False``) and is closed by ``aclose``; an injected one is not.
    ``on_attempt(duration_s, outcome)`` is called after every attempt (e.g. to feed a
    ``webhook_duration_seconds`` histogram); ``clock`` supplies webhook-timestamps, ``sleep`` the backoff.
    """

    def __init__(
        self,
        *,
        keys: Sequence[bytes],
        allowed_hosts: frozenset[str],
        timeout_s: float,
        max_attempts: int,
        backoff_base_s: float,
        client: httpx.AsyncClient | None = None,
        on_attempt: Callable[[float, str], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if timeout_s <= 0 or max_attempts < 1 or backoff_base_s < 0:
            raise ValueError("need timeout_s > 0, max_attempts >= 1 and backoff_base_s >= 0")
        self._keys = tuple(keys)
        self._allowed_hosts = frozenset(allowed_hosts)
        self._timeout_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s)
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._owns_client = client is None
        if client is None:
            client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, trust_env=False)
        self._client = client
        self._on_attempt = on_attempt
        self._clock = clock
        self._sleep = sleep

    @property
    def signed(self) -> bool:
        return bool(self._keys)

    def warn_if_unsigned(self, log: logging.Logger) -> bool:
        """Log a loud warning when deliveries will go out unsigned; call once at start-up."""
        if self._keys:
            return False
        log.warning(
            "ACTIONS_SIGNING_SECRET is not set: webhooks will be delivered UNSIGNED "
            "(no X-Signature, no webhook-signature). Receivers cannot tell them from forgeries. "
            "Set it (openssl rand -hex 32) before production use."
        )
        return True

    async def __aenter__(self) -> WebhookDeliverer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def deliver(self, url: str, body: bytes, *, request_id: str, webhook_id: str) -> DeliveryResult:
        """POST ``body`` to ``url`` under the policy in the module docstring. Never raises for delivery
        failures (they are in the result); raises ``ValueError`` for a malformed ``webhook_id``."""
        started = time.monotonic()
        if not destination_allowed(url, self._allowed_hosts):
            return DeliveryResult("failed", None, 0, 0.0, "destination not allowed")
        attempts = 0
        while True:
            attempts += 1
            attempt = await self._attempt(url, body, request_id=request_id, webhook_id=webhook_id)
            if attempt.outcome == "delivered":
                return DeliveryResult(
                    "delivered", attempt.http_status, attempts, time.monotonic() - started, None
                )
            delay = self._backoff_s(attempts)
            give_up = not attempt.retryable or attempts >= self._max_attempts
            error = attempt.error
            if not give_up and attempt.retry_after_s is not None:
                if attempt.retry_after_s > MAX_RETRY_AFTER_S:
                    give_up = True
                    error = f"{error}; Retry-After {attempt.retry_after_s:.0f} s is beyond our limit"
                else:
                    delay = max(delay, attempt.retry_after_s)
            if give_up:
                return DeliveryResult(
                    "failed", attempt.http_status, attempts, time.monotonic() - started, error
                )
            await self._sleep(delay)

    def _backoff_s(self, attempts: int) -> float:
        ceiling = min(MAX_BACKOFF_S, self._backoff_base_s * 2 ** (attempts - 1))
        # Full jitter spreads retries of many deliveries that failed together (AWS architecture blog,
        # "Exponential Backoff And Jitter"). Not security-sensitive, hence the plain PRNG.
        return random.uniform(0.0, ceiling)  # noqa: S311

    async def _attempt(self, url: str, body: bytes, *, request_id: str, webhook_id: str) -> _Attempt:
        headers = signed_headers(
            self._keys, body, request_id=request_id, webhook_id=webhook_id, timestamp=int(self._clock())
        )
        headers["User-Agent"] = USER_AGENT
        started = time.monotonic()
        try:
            # The httpx timeouts bound each phase; this bounds the whole attempt, so a receiver that
            # trickles its response one byte at a time cannot hold a delivery open.
            async with asyncio.timeout(self._timeout_s):
                async with self._client.stream(
                    "POST",
                    url,
                    content=body,
                    headers=headers,
                    timeout=self._timeout,
                    follow_redirects=False,
                ) as response:
                    # The response body is not read: we only need the status, and a receiver should
                    # not be able to make us buffer an arbitrary amount of data.
                    status = response.status_code
                    retry_after = _retry_after_s(response.headers.get("Retry-After"), self._clock())
            outcome, retryable = _classify_status(status)
            result = _Attempt(
                outcome,
                status,
                None if outcome == "delivered" else _status_error(status),
                retryable,
                retry_after if status in (429, 503) else None,
            )
        except (TimeoutError, httpx.TimeoutException):
            result = _Attempt("timeout", None, f"timed out after {self._timeout_s:g} s", True)
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            result = _Attempt("connection_error", None, f"connection error ({type(exc).__name__})", True)
        except httpx.HTTPError as exc:
            # Unsupported scheme, local protocol errors, proxy refusals: retrying cannot fix these.
            result = _Attempt("connection_error", None, f"request error ({type(exc).__name__})", False)
        except httpx.InvalidURL:
            # Not an HTTPError. destination_allowed refuses what the client cannot send; this is the
            # backstop (a URL over httpx's length limit, say), so a delivery failure never escapes as
            # an exception, leaving its audit row pending and the caller with a 500.
            result = _Attempt("connection_error", None, "invalid URL", False)
        self._report(time.monotonic() - started, result.outcome)
        return result

    def _report(self, duration_s: float, outcome: str) -> None:
        if self._on_attempt is None:
            return
        try:
            self._on_attempt(duration_s, outcome)
        except Exception:
            # A broken metrics hook must not turn a delivered webhook into a failed one.
            logger.exception("webhook on_attempt callback failed")


def _status_error(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed (update the webhook URL)"
    return f"HTTP {status}"
