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
"""

from __future__ import annotations

import itertools
import math
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from gate.errors import EXIT_CRITERION, EXIT_INVALID, EXIT_OK, InfrastructureError
from gate.receiver import ReceiverClient
from gate.results import Redactor, provenance, utc_now, write_json
from gate.stack import Backend, Stack, StackConfig
from load import report, requestlog, settings, slos
from load.launch import LocustPlan, LocustRun

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
}
ENDPOINTS = ("list", "preview", "execute")
# per phase and endpoint; "503_outside_db_outage" counts the 503s among "503" that were not allowed
COLUMNS = ("requests", "2xx", "429", "503", "503_outside_db_outage", "other_5xx", "other", "no_response",
           "unfinished")  # fmt: skip
_GAUGE = re.compile(r'^rate_limiter_backend\{backend="(?P<backend>[^"]+)"\}\s+(?P<value>\S+)$', re.M)


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
    defect: str | None = None  # tests: one of gate/defects.py, to prove the run can fail


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


# -- probes ----------------------------------------------------------------------------------------------


def relay_setting(stack: Stack, name: str) -> Any:
    """A relay setting as the stack gives it to its replicas, or the service's default when the stack
    sets none (``name`` is the environment variable, e.g. ``REDIS_SOCKET_TIMEOUT_MS``)."""
    from service.config import Settings

    value = stack.service_env().get(name)
    return value if value else Settings.model_fields[name.lower()].default


def redis_timeout_ms(stack: Stack) -> tuple[int, int]:
    """(connect, socket) Redis timeouts of the stack's replicas, in ms: the hang's latency bound."""
    connect = int(relay_setting(stack, "REDIS_CONNECT_TIMEOUT_MS"))
    sock = int(relay_setting(stack, "REDIS_SOCKET_TIMEOUT_MS"))
    return connect, sock


def users_per_generator(rate: float, bound_ms: float) -> int:
    """Enough users that requests stalled for the whole bound cannot run a generator's pool dry: then
    the generator, not the server, would delay the requests due next."""
    return max(20, math.ceil(rate * (bound_ms / 1000 + 0.25)) + 10)


class Replicas:
    """What the run watches on each relay replica: the limiter's backend gauge and readiness."""

    def __init__(self, base_urls: Sequence[str]) -> None:
        self.urls = list(base_urls)
        self._http = [httpx.Client(base_url=u, timeout=1.0, trust_env=False) for u in self.urls]

    def close(self) -> None:
        for client in self._http:
            client.close()

    def backend(self, i: int) -> str | None:
        """``"redis"`` or ``"memory"`` as the replica's gauge says; None when it did not say."""
        try:
            text = self._http[i].get("/metrics").text
        except httpx.HTTPError:
            return None
        active = [m["backend"] for m in _GAUGE.finditer(text) if float(m["value"]) == 1.0]
        return active[0] if len(active) == 1 else None

    def ready(self, i: int) -> bool:
        try:
            return self._http[i].get("/_stcore/ready").status_code == 200
        except httpx.HTTPError:
            return False


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:  # refused (killed) or timed out (hung)
        return False


def _database_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _how(backend: str, embedded: str, containers: str) -> str:
    return containers if backend == "containers" else embedded


# -- the run -----------------------------------------------------------------------------------------------


