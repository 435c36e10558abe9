"""docs/service.md's Logs section, which no request can show: one JSON object per line with ts, level,
logger, msg and request_id; an access line per request (relay.access: method, route, status,
duration_ms); any configured secret value replaced by [REDACTED] should one reach a message. The
process end to end (stderr of ``python -m service``, no secret in it) is tests/service/test_main.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from service.logs import REDACTED, configure_logging, reset_request_id, set_request_id
from service.metrics import Metrics, RequestContextMiddleware

SECRET = "signing-secret-" + "q" * 40


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """The relay's logging as ``python -m service`` configures it, its stderr a buffer."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("uvicorn.access").disabled)
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("INFO", [SECRET, "pg-password-abcdef"])
    try:
        yield logging.getLogger("relay.test-logs"), buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = saved[2]


def _entries(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_line_is_one_json_object_with_ts_level_logger_msg_and_request_id(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = lines
    token = set_request_id("5f0c6b7e-2f4a-4d8e-9a31-7c2d1e0b9f48")
    try:
        logger.info("first\nsecond", extra={"route": "/actions"})
    finally:
        reset_request_id(token)
    logger.warning("outside any request")
    first, second = _entries(buffer)
    assert {"ts", "level", "logger", "msg", "request_id"} <= set(first)
    assert (
        first["msg"] == "first\nsecond" and first["logger"] == "relay.test-logs" and first["level"] == "info"
    )
    assert first["request_id"] == "5f0c6b7e-2f4a-4d8e-9a31-7c2d1e0b9f48" and first["route"] == "/actions"
    assert "request_id" not in second


def test_a_configured_secret_in_a_message_or_a_traceback_is_redacted(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = lines
    logger.error("connecting with %s failed", "postgresql://relay:pg-password-abcdef@db/relay")
    try:
        raise RuntimeError(f"bad signature key {SECRET}")
    except RuntimeError:
        logger.exception("delivery failed", extra={"detail": f"secret={SECRET}"})
    text = buffer.getvalue()
    assert SECRET not in text and "pg-password-abcdef" not in text
    assert text.count(REDACTED) >= 3


def test_every_request_gets_an_access_line_with_method_route_status_and_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        pass

    middleware = RequestContextMiddleware(app, Metrics())  # type: ignore[arg-type]
    scope = {"type": "http", "method": "BREW", "path": "/nowhere", "headers": []}
    with caplog.at_level(logging.INFO, logger="relay.access"):
        asyncio.run(middleware(scope, receive, send))  # type: ignore[arg-type]
    (record,) = [r for r in caplog.records if r.name == "relay.access"]
    assert (record.method, record.route, record.status) == ("OTHER", "<unmatched>", 404)  # type: ignore[attr-defined]
    assert isinstance(record.duration_ms, float) and record.duration_ms >= 0  # type: ignore[attr-defined]
