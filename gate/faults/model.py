"""What a fault run is made of: its criteria and bounds, its timeline and configuration, and the
records the judgement reads (one request as the load logged it, the instants of the faults)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate.stack.reference import Backend

KIND, VERSION = "faults", 1
DEFAULT_RATE = 100.0
RECOVERY_BOUND_S = 5.0
LATENCY_MARGIN_MS = 50.0
# Below these the hang's p99 cannot earn a pass. Nearest rank: with 100 samples the p99 is the second
# highest value; the executes are the requests that meet the Redis limiter at all.
MIN_HANG_SAMPLES = 100
MIN_HANG_EXECUTES = 10
# the stack's quota is out of the load's reach: the faults are under test, not the limit
STACK_RATE_LIMIT, STACK_WINDOW_S = 1_000_000, 60
POLL_S = 0.1
# recovery is measured past its bound: a slow recovery is a figure, not a timeout
RECOVERY_WATCH_S = RECOVERY_BOUND_S + 2.0
DB_READY_TIMEOUT_S = 15.0
LOAD_START_TIMEOUT_S = 30.0
# executes in flight when the load stops still deliver: the receiver must have been quiet this long
RECEIVER_QUIET_S = 0.5

CRITERIA: dict[str, str] = {
    "no_5xx": "No 5xx on list, preview or execute (and no request left unanswered), except the "
    "documented 503 on execute while the database is down",
    "hang_p99": "p99 latency of requests sent during the Redis hang <= configured Redis timeout + 50 ms",
    "recovery_kill": "Every replica's limiter is back on Redis <= 5 s after Redis is restarted (kill)",
    "recovery_hang": "Every replica's limiter is back on Redis <= 5 s after SIGCONT (hang)",
    "deliveries_audited": "Every webhook delivered under faults has its audit row",
    "faults_injected": "Every planned fault was injected: Redis killed, restarted, stopped (SIGSTOP) and "
    "resumed (SIGCONT), PostgreSQL stopped and started",
}
# the timeline's events, in order: a run that misses one did not test what its criteria claim
PLANNED_FAULTS = (
    "kill_redis",
    "restart_redis",
    "pause_redis",
    "resume_redis",
    "stop_postgres",
    "start_postgres",
)
# the criteria measured from the requests: the validity checks discount these (not whether faults happened)
MEASURED = ("no_5xx", "hang_p99", "recovery_kill", "recovery_hang", "deliveries_audited")
ENDPOINTS = ("list", "preview", "execute")
# per phase and endpoint; "503_outside_db_outage" counts the 503s among "503" that were not allowed
COLUMNS = ("requests", "2xx", "429", "503", "503_outside_db_outage", "other_5xx", "other", "no_response",
           "unfinished")  # fmt: skip


@dataclass(frozen=True)
class Timeline:
    """When each fault happens, in seconds after the load started. A step never starts before the
    previous fault's recovery has been measured: a slow recovery delays it rather than overlapping."""

    kill_redis_at: float = 5.0
    restart_redis_at: float = 10.0
    pause_redis_at: float = 16.0
    resume_redis_at: float = 19.0
    stop_postgres_at: float = 25.0
    # longer than DB_TIMEOUT_S (2 s): executes that waited their whole bound for a connection get the 503
    postgres_down_s: float = 4.0
    end_at: float = 36.0

    def validate(self) -> None:
        steps = [
            self.kill_redis_at,
            self.restart_redis_at,
            self.pause_redis_at,
            self.resume_redis_at,
            self.stop_postgres_at,
            self.stop_postgres_at + self.postgres_down_s,
            self.end_at,
        ]
        if steps[0] < 1 or any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"a fault timeline must increase and start after 1 s: {self}")

    def to_json(self) -> dict[str, float]:
        return dict(vars(self))


@dataclass
class FaultConfig:
    results: Path  # the run's folder; faults/ goes inside
    run_id: str
    rate: float = DEFAULT_RATE  # requests/s over both replicas
    backend: Backend = "embedded"
    timeline: Timeline = field(default_factory=Timeline)
    defect: str | None = None  # tests: one of gate/proof/catalogue.py, to prove the run can fail


@dataclass(frozen=True)
class Sample:
    """One line of a request log (load/requestlog.py), with the replica it was sent to."""

    replica: int
    endpoint: str
    status: int | None  # 0: no response at all; None: still in flight when the load stopped
    due: float  # epoch s: when the open model's schedule had it leave (its arrival)
    sent: float | None
    response_ms: float | None
    corrected_ms: float  # (sent - due) + response time
    request_id: str | None

    @classmethod
    def from_line(cls, replica: int, line: Mapping[str, Any]) -> Sample:
        due = line.get("due") if line.get("due") is not None else line.get("sent")
        if due is None:
            raise ValueError(f"a request-log line without a due or sent time: {dict(line)}")

        def number(key: str) -> float | None:
            return None if line.get(key) is None else float(line[key])

        return cls(
            replica=replica,
            endpoint=str(line["endpoint"]),
            status=None if line.get("status") is None else int(line["status"]),
            due=float(due),
            sent=number("sent"),
            response_ms=number("response_ms"),
            corrected_ms=float(line["corrected_ms"]),
            request_id=line.get("request_id"),
        )

    @property
    def done(self) -> float | None:
        return None if self.sent is None or self.response_ms is None else self.sent + self.response_ms / 1000


@dataclass(frozen=True)
class Marks:
    """The instants (epoch s) the judgement needs, from the timeline's events. Each fault phase starts
    when its control returned and ends when recovery is certain (a hang: until SIGCONT is sent)."""

    kill: float  # kill_redis returned
    redis_back: float  # restart_redis returned: the new Redis answers PING
    pause: float  # pause_redis returned
    resume: float  # resume_redis called
    db_stop: float  # stop_postgres called (sessions end during the call)
    db_start: float  # start_postgres returned: PostgreSQL answers
    db_ready: tuple[float | None, ...]  # per replica: /_stcore/ready answered 200 again

    def db_window(self, replica: int) -> tuple[float, float]:
        """When ``replica``'s database was away; without a ready answer, only until PostgreSQL was back."""
        ready = self.db_ready[replica] if replica < len(self.db_ready) else None
        return self.db_stop, self.db_start if ready is None else ready

    def phases(self) -> list[tuple[str, float, float, str]]:
        known = [r for r in self.db_ready if r is not None]
        db_back = max(known) if known and len(known) == len(self.db_ready) else self.db_start
        return [
            ("steady", -math.inf, self.kill, "before any fault"),
            ("redis-killed", self.kill, self.redis_back, "Redis killed, until a new one answers PING"),
            ("redis-back", self.redis_back, self.pause, "Redis restarted (empty)"),
            ("redis-hung", self.pause, self.resume, "Redis stopped (SIGSTOP) until SIGCONT"),
            ("redis-resumed", self.resume, self.db_stop, "Redis answering again"),
            ("db-down", self.db_stop, db_back, "PostgreSQL stopped, until every replica is ready again"),
            ("db-back", db_back, math.inf, "PostgreSQL back, every replica ready"),
        ]