class FaultRun:
    """One fault run: the stack, the generators, the timeline, what was observed, the document."""

    def __init__(self, config: FaultConfig, *, progress: Callable[[str], None] | None = None) -> None:
        config.timeline.validate()
        self.config = config
        self.say = progress or (lambda _msg: None)
        self.folder = config.results / KIND
        self.origin = 0.0  # epoch s when the load started; every "_s" figure is relative to it
        self.events: list[dict[str, Any]] = []
        self.observations: list[dict[str, Any]] = []
        self.recovery: list[dict[str, Any]] = []
        self.locusts: list[LocustRun] = []

    def at(self, epoch: float) -> float:
        return round(epoch - self.origin, 3)

    def execute(self) -> dict[str, Any]:
        """Run the faults under load, judge, write faults/faults.json and return its document."""
        cfg = self.config
        started_at = utc_now()
        self.say(f"starting a 2-replica stack ({cfg.backend}) ...")
        stack = Stack(
            StackConfig(
                backend=cfg.backend,
                replicas=2,
                rate_limit=STACK_RATE_LIMIT,
                window_s=STACK_WINDOW_S,
                defect=cfg.defect,
            )
        )
        replicas: Replicas | None = None
        receiver: ReceiverClient | None = None
        try:
            stack.start()  # StackError: exit 5
            assert stack.receiver_url is not None
            replicas, receiver = Replicas(stack.base_urls), ReceiverClient(stack.receiver_url)
            timeouts = redis_timeout_ms(stack)
            seq0 = receiver.last_seq()
            self._start_load(stack, bound_ms=sum(timeouts) + LATENCY_MARGIN_MS)
            self._timeline(stack, replicas)
            self._finish_load()
            captures, seq1 = _settled_captures(receiver, seq0)
            rows = _audit_rows(stack, [str(c["webhook_id"]) for c in captures if c["webhook_id"]])
            doc = self._document(stack, started_at, captures, seq1 - seq0, rows, timeouts)
        finally:
            for locust in self.locusts:
                if locust.running():
                    locust.stop(timeout=10)
            for client in (receiver, replicas):
                if client is not None:
                    client.close()
            stack.stop()
        write_json(self.folder / "faults.json", KIND, VERSION, doc, redactor=Redactor(stack.secret_values()))
        return doc

    # -- load ----------------------------------------------------------------------------------------------
    def _start_load(self, stack: Stack, *, bound_ms: float) -> None:
        """One Locust process per replica, each with its share of the rate: the replicas are behind
        no balancer here, and one generator per replica tells which replica answered each request."""
        cfg = self.config
        per_replica = cfg.rate / len(stack.base_urls)
        keys = [k.key for k in stack.keys if k.role == "dev"]  # three workspaces
        for i, url in enumerate(stack.base_urls):
            plan = LocustPlan(
                host=url,
                users=users_per_generator(per_replica, bound_ms),
                duration_s=math.ceil(cfg.timeline.end_at),
                arrival_rate=per_replica,
                think_time="0.5-1.5",
                workers=0,
                slos=slos.DEFAULT_PATH,
                results=(self.folder / f"locust-{i}").resolve(),
                run_id=cfg.run_id,
                target_name=f"reference stack, replica {i}",
                env={
                    settings.KEYS_ENV: ",".join(keys),
                    settings.KEY_ENV: "",
                    settings.WEIGHTS_ENV: settings.format_weights(settings.DEFAULT_WEIGHTS),
                },
                request_log=(self.folder / f"requests-{i}.jsonl").resolve(),
            )
            self.locusts.append(LocustRun(plan))
            self.locusts[-1].start()
        self.say(f"load: open model, {cfg.rate:g} req/s ({per_replica:g} per replica)")
        # the load started when both generators had started: each reports its elapsed time every second
        starts: dict[int, float] = {}
        deadline = time.monotonic() + LOAD_START_TIMEOUT_S
        while len(starts) < len(self.locusts):
            for i, locust in enumerate(self.locusts):
                self._check_alive(locust)
                p = locust.progress()
                if p is not None and i not in starts:
                    starts[i] = time.time() - float(p["elapsed_s"])
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"Locust did not start within {LOAD_START_TIMEOUT_S:g} s:\n{self.locusts[0].log_tail()}"
                )
            time.sleep(POLL_S)
        self.origin = max(starts.values())

    def _check_alive(self, locust: LocustRun) -> None:
        if not locust.running():
            raise InfrastructureError(
                f"Locust ({locust.plan.host}) ended before the faults did (exit {locust.exit_codes()}); "
                f"last lines of its log:\n{locust.log_tail()}"
            )

    def _finish_load(self) -> None:
        """Wait for the generators; trust their measurements only if each ended with its own verdict."""
        deadline = time.monotonic() + max(run.deadline_s for run in self.locusts)
        while any(run.running() for run in self.locusts) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        for locust in self.locusts:
            locust.wait_all(timeout=5)
            rc = locust.exit_codes().get("locust")
            path = locust.plan.results / "load" / "load.json"
            if not path.exists() or rc != report.read(path)["verdict"]["exit_code"]:
                raise InfrastructureError(
                    f"Locust ({locust.plan.host}) exited with status {rc} "
                    f"{'without results' if not path.exists() else 'against its own results'}; "
                    f"last lines of its log:\n{locust.log_tail()}"
                )

    # -- the timeline ------------------------------------------------------------------------------------
    def _idle_until(self, at_s: float, watch: Callable[[], bool] | None = None) -> None:
        """Wait for ``origin + at_s``, polling ``watch`` until it returns True, and the generators."""
        while (left := self.origin + at_s - time.time()) > 0:
            for locust in self.locusts:
                self._check_alive(locust)
            if watch is not None and watch():
                watch = None
            time.sleep(min(POLL_S, left))

    def _event(self, name: str, what: str, planned_s: float, action: Callable[[], object]) -> dict[str, Any]:
        begin = time.time()
        action()
        end = time.time()
        ev = {
            "event": name,
            "what": what,
            "planned_s": planned_s,
            "at_s": self.at(begin),
            "done_s": self.at(end),
        }
        self.events.append({**ev, "epoch": begin, "done_epoch": end})
        self.say(f"  t={ev['at_s']:6.2f} s  {name}: {what}")
        return self.events[-1]

    def _confirm(self, ev: dict[str, Any], down: bool, check: str) -> None:
        """Record whether the fault took effect, seen from outside the service."""
        ev.update(confirmed=down, check=check)
        if not down:
            self.say(f"  warning: {ev['event']} did not take effect ({check})")

    def _observe(self, replica: int, fault: str, what: str) -> None:
        now = time.time()
        self.observations.append(
            {"replica": replica, "fault": fault, "what": what, "at_s": self.at(now), "epoch": now}
        )

    def _fallback_watch(self, replicas: Replicas, fault: str) -> Callable[[], bool]:
        """A poll recording when each replica's limiter is first seen on the in-process fallback."""
        seen: set[int] = set()

        def poll() -> bool:
            for i in range(len(replicas.urls)):
                if i not in seen and replicas.backend(i) == "memory":
                    seen.add(i)
                    self._observe(i, fault, "limiter on the in-process fallback")
            return len(seen) == len(replicas.urls)

        return poll

    def _measure_recovery(self, replicas: Replicas, cid: str, fault: str, since: Mapping[str, Any]) -> None:
        """Poll every replica's gauge until each reports Redis again (or RECOVERY_WATCH_S passed)."""
        t0 = float(since["done_epoch"])
        back: dict[int, float] = {}
        while len(back) < len(replicas.urls) and time.time() - t0 <= RECOVERY_WATCH_S:
            for i in range(len(replicas.urls)):
                if i not in back and replicas.backend(i) == "redis":
                    back[i] = round(time.time() - t0, 3)
            time.sleep(POLL_S)
        fell_back = {o["replica"]: o["at_s"] for o in self.observations if o["fault"] == fault}
        took = max(back.values()) if len(back) == len(replicas.urls) else None
        self.recovery.append(
            {
                "id": cid,
                "fault": fault,
                "recovered_by": since["event"],
                "recovered_at_s": since["done_s"],
                "replicas": [
                    {
                        "replica": i,
                        "base_url": url,
                        "on_fallback_at_s": fell_back.get(i),
                        "back_on_redis_after_s": back.get(i),
                    }
                    for i, url in enumerate(replicas.urls)
                ],
                "recovery_s": took,
                "bound_s": RECOVERY_BOUND_S,
                "passed": took is not None and took <= RECOVERY_BOUND_S,
            }
        )
        shown = f"{took:.2f} s" if took is not None else f"not within {RECOVERY_WATCH_S:g} s"
        self.say(f"  every replica back on Redis after {shown} (bound {RECOVERY_BOUND_S:g} s)")

    def _timeline(self, stack: Stack, replicas: Replicas) -> None:
        tl, b = self.config.timeline, stack.config.backend
        assert stack.redis is not None and stack.database_url is not None
        port = stack.redis.port

        self._idle_until(tl.kill_redis_at)
        what = _how(b, "Redis killed (SIGKILL)", "Redis killed (docker kill)")
        ev = self._event("kill_redis", what, tl.kill_redis_at, stack.kill_redis)
        self._confirm(ev, not _redis_answers(port), "PING right after: refused")
        self._idle_until(tl.restart_redis_at, self._fallback_watch(replicas, "redis-kill"))
        what = "Redis started again, empty; returns once it answers PING"
        ev = self._event("restart_redis", what, tl.restart_redis_at, stack.restart_redis)
        self._measure_recovery(replicas, "recovery_kill", "redis-kill", ev)

        self._idle_until(tl.pause_redis_at)
        what = _how(b, "Redis hung (SIGSTOP)", "Redis hung (docker pause)")
        ev = self._event("pause_redis", what, tl.pause_redis_at, stack.pause_redis)
        self._confirm(ev, not _redis_answers(port), "PING right after: no answer within 0.3 s")
        self._idle_until(tl.resume_redis_at, self._fallback_watch(replicas, "redis-hang"))
        what = _how(b, "Redis resumed (SIGCONT)", "Redis resumed (docker unpause)")
        ev = self._event("resume_redis", what, tl.resume_redis_at, stack.resume_redis)
        self._measure_recovery(replicas, "recovery_hang", "redis-hang", ev)

        self._idle_until(tl.stop_postgres_at)
        what = _how(b, "PostgreSQL stopped (fast shutdown)", "PostgreSQL stopped (docker stop)")
        ev = self._event("stop_postgres", what, tl.stop_postgres_at, stack.stop_postgres)
        self._confirm(ev, not _database_answers(stack.database_url), "SELECT 1 right after: refused")
        self._idle_until(tl.stop_postgres_at + tl.postgres_down_s)
        what = "PostgreSQL started again; returns once it answers"
        ev = self._event(
            "start_postgres", what, tl.stop_postgres_at + tl.postgres_down_s, stack.start_postgres
        )
        ready: set[int] = set()
        while len(ready) < len(replicas.urls) and time.time() - ev["done_epoch"] <= DB_READY_TIMEOUT_S:
            for i in range(len(replicas.urls)):
                if i not in ready and replicas.ready(i):
                    ready.add(i)
                    self._observe(i, "db-stop", "ready again (/_stcore/ready 200)")
            time.sleep(POLL_S)
        # the generators' duration ends the run: _finish_load waits for them

    # -- the document ----------------------------------------------------------------------------------
    def _document(
        self,
        stack: Stack,
        started_at: str,
        captures: list[dict[str, Any]],
        captures_expected: int,
        rows: dict[str, dict[str, Any]],
        timeouts: tuple[int, int],
    ) -> dict[str, Any]:
        samples: list[Sample] = []
        for i, locust in enumerate(self.locusts):
            assert locust.plan.request_log is not None
            samples += [Sample.from_line(i, line) for line in requestlog.read(locust.plan.request_log)]
        ev = {e["event"]: e for e in self.events}
        ready = {o["replica"]: float(o["epoch"]) for o in self.observations if o["fault"] == "db-stop"}
        marks = Marks(
            kill=ev["kill_redis"]["done_epoch"],
            redis_back=ev["restart_redis"]["done_epoch"],
            pause=ev["pause_redis"]["done_epoch"],
            resume=ev["resume_redis"]["epoch"],
            db_stop=ev["stop_postgres"]["epoch"],
            db_start=ev["start_postgres"]["done_epoch"],
            db_ready=tuple(ready.get(i) for i in range(len(stack.base_urls))),
        )
        generators = [_generator(i, locust, samples) for i, locust in enumerate(self.locusts)]
        events = [{k: v for k, v in e.items() if not k.endswith("epoch")} for e in self.events]
        judged = judge(
            samples,
            marks,
            origin=self.origin,
            timeout_ms=sum(timeouts),
            recovery=self.recovery,
            captures=[
                {
                    **{k: v for k, v in c.items() if k != "received_at"},
                    "received_at_s": self.at(c["received_at"]),
                }
                for c in captures
            ],
            captures_expected=captures_expected,
            rows=rows,
            events=events,
            generators=generators,
        )
        target = {
            "name": "reference stack",
            "backend": stack.config.backend,
            "base_urls": stack.base_urls,
            "replicas": len(stack.base_urls),
            "defect": stack.config.defect,
            "versions": stack.versions(),
        }
        prov = provenance(run_id=self.config.run_id, target=target, started_at=started_at)
        prov["finished_at"] = utc_now()
        return {
            "run_id": self.config.run_id,
            "started_at": started_at,
            "finished_at": prov["finished_at"],
            "provenance": prov,
            "target": target,
            "settings": {
                "redis_connect_timeout_ms": timeouts[0],
                "redis_socket_timeout_ms": timeouts[1],
                "redis_reprobe_max_s": float(relay_setting(stack, "REDIS_REPROBE_MAX_S")),
                "db_timeout_s": float(relay_setting(stack, "DB_TIMEOUT_S")),
                "rate_limit": {"limit": STACK_RATE_LIMIT, "window_s": STACK_WINDOW_S},
            },
            "load": {
                "model": "open",
                "rate_rps": self.config.rate,
                "weights": settings.DEFAULT_WEIGHTS,
                "keys": len([k for k in stack.keys if k.role == "dev"]),
                "generators": generators,
            },
            "origin_epoch": round(self.origin, 6),
            "timeline": {
                "planned": self.config.timeline.to_json(),
                "events": events,
                "observations": [{k: v for k, v in o.items() if k != "epoch"} for o in self.observations],
            },
            "recovery": {"bound_s": RECOVERY_BOUND_S, "faults": self.recovery},
            **judged,
        }


