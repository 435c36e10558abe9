"""What one Locust process knows about the current test: its recorder, pacer, keys and figures.

Only Locust processes import this (through the pacer, it imports gevent).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from gate.results import utc_now
from load import slos
from load.identity import Fleet
from load.pacing import Pacer
from load.recorder import Recorder
from load.requestlog import RequestLog


class RunState:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.spec: slos.SloSpec | None = None
        self.run_id = ""
        self.think = (0.5, 1.5)
        self._key_cycle: Any = None
        self._execute_cycle: Any = None
        self.monitor: Any = None  # the greenlet sampling CPU and writing progress
        self.request_log: RequestLog | None = None  # --request-log: one line per request
        self.environment: Any = None  # Locust's Environment, once ``init`` ran
        self.identity: dict[str, Any] = {}  # what this process runs (load/identity.py)
        self.fleet = Fleet()  # master: who joined, who was refused (kept across tests: joins come first)
        self.refused: str | None = None  # worker: why the master refused it
        self.reset()

    def reset(self) -> None:
        """A new test starts (a web UI can run several in one process)."""
        if self.request_log is not None:
            self.request_log.close()
            self.request_log = None
        self.recorder = Recorder()
        self.pacer = Pacer(None, self.think)
        self.started_at: str | None = None
        self.t0_perf: float | None = None
        self.t0_epoch = 0.0
        self.stopped_perf: float | None = None
        self.users_at_stop = 0
        self.backlog_at_stop = 0
        self.unfinished_at_stop = 0
        self.requests = 0  # this process's completed requests (a worker's recorder is emptied per report)
        self.cpu: list[float] = []
        self.rss_mb_max = 0.0
        # master only: each worker's latest figures, who sent its final measurements, who did not
        self.generators: dict[str, dict[str, Any]] = {}
        self.finals: set[str] = set()
        self.missing: list[str] = []
        self.flushed = False
        self.final_sent = False  # worker only

    @property
    def started(self) -> bool:
        return self.t0_perf is not None

    @property
    def frozen(self) -> bool:
        return self.stopped_perf is not None

    def next_key(self) -> str:
        """Keys are handed out round-robin, one per user: several keys spread the load over workspaces."""
        if self._key_cycle is None:
            self._key_cycle = itertools.cycle(self.keys)
        return str(next(self._key_cycle))

    def next_execute_key(self) -> str:
        """Executes take the keys round-robin request by request, whichever user sends them: each
        workspace gets the same share of the quota-limited executes (gate/client/quota.py plans on that)."""
        if self._execute_cycle is None:
            self._execute_cycle = itertools.cycle(self.keys)
        return str(next(self._execute_cycle))

    def start_empty(self) -> None:
        """A test that starts and stops at once (a master whose workers never joined): the verdict is
        then computed from no measurements, and says why."""
        self.reset()
        self.started_at = utc_now()
        self.t0_epoch = time.time()
        self.t0_perf = self.stopped_perf = time.perf_counter()

    def freeze(self, users: int) -> None:
        """Stop recording: requests still in flight are charged the time since they were due."""
        if self.frozen or not self.started:
            return
        now = time.perf_counter()
        self.stopped_perf = now
        self.users_at_stop = users
        unfinished = self.pacer.unfinished(now)
        for endpoint, waited in unfinished:
            self.recorder.record_unfinished(endpoint, waited)
            if self.request_log is not None:
                self.request_log.write(
                    endpoint=endpoint,
                    status=None,
                    due=self.epoch(now - waited),
                    sent=None,
                    response_ms=None,
                    corrected_ms=waited * 1000.0,
                    unfinished=True,
                )
        self.unfinished_at_stop = len(unfinished)
        self.backlog_at_stop = self.pacer.backlog(now)
        if self.request_log is not None:
            self.request_log.close()  # complete: nothing recorded after the stop belongs to the run

    def epoch(self, perf: float) -> float:
        """A ``time.perf_counter`` reading of this test as epoch seconds (the wall clock other
        processes, such as a fault injector, stamp their events with)."""
        return self.t0_epoch + (perf - (self.t0_perf or perf))

    def generator(self, role: str, node: str) -> dict[str, Any]:
        """This process's figures as load.json's ``generators`` lists them."""
        end = self.stopped_perf or time.perf_counter()
        elapsed = end - self.t0_perf if self.t0_perf is not None else 0.0
        return {
            "id": node,
            "role": role,
            "arrival_rate": self.pacer.rate,
            "users": self.users_at_stop,
            "requests": self.requests,
            "elapsed_s": round(elapsed, 3),
            "achieved_rps": round(self.requests / elapsed, 3) if elapsed > 0 and role != "master" else 0.0,
            "backlog_at_stop": self.backlog_at_stop,
            "unfinished_at_stop": self.unfinished_at_stop,
            "cpu_samples": list(self.cpu),
            "rss_mb_max": round(self.rss_mb_max, 1),
            "final": self.frozen,
        }


STATE = RunState()
