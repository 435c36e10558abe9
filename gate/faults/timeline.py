"""The fault timeline: kill, restart, hang and resume Redis, stop and start PostgreSQL, each at its
time while the load runs; confirm each fault from outside the service and time every replica's way
back onto Redis. What happened is kept for faults.json (events, observations, recoveries)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from gate.faults.model import DB_READY_TIMEOUT_S, POLL_S, RECOVERY_BOUND_S, RECOVERY_WATCH_S, Timeline
from gate.faults.probes import Replicas, database_answers, redis_answers
from gate.stack.reference import Stack


def _how(backend: str, embedded: str, containers: str) -> str:
    return containers if backend == "containers" else embedded


class FaultTimeline:
    """Plays a :class:`Timeline` against a running stack and keeps what happened: the events (each
    fault, when it was called and returned), the observations (a replica on the fallback, ready again)
    and the recoveries."""

    def __init__(
        self, timeline: Timeline, *, origin: float, alive: Callable[[], None], say: Callable[[str], None]
    ) -> None:
        self.timeline = timeline
        self.origin = origin  # epoch s when the load started; every "_s" figure is relative to it
        self.alive = alive  # raises when a generator ended early
        self.say = say
        self.events: list[dict[str, Any]] = []
        self.observations: list[dict[str, Any]] = []
        self.recovery: list[dict[str, Any]] = []

    def at(self, epoch: float) -> float:
        return round(epoch - self.origin, 3)

    def _idle_until(self, at_s: float, watch: Callable[[], bool] | None = None) -> None:
        """Wait for ``origin + at_s``, polling ``watch`` until it returns True, and the generators."""
        while (left := self.origin + at_s - time.time()) > 0:
            self.alive()
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

    def play(self, stack: Stack, replicas: Replicas) -> None:
        """Each fault at its time, confirmed from outside; then until every replica is ready again."""
        tl, b = self.timeline, stack.config.backend
        assert stack.redis is not None and stack.database_url is not None
        port = stack.redis.port

        self._idle_until(tl.kill_redis_at)
        what = _how(b, "Redis killed (SIGKILL)", "Redis killed (docker kill)")
        ev = self._event("kill_redis", what, tl.kill_redis_at, stack.kill_redis)
        self._confirm(ev, not redis_answers(port), "PING right after: refused")
        self._idle_until(tl.restart_redis_at, self._fallback_watch(replicas, "redis-kill"))
        what = "Redis started again, empty; returns once it answers PING"
        ev = self._event("restart_redis", what, tl.restart_redis_at, stack.restart_redis)
        self._measure_recovery(replicas, "recovery_kill", "redis-kill", ev)

        self._idle_until(tl.pause_redis_at)
        what = _how(b, "Redis hung (SIGSTOP)", "Redis hung (docker pause)")
        ev = self._event("pause_redis", what, tl.pause_redis_at, stack.pause_redis)
        self._confirm(ev, not redis_answers(port), "PING right after: no answer within 0.3 s")
        self._idle_until(tl.resume_redis_at, self._fallback_watch(replicas, "redis-hang"))
        what = _how(b, "Redis resumed (SIGCONT)", "Redis resumed (docker unpause)")
        ev = self._event("resume_redis", what, tl.resume_redis_at, stack.resume_redis)
        self._measure_recovery(replicas, "recovery_hang", "redis-hang", ev)

        self._idle_until(tl.stop_postgres_at)
        what = _how(b, "PostgreSQL stopped (fast shutdown)", "PostgreSQL stopped (docker stop)")
        ev = self._event("stop_postgres", what, tl.stop_postgres_at, stack.stop_postgres)
        self._confirm(ev, not database_answers(stack.database_url), "SELECT 1 right after: refused")
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
        # the generators' duration ends the run: Generators.finish waits for them