def _generator(i: int, locust: LocustRun, samples: Sequence[Sample]) -> dict[str, Any]:
    """A generator as faults.json lists it: its share of the load and its own validity checks."""
    doc = report.read(locust.plan.results / "load" / "load.json")
    return {
        "replica": i,
        "base_url": locust.plan.host,
        "arrival_rate": locust.plan.arrival_rate,
        "users": locust.plan.users,
        "load_json": f"locust-{i}/load/load.json",
        "request_log": f"requests-{i}.jsonl",
        "requests_measured": sum(
            int(e["requests"]) + int(e["unfinished"]) for e in doc["endpoints"].values()
        ),
        "requests_logged": sum(1 for s in samples if s.replica == i),
        "exit_code": doc["verdict"]["exit_code"],
        "validity": [
            {k: c[k] for k in ("check", "ok", "blocks", "detail")} for c in doc.get("validity") or []
        ],
    }


def _settled_captures(receiver: ReceiverClient, after: int) -> tuple[list[dict[str, Any]], int]:
    """The receiver's captures since ``after`` once no delivery has landed for RECEIVER_QUIET_S, and
    its last sequence number (to tell whether any capture was dropped)."""
    last, since = receiver.last_seq(), time.monotonic()
    deadline = since + 10.0
    while time.monotonic() - since < RECEIVER_QUIET_S and time.monotonic() < deadline:
        time.sleep(POLL_S)
        if (now := receiver.last_seq()) != last:
            last, since = now, time.monotonic()
    captures = [
        {
            "seq": c.seq,
            "webhook_id": c.header("webhook-id"),
            "request_id": c.header("x-request-id"),
            "received_at": c.received_at,
        }
        for c in receiver.captures(after)
    ]
    return captures, last


