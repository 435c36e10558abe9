"""An opt-in log of every request a Locust process measured: one JSON object per line.

``--request-log FILE`` (plugin option) makes each process that runs users append, for every request
its ``events.request`` hook records, the same numbers that go into the HDR histograms, plus the
times needed to put the request on a timeline::

    {"endpoint": "execute", "status": 200, "due": 1764113412.503125, "sent": 1764113412.503301,
     "response_ms": 41.2, "corrected_ms": 41.376, "request_id": "3f0c..."}

``due`` is when the open model's schedule had the request leave (epoch seconds; null in the closed
model), ``sent`` when it actually left, ``response_ms`` the time from sending to the complete response
(Locust's figure), ``corrected_ms`` = (sent - due) + response time (the open model's latency),
``status`` 0 when no response came (refused, reset, timed out) and ``request_id`` the response's
``X-Request-ID``. A request still in flight when the run stopped is one line with ``"status": null``,
``"unfinished": true`` and ``corrected_ms`` = stop - due (a lower bound), as the histograms record it.

load.json keeps histograms and a per-second series (by completion second, without status codes);
a question about one window of the run — what did requests sent during *these* three seconds see? —
needs the requests themselves. ``relay-gate faults`` is the user (docs/faults.md).

This module does not import Locust: the gate reads the logs with :func:`read`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any


class RequestLog:
    """Appends request lines to a file (buffered; flushed once a second and at the end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.lines = 0

    def write(
        self,
        *,
        endpoint: str,
        status: int | None,
        due: float | None,
        sent: float | None,
        response_ms: float | None,
        corrected_ms: float,
        request_id: str | None = None,
        unfinished: bool = False,
    ) -> None:
        if self._file is None:
            return  # closed: the run is over, a late sample belongs to no run
        line: dict[str, Any] = {
            "endpoint": endpoint,
            "status": status,
            "due": None if due is None else round(due, 6),
            "sent": None if sent is None else round(sent, 6),
            "response_ms": None if response_ms is None else round(response_ms, 3),
            "corrected_ms": round(corrected_ms, 3),
            "request_id": request_id,
        }
        if unfinished:
            line["unfinished"] = True
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.lines += 1

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read(path: Path) -> list[dict[str, Any]]:
    """Every line of a request log; a malformed line raises ValueError naming the file and line."""
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc})") from None
            if not isinstance(line, dict) or "endpoint" not in line or "corrected_ms" not in line:
                raise ValueError(f"{path}:{number}: not a request-log line")
            out.append(line)
    return out
