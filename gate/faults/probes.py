"""What a fault run reads from the stack: the relay settings it runs with, each replica's limiter
gauge and readiness, whether Redis and PostgreSQL answer, and, once the load is over, the receiver's
deliveries and their audit rows."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Sequence
from typing import Any

import httpx
import psycopg

from gate.client.receiver import ReceiverClient
from gate.errors import InfrastructureError
from gate.faults.model import POLL_S, RECEIVER_QUIET_S
from gate.stack.reference import Stack

_GAUGE = re.compile(r'^rate_limiter_backend\{backend="(?P<backend>[^"]+)"\}\s+(?P<value>\S+)$', re.M)


def relay_setting(stack: Stack, name: str) -> Any:
    """A relay setting as the stack gives it to its replicas, or the service's default when the stack
    sets none (``name`` is the environment variable, e.g. ``REDIS_SOCKET_TIMEOUT_MS``)."""
    from service.config import Settings

    value = stack.service_env().get(name)
    return value if value else Settings.model_fields[name.lower()].default


def redis_timeout_ms(stack: Stack) -> tuple[int, int]:
    """(connect, socket) Redis timeouts of the stack's replicas, in ms: the hang's latency bound."""
    connect = int(relay_setting(stack, "REDIS_CONNECT_TIMEOUT_MS"))
    sock = int(relay_setting(stack, "REDIS_SOCKET_TIMEOUT_MS"))
    return connect, sock


class Replicas:
    """What the run watches on each relay replica: the limiter's backend gauge and readiness."""

    def __init__(self, base_urls: Sequence[str]) -> None:
        self.urls = list(base_urls)
        self._http = [httpx.Client(base_url=u, timeout=1.0, trust_env=False) for u in self.urls]

    def close(self) -> None:
        for client in self._http:
            client.close()

    def backend(self, i: int) -> str | None:
        """``"redis"`` or ``"memory"`` as the replica's gauge says; None when it did not say."""
        try:
            text = self._http[i].get("/metrics").text
        except httpx.HTTPError:
            return None
        active = [m["backend"] for m in _GAUGE.finditer(text) if float(m["value"]) == 1.0]
        return active[0] if len(active) == 1 else None

    def ready(self, i: int) -> bool:
        try:
            return self._http[i].get("/_stcore/ready").status_code == 200
        except httpx.HTTPError:
            return False


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:  # refused (killed) or timed out (hung)
        return False


def database_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def settled_captures(receiver: ReceiverClient, after: int) -> tuple[list[dict[str, Any]], int]:
    """The receiver's captures since ``after`` once no delivery has landed for RECEIVER_QUIET_S, and
    its last sequence number (to tell whether any capture was dropped)."""
    last, since = receiver.last_seq(), time.monotonic()
    deadline = since + 10.0
    while time.monotonic() - since < RECEIVER_QUIET_S and time.monotonic() < deadline:
        time.sleep(POLL_S)
        if (now := receiver.last_seq()) != last:
            last, since = now, time.monotonic()
    captures = [
        {
            "seq": c.seq,
            "webhook_id": c.header("webhook-id"),
            "request_id": c.header("x-request-id"),
            "received_at": c.received_at,
        }
        for c in receiver.captures(after)
    ]
    return captures, last


def audit_rows(stack: Stack, webhook_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The audit rows of these webhook ids, read from the database once the run is over."""
    assert stack.database_url is not None
    query = (
        "SELECT webhook_id, request_id::text, status, delivery_status FROM audit_log"
        " WHERE webhook_id = ANY(%s)"
    )
    try:
        with psycopg.connect(stack.database_url, connect_timeout=5, autocommit=True) as conn:
            found = conn.execute(query, (list(webhook_ids),)).fetchall()
    except psycopg.Error as exc:
        raise InfrastructureError(
            f"reading audit_log after the fault run failed ({type(exc).__name__}); is PostgreSQL back?"
        ) from None
    return {str(w): {"request_id": r, "status": s, "delivery_status": d} for w, r, s, d in found}