def _audit_rows(stack: Stack, webhook_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The audit rows of these webhook ids, read from the database once the run is over."""
    assert stack.database_url is not None
    query = (
        "SELECT webhook_id, request_id::text, status, delivery_status FROM audit_log"
        " WHERE webhook_id = ANY(%s)"
    )
    try:
        with psycopg.connect(stack.database_url, connect_timeout=5, autocommit=True) as conn:
            found = conn.execute(query, (list(webhook_ids),)).fetchall()
    except psycopg.Error as exc:
        raise InfrastructureError(
            f"reading audit_log after the fault run failed ({type(exc).__name__}); is PostgreSQL back?"
        ) from None
    return {str(w): {"request_id": r, "status": s, "delivery_status": d} for w, r, s, d in found}


# -- the judgement: pure, from what faults.json records ----------------------------------------------------


def column(s: Sample) -> str:
    """The count a request goes into."""
    if s.status is None:
        return "unfinished"
    if s.status == 0:
        return "no_response"
    if 200 <= s.status < 300:
        return "2xx"
    if s.status in (429, 503):
        return str(s.status)
    return "other_5xx" if s.status >= 500 else "other"


def allowed_503(s: Sample, marks: Marks) -> bool:
    """The documented 503: an execute in flight while its replica's database was away."""
    if s.endpoint != "execute" or s.status != 503 or s.sent is None or s.done is None:
        return False
    start, end = marks.db_window(s.replica)
    return s.sent <= end and s.done >= start


def nearest_rank(values: Iterable[float], percentile: float) -> float | None:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)] if ordered else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def phase_counts(samples: Sequence[Sample], marks: Marks, origin: float) -> list[dict[str, Any]]:
    """Per phase (a request belongs to the phase it was due in) and endpoint: how it was answered."""
    endpoints = [*ENDPOINTS, *sorted({s.endpoint for s in samples} - set(ENDPOINTS))]
    first = min((s.due for s in samples), default=origin)
    last = max((s.due for s in samples), default=origin)
    out = []
    for name, start, end, what in marks.phases():
        counts = {ep: dict.fromkeys(COLUMNS, 0) for ep in endpoints}
        for s in samples:
            if start <= s.due < end:
                row = counts[s.endpoint]
                row["requests"] += 1
                row[column(s)] += 1
                row["503_outside_db_outage"] += s.status == 503 and not allowed_503(s, marks)
        out.append(
            {
                "phase": name,
                "what": what,
                "start_s": round(max(start, first) - origin, 3),
                "end_s": round(min(end, last) - origin, 3),
                "requests": counts,
            }
        )
    return out


