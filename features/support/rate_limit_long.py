"""Rate-limit arithmetic judged where a short window cannot hide a wrong value.

On the reference stack's 3 s window every reset lies 0-3 s ahead, so a value off by a window start, a
whole window or a sliding window often lands inside the tolerances a short window needs (a Retry-After
of "the window length" is within 2 s of the truth for most of a 3 s window). Over a window of about an
hour, chosen so that the current epoch-aligned instance began minutes ago and ends minutes from now
(:func:`long_window`), every one of those mistakes is minutes off, and the right values can be required
exactly: X-RateLimit-Reset is the window's end, Retry-After and RateLimit's t are the seconds to it,
X-RateLimit-Remaining and RateLimit's r count down from the quota, RateLimit-Policy states the policy.

Pure functions over what the client saw (:class:`~features.support.rate_limit_support.Hit`, read through the
gate's oracle :mod:`gate.oracles.ratelimit`); each returns the problems it found, [] when none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from features.support.rate_limit_support import Hit

# about an hour, with different periods so that one of them always has its current instance well under
# way and far from its end (tests/features/test_rate_limit_long.py tries every second of two days)
CANDIDATE_WINDOWS_S: tuple[int, ...] = (3600, 3000, 4200, 2400, 5400, 1800, 7200)
MARGIN_S = 120  # at least this far into the window and from its end: no burst of seconds can leave it
# Retry-After and t are whole seconds computed on the server's clock somewhere between sending and
# receipt: the seconds to the reset from either moment, ceil()ed, give or take this much
SECONDS_SLACK = 1
# where in a wall-clock second the long-window burst starts (see refusal_problems: a Retry-After rounded
# down is then short of the window's end by about half a second)
MID_SECOND_START = 0.25
POLICY_NAME = "workspace"  # docs/service.md: RateLimit-Policy: "workspace";q=<limit>;w=<window>


def long_window(now: float, *, margin_s: float = MARGIN_S) -> int:
    """A window of about an hour whose current epoch-aligned instance began at least ``margin_s`` ago
    and ends at least ``margin_s`` from ``now``."""
    for w in CANDIDATE_WINDOWS_S:
        into = now % w
        if into >= margin_s and w - into >= margin_s:
            return w
    raise ValueError(f"no window of {CANDIDATE_WINDOWS_S} is {margin_s} s from both its ends at {now}")


def window_end(at: float, window_s: int) -> int:
    """The end of the epoch-aligned window ``at`` falls in: (floor(at / window) + 1) * window."""
    return (math.floor(at / window_s) + 1) * window_s


def seconds_to(end: float, hit: Hit) -> tuple[int, int]:
    """The whole seconds from ``hit`` to ``end`` the server may have computed (it read its clock between
    sending and receipt), widened by :data:`SECONDS_SLACK` on each side."""
    return math.ceil(end - hit.received_at) - SECONDS_SLACK, math.ceil(end - hit.sent_at) + SECONDS_SLACK


def _where(i: int, h: Hit) -> str:
    return f"execute {i + 1} ({h.status})"


def countdown_problems(hits: Sequence[Hit], limit: int) -> list[str]:
    """The first ``limit`` admitted, every later one refused; X-RateLimit-Limit the quota on every answer;
    X-RateLimit-Remaining limit-1, limit-2, ..., 0 and then 0 (never below)."""
    problems = []
    statuses = [h.status for h in hits]
    want = [200] * min(limit, len(hits)) + [429] * max(0, len(hits) - limit)
    if statuses != want:
        problems.append(f"statuses {statuses}, expected {want} (quota {limit})")
    for i, h in enumerate(hits):
        rl = h.rl
        if not rl.limit.ok or rl.limit.value != limit:
            problems.append(f"{_where(i, h)}: X-RateLimit-Limit {rl.limit.describe()}, expected {limit}")
        expected = max(0, limit - i - 1)
        if not rl.remaining.ok or rl.remaining.value != expected:
            problems.append(
                f"{_where(i, h)}: X-RateLimit-Remaining {rl.remaining.describe()}, expected {expected}"
            )
    return problems


def reset_problems(hits: Sequence[Hit], window_s: int) -> list[str]:
    """X-RateLimit-Reset on every answer: epoch seconds (docs/service.md, as in the seed), exactly the end
    of the epoch-aligned window the execute was counted in."""
    problems = []
    for i, h in enumerate(hits):
        rl, end = h.rl, window_end(h.sent_at, window_s)
        if not rl.reset.ok or rl.reset.value is None:
            problems.append(f"{_where(i, h)}: X-RateLimit-Reset {rl.reset.describe()}")
        elif rl.reset.value.kind != "epoch":
            problems.append(
                f"{_where(i, h)}: X-RateLimit-Reset {rl.reset.raw} is {rl.reset.value.kind} seconds, not the "
                f"epoch seconds the seed's clients read (the window ends at {end})"
            )
        elif rl.reset.value.sent != end:
            off = rl.reset.value.sent - end
            problems.append(
                f"{_where(i, h)}: X-RateLimit-Reset {rl.reset.raw}, but the {window_s} s window ends "
                f"at {end} ({off:+g} s)"
            )
    return problems


def ietf_problems(hits: Sequence[Hit], limit: int, window_s: int) -> list[str]:
    """RateLimit-Policy: one policy named "workspace" with q the quota and w the window; RateLimit: that
    policy, r the remaining quota (X-RateLimit-Remaining), t the seconds to the window's end."""
    problems = []
    for i, h in enumerate(hits):
        where, rl, end = _where(i, h), h.rl, window_end(h.sent_at, window_s)
        if rl.policy.value is None or rl.ratelimit.value is None:
            problems.append(
                f"{where}: RateLimit-Policy {rl.policy.describe()}, RateLimit {rl.ratelimit.describe()}"
            )
            continue
        policies = [p for p in rl.policy.value if p.name == POLICY_NAME]
        if len(rl.policy.value) != 1 or not policies:
            problems.append(
                f'{where}: RateLimit-Policy {rl.policy.raw!r} is not one policy named "{POLICY_NAME}"'
            )
        elif (policies[0].quota, policies[0].window) != (limit, window_s):
            problems.append(
                f"{where}: RateLimit-Policy {rl.policy.raw!r}: q={policies[0].quota} w={policies[0].window}, "
                f"the policy is q={limit} w={window_s}"
            )
        limits = rl.ratelimit.value
        if len(limits) != 1 or limits[0].policy != POLICY_NAME:
            problems.append(
                f'{where}: RateLimit {rl.ratelimit.raw!r} is not one limit of policy "{POLICY_NAME}"'
            )
            continue
        r, t = limits[0].remaining, limits[0].reset
        expected_r = max(0, limit - i - 1)
        if r != expected_r:
            problems.append(f"{where}: RateLimit r={r}, expected {expected_r}")
        low, high = seconds_to(end, h)
        if t is None or not low <= t <= high:
            problems.append(
                f"{where}: RateLimit t={t}, but the window ends {end - h.received_at:.1f} s after receipt "
                f"(expected {low}..{high})"
            )
    return problems


