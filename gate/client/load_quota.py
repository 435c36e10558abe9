"""The load step against a deployment: its executes planned under the quota of the keys it has, and
a start in a window with room — before Locust sends its first request.

``relay-gate load`` (and the load step of ``relay-gate run``) against a deployment with a known
``[rate_limit]`` refuses a run whose executes cannot fit (exit 2, with rate x share x window against
keys x limit: :func:`gate.client.quota.plan_load`; the keys take the executes round-robin), and probes
each key with one harmless execute: a key whose window has less room left than the load will spend in
it (the features step may have used it up a moment ago) makes the run wait for the next window,
within the policy's ``max_wait_s``. What was planned and waited is written to ``load/quota-plan.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from gate.client.quota import LoadPlan, PlanError, plan_load
from gate.client.target import Credential, Target
from gate.errors import UsageError
from gate.oracles import ratelimit
from gate.results import Redactor, write_json
from load.actions import harmless

EPSILON_S = 0.1  # start a little after the reset the server announced


def load_credentials(target: Target) -> list[Credential]:
    """``[load] credentials`` when given, else one key per workspace (dev keys preferred)."""
    if target.load_credentials:
        return [target.credentials[n] for n in target.load_credentials if n in target.credentials]
    by_ws: dict[str, Credential] = {}
    for c in sorted(target.credentials.values(), key=lambda c: (c.role != "dev", c.name)):
        by_ws.setdefault(c.workspace, c)
    return list(by_ws.values())


def plan(target: Target, keys: int, *, rate: float | None, weights: dict[str, int]) -> LoadPlan | None:
    """The load's plan under the target's policy; None when there is nothing to plan against (no
    ``[rate_limit]``, or the closed model whose rate the server sets)."""
    policy = target.rate_limit
    if policy is None or rate is None:
        return None
    try:
        return plan_load(limit=policy.limit, window_s=policy.window_s, keys=keys, rate=rate, weights=weights)
    except PlanError as exc:
        raise UsageError(f"the load cannot fit the target's rate limit: {exc}") from None


def await_room(
    target: Target,
    creds: list[Credential],
    load: LoadPlan,
    *,
    duration_s: float,
    say: Callable[[str], None],
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Probe each key (one harmless execute, its X-RateLimit-Remaining and -Reset); wait for the next
    window when one has less room than the load spends before that window ends."""
    policy = target.rate_limit
    assert policy is not None
    per_key_s = load.executes_per_s / load.workspaces
    probes, wait_until = [], 0.0
    options = target.transport.httpx_options(target.base_url)  # the target's TLS and proxy settings
    with httpx.Client(base_url=target.base_url, timeout=timeout_s, follow_redirects=False, **options) as c:
        for cred in creds:
            r = c.post(policy.endpoint, headers=cred.authorization, json=harmless())
            now = time.time()
            seen = ratelimit.parse(r.headers.multi_items(), now=now)  # epoch or delta resets alike
            remaining = seen.remaining.value if seen.remaining.ok else None
            left_s = max(0.0, seen.reset_in or 0.0)
            need = per_key_s * min(left_s, duration_s)
            short = r.status_code == 429 or (remaining is not None and remaining < need)
            probes.append({"key": cred.name, "workspace": cred.workspace, "status": r.status_code,
                           "remaining": remaining, "window_left_s": round(left_s, 3), "needs": round(need, 1),
                           "short": short})  # fmt: skip
            if short:
                wait_until = max(wait_until, now + left_s + EPSILON_S)
    waited = max(0.0, wait_until - time.time())
    if waited > policy.max_wait_s:
        raise UsageError(
            f"the load's keys have too little quota left in this window and the next one starts in "
            f"{waited:.0f} s, beyond rate_limit.max_wait_s ({policy.max_wait_s:g} s): raise max_wait_s"
        )
    if waited > 0:
        say(
            f"relay-gate load: waiting {waited:.1f} s for a fresh rate-limit window "
            "(the keys' quota is spent)"
        )
        time.sleep(waited)
    return {"probes": probes, "waited_s": round(waited, 3)}


def write(results: Path, load: LoadPlan, started: dict[str, Any]) -> None:
    write_json(results / "load" / "quota-plan.json", "load-quota-plan", 1, {**load.to_json(), **started},
               redactor=Redactor(()))  # fmt: skip
