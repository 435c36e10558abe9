"""Locust event hooks: options, HDR recording, the open model, and the verdict at quit.

Imported by ``load/locustfile.py``, so it runs wherever Locust runs that file: alone (LocalRunner),
as a master or as a worker. It imports Locust (and with it gevent's monkey-patching), so nothing
outside a Locust process may import it.

- every process that runs users records each response (``events.request``) into HDR histograms,
  timed from the request's intended send time in the open model (``--arrival-rate``);
- workers and the master exchange measurements as load/distributed.py describes;
- the master (or the lone process) writes load.json, prints the verdict and sets
  ``environment.process_exit_code`` in ``events.quitting``. The exit code is 5 from ``init`` on,
  so a crash before the verdict can never end as 0 or 3.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import psutil
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from gate.errors import EXIT_INFRA, EXIT_USAGE, GateError
from gate.results import new_run_id, utc_now
from load import distributed, document, identity, report, settings, slos, transport
from load.endpoints import endpoint_for
from load.pacing import Pacer
from load.recorder import ERROR_OUTCOMES, SERIES_HORIZON_S, classify, timings
from load.render import render
from load.requestlog import RequestLog
from load.state import STATE


# -- what the User class calls -------------------------------------------------------------------------
def next_key() -> str:
    return STATE.next_key()


def next_execute_key() -> str:
    return STATE.next_execute_key()


def pace(endpoint: str) -> dict[str, Any]:
    return STATE.pacer.pace(endpoint)


def wait_time() -> float:
    return STATE.pacer.wait_time()


# -- command line --------------------------------------------------------------------------------------
@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    g = parser.add_argument_group("relay-gate load (load/plugin.py)")
    g.add_argument(
        "--arrival-rate",
        type=float,
        default=0.0,
        env_var="RELAY_LOAD_RATE",
        help="open model: requests/s over all users (and workers), latency measured from each request's "
        "intended send time; -u is then the pool of users sending them. 0 (default): closed model",
    )
    g.add_argument(
        "--think-time",
        default="0.5-1.5",
        env_var="RELAY_LOAD_THINK_TIME",
        help="closed model: seconds each user waits between requests, MIN-MAX (default 0.5-1.5)",
    )
    g.add_argument(
        "--slos", default=str(slos.DEFAULT_PATH), env_var="RELAY_LOAD_SLOS", help="SLO spec (TOML)"
    )
    g.add_argument(
        "--results-dir",
        default="",
        env_var="RELAY_LOAD_RESULTS",
        help="results folder; load.json goes to <dir>/load/ (default results/<run-id>)",
    )
    g.add_argument("--run-id", default="", env_var="RELAY_LOAD_RUN_ID", help="run id (default: a new one)")
    g.add_argument("--target-name", default="", help="how results name the target (default: the host)")
    g.add_argument("--progress-file", default="", help="append one JSON progress line per second here")
    g.add_argument(
        "--request-log",
        default="",
        help="write one JSON line per request (endpoint, status, due/sent times, latencies, X-Request-ID) "
        "to this file; in a distributed run each worker writes <stem>.worker-<index><suffix> beside it "
        "(load/requestlog.py)",
    )
    g.add_argument(
        "--join-timeout",
        type=float,
        default=None,
        env_var="RELAY_LOAD_JOIN_TIMEOUT",
        help="master with --expect-workers: seconds to wait for the workers to join (default "
        f"{identity.DEFAULT_JOIN_TIMEOUT_S:g}, or --expect-workers-max-wait; 0 waits forever); fewer "
        "make the run INVALID, naming who joined",
    )
    g.add_argument(
        "--source-address",
        default="",
        env_var="RELAY_LOAD_SOURCE_ADDRESS",
        help="send this process's requests from this local IP address (a multi-homed load generator)",
    )


@events.init.add_listener
def _init(environment: Environment, runner: Any, **_: Any) -> None:
    # until a verdict is reached, this process has failed: a crash must never exit 0 (or 3)
    environment.process_exit_code = EXIT_INFRA
    STATE.environment = environment
    opts = environment.parsed_options
    try:
        STATE.keys = settings.require_keys(os.environ)
        settings.parse_weights(os.environ.get(settings.WEIGHTS_ENV))
        STATE.think = settings.parse_think_time(opts.think_time)
        if opts.arrival_rate < 0:
            raise ValueError(f"--arrival-rate must not be negative (got {opts.arrival_rate:g})")
        if opts.join_timeout is not None and opts.join_timeout < 0:
            raise ValueError(f"--join-timeout must not be negative (got {opts.join_timeout:g})")
        # a worker reads its spec too: the master refuses one whose spec differs from its own
        STATE.spec = slos.load(Path(opts.slos))
        if not isinstance(runner, WorkerRunner):
            STATE.run_id = opts.run_id or new_run_id()
        if opts.source_address:
            transport.bind_source(opts.source_address)
        STATE.identity = identity.introduce(
            locustfiles=getattr(environment, "parsed_locustfiles", None) or [],
            spec=STATE.spec,
            environ=os.environ,
            source_address=opts.source_address or None,
        )
    except (GateError, ValueError) as exc:
        print(f"relay-gate load: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    distributed.register(runner)


# -- the test ---------------------------------------------------------------------------------------
@events.test_start.add_listener
def _test_start(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    opts = environment.parsed_options
    if STATE.monitor is not None:  # a previous test of this process (web UI: start, stop, start)
        STATE.monitor.kill(block=False)
    STATE.reset()
    rate: float | None = float(opts.arrival_rate) or None
    if isinstance(runner, MasterRunner):
        # custom options travel to the workers in the spawn message: each sends its share of the rate
        opts.relay_workers = max(1, distributed.test_started(environment))
    elif isinstance(runner, WorkerRunner) and rate is not None:
        rate /= max(1, int(getattr(opts, "relay_workers", 1)))
    STATE.pacer = Pacer(rate, STATE.think)
    STATE.pacer.start()
    STATE.started_at = utc_now()
    STATE.t0_perf = time.perf_counter()
    STATE.t0_epoch = time.time()
    if opts.request_log and not isinstance(runner, MasterRunner):  # a master sends no requests
        STATE.request_log = RequestLog(request_log_path(Path(opts.request_log), runner))
    STATE.monitor = gevent.spawn(_monitor, environment)


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response: Any,
    context: dict[str, Any] | None,
    exception: BaseException | None,
    **_: Any,
) -> None:
    if STATE.frozen or not STATE.started:
        return  # after the stop (or before a start) a sample belongs to no run
    paced = STATE.pacer.done(context) if context else None
    latency, corrected, lag = timings(response_time, paced)
    status = int(getattr(response, "status_code", 0) or 0)
    endpoint = endpoint_for(request_type, name)
    if STATE.request_log is not None:
        _log_request(endpoint, status, paced, latency, corrected, response)
    STATE.recorder.record(
        endpoint,
        status=status,
        outcome=classify(status, failed=exception is not None),
        latency_s=latency,
        corrected_s=corrected,
        lag_s=lag,
        epoch_s=time.time(),
    )
    STATE.requests += 1


def request_log_path(path: Path, runner: Any) -> Path:
    """Where this process logs its requests: the path given, or for a worker (which received the
    master's option) ``<stem>.worker-<index><suffix>`` beside it, so workers never share a file."""
    if isinstance(runner, WorkerRunner):
        return path.with_name(f"{path.stem}.worker-{runner.worker_index}{path.suffix}")
    return path


def _log_request(
    endpoint: str,
    status: int,
    paced: tuple[float, float] | None,
    latency: float,
    corrected: float,
    response: Any,
) -> None:
    """One line of --request-log: the numbers the histograms got, with the request's times."""
    assert STATE.request_log is not None
    if paced is not None:
        due: float | None = STATE.epoch(paced[0])
        sent = STATE.epoch(paced[1])
    else:  # closed model: no schedule; the hook runs when the response is complete
        due, sent = None, time.time() - latency
    headers = getattr(response, "headers", None) if status else None
    request_id = headers.get("x-request-id") if headers is not None else None
    STATE.request_log.write(
        endpoint=endpoint,
        status=status,
        due=due,
        sent=sent,
        response_ms=latency * 1000.0,
        corrected_ms=corrected * 1000.0,
        request_id=str(request_id) if request_id else None,
    )


def _freeze(environment: Environment) -> None:
    STATE.freeze(environment.runner.user_count if environment.runner else 0)


@events.test_stopping.add_listener
def _test_stopping(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        distributed.flush_workers(environment)
    else:
        _freeze(environment)


def _monitor(environment: Environment) -> None:
    """Once a second: this process's CPU and memory, the series, and a progress line."""
    proc = psutil.Process()
    proc.cpu_percent(None)  # the first reading only starts the measurement
    window: collections.deque[tuple[float, int]] = collections.deque(maxlen=6)
    while not STATE.frozen and not STATE.flushed:
        gevent.sleep(1.0)
        STATE.cpu.append(round(proc.cpu_percent(None), 1))
        STATE.rss_mb_max = max(STATE.rss_mb_max, proc.memory_info().rss / 2**20)
        if STATE.request_log is not None:
            STATE.request_log.flush()  # readable while the run goes on
        if isinstance(environment.runner, WorkerRunner):
            continue
        STATE.recorder.finalize(horizon=SERIES_HORIZON_S)
        counts = [rec.counts for rec in STATE.recorder.endpoints.values()]
        total = sum(sum(c.values()) for c in counts)
        window.append((time.perf_counter(), total))
        if environment.parsed_options.progress_file:
            (t_first, n_first), (t_last, n_last) = window[0], window[-1]
            line = {
                "elapsed_s": round(t_last - (STATE.t0_perf or t_last), 1),
                "requests": total,
                "rate_rps": round((n_last - n_first) / (t_last - t_first), 1) if t_last > t_first else 0.0,
                "errors": sum(c.get(o, 0) for c in counts for o in ERROR_OUTCOMES),
                "rate_limited": sum(c.get("rate_limited", 0) for c in counts),
                "users": environment.runner.user_count if environment.runner else 0,
            }
            with contextlib.suppress(OSError), open(environment.parsed_options.progress_file, "a") as f:
                f.write(json.dumps(line) + "\n")


# -- the verdict -------------------------------------------------------------------------------------
@events.quitting.add_listener
def _quitting(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if STATE.request_log is not None:
        STATE.request_log.close()  # normally closed at the stop already; a crash path must not lose it
    if isinstance(runner, WorkerRunner):
        # the master judges; a worker succeeded if its final measurements went out (or no test ran);
        # one the master refused runs something else than the master: a configuration error
        if STATE.refused is not None:
            environment.process_exit_code = EXIT_USAGE
        else:
            environment.process_exit_code = 0 if STATE.final_sent or not STATE.started else EXIT_INFRA
        return
    if not STATE.started:
        print("relay-gate load: no test ran, so there is no verdict", file=sys.stderr)
        return  # exit code stays EXIT_INFRA
    if isinstance(runner, MasterRunner):
        distributed.flush_workers(environment)
    else:
        _freeze(environment)
    if STATE.monitor is not None:
        STATE.monitor.kill(block=False)
    assert STATE.spec is not None
    doc = document.build(environment)
    report.finish(doc, STATE.spec)
    results = Path(environment.parsed_options.results_dir or Path("results") / STATE.run_id)
    path = report.write(results, doc, secrets=STATE.keys)
    print(render(doc) + f"\nresults: {path}", file=sys.stderr, flush=True)
    environment.process_exit_code = int(doc["verdict"]["exit_code"])
