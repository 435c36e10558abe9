"""``relay-gate load``: Locust against the reference stack or a deployment, judged against SLOs.

Runs ``load/locustfile.py`` in Locust subprocesses (a single process, ``--workers N`` on loopback
with a master merging their HDR histograms, or ``--master --expect-workers N`` for workers on other
hosts started with ``--worker``: docs/load.md, "Workers on other hosts"), shows progress, and ends
with the verdict per endpoint and SLO: measured value, threshold, pass/fail, error budget, and
whether the run is valid evidence.
Results: ``results/<run-id>/load/load.json`` (relay-gate/load@1) and ``run.json``.

Load models: ``--rate R`` (open model, the default at 100 req/s: R requests/s on a fixed schedule,
latency from each request's intended send time, so a stalled server cannot hide) or ``--users N``
(closed model: N users with think time; latency from the actual send, as Locust reports it).

The reference stack (the default target) is started with the limiter on — each execute still pays
for its Redis decision — at 1,000,000 executes per 60 s per workspace, and the load is spread over its
three dev workspaces' keys: the run measures the service, not the limiter.

``--baseline PATH`` (a previous run's load.json or results folder) compares this run with it: per
endpoint the shift of p50/p95/p99 with a bootstrap interval from both runs' HDR histograms, and a
regression verdict by the ``[regression]`` rules of the SLO spec (docs/load.md, "Against a baseline").

Exit: 0 every SLO passed on a valid run; 2 bad usage or SLO spec (the message names the key), a
baseline that is not a load.json or of a run with another model, rate or journey mix; 3 an SLO was
breached or an endpoint regressed against the baseline; 4 not valid evidence (too few samples for a
percentile, rate not held, generator CPU saturated, no requests, an exception in the generator);
5 target unreachable (stated 5 s timeout), the stack did not start, or Locust crashed — a crash never
ends as 0 or 3.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from gate import durations
from gate.client import load_quota
from gate.client.probe import probe
from gate.client.target import Target
from gate.commands import load_distributed
from gate.commands.check import add_target_args
from gate.errors import EXIT_USAGE, InfrastructureError, UsageError
from gate.results import Redactor, existing_run_id, new_run_id, provenance, utc_now, write_json
from gate.stack.reference import Stack, StackConfig
from load import baseline, launch, report, settings, slos
from load.actions import ACTIONS_ENV
from load.launch import LocustPlan, LocustRun
from load.openmodel import default_pool
from load.render import comparison_lines, render, verdict_lines

# the reference stack must not throttle an SLO run (see the module docstring)
STACK_RATE_LIMIT = 1_000_000
STACK_WINDOW_S = 60
DEFAULT_RATE = 100.0
PROGRESS_EVERY_S = 5.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "load",
        help="Locust load test with an SLO verdict (HDR histograms, open model, error budgets)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = p.add_mutually_exclusive_group()
    model.add_argument(
        "--rate", type=float, default=None, help=f"open model: requests/s (default {DEFAULT_RATE:g})"
    )
    model.add_argument("--users", type=int, default=None, help="closed model: N users with think time")
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="open model: users sending the requests (default rate/10, >= 10)",
    )
    p.add_argument("--think-time", default="0.5-1.5", help="closed model: MIN-MAX seconds between requests")
    p.add_argument("--duration", default="60s", help="run time: 90, 90s, 5m, 1h30m (default 60s)")
    p.add_argument("--workers", type=int, default=0, help="Locust worker processes (0: one process)")
    p.add_argument(
        "--weights", default=None, help="journey mix, e.g. list=4,preview=4,execute=2 (RELAY_LOAD_WEIGHTS)"
    )
    p.add_argument("--slos", type=Path, default=None, help="SLO spec (default load/slos.toml)")
    p.add_argument("--results", type=Path, default=None, help="results folder (default results/<run-id>)")
    p.add_argument(
        "--recompute",
        type=Path,
        default=None,
        metavar="FILE",
        help="recompute the verdict of a load.json and exit",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="PATH",
        help="compare with a previous run of the same load (its load.json or results folder): "
        "regressions of p99 are a breach",
    )
    add_target_args(p)
    load_distributed.add_arguments(p)  # --master / --worker: workers on other hosts
    p.set_defaults(run=run)


def parse_duration(text: str) -> int:
    """``"90"``, ``"90s"``, ``"5m"``, ``"1h30m"`` -> whole seconds (gate/durations.py's grammar)."""
    try:
        seconds = round(durations.parse_duration(text))
    except ValueError:
        raise UsageError(f"--duration {text!r} is not a duration: use 90, 90s, 5m or 1h30m") from None
    if seconds < 1:
        raise UsageError("--duration must be at least 1 second")
    return seconds


def run(args: argparse.Namespace) -> int:
    if args.recompute is not None:
        return recompute(args.recompute, args.slos, args.baseline)
    if args.worker:
        return load_distributed.run_worker(args)
    master_bind = load_distributed.master_bind(args)
    workers = args.expect_workers if master_bind else args.workers
    spec = slos.load(args.slos)  # exit 2 naming the key, before anything starts
    weights = settings.parse_weights(args.weights or os.environ.get(settings.WEIGHTS_ENV))
    duration = parse_duration(args.duration)
    think = settings.parse_think_time(args.think_time)
    rate, users = _model(args)
    base = None
    if args.baseline is not None:  # a baseline that is unreadable or of another load: exit 2 now
        base = baseline.read(args.baseline)
        model = baseline.planned_model(rate=rate, users=users, think_time=think, weights=weights)
        baseline.check_comparable(base, model)
    if not 0 <= args.workers <= 64:
        raise UsageError("--workers must be between 0 and 64")
    if workers and users < workers:
        raise UsageError(
            f"{users} users cannot be spread over {workers} workers: raise --concurrency/--users"
        )
    _forecast(spec, weights, rate, duration)

    run_id = new_run_id()
    results: Path = args.results or Path("results") / run_id
    if (results / "load" / "load.json").exists():
        raise UsageError(f"{results} already holds a load run: choose another --results folder")
    run_id = existing_run_id(results) or run_id

    # Ctrl-C and SIGTERM (gate/interrupts.py) unwind through the finally below: Locust and the stack stop
    stack: Stack | None = None
    try:
        quota_plan, actions = None, "harmless"  # a deployment gets the harmless action only
        if args.target_url or args.target_config:
            target = Target.from_config(args.target_url, args.target_config)
            creds = load_quota.load_credentials(target)
            keys = [c.key for c in creds] or settings.api_keys(os.environ)
            if not keys:
                raise UsageError(
                    "the load test needs an API key: add [credentials] to the target config "
                    '(dev = { env = "RELAY_DEV_KEY" }; one entry per workspace spreads the load), '
                    f"or set {settings.KEY_ENV} / {settings.KEYS_ENV}"
                )
            # before any request: a load whose executes cannot fit the quota stops here (exit 2)
            quota_plan = load_quota.plan(target, len(keys), rate=rate, weights=weights)
            described = target.describe()
        else:
            print("relay-gate load: starting the reference stack ...", file=sys.stderr, flush=True)
            stack = Stack(
                StackConfig(
                    backend=args.backend, replicas=1, rate_limit=STACK_RATE_LIMIT, window_s=STACK_WINDOW_S
                )
            ).start()  # StackError -> exit 5
            target = Target.from_stack(stack)
            keys = [k.key for k in stack.keys if k.role == "dev"]
            described = target.describe()
            actions = "catalogue"  # the gate's own receiver gets them: the whole catalogue is exercised
        # TLS verified and proxies as configured; InfrastructureError (5) names TLS
        probe(target.base_url, target.transport)
        if quota_plan is not None:
            print(f"relay-gate load: {quota_plan.render()}", flush=True)
            started = load_quota.await_room(
                target, creds, quota_plan, duration_s=duration, say=lambda m: print(m, flush=True)
            )
            load_quota.write(results, quota_plan, started)
        secrets = sorted({*keys, *target.secret_values()})

        plan = LocustPlan(
            host=target.base_url,
            users=users,
            duration_s=duration,
            arrival_rate=rate,
            think_time=args.think_time,
            workers=workers,
            master_bind=master_bind,
            join_timeout_s=args.join_timeout if master_bind else launch.CONNECT_TIMEOUT_S,
            slos=(args.slos or slos.DEFAULT_PATH).resolve(),
            results=results.resolve(),
            run_id=run_id,
            target_name=str(described["name"]),
            env={
                settings.KEYS_ENV: ",".join(keys),
                settings.KEY_ENV: "",
                settings.WEIGHTS_ENV: settings.format_weights(weights),
                ACTIONS_ENV: actions,
                # Locust verifies the target's certificate too, and uses the same proxy
                **target.transport.locust_env(target.base_url),
            },
            secrets=secrets,
        )
        return _run_locust(plan, described, secrets, base, spec.regression)
    finally:
        if stack is not None:
            stack.stop()


def _model(args: argparse.Namespace) -> tuple[float | None, int]:
    """(arrival rate or None, users)."""
    if args.users is not None:
        if args.users < 1:
            raise UsageError("--users must be at least 1")
        if args.concurrency is not None:
            raise UsageError("--concurrency is the open model's pool; with --users the users are the load")
        return None, args.users
    rate = DEFAULT_RATE if args.rate is None else args.rate
    if not 0 < rate <= 100_000:
        raise UsageError("--rate must be a positive number of requests per second (at most 100000)")
    users = default_pool(rate) if args.concurrency is None else args.concurrency
    if users < 1:
        raise UsageError("--concurrency must be at least 1")
    return rate, users


def _forecast(spec: slos.SloSpec, weights: dict[str, int], rate: float | None, duration: int) -> None:
    """Say up front when an open-model run is unlikely to collect the samples its SLOs need.

    Each request picks its endpoint at random by weight, so an endpoint's count is binomial: the
    warning fires when the count three standard deviations below the mean falls short of
    ``min_samples`` (a run that expects exactly the minimum comes up short about half the time), and
    names the duration that would clear it."""
    total = sum(weights.values())
    if not rate or not total:
        return
    n = rate * duration
    for name, slo in spec.endpoints.items():
        p = weights.get(name, 0) / total
        mean, sd = n * p, math.sqrt(n * p * (1 - p))
        for lat in slo.latency:
            if mean - 3 * sd >= lat.min_samples:
                continue
            needed = _duration_for(lat.min_samples, p, rate)
            hint = f"--duration {needed}s or more" if needed else f"a non-zero {name} weight"
            print(
                f"relay-gate load: warning: ~{mean:.0f} ± {sd:.0f} {name} requests expected; {lat.label} "
                f"needs {lat.min_samples}, so the run is likely not valid evidence ({hint} at "
                f"{rate:g} req/s, a higher --rate, or a lower min_samples in the SLO spec)",
                file=sys.stderr,
            )


def _duration_for(samples: int, share: float, rate: float) -> int | None:
    """The shortest whole-second duration whose expected count, less three standard deviations, is at
    least ``samples`` (None when the endpoint gets no share)."""
    if share <= 0:
        return None
    # n·p − 3·sqrt(n·p·(1−p)) ≥ m, solved for x = sqrt(n·p): x² − 3·sqrt(1−p)·x − m ≥ 0
    x = (3 * math.sqrt(1 - share) + math.sqrt(9 * (1 - share) + 4 * samples)) / 2
    return math.ceil(x * x / share / rate)


def _run_locust(
    plan: LocustPlan,
    described: dict[str, Any],
    secrets: list[str],
    base: baseline.Baseline | None = None,
    rules: slos.Regression | None = None,
) -> int:
    redactor = Redactor(secrets)
    run_json = plan.results / "run.json"
    own_run_json = not run_json.exists()
    run_doc = provenance(
        run_id=plan.run_id, target=described, started_at=utc_now(), extra={"command": "load"}
    )
    if own_run_json:
        write_json(run_json, "run", 1, run_doc, redactor=redactor)
    model = (
        f"open model, {plan.arrival_rate:g} req/s, {plan.users} users"
        if plan.arrival_rate
        else f"closed model, {plan.users} users"
    )
    workers = load_distributed.describe(plan)
    print(
        redactor.text(
            f"relay-gate load: run {plan.run_id} against {described['name']} ({plan.host}): {model}, "
            f"{plan.duration_s} s{workers}; results in {plan.results}"
        ),
        flush=True,
    )

    locust = LocustRun(plan)
    try:
        locust.start()
        _watch(locust)
    except KeyboardInterrupt:
        print(
            "relay-gate load: interrupted; stopping Locust (it still writes its results) ...", file=sys.stderr
        )
        locust.stop()
        raise
    locust.wait_all(timeout=30)
    code = _verdict(locust, plan, compared=base is not None)
    if base is not None:
        code = _compare(plan.results / "load" / "load.json", base, rules or slos.Regression(), redactor)
    if own_run_json:
        run_doc.update(finished_at=utc_now(), exit_code=code)
        write_json(run_json, "run", 1, run_doc, redactor=redactor)
    return code


def _watch(locust: LocustRun) -> None:
    started = time.monotonic()
    last_print = 0.0
    while locust.running():
        if time.monotonic() - started > locust.deadline_s:
            locust.stop(timeout=10)
            raise InfrastructureError(
                f"Locust did not finish within {locust.deadline_s:g} s (duration + start-up + grace); "
                f"stopped it. Last lines of its log:\n{locust.log_tail()}"
            )
        p = locust.progress()
        if p is not None and time.monotonic() - last_print >= PROGRESS_EVERY_S:
            last_print = time.monotonic()
            print(
                f"  {p['elapsed_s']:>6.0f}/{locust.plan.duration_s} s  {p['rate_rps']:>8.1f} req/s  "
                f"{p['requests']:>9,} requests  {p['errors']:,} errors  {p['rate_limited']:,} x 429  "
                f"{p['users']} users",
                flush=True,
            )
        time.sleep(0.25)


def _verdict(locust: LocustRun, plan: LocustPlan, *, compared: bool = False) -> int:
    """The verdict from load.json, trusted only if every Locust process ended the way it says (with
    ``compared``, printed as the SLO verdict: the comparison with a baseline follows, and decides)."""
    codes = locust.exit_codes()
    master_name = "master" if plan.workers else "locust"
    rc = codes.pop(master_name)
    path = plan.results / "load" / "load.json"
    if not path.exists():
        tail = locust.log_tail()
        if rc == EXIT_USAGE:
            raise UsageError(f"Locust refused the run (exit {rc}):\n{tail}")
        raise InfrastructureError(
            f"Locust exited with status {rc} without a verdict (crashed?). Last lines:\n{tail}"
        )
    doc = report.read(path)
    print(render(doc, label="SLO verdict, before the baseline comparison" if compared else "verdict"))
    code = int(doc["verdict"]["exit_code"])
    if rc != code:
        raise InfrastructureError(
            f"Locust exited with status {rc} but its results say {code}: the process failed after the "
            f"verdict, so the verdict is not trusted. Last lines of its log:\n{locust.log_tail()}"
        )
    crashed = {name: c for name, c in codes.items() if c != 0}
    if crashed:
        name = next(iter(crashed))
        raise InfrastructureError(
            f"worker(s) {', '.join(f'{n} (exit {c})' for n, c in crashed.items())} failed; the verdict "
            f"(exit {code}) is not trusted. Last lines of {name}'s log:\n{locust.log_tail(name)}"
        )
    print(f"results: {path}")
    return code


def _compare(path: Path, base: baseline.Baseline, rules: slos.Regression, redactor: Redactor) -> int:
    """Add the comparison with ``base`` to load.json, print it, and return the verdict with it."""
    doc = baseline.attach(report.read(path), base, rules)
    write_json(path, report.KIND, report.VERSION, doc, redactor=redactor)
    print("\n".join([*comparison_lines(doc["comparison"]), *verdict_lines(doc["verdict"])]))
    return int(doc["verdict"]["exit_code"])


def recompute(path: Path, spec_path: Path | None, baseline_path: Path | None = None) -> int:
    """Recompute and print the verdict of a results file (same exit codes as the run); with
    ``baseline_path``, compared with that run instead of the baseline the file holds, if any."""
    doc = report.read(path)
    spec = slos.load(spec_path) if spec_path is not None else None
    judged = report.recompute(doc, spec)
    rules = spec.regression if spec is not None else None
    if baseline_path is not None:  # the rules of --slos, else of load/slos.toml
        base = baseline.read(baseline_path)
        judged = baseline.attach({**doc, **judged}, base, rules or slos.load().regression)
    elif doc.get("comparison"):
        judged = baseline.recompute(doc, judged, rules)
    print(render(doc, judged))
    stored = doc.get("verdict", {}).get("exit_code")
    if spec is None and baseline_path is None and stored not in (None, judged["verdict"]["exit_code"]):
        print(
            f"relay-gate load: note: the file's stored verdict was exit {stored}; recomputed: "
            f"exit {judged['verdict']['exit_code']}",
            file=sys.stderr,
        )
    return int(judged["verdict"]["exit_code"])