def hang_latency(samples: Sequence[Sample], marks: Marks, origin: float, timeout_ms: float) -> dict[str, Any]:
    """The requests due between SIGSTOP and SIGCONT: their p99 (corrected) against the bound. 429s
    stay out, as in load.json's histograms (none are expected: the quota is out of reach)."""
    hung = [s for s in samples if marks.pause <= s.due < marks.resume and s.status != 429]
    steady = [s for s in samples if s.due < marks.kill and s.status not in (None, 429)]
    p99 = nearest_rank((s.corrected_ms for s in hung), 99)
    bound = timeout_ms + LATENCY_MARGIN_MS

    def figures(rows: Sequence[Sample]) -> dict[str, Any]:
        return {
            "samples": len(rows),
            "p99_ms": _ms(nearest_rank((s.corrected_ms for s in rows), 99)),
            "max_ms": _ms(max((s.corrected_ms for s in rows), default=None)),
        }

    return {
        "window": {
            "start_s": round(marks.pause - origin, 3),
            "end_s": round(marks.resume - origin, 3),
            "seconds": round(marks.resume - marks.pause, 3),
        },
        "basis": "corrected",
        "samples": len(hung),
        "executes": sum(1 for s in hung if s.endpoint == "execute"),
        "min_samples": MIN_HANG_SAMPLES,
        "p99_ms": _ms(p99),
        "max_ms": _ms(max((s.corrected_ms for s in hung), default=None)),
        "uncorrected_p99_ms": _ms(
            nearest_rank((s.response_ms for s in hung if s.response_ms is not None), 99)
        ),
        "lag_p99_ms": _ms(nearest_rank(((s.sent - s.due) * 1000 for s in hung if s.sent is not None), 99)),
        "configured_timeout_ms": timeout_ms,
        "margin_ms": LATENCY_MARGIN_MS,
        "bound_ms": bound,
        "steady_p99_ms": _ms(nearest_rank((s.corrected_ms for s in steady), 99)),
        "by_endpoint": {
            ep: figures(rows) for ep in ENDPOINTS if (rows := [s for s in hung if s.endpoint == ep])
        },
        "passed": None if p99 is None else p99 <= bound,
    }


