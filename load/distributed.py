"""Worker -> master: HDR histograms and counts travel with Locust's reports and merge on the master.

A worker adds what it recorded since its previous report to Locust's periodic report
(``events.report_to_master``, every 3 s) and starts afresh; the master adds each delta into its own
recorder (``events.worker_report``). When the test stops, the master asks every worker for its last
measurements (``relay_flush``) and waits for the answers (``relay_final``) — Locust's own shutdown
allows workers 0.5 s — so the merged histograms hold every sample a worker recorded; a worker that
does not answer is listed in ``facts.missing_workers`` and makes the run invalid.

Who counts (load/identity.py): each worker introduces itself (``relay_hello``) when it connects; the
master refuses one whose code, SLO spec or request settings differ from its own, or that never
introduces itself, and records one that joins after the test started. With ``--expect-workers N``
(headless) the master itself waits for N accepted workers, up to the join timeout (``--join-timeout``,
default 60 s; Locust's own wait would exit 1 with no verdict): it then starts with those that joined
— or, with none, ends at once — and the verdict is INVALID, naming them.

Locust processes only (imports Locust).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.rpc import Message
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from load import identity
from load.state import STATE

log = logging.getLogger("relay.load")
FLUSH_TIMEOUT_S = 15.0  # how long the master waits for the workers' final measurements


def register(runner: Any) -> None:
    if isinstance(runner, MasterRunner):
        runner.register_message("relay_final", _on_final)
        runner.register_message("relay_hello", _on_hello)
        opts = runner.environment.parsed_options
        fleet = STATE.fleet
        if opts.join_timeout is not None:
            fleet.join_timeout_s = float(opts.join_timeout)
        elif getattr(opts, "expect_workers_max_wait", 0):
            fleet.join_timeout_s = float(opts.expect_workers_max_wait)
        if getattr(opts, "headless", False) and getattr(opts, "expect_workers", 0):
            # the master waits for its workers itself: Locust's own wait counts any worker that
            # connects (refused ones too) and gives up with exit 1 and no verdict
            fleet.expected = int(opts.expect_workers)
            opts.expect_workers = 10**9
            opts.expect_workers_max_wait = 0
            gevent.spawn(_await_workers, runner.environment)
    elif isinstance(runner, WorkerRunner):
        runner.register_message("relay_flush", _on_flush)
        runner.register_message("relay_refused", _on_refused)
        runner.send_message("relay_hello", STATE.identity)


# -- who counts (master) ------------------------------------------------------------------------------
@events.worker_connect.add_listener
def _worker_connect(client_id: str, **_: Any) -> None:
    runner = _master()
    if runner is None:
        return
    if runner.state in (STATE_SPAWNING, STATE_RUNNING) and client_id not in STATE.fleet.participants:
        STATE.fleet.late.add(client_id)
        log.error("worker %s joined after the test had started: the run is not valid evidence", client_id)


def _master() -> MasterRunner | None:
    runner = STATE.environment.runner if STATE.environment is not None else None
    return runner if isinstance(runner, MasterRunner) else None


def _on_hello(environment: Environment, msg: Any, **_: Any) -> None:
    fleet = STATE.fleet
    node = msg.node_id
    info = msg.data if isinstance(msg.data, dict) else {}
    fleet.info[node] = info
    why = identity.mismatch(STATE.identity, info)
    if why:
        refuse(environment.runner, node, why)
    else:
        fleet.accepted.add(node)
        log.info("worker %s joined", fleet.name(node))


def refuse(runner: Any, node: str, why: str) -> None:
    """Take ``node`` out of the run and tell it to quit: its measurements would not belong here."""
    STATE.fleet.refused[node] = why
    STATE.fleet.accepted.discard(node)
    log.error("refused worker %s: %s", STATE.fleet.name(node), why)
    client = runner.clients.get(node)
    if client is not None:
        del runner.clients[node]
        dispatcher = getattr(runner, "_users_dispatcher", None)
        if dispatcher is not None:
            dispatcher.remove_worker(client)
    try:
        runner.send_message("relay_refused", {"reason": why}, client_id=node)
        runner.server.send_to_client(Message("quit", None, node))
    except Exception as exc:  # its socket is gone already: it is out either way
        log.warning("could not tell %s to quit: %s", node, exc)


def _identified(runner: MasterRunner) -> list[str]:
    return [c.id for c in runner.clients.ready if c.id in STATE.fleet.accepted]


def _refuse_unidentified(runner: MasterRunner) -> None:
    """Workers that connected but have not introduced themselves get HELLO_TIMEOUT_S to do so."""
    fleet = STATE.fleet
    pending = [c.id for c in runner.clients.all if c.id not in fleet.accepted and c.id not in fleet.refused]
    deadline = time.monotonic() + identity.HELLO_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        gevent.sleep(0.05)
        pending = [n for n in pending if n not in fleet.accepted and n not in fleet.refused]
    for node in pending:
        refuse(
            runner,
            node,
            f"it did not introduce itself within {identity.HELLO_TIMEOUT_S:g} s of connecting "
            "(not relay-gate's load/locustfile.py, or an older version of it)",
        )


def _await_workers(environment: Environment) -> None:
    """Master, headless: wait for ``--expect-workers`` accepted workers, up to the join timeout."""
    runner = environment.runner
    assert isinstance(runner, MasterRunner)
    fleet = STATE.fleet
    assert fleet.expected is not None
    timeout = fleet.join_timeout_s
    started = time.monotonic()
    while len(_identified(runner)) < fleet.expected:
        if timeout > 0 and time.monotonic() - started > timeout:
            break
        gevent.sleep(0.1)
    _refuse_unidentified(runner)
    joined = _identified(runner)
    fleet.timed_out = len(joined) < fleet.expected
    if fleet.timed_out:
        log.error(
            "%d of %d workers joined within the %g s join timeout: the run is not valid evidence",
            len(joined),
            fleet.expected,
            timeout,
        )
    if joined:
        environment.parsed_options.expect_workers = len(joined)  # Locust's own wait ends: it starts
        return
    # nobody to run the test: end now with a verdict (INVALID, naming the wait) rather than wait forever
    STATE.start_empty()
    environment.events.quitting.fire(environment=environment, reverse=True)
    runner.quit()
    sys.exit(environment.process_exit_code)


def test_started(environment: Environment) -> int:
    """Master, at the start of a test: the participants are the accepted workers connected now.
    Returns how many there are (each sends its share of the rate)."""
    runner = environment.runner
    assert isinstance(runner, MasterRunner)
    _refuse_unidentified(runner)
    fleet = STATE.fleet
    fleet.reset_test()
    fleet.participants = {
        c.id for c in runner.clients.all if c.id in fleet.accepted and c.state != STATE_MISSING
    }
    return len(fleet.participants)


def _on_refused(environment: Environment, msg: Any, **_: Any) -> None:
    """Worker: the master will not count this worker; say why (it then sends Locust's quit)."""
    STATE.refused = str((msg.data or {}).get("reason", "refused"))
    print(f"relay-gate load: the master refused this worker: {STATE.refused}", file=sys.stderr, flush=True)


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
    if relay and client_id not in STATE.finals and client_id not in STATE.fleet.refused:
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
    if msg.node_id in STATE.finals or msg.node_id in STATE.fleet.refused:
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
    # and so is a participant that died before its first report (Locust drops it from its clients)
    expected = {c.id for c in runner.clients.all} | set(STATE.generators) | STATE.fleet.participants
    expected -= set(STATE.fleet.refused)
    for node in expected:
        try:
            runner.send_message("relay_flush", None, client_id=node)
        except Exception as exc:  # a dead worker's socket; it is reported missing below
            log.warning("could not ask %s for its final measurements: %s", node, exc)
    deadline = time.monotonic() + FLUSH_TIMEOUT_S
    while not expected <= STATE.finals and time.monotonic() < deadline:
        gevent.sleep(0.05)
    STATE.missing = sorted(expected - STATE.finals)
