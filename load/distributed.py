"""Worker -> master: HDR histograms and counts travel with Locust's reports and merge on the master.

A worker adds what it recorded since its previous report to Locust's periodic report
(``events.report_to_master``, every 3 s) and starts afresh; the master adds each delta into its own
recorder (``events.worker_report``). When the test stops, the master asks every worker for its last
measurements (``relay_flush``) and waits for the answers (``relay_final``) — Locust's own shutdown
allows workers 0.5 s — so the merged histograms hold every sample a worker recorded; a worker that
does not answer is listed in ``facts.missing_workers`` and makes the run invalid.

Locust processes only (imports Locust).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from load.state import STATE

log = logging.getLogger("relay.load")
FLUSH_TIMEOUT_S = 15.0  # how long the master waits for the workers' final measurements


def register(runner: Any) -> None:
    if isinstance(runner, MasterRunner):
        runner.register_message("relay_final", _on_final)
    elif isinstance(runner, WorkerRunner):
        runner.register_message("relay_flush", _on_flush)


@events.report_to_master.add_listener
def _report(client_id: str, data: dict[str, Any]) -> None:
    if STATE.final_sent or not STATE.started:
        return
    data["relay"] = {
        "delta": STATE.recorder.export_delta(),
        "generator": STATE.generator("worker", client_id),
    }


@events.worker_report.add_listener
def _worker_report(client_id: str, data: dict[str, Any]) -> None:
    relay = data.get("relay")
    if relay and client_id not in STATE.finals:
        STATE.recorder.merge(relay["delta"])
        STATE.generators[client_id] = relay["generator"]


def _on_flush(environment: Environment, msg: Any, **_: Any) -> None:
    """Worker: the master wants the last measurements. Stop recording and send them."""
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    STATE.freeze(runner.user_count)
    final = {"delta": STATE.recorder.export_delta(), "generator": STATE.generator("worker", runner.client_id)}
    runner.send_message("relay_final", final)
    STATE.final_sent = True


def _on_final(environment: Environment, msg: Any, **_: Any) -> None:
    if msg.node_id in STATE.finals:
        return
    STATE.recorder.merge(msg.data["delta"])
    STATE.generators[msg.node_id] = msg.data["generator"]
    STATE.finals.add(msg.node_id)


def flush_workers(environment: Environment) -> None:
    """Master: collect every worker's final measurements before the runner shuts its sockets."""
    if STATE.flushed or not STATE.started:
        return
    STATE.flushed = True
    STATE.stopped_perf = time.perf_counter()
    runner = environment.runner
    assert isinstance(runner, MasterRunner)
    # a worker that reported once and then vanished is owed too: its data would be missing
    expected = {c.id for c in runner.clients.all} | set(STATE.generators)
    for node in expected:
        try:
            runner.send_message("relay_flush", None, client_id=node)
        except Exception as exc:  # a dead worker's socket; it is reported missing below
            log.warning("could not ask %s for its final measurements: %s", node, exc)
    deadline = time.monotonic() + FLUSH_TIMEOUT_S
    while not expected <= STATE.finals and time.monotonic() < deadline:
        gevent.sleep(0.05)
    STATE.missing = sorted(expected - STATE.finals)
