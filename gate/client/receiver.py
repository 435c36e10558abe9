"""The client of the gate's webhook receiver: what scenarios use to read and steer it over HTTP.

The receiver's API (``/_receiver/...``: health, captures, script) and the control token are described
in gate/stack/receiver.py, the server the reference stack runs; a receiver beside a deployment
(``[deliveries].receiver_url`` of a target config) speaks the same API. :class:`Capture` is one
delivery as the API hands it over, byte for byte. Every call has a timeout.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import httpx

from gate.client.transport import Transport

CONTROL = "/_receiver/"
TOKEN_ENV = "RELAY_GATE_RECEIVER_TOKEN"  # noqa: S105 - the variable's name, not a token


@dataclass(frozen=True)
class Capture:
    seq: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_map(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers}

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "headers": [list(h) for h in self.headers],
            "body_b64": base64.b64encode(self.body).decode("ascii"),
            "received_at": self.received_at,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Capture:
        return cls(
            seq=int(d["seq"]),
            method=str(d["method"]),
            path=str(d["path"]),
            headers=[(str(k), str(v)) for k, v in d["headers"]],
            body=base64.b64decode(d["body_b64"]),
            received_at=float(d["received_at"]),
        )


class ReceiverClient:
    """Reads and steers a receiver over HTTP, with short timeouts, using the receiver's ``token``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 5.0,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # TLS verified and proxies only when the target config asks (gate/client/transport.py)
        options = (transport or Transport()).httpx_options(self.base_url)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers, **options)

    def close(self) -> None:
        self._http.close()

    def healthy(self) -> bool:
        try:
            return self._http.get(f"{CONTROL}health").status_code == 200
        except httpx.HTTPError:
            return False

    def instance(self) -> str | None:
        """The instance nonce the receiver's health reports (None from an older receiver)."""
        r = self._http.get(f"{CONTROL}health")
        r.raise_for_status()
        value = r.json().get("instance")
        return str(value) if value is not None else None

    def captures(self, after: int = 0) -> list[Capture]:
        r = self._http.get(f"{CONTROL}captures", params={"after": after})
        r.raise_for_status()
        return [Capture.from_json(c) for c in r.json()["captures"]]

    def last_seq(self) -> int:
        r = self._http.get(f"{CONTROL}captures", params={"after": 1 << 62})
        r.raise_for_status()
        return int(r.json()["last_seq"])

    def clear(self) -> None:
        self._http.delete(f"{CONTROL}captures").raise_for_status()

    def script(
        self,
        responses: list[dict[str, Any]] | None = None,
        *,
        default_status: int = 200,
        default_delay_s: float = 0.0,
    ) -> None:
        """Answer the next deliveries with ``responses`` (replies as the module docstring says), then
        every later one with the default; ``script()`` alone: 200 to everything from now on."""
        doc = {
            "responses": responses or [],
            "default": {"status": default_status, "delay_s": default_delay_s},
        }
        self._http.post(f"{CONTROL}script", json=doc).raise_for_status()

    def wait_for(self, count: int, *, after: int = 0, timeout_s: float = 10.0) -> list[Capture]:
        """At least ``count`` captures after ``after``, polled until ``timeout_s``; fewer raises."""
        deadline = time.monotonic() + timeout_s
        while True:
            caps = self.captures(after)
            if len(caps) >= count or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if len(caps) < count:
            raise TimeoutError(f"receiver got {len(caps)} deliveries, expected {count}, in {timeout_s:g} s")
        return caps