def cross_check(
    captures: Sequence[Mapping[str, Any]], rows: Mapping[str, Mapping[str, Any]], samples: Sequence[Sample]
) -> dict[str, Any]:
    """Every captured delivery against the audit table, and against the executes answered 503 (which
    must have delivered nothing). Retries of one delivery share its webhook-id and its row."""
    refused = {s.request_id for s in samples if s.endpoint == "execute" and s.status == 503 and s.request_id}
    missing, mismatched, after_503 = [], [], []
    for c in captures:
        row = rows.get(str(c.get("webhook_id")))
        seen = {k: c.get(k) for k in ("seq", "webhook_id", "request_id", "received_at_s")}
        if row is None:
            missing.append({**seen, "problem": "no audit row"})
        elif row.get("request_id") != c.get("request_id"):
            mismatched.append({**seen, "problem": f"audit row has request id {row.get('request_id')}"})
        if c.get("request_id") in refused:
            after_503.append({**seen, "problem": "delivered for an execute answered 503"})
    webhooks = {str(c.get("webhook_id")) for c in captures}
    audited = webhooks & set(rows)
    statuses: dict[str, int] = {}
    for w in sorted(audited):
        statuses[str(rows[w].get("status"))] = statuses.get(str(rows[w].get("status")), 0) + 1
    return {
        "deliveries": len(captures),
        "webhooks": len(webhooks),
        "audit_rows_found": len(audited),
        "audit_row_status": statuses,
        "executes_2xx": sum(1 for s in samples if s.endpoint == "execute" and column(s) == "2xx"),
        "executes_503": len(refused),
        "missing_audit_row": len(missing),
        "request_id_mismatch": len(mismatched),
        "delivered_after_503": len(after_503),
        "problems": (missing + mismatched + after_503)[:20],
        "passed": not missing and not mismatched and not after_503,
    }


def series(samples: Sequence[Sample], origin: float) -> dict[str, list[Any]]:
    """Per second of the run (by due time): how requests were answered, and their corrected p99."""
    buckets: dict[int, list[Sample]] = {}
    for s in samples:
        buckets.setdefault(math.floor(s.due - origin), []).append(s)
    seconds = list(range(min(buckets), max(buckets) + 1)) if buckets else []
    out: dict[str, list[Any]] = {"t": seconds, "2xx": [], "429": [], "503": [], "errors": [], "p99_ms": []}
    for t in seconds:
        rows = buckets.get(t, [])
        cols = [column(s) for s in rows]
        out["2xx"].append(cols.count("2xx"))
        out["429"].append(cols.count("429"))
        out["503"].append(cols.count("503"))
        out["errors"].append(sum(cols.count(c) for c in ("other_5xx", "other", "no_response")))
        out["p99_ms"].append(_ms(nearest_rank((s.corrected_ms for s in rows if s.status != 429), 99)))
    return out


