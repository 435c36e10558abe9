"""Steps for the backoff scenario of features/delivery.feature: a relay replica of the gate's with its
own WEBHOOK_MAX_ATTEMPTS and WEBHOOK_BACKOFF_BASE_S (reference stack only, @needs-control), failing
deliveries, and the waits between their attempts held to the documented bound and checked for jitter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from features.support.delivery_attempts import MAX_BACKOFF_S, Attempts, execute_through
from features.support.executes import message, notify
from features.support.recording import ExchangeRecorder
from gate.client.receiver import ReceiverClient
from gate.client.target import Credential, Target

# -- backoff and jitter, on a replica of the gate's ----------------------------------------------


@dataclass(frozen=True)
class Replica:
    base_url: str
    max_attempts: int
    backoff_base_s: float


@given(
    parsers.parse(
        "a relay replica with WEBHOOK_MAX_ATTEMPTS={attempts:d} and WEBHOOK_BACKOFF_BASE_S={base:f}"
    ),
    target_fixture="replica",
)
def _(target: Target, attempts: int, base: float, request: pytest.FixtureRequest) -> Replica:
    assert target.stack is not None, "needs the reference stack (@needs-control)"
    settings = {"WEBHOOK_MAX_ATTEMPTS": str(attempts), "WEBHOOK_BACKOFF_BASE_S": f"{base:g}"}
    cm = target.stack.extra_replica(settings)
    url = cm.__enter__()
    request.addfinalizer(lambda: cm.__exit__(None, None, None))
    return Replica(url, attempts, base)


@when(parsers.parse("the developer executes {count:d} actions on that replica"), target_fixture="series")
def _(
    replica: Replica,
    recorder: ExchangeRecorder,
    dev: Credential,
    scripted: ReceiverClient,
    target: Target,
    count: int,
    delivery_note: dict[str, Any],
) -> list[Attempts]:
    out = [
        execute_through(
            recorder, replica.base_url, dev, scripted, target, notify(message(f"backoff #{i + 1}"))
        )
        for i in range(count)
    ]
    delivery_note["replica"] = {
        "WEBHOOK_MAX_ATTEMPTS": replica.max_attempts,
        "WEBHOOK_BACKOFF_BASE_S": replica.backoff_base_s,
    }
    delivery_note["deliveries"] = [a.evidence() for a in out]
    return out


@then(parsers.parse("each delivery made exactly {n:d} attempts"))
def _(series: list[Attempts], n: int) -> None:
    got = [len(a.captures) for a in series]
    assert got == [n] * len(series), f"attempts per delivery: {got}, expected {n} each (WEBHOOK_MAX_ATTEMPTS)"


def _ratios(series: list[Attempts], replica: Replica) -> list[tuple[int, float, float]]:
    """(n, wait before attempt n+1, its bound) for every retry of every delivery."""
    out = []
    for a in series:
        for n, gap in enumerate(a.gaps(), start=1):
            out.append((n, gap, min(MAX_BACKOFF_S, replica.backoff_base_s * 2 ** (n - 1))))
    return out


@then("every wait before attempt n+1 was within its bound base · 2^(n-1), give or take 0.3 s of overhead")
def _(series: list[Attempts], replica: Replica, delivery_note: dict[str, Any]) -> None:
    waits = _ratios(series, replica)
    delivery_note["backoff"] = [
        {"n": n, "wait_s": g, "bound_s": b, "fraction": round(g / b, 3)} for n, g, b in waits
    ]
    over = [(n, g, b) for n, g, b in waits if g > b + 0.3]
    assert waits and not over, f"waits longer than their backoff bound (n, wait, bound): {over}"


@then("the waits were spread across their bounds, neither all at the bound nor all near zero")
def _(series: list[Attempts], replica: Replica) -> None:
    fractions = [round(g / b, 3) for _, g, b in _ratios(series, replica)]
    # full jitter draws each wait uniformly from [0, bound]: twelve draws all at >= 97 % of their bounds
    # (no jitter: a wait is the bound plus overhead, always >= 1) or all below 20 % (no backoff at all)
    # happen by chance with odds below 1e-12 and 1e-8
    assert min(fractions) < 0.97, f"every wait sat at its bound: no jitter ({fractions} of the bound)"
    assert max(fractions) > 0.2, f"every wait was near zero: no backoff ({fractions} of the bound)"


@then("at least one wait fell in the lower half of its bound")
def _(series: list[Attempts], replica: Replica) -> None:
    fractions = [round(g / b, 3) for _, g, b in _ratios(series, replica)]
    # "equal jitter" draws from [bound/2, bound]: every measured wait is at least half its bound, since
    # the overhead (the attempt itself, loopback) only adds to it. Full jitter draws from [0, bound]:
    # a wait lands below half unless its draw was under half minus the overhead. With up to 20 ms of
    # overhead on bounds of 0.4, 0.8 and 1.6 s, a delivery misses the lower half with all three waits
    # with odds 0.55 · 0.525 · 0.51 ≈ 0.15, all four deliveries ≈ 5e-4 (0.5^12 ≈ 2.4e-4 with none).
    assert min(fractions) < 0.5, (
        f"no wait fell in the lower half of its bound: not full jitter over [0, bound] ({fractions})"
    )
