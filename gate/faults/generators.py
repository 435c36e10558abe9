"""The load of a fault run: one open-model Locust generator per replica, started together, watched
while the faults happen, trusted only when each ends with its own verdict."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gate import interrupts
from gate.errors import InfrastructureError
from gate.faults.model import LOAD_START_TIMEOUT_S, POLL_S, FaultConfig, Sample
from gate.stack.reference import Stack
from load import report, requestlog, settings, slos
from load.launch import LocustPlan, LocustRun


def users_per_generator(rate: float, bound_ms: float) -> int:
    """Enough users that requests stalled for the whole bound cannot run a generator's pool dry: then
    the generator, not the server, would delay the requests due next."""
    return max(20, math.ceil(rate * (bound_ms / 1000 + 0.25)) + 10)


def _check_alive(locust: LocustRun) -> None:
    """Raise (exit 5) when a generator ended before the faults did."""
    if not locust.running():
        raise InfrastructureError(
            f"Locust ({locust.plan.host}) ended before the faults did (exit {locust.exit_codes()}); "
            f"last lines of its log:\n{locust.log_tail()}"
        )


class Generators:
    """The run's Locust processes, one per replica, and the requests they logged."""

    def __init__(self, folder: Path, *, say: Callable[[str], None]) -> None:
        self.folder = folder
        self.say = say
        self.locusts: list[LocustRun] = []

    def start(self, stack: Stack, cfg: FaultConfig, *, bound_ms: float) -> float:
        """One Locust process per replica, each with its share of the rate: the replicas are behind
        no balancer here, and one generator per replica tells which replica answered each request.
        Returns the origin: the epoch s when the load started."""
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
                secrets=stack.secret_values(),
            )
            self.locusts.append(LocustRun(plan))
            self.locusts[-1].start()
        self.say(f"load: open model, {cfg.rate:g} req/s ({per_replica:g} per replica)")
        # the load started when both generators had started: each reports its elapsed time every second
        starts: dict[int, float] = {}
        deadline = time.monotonic() + LOAD_START_TIMEOUT_S
        while len(starts) < len(self.locusts):
            for i, locust in enumerate(self.locusts):
                _check_alive(locust)
                p = locust.progress()
                if p is not None and i not in starts:
                    starts[i] = time.time() - float(p["elapsed_s"])
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"Locust did not start within {LOAD_START_TIMEOUT_S:g} s:\n{self.locusts[0].log_tail()}"
                )
            time.sleep(POLL_S)
        return max(starts.values())

    def check_alive(self) -> None:
        for locust in self.locusts:
            _check_alive(locust)

    def finish(self) -> None:
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

    def stop(self) -> None:
        """Stop the generators still running, and reap those that ended (their groups with them); all
        of them, whatever signal arrives meanwhile (gate/interrupts.py)."""
        with interrupts.deferred():
            for locust in self.locusts:
                locust.stop(timeout=10)

    def samples(self) -> list[Sample]:
        """Every request the generators logged, with the replica it was sent to."""
        samples: list[Sample] = []
        for i, locust in enumerate(self.locusts):
            assert locust.plan.request_log is not None
            samples += [Sample.from_line(i, line) for line in requestlog.read(locust.plan.request_log)]
        return samples

    def describe(self, samples: Sequence[Sample]) -> list[dict[str, Any]]:
        return [_generator(i, locust, samples) for i, locust in enumerate(self.locusts)]


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
