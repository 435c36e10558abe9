"""Faults under load: kill, hang and restart the stack's dependencies while an open-model load runs,
then judge what the clients saw (``relay-gate faults``; docs/faults.md; FAULTS.md in the pack).

    2-replica stack ──► one Locust generator per replica (open model, one request-log line per request)
        t= 5 s  kill Redis         ┐ meanwhile each replica's rate_limiter_backend gauge is polled:
        t=10 s  restart Redis      │ on the fallback when? back on Redis how long after recovery?
        t=16 s  SIGSTOP Redis      │
        t=19 s  SIGCONT Redis      ┘
        t=25 s  stop PostgreSQL; t=29 s start it; until every replica is ready again
    ──► request logs + receiver captures + audit_log rows ──► :func:`judge` ──► faults/faults.json

The criteria (issue 9), with its margins and no tighter:

- **no 5xx** on list, preview or execute, but the documented 503 on execute while the database is
  down: a 503 is allowed to an execute that was in flight ([sent, done]) while its replica's database
  was away (``stop_postgres`` called .. that replica's ``/_stcore/ready`` answering 200 again). Any other
  5xx, and any request left without an answer, fails;
- **p99 during the Redis hang** <= REDIS_CONNECT_TIMEOUT_MS + REDIS_SOCKET_TIMEOUT_MS (as the stack
  configures them) + 50 ms, over the requests the open model had due between SIGSTOP and SIGCONT, on
  the coordinated-omission corrected latency (docs/faults.md explains both choices);
- **back on Redis <= 5 s** after recovery (the restarted Redis answers PING; SIGCONT sent), on every
  replica, for the kill and for the hang;
- **no webhook without its audit row**: every delivery the receiver captured has the audit row of its
  ``webhook-id`` with its ``X-Request-ID``, and no execute answered 503 delivered anything.

The judgement (:func:`judge` and below) is pure: it reads only what faults.json records, so tests can
feed it synthetic requests. Verdict precedence as in load/verdict.py: INVALID (exit 4) when nothing can
be trusted (a generator failed, a request log is incomplete); FAILED (1) when a criterion is false;
INVALID (4) when a check a pass needs failed (too few requests during the hang, a fault that did not
take effect); PASSED (0). A stack component that does not start or obey a control raises (exit 5).

The package, one concern a module: ``model`` (criteria, bounds, timeline, config, the records judged),
``probes`` (what is read from the stack), ``generators`` (the Locust processes), ``timeline`` (the
faults and the recoveries), ``run`` (:class:`FaultRun`, end to end), ``figures`` and ``judgement``
(pure). Everything is importable from ``gate.faults``.
"""

from __future__ import annotations

import importlib
from typing import Any

from gate.faults.figures import (
    allowed_503,
    column,
    cross_check,
    hang_latency,
    nearest_rank,
    phase_counts,
    series,
)
from gate.faults.judgement import decide, judge, validity
from gate.faults.model import (
    COLUMNS,
    CRITERIA,
    DB_READY_TIMEOUT_S,
    DEFAULT_RATE,
    ENDPOINTS,
    KIND,
    LATENCY_MARGIN_MS,
    LOAD_START_TIMEOUT_S,
    MIN_HANG_EXECUTES,
    MIN_HANG_SAMPLES,
    POLL_S,
    RECEIVER_QUIET_S,
    RECOVERY_BOUND_S,
    RECOVERY_WATCH_S,
    STACK_RATE_LIMIT,
    STACK_WINDOW_S,
    VERSION,
    FaultConfig,
    Marks,
    Sample,
    Timeline,
)

# The parts that start processes and talk to the stack (generators, probes, the run, the timeline) are
# loaded on first use (PEP 562): the model and the judgement are pure, and what only reads results
# (evidence/) imports them without pulling in a stack, httpx or psycopg.
_LAZY = {
    "Generators": "gate.faults.generators",
    "users_per_generator": "gate.faults.generators",
    "Replicas": "gate.faults.probes",
    "redis_timeout_ms": "gate.faults.probes",
    "relay_setting": "gate.faults.probes",
    "FaultRun": "gate.faults.run",
    "FaultTimeline": "gate.faults.timeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gate.faults' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "COLUMNS",
    "CRITERIA",
    "DB_READY_TIMEOUT_S",
    "DEFAULT_RATE",
    "ENDPOINTS",
    "KIND",
    "LATENCY_MARGIN_MS",
    "LOAD_START_TIMEOUT_S",
    "MIN_HANG_EXECUTES",
    "MIN_HANG_SAMPLES",
    "POLL_S",
    "RECEIVER_QUIET_S",
    "RECOVERY_BOUND_S",
    "RECOVERY_WATCH_S",
    "STACK_RATE_LIMIT",
    "STACK_WINDOW_S",
    "VERSION",
    "FaultConfig",
    "FaultRun",
    "FaultTimeline",
    "Generators",
    "Marks",
    "Replicas",
    "Sample",
    "Timeline",
    "allowed_503",
    "column",
    "cross_check",
    "decide",
    "hang_latency",
    "judge",
    "nearest_rank",
    "phase_counts",
    "redis_timeout_ms",
    "relay_setting",
    "series",
    "users_per_generator",
    "validity",
]