def _check(
    name: str, ok: bool, blocks: str, detail: str, affects: Sequence[str] = tuple(CRITERIA)
) -> dict[str, Any]:
    """A validity check. ``blocks``: "verdict" (no criterion can be trusted) or "pass" (a pass of the
    criteria it ``affects`` would be unearned; a failure they show still counts)."""
    return {"check": name, "ok": ok, "blocks": blocks, "detail": detail, "affects": list(affects)}


def validity(
    *,
    generators: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    recovery: Sequence[Mapping[str, Any]],
    phases: Sequence[Mapping[str, Any]],
    hang: Mapping[str, Any],
    deliveries: Mapping[str, Any],
    captures_expected: int,
) -> list[dict[str, Any]]:
    """What makes the run evidence: the generators, the request logs, the faults themselves."""

    def failing(check: Callable[[Mapping[str, Any]], bool]) -> list[str]:
        return [
            f"replica {g['replica']}: {c['check']}: {c['detail']}"
            for g in generators
            for c in g["validity"]
            if not c["ok"] and check(c)
        ]

    untrusted = failing(lambda c: c["blocks"] == "verdict")
    slow = failing(lambda c: c["check"] == "achieved_rate")
    short = [
        f"replica {g['replica']}: {g['requests_logged']} logged of {g['requests_measured']} measured"
        for g in generators
        if g["requests_logged"] != g["requests_measured"]
    ]
    checks = [
        _check(
            "generators",
            not untrusted,
            "verdict",
            "; ".join(untrusted) or "no generator exceptions, saturated CPU or malformed requests",
        ),
        _check("arrival_rate", not slow, "pass", "; ".join(slow) or "every generator held its arrival rate"),
        _check(
            "request_logs",
            not short,
            "verdict",
            "; ".join(short) or "every measured request is in the request logs",
        ),
    ]
    affected = {
        "kill_redis": ("no_5xx", "recovery_kill"),
        "pause_redis": ("no_5xx", "hang_p99", "recovery_hang"),
        "stop_postgres": ("no_5xx", "deliveries_audited"),
    }
    for e in events:
        if e["event"] in affected:
            ok = bool(e.get("confirmed"))
            checks.append(
                _check(
                    f"{e['event']}_took_effect",
                    ok,
                    "pass",
                    f"{e.get('check')}" + ("" if ok else ": it still answered"),
                    affected[e["event"]],
                )
            )
    for r in recovery:
        stayed = [str(x["replica"]) for x in r["replicas"] if x["on_fallback_at_s"] is None]
        checks.append(
            _check(
                f"{r['fault']}_fallback_seen",
                not stayed,
                "pass",
                f"replica(s) {', '.join(stayed)} never seen on the fallback: no recovery to time"
                if stayed
                else "every replica was seen on the fallback",
                (r["id"],),
            )
        )
    empty = [
        f"{p['phase']}/{ep}"
        for p in phases
        for ep, row in p["requests"].items()
        if ep in ENDPOINTS and row["requests"] == 0
    ]
    checks.append(
        _check(
            "phases_covered",
            not empty,
            "pass",
            f"no requests in {', '.join(empty)}" if empty else "requests of every endpoint in every phase",
        )
    )
    enough = hang["samples"] >= MIN_HANG_SAMPLES and hang["executes"] >= MIN_HANG_EXECUTES
    checks.append(
        _check(
            "hang_samples",
            enough,
            "pass",
            f"{hang['samples']} requests ({hang['executes']} executes) due during the hang; "
            f"the p99 needs {MIN_HANG_SAMPLES} ({MIN_HANG_EXECUTES} executes)",
            ("hang_p99",),
        )
    )
    got = int(deliveries["deliveries"])
    checks.append(
        _check(
            "receiver_complete",
            got == captures_expected and got > 0,
            "pass",
            f"{got} deliveries read back of {captures_expected} captured",
            ("deliveries_audited",),
        )
    )
    return checks


