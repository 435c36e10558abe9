"""Structured JSON logs: one object per line, the request id in every line, secrets never.

Secrets are kept out by construction (Settings holds them as SecretStr, nothing logs headers or
bodies); the :class:`RedactingFilter` is the second line of defence for any configured secret value
that still finds its way into a message or an exception text.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("relay_request_id", default=None)

REDACTED = "[REDACTED]"

# LogRecord attributes that are plumbing, not content.
_STD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(rid: str | None) -> contextvars.Token[str | None]:
    return _request_id.set(rid)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = current_request_id()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class RedactingFilter(logging.Filter):
    """Replaces any configured secret value in the final record with [REDACTED]."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # longest first, so a secret that contains another is replaced whole
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self._scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self._scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key not in _STD_ATTRS and isinstance(value, str):
                setattr(record, key, self._scrub(value))
        return True


class _ExcTextFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        out = super().format(record)
        if record.exc_text and not record.exc_info:
            entry = json.loads(out)
            entry["exc"] = record.exc_text
            out = json.dumps(entry, default=str, ensure_ascii=False)
        return out


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Route the relay's and uvicorn's loggers to one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ExcTextFormatter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # one access line per request comes from our own middleware, with route and request id
    logging.getLogger("uvicorn.access").disabled = True