def refusal_problems(hits: Sequence[Hit], window_s: int) -> list[str]:
    """Every 429: Retry-After delay-seconds of at least 1, the seconds to the window's end; Cache-Control
    no-store; an application/problem+json body for status 429."""
    problems = []
    refused = [(i, h) for i, h in enumerate(hits) if h.status == 429]
    if not refused:
        return ["no execute was refused: nothing to check"]
    for i, h in refused:
        where, rl, end = _where(i, h), h.rl, window_end(h.sent_at, window_s)
        low, high = seconds_to(end, h)
        ra = rl.retry_after.value
        if ra is None or ra.kind != "delta":
            problems.append(f"{where}: Retry-After {rl.retry_after.describe()}, expected delay-seconds")
        elif not (ra.sent >= 1 and low <= ra.sent <= high):
            problems.append(
                f"{where}: Retry-After {rl.retry_after.raw}, but the window ends "
                f"{end - h.received_at:.1f} s after receipt (expected {low}..{high})"
            )
        elif ra.sent < end - h.received_at:
            # the reference stack's replica shares our clock: the seconds to the end, counted when the
            # relay answered (before our receipt) and rounded up, reach the end from our receipt too
            problems.append(
                f"{where}: Retry-After {rl.retry_after.raw} s, but the window ends "
                f"{end - h.received_at:.2f} s after receipt: a client that waits as asked is refused "
                "again (the seconds rounded down, not up)"
            )
        cache = h.header("Cache-Control") or ""
        if "no-store" not in [d.strip().lower() for d in cache.split(",")]:
            problems.append(f"{where}: Cache-Control {cache!r}, not no-store")
        ctype = (h.header("Content-Type") or "").split(";")[0].strip()
        doc = _json(h)
        if ctype != "application/problem+json" or doc is None or doc.get("status") != 429:
            body = h.response.text[:120] if h.response is not None else ""
            problems.append(
                f"{where}: not a problem document for a 429 ({ctype or 'no content type'}: {body!r})"
            )
    return problems


def _json(h: Hit) -> dict[str, object] | None:
    if h.response is None:
        return None
    try:
        doc = h.response.json()
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