def judge(
    samples: Sequence[Sample],
    marks: Marks,
    *,
    origin: float,
    timeout_ms: float,
    recovery: Sequence[Mapping[str, Any]],
    captures: Sequence[Mapping[str, Any]],
    captures_expected: int,
    rows: Mapping[str, Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    generators: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The criteria, validity checks and verdict of a fault run, from what it recorded."""
    phases = phase_counts(samples, marks, origin)
    hang = hang_latency(samples, marks, origin, timeout_ms)
    deliveries = cross_check(captures, rows, samples)
    bad_keys = ("503_outside_db_outage", "other_5xx", "no_response")
    violations = [
        {"phase": p["phase"], "endpoint": ep, **{k: row[k] for k in bad_keys}}
        for p in phases
        for ep, row in p["requests"].items()
        if any(row[k] for k in bad_keys)
    ]
    allowed = sum(1 for s in samples if allowed_503(s, marks))
    by_id = {r["id"]: r for r in recovery}

    def recovered(cid: str) -> dict[str, Any]:
        r = by_id.get(cid)
        if r is None:
            return _criterion(cid, None, "not measured")
        per = ", ".join(f"replica {x['replica']} {x['back_on_redis_after_s']} s" for x in r["replicas"])
        return _criterion(
            cid,
            bool(r["passed"]),
            f"{r['recovery_s']} s after {r['recovered_by']} ({per}); bound {RECOVERY_BOUND_S:g} s",
        )

    criteria = [
        _criterion(
            "no_5xx",
            not violations,
            "; ".join(
                f"{v['phase']}: {v['endpoint']} "
                + ", ".join(f"{v[k]} x {k.replace('_', ' ')}" for k in bad_keys if v[k])
                for v in violations
            )
            or f"none; {allowed} x 503 on execute while the database was down",
        ),
        _criterion(
            "hang_p99",
            hang["passed"],
            f"p99 {hang['p99_ms']} ms over {hang['samples']} requests due during the hang; bound "
            f"{hang['bound_ms']:g} ms ({timeout_ms:g} ms configured + {LATENCY_MARGIN_MS:g} ms)",
        ),
        recovered("recovery_kill"),
        recovered("recovery_hang"),
        _criterion(
            "deliveries_audited",
            deliveries["passed"],
            f"{deliveries['deliveries']} deliveries ({deliveries['webhooks']} webhook ids): "
            f"{deliveries['audit_rows_found']} with their audit row, {deliveries['missing_audit_row']} "
            f"without, {deliveries['request_id_mismatch']} under another request id; "
            f"{deliveries['delivered_after_503']} for the {deliveries['executes_503']} executes answered 503",
        ),
    ]
    checks = validity(
        generators=generators,
        events=events,
        recovery=recovery,
        phases=phases,
        hang=hang,
        deliveries=deliveries,
        captures_expected=captures_expected,
    )
    for c in criteria:
        _earn(c, checks)
    return {
        "phases": phases,
        "five_xx": {"allowed_503_on_execute": allowed, "violations": violations},
        "hang_latency": hang,
        "deliveries": deliveries,
        "series": series(samples, origin),
        "criteria": criteria,
        "validity": checks,
        **decide(criteria, checks),
    }


def _criterion(cid: str, passed: bool | None, detail: str) -> dict[str, Any]:
    return {"id": cid, "title": CRITERIA[cid], "passed": passed, "detail": detail}


def _earn(criterion: dict[str, Any], checks: Sequence[Mapping[str, Any]]) -> None:
    """Set the criterion's status: "pass", "fail", or "not evidence" — when no verdict can be trusted,
    when it could not be measured, or when a pass was not earned (a failure seen stays a failure)."""
    blocking = [k for k in checks if not k["ok"] and criterion["id"] in k["affects"]]
    untrusted = any(k["blocks"] == "verdict" for k in blocking)
    if untrusted or criterion["passed"] is None or (blocking and criterion["passed"]):
        criterion["status"] = "not evidence"
        criterion["note"] = "; ".join(f"{k['check']}: {k['detail']}" for k in blocking) or "not measured"
    else:
        criterion["status"] = "pass" if criterion["passed"] else "fail"


def decide(criteria: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """INVALID (4) when no verdict can be trusted; FAILED (1) when a criterion is false; INVALID (4)
    when a pass was not earned; else PASSED (0)."""
    untrusted = [f"{k['check']}: {k['detail']}" for k in checks if not k["ok"] and k["blocks"] == "verdict"]
    failed = [f"{c['title']}: {c['detail']}" for c in criteria if c["status"] == "fail"]
    unearned = [
        f"{c['title']}: not evidence ({c['note']})" for c in criteria if c["status"] == "not evidence"
    ]
    if untrusted:
        return {"verdict": "INVALID", "exit_code": EXIT_INVALID, "reasons": untrusted}
    if failed:
        return {"verdict": "FAILED", "exit_code": EXIT_CRITERION, "reasons": failed}
    if unearned:
        return {"verdict": "INVALID", "exit_code": EXIT_INVALID, "reasons": unearned}
    return {"verdict": "PASSED", "exit_code": EXIT_OK, "reasons": []}
