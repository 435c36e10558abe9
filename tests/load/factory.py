"""Synthetic load.json documents for verdict tests: real recorders and histograms, no Locust."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from load import report, slos
from load.recorder import Recorder, classify
from load.settings import DEFAULT_WEIGHTS

EPOCH = 1_800_000_000.0


def record(
    rec: Recorder, endpoint: str, n: int, *, ms: float, status: int = 200, lag_ms: float = 0.0
) -> None:
    """``n`` samples of ``ms`` (plus ``lag_ms`` of schedule lag in the corrected histogram)."""
    for i in range(n):
        rec.record(
            endpoint,
            status=status,
            outcome=classify(status, failed=status != 200),
            latency_s=ms / 1000.0,
            corrected_s=(ms + lag_ms) / 1000.0,
            lag_s=lag_ms / 1000.0,
            epoch_s=EPOCH + i % 60,
        )


def record_values(rec: Recorder, endpoint: str, values_ms: Iterable[float]) -> None:
    """One sample per value (no schedule lag)."""
    for i, ms in enumerate(values_ms):
        rec.record(
            endpoint,
            status=200,
            outcome="ok",
            latency_s=ms / 1000.0,
            corrected_s=ms / 1000.0,
            lag_s=0.0,
            epoch_s=EPOCH + i % 60,
        )


def healthy(rec: Recorder | None = None) -> Recorder:
    """Enough samples for every seed SLO, comfortably inside them."""
    rec = rec or Recorder()
    record(rec, "list", 2000, ms=4.0)
    record(rec, "preview", 2000, ms=5.0)
    record(rec, "execute", 500, ms=120.0)
    return rec


def document(
    rec: Recorder,
    *,
    spec: slos.SloSpec | None = None,
    kind: str = "open",
    rate: float = 100.0,
    achieved: float | None = None,
    cpu: Iterable[float] = (20.0,) * 10,
    facts: dict[str, Any] | None = None,
    users: int = 10,
    weights: dict[str, int] | None = None,
) -> dict[str, Any]:
    requests = sum(sum(e.counts.values()) for e in rec.endpoints.values())
    doc: dict[str, Any] = {
        "run_id": "test",
        "model": {
            "kind": kind,
            "arrival_rate": rate if kind == "open" else None,
            "users": users,
            "think_time_s": None if kind == "open" else [0.5, 1.5],
            "weights": dict(weights or DEFAULT_WEIGHTS),
            "workers": 0,
            "elapsed_s": 60.0,
        },
        "endpoints": report.endpoint_entries(rec, {}),
        "generators": [
            {
                "id": "local",
                "role": "local",
                "requests": requests,
                "elapsed_s": 60.0,
                "achieved_rps": rate if achieved is None else achieved,
                "cpu_samples": list(cpu),
            }
        ],
        "facts": {"exceptions": [], "unhandled_errors": False, "missing_workers": [], **(facts or {})},
        "series": rec.series_json(EPOCH),
    }
    return report.finish(doc, spec or slos.load())


def roundtrip(doc: dict[str, Any]) -> dict[str, Any]:
    """As a results file would hold it."""
    return dict(json.loads(json.dumps({"schema": "relay-gate/load@1", **doc})))


def slo(doc: dict[str, Any], endpoint: str, kind: str) -> dict[str, Any]:
    return next(s for s in doc["slos"] if s["endpoint"] == endpoint and s["kind"] == kind)


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["validity"] if c["check"] == name)
