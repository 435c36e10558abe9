"""Serving one relay app in-process over real TCP, for the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from service.app import create_app
from service.config import Settings
from tests.threaded import ThreadedServer


@contextmanager
def serve(settings: Settings) -> Iterator[httpx.Client]:
    """The relay built from ``settings`` under uvicorn on a free port, and a client pointed at it."""
    with ThreadedServer(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        yield c
