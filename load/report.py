"""``results/<run-id>/load/load.json`` (schema ``relay-gate/load@1``): build, write, read, recompute.

The document holds everything the verdict is computed from — per endpoint the outcome counts and
the encoded HDR histograms, the generators' rates and CPU samples, the facts the run reported
(exceptions, missing worker data) and the SLO spec used (``spec``) — plus the verdict itself
(``slos``, ``budget``, ``validity``, ``verdict``). The verdict of a
live run is computed *from the document* (:func:`finish`), exactly as ``--recompute`` does later.
The layout is documented in docs/load.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gate.errors import InvalidEvidence, UsageError
from gate.results import Redactor, provenance, write_json
from load import hdr
from load.endpoints import ENDPOINTS
from load.recorder import ERROR_OUTCOMES, Recorder
from load.slos import SloSpec, SloSpecError, parse
from load.verdict import evaluate

KIND = "load"
VERSION = 1


def endpoint_entries(recorder: Recorder, locust: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per endpoint: counts, encoded histograms and their percentiles (corrected, uncorrected, lag,
    and Locust's own rounded figures for comparison)."""
    order = [n for n in ENDPOINTS if n in recorder.endpoints] + sorted(
        n for n in recorder.endpoints if n not in ENDPOINTS
    )
    out: dict[str, Any] = {}
    for name in order:
        rec = recorder.endpoints[name]
        known = ENDPOINTS.get(name)
        out[name] = {
            "method": known.method if known else name.split(" ", 1)[0],
            "route": known.route if known else name.split(" ", 1)[-1],
            "requests": sum(rec.counts.values()),
            "errors": sum(rec.counts[o] for o in ERROR_OUTCOMES),
            "rate_limited": rec.counts["rate_limited"],
            "counts": dict(rec.counts),
            "statuses": dict(sorted(rec.statuses.items())),
            "unfinished": rec.unfinished,
            "clamped": rec.clamped,
            "latency_ms": {
                "corrected": hdr.summary_ms(rec.corrected),
                "uncorrected": hdr.summary_ms(rec.uncorrected),
                "lag": hdr.summary_ms(rec.lag),
                "locust": locust.get(name),
            },
            "hdr": {
                "encoding": "HdrHistogram V2 compressed, base64; microseconds; 1 us .. 60 s, 3 digits",
                "corrected": hdr.encode(rec.corrected),
                "uncorrected": hdr.encode(rec.uncorrected),
                "lag": hdr.encode(rec.lag),
            },
        }
    return out


def finish(doc: dict[str, Any], spec: SloSpec) -> dict[str, Any]:
    """Add the spec and the verdict (computed from the document itself) to a load document."""
    doc["spec"] = spec.to_json()
    doc.update(evaluate(spec, doc))
    return doc


def new_provenance(*, run_id: str, target: dict[str, Any], started_at: str) -> dict[str, Any]:
    return provenance(run_id=run_id, target=target, started_at=started_at, extra={"command": "load"})


def write(results: Path, doc: dict[str, Any], *, secrets: list[str]) -> Path:
    """Write load.json (secrets redacted), and run.json when the folder has none yet (a plain Locust
    run makes a complete results folder too; under ``relay-gate load`` the CLI wrote it already)."""
    redactor = Redactor(secrets)
    path = write_json(results / "load" / "load.json", KIND, VERSION, doc, redactor=redactor)
    run_json = results / "run.json"
    if not run_json.exists():
        run_doc = dict(doc["provenance"])
        run_doc.update(finished_at=doc.get("finished_at"), exit_code=doc["verdict"]["exit_code"])
        write_json(run_json, "run", 1, run_doc, redactor=redactor)
    return path


def read(path: Path) -> dict[str, Any]:
    """Read a load.json for recomputation: a missing file is a usage error (2), a file that is not a
    relay-gate/load@1 document is not valid evidence (4)."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{path} does not exist: give the load.json of a run (results/<run-id>/load/load.json)"
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidEvidence(f"{path} is not a readable JSON results file: {exc}") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema != f"relay-gate/{KIND}@{VERSION}":
        raise InvalidEvidence(
            f"{path}: expected a relay-gate/{KIND}@{VERSION} document, found {schema or 'no schema'}"
        )
    for key in ("model", "endpoints", "spec"):
        if key not in doc:
            raise InvalidEvidence(f"{path}: the {key!r} section is missing; the verdict cannot be recomputed")
    return dict(doc)


def recompute(doc: dict[str, Any], spec: SloSpec | None = None) -> dict[str, Any]:
    """The verdict of a results document, with its own spec or ``spec`` instead."""
    if spec is None:
        stored = doc["spec"]
        if not isinstance(stored, dict):
            raise InvalidEvidence(
                "the results file's 'spec' is not a table; the verdict cannot be recomputed"
            )
        try:
            spec = parse(stored, source=str(stored.get("source", "load.json")))
        except SloSpecError as exc:
            raise InvalidEvidence(f"the SLO spec inside the results file is invalid: {exc}") from None
    try:
        return evaluate(spec, doc)
    except hdr.HistogramError as exc:
        raise InvalidEvidence(f"a histogram in the results file is corrupt: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEvidence(f"the results file is incomplete ({type(exc).__name__}: {exc})") from None
