"""The load.json document of a finished run, assembled from this process's state (and, on a master,
its merged workers). Locust processes only (reads Locust's runner and statistics)."""

from __future__ import annotations

import os
import time
from typing import Any

from locust import log as locust_log
from locust.env import Environment
from locust.runners import MasterRunner

from gate.results import utc_now
from load import report, settings
from load.endpoints import endpoint_for
from load.hdr import REPORTED, percentile_key
from load.state import STATE


def build(environment: Environment) -> dict[str, Any]:
    opts = environment.parsed_options
    runner = environment.runner
    rate = float(opts.arrival_rate) or None
    if isinstance(runner, MasterRunner):
        generators = [STATE.generators[k] for k in sorted(STATE.generators)]
        generators.append(STATE.generator("master", "master"))
    else:
        generators = [STATE.generator("local", "local")]
    target = {"name": opts.target_name or environment.host, "base_url": environment.host}
    elapsed = (STATE.stopped_perf or time.perf_counter()) - (STATE.t0_perf or 0.0)
    exceptions = [
        {
            "msg": row["msg"],
            "count": row["count"],
            "nodes": sorted(row["nodes"]),
            "traceback": row["traceback"][-2000:],
        }
        for row in (runner.exceptions.values() if runner else [])
    ]
    started_at = STATE.started_at or ""
    return {
        "run_id": STATE.run_id,
        "started_at": started_at,
        "finished_at": utc_now(),
        "target": target,
        "provenance": report.new_provenance(run_id=STATE.run_id, target=target, started_at=started_at),
        "model": {
            "kind": "open" if rate else "closed",
            "arrival_rate": rate,
            "users": opts.num_users,
            "think_time_s": None if rate else list(STATE.think),
            "workers": len(STATE.generators) if isinstance(runner, MasterRunner) else 0,
            "weights": settings.parse_weights(os.environ.get(settings.WEIGHTS_ENV)),
            "keys": len(STATE.keys),
            "run_time_s": opts.run_time,
            "elapsed_s": round(elapsed, 3),
        },
        "endpoints": report.endpoint_entries(STATE.recorder, locust_figures(environment)),
        "generators": generators,
        "facts": {
            "exceptions": exceptions,
            "unhandled_errors": bool(locust_log.unhandled_greenlet_exception),
            "missing_workers": STATE.missing,
            **({"workers": STATE.fleet.facts()} if isinstance(runner, MasterRunner) else {}),
        },
        "series": STATE.recorder.series_json(STATE.t0_epoch),
        "series_start_epoch": int(STATE.t0_epoch),
    }


def locust_figures(environment: Environment) -> dict[str, dict[str, Any]]:
    """Locust's own statistics per endpoint (rounded response times), for comparison only."""
    out: dict[str, dict[str, Any]] = {}
    for (name, method), entry in environment.stats.entries.items():
        if not entry.num_requests:
            continue
        figures: dict[str, Any] = {"count": entry.num_requests, "failures": entry.num_failures}
        for p in REPORTED:
            figures[percentile_key(p)] = float(entry.get_response_time_percentile(p / 100.0))
        figures["max"] = float(entry.max_response_time)
        out[endpoint_for(method, name)] = figures
    return out
