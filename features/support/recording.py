"""What each scenario sent and received, written to ``results/<run>/features/scenarios/<slug>.json``.

An :class:`ExchangeRecorder` hangs on an httpx client's event hooks, so every exchange a scenario
makes through the ``http`` fixture (or :meth:`ExchangeRecorder.client`) is kept: method, URL, status,
headers, a body excerpt and timing, secrets redacted. Steps add structured observations with
:meth:`ExchangeRecorder.note` (the HMAC recomputation, the burst timeline, the header analysis): the
evidence documents render those notes, never anything held only in memory.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from gate.client.transport import Transport
from gate.results import Redactor, write_json

BODY_EXCERPT = 2048
SCENARIO_SCHEMA = ("scenario", 1)


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:120] or "scenario"


def _excerpt(data: bytes) -> dict[str, Any]:
    text = data[:BODY_EXCERPT].decode("utf-8", "replace")
    return {"size": len(data), "excerpt": text, "truncated": len(data) > BODY_EXCERPT}


class ExchangeRecorder:
    def __init__(self, redactor: Redactor, *, transport: Transport | None = None) -> None:
        self.redactor = redactor
        self.transport = transport or Transport()  # TLS verification and proxies (gate/client/transport.py)
        self.exchanges: list[dict[str, Any]] = []
        self.notes: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    # -- httpx hooks ---------------------------------------------------------------------------------
    def _on_request(self, request: httpx.Request) -> None:
        request.extensions["relay_gate_started"] = time.monotonic()

    def _on_response(self, response: httpx.Response) -> None:
        response.read()
        self._record(response)

    async def _on_request_async(self, request: httpx.Request) -> None:
        self._on_request(request)

    async def _on_response_async(self, response: httpx.Response) -> None:
        await response.aread()
        self._record(response)

    def _record(self, response: httpx.Response) -> None:
        request = response.request
        started = request.extensions.get("relay_gate_started", time.monotonic())
        now = time.monotonic()
        entry = {
            "seq": 0,
            "t_ms": round((started - self._t0) * 1000, 3),
            "elapsed_ms": round((now - started) * 1000, 3),
            "at": time.time(),
            "method": request.method,
            "url": self.redactor.text(str(request.url)),
            "request_headers": self.redactor.headers(request.headers.multi_items()),
            "request_body": self._request_body(request),
            "status": response.status_code,
            "response_headers": self.redactor.headers(response.headers.multi_items()),
            "response_body": self._body(response.content),
        }
        with self._lock:
            entry["seq"] = len(self.exchanges) + 1
            self.exchanges.append(entry)

    def _request_body(self, request: httpx.Request) -> dict[str, Any]:
        try:
            return self._body(request.content if request.stream is not None else b"")
        except httpx.RequestNotRead:  # streamed (a generator, sent chunked): gone once sent
            return {"size": None, "excerpt": "(streamed, chunked: not kept)", "truncated": True}

    def _body(self, data: bytes) -> dict[str, Any]:
        ex = _excerpt(data)
        ex["excerpt"] = self.redactor.text(ex["excerpt"])
        return ex

    def record_error(self, method: str, url: str, error: str) -> None:
        with self._lock:
            self.exchanges.append(
                {"seq": len(self.exchanges) + 1, "t_ms": round((time.monotonic() - self._t0) * 1000, 3),
                 "at": time.time(), "method": method, "url": self.redactor.text(url),
                 "error": self.redactor.text(error)}
            )  # fmt: skip

    # -- clients -------------------------------------------------------------------------------------
    def client(self, base_url: str, *, timeout: float) -> httpx.Client:
        return httpx.Client(
            base_url=base_url,
            timeout=timeout,
            follow_redirects=False,
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
            **self.transport.httpx_options(base_url),
        )

    def async_client(self, base_url: str, *, timeout: float, max_connections: int = 64) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections),
            event_hooks={"request": [self._on_request_async], "response": [self._on_response_async]},
            **self.transport.httpx_options(base_url),
        )

    # -- observations --------------------------------------------------------------------------------
    def note(self, key: str, value: Any) -> None:
        """Keep a structured observation for the evidence (redacted when written)."""
        with self._lock:
            self.notes[key] = value

    def write(self, path: Path, *, meta: dict[str, Any]) -> Path:
        kind, version = SCENARIO_SCHEMA
        payload = {**meta, "notes": self.notes, "exchanges": self.exchanges}
        return write_json(path, kind, version, payload, redactor=self.redactor)
