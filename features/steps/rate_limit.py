"""Steps for features/rate_limit.feature: per-workspace quotas, their headers, and the Redis fallback.

A fixed window must not make a burst flaky. Every burst therefore starts with one execute (the
*probe*) that reads X-RateLimit-Reset and X-RateLimit-Remaining: when the window is nearly over, or
a full quota is needed and the window is already in use, the burst waits for the reset and probes
again, so it runs inside one window from its first request. A session ledger remembers in which
window each workspace was last used, so consecutive scenarios pick a workspace that is still fresh
instead of waiting for the clock.

A replica whose Redis call times out fails open to its in-process limiter (by design), and on a
loaded machine that can happen to a parallel burst by accident: an answer counted outside the shared
window gives it away (its X-RateLimit-Reset is a token-refill time). Such a burst is noted in the
results and sent once more in a fresh window; a second one fails the scenario.

Everything is observed over HTTP: executes, their headers and GET /metrics. Redis is only killed,
paused and restarted through the stack's control handles, and inspected (the key scenario) through
``target.redis_url`` when the target has one.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from pytest_bdd import given, parsers, then, when

from features.recording import Recorder
from features.steps.common import NOTIFY
from gate.target import Credential, RateLimitPolicy, Target

# docs/service.md: a workspace id matches ^[a-z0-9][a-z0-9_-]{0,62}$; keys are rl:{workspace}:{window}
RL_KEY = re.compile(r"rl:(?P<ws>[a-z0-9][a-z0-9_-]{0,62}):(?P<index>\d+)")
# Retry-After is ceil()ed to whole seconds (< 1 s) and the client reads the clock after the answer:
# Retry-After, RateLimit's t and X-RateLimit-Reset - now may differ by this much. Client and server
# clocks must agree (they are one clock on the reference stack; NTP elsewhere).
CLOCK_TOLERANCE_S = 2.0
EPSILON_S = 0.05  # start a little after a reset, so the first request lands in the new window
OUTAGE_CLIENT_TIMEOUT_S = 4.0  # give up on a stalled execute: twice the 2 s bound, well under the 10 s stall
_BACKEND_LINE = re.compile(r'^rate_limiter_backend\{backend="(?P<backend>[^"]+)"\}\s+(?P<value>\S+)$', re.M)


# -- what the client saw ---------------------------------------------------------------------------


@dataclass
class Hit:
    """One rate-limited execute as the client saw it (``response`` is None when it got no answer)."""

    response: httpx.Response | None
    workspace: str
    replica: str
    sent_at: float  # epoch seconds
    received_at: float
    t_ms: float  # from the start of its burst
    error: str | None = None

    @property
    def status(self) -> int:
        return self.response.status_code if self.response is not None else 0

    def header(self, name: str) -> str | None:
        return self.response.headers.get(name) if self.response is not None else None

    def number(self, name: str) -> int | None:
        value = self.header(name)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    @property
    def remaining(self) -> int | None:
        return self.number("X-RateLimit-Remaining")

    @property
    def reset(self) -> int | None:
        return self.number("X-RateLimit-Reset")

    @property
    def retry_after(self) -> int | None:
        return self.number("Retry-After")

    @property
    def elapsed_s(self) -> float:
        return self.received_at - self.sent_at

    def row(self) -> dict[str, Any]:
        def raw(name: str) -> int | str | None:
            n = self.number(name)
            return n if n is not None else self.header(name)

        return {
            "t_ms": round(self.t_ms, 1),
            "elapsed_ms": round(self.elapsed_s * 1000, 1),
            "replica": self.replica,
            "status": self.status if self.error is None else f"no answer: {self.error}",
            "remaining": raw("X-RateLimit-Remaining"),
            "retry_after": raw("Retry-After"),
            "reset": raw("X-RateLimit-Reset"),
        }


@dataclass
class WindowStart:
    """The probe that opened a burst: its credential, the answer and the burst's clock."""

    cred: Credential
    probe: Hit
    t0: float  # monotonic time the probe was sent
    realign: Callable[[], WindowStart] | None = None  # the same start, in a later window


@dataclass
class Burst:
    cred: Credential
    hits: list[Hit]

    @property
    def admitted(self) -> list[Hit]:
        return [h for h in self.hits if 200 <= h.status < 300]

    @property
    def refused(self) -> list[Hit]:
        return [h for h in self.hits if h.status == 429]

    def statuses(self) -> str:
        return " ".join(str(h.status) for h in self.hits)

    def evidence(self, policy: RateLimitPolicy, **extra: Any) -> dict[str, Any]:
        first_429 = next((h for h in self.hits if h.status == 429), None)
        return {
            "method": "POST",
            "endpoint": policy.endpoint,
            "workspace": self.cred.workspace,
            "key": self.cred.name,
            "limit": policy.limit,
            "window_s": policy.window_s,
            "replicas": sorted({h.replica for h in self.hits}),
            "requests": len(self.hits),
            "admitted": len(self.admitted),
            "refused": len(self.refused),
            "started_at": self.hits[0].sent_at if self.hits else None,
            **extra,
            "timeline": [h.row() for h in self.hits],
            "first_429_headers": dict(first_429.response.headers)
            if first_429 and first_429.response
            else None,
        }


@dataclass
class Ledger:
    """In which window (its X-RateLimit-Reset) these steps last used each workspace, this session."""

    last_reset: dict[str, int] = field(default_factory=dict)

    def saw(self, hit: Hit) -> None:
        if hit.reset is not None:
            self.last_reset[hit.workspace] = max(hit.reset, self.last_reset.get(hit.workspace, 0))

    def pick(self, creds: list[Credential], n: int, *, fresh: bool, primary: str | None) -> list[Credential]:
        """``n`` workspaces: unused in the current window first when ``fresh`` is wanted, else the ones
        already spoiled (keeping fresh quotas for later). The workspace other features execute with
        (``primary``) comes last, so a burst here does not leave it exhausted for them."""
        now = time.time()

        def order(c: Credential) -> tuple[bool, bool, float]:
            used = self.last_reset.get(c.workspace, 0)
            in_use = used > now
            return (in_use if fresh else not in_use, c.workspace == primary, used if fresh else -used)

        return sorted(creds, key=order)[:n]


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rl_ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def rl_policy(target: Target) -> RateLimitPolicy:
    if target.rate_limit is None:
        pytest.skip(f"{target.name}: needs the rate-limit policy ([rate_limit] limit and window_s)")
    return target.rate_limit


@pytest.fixture
def rl_replicas(target: Target, recorder: Recorder) -> Iterator[dict[str, httpx.Client]]:
    """A recorded client per replica of the target."""
    clients = {url: recorder.client(url, timeout=target.request_timeout_s) for url in target.base_urls}
    try:
        yield clients
    finally:
        for c in clients.values():
            c.close()


def _workspace_keys(target: Target) -> list[Credential]:
    """One key per workspace (dev keys preferred): the workspaces these steps can spend quota in."""
    by_ws: dict[str, Credential] = {}
    for c in sorted(target.credentials.values(), key=lambda c: (c.role != "dev", c.name)):
        by_ws.setdefault(c.workspace, c)
    return list(by_ws.values())


def _primary(target: Target) -> str | None:
    dev = target.credential("dev")
    return dev.workspace if dev else None


# -- sending ---------------------------------------------------------------------------------------


def _execute(
    client: httpx.Client,
    cred: Credential,
    ledger: Ledger,
    *,
    endpoint: str,
    t0: float | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Hit:
    sent, mono = time.time(), time.monotonic()
    r = client.post(
        endpoint, headers={**cred.authorization, **(headers or {})}, params=params, json=body or NOTIFY
    )
    hit = Hit(
        r,
        cred.workspace,
        str(client.base_url).rstrip("/"),
        sent,
        time.time(),
        (mono - (t0 if t0 is not None else mono)) * 1000,
    )
    ledger.saw(hit)
    return hit


def _answered(hit: Hit) -> Hit:
    assert hit.status in (200, 429), (
        f"an execute for workspace {hit.workspace} answered {hit.status} "
        f"({hit.error or (hit.response.text[:200] if hit.response is not None else '')}): "
        "the rate-limit scenarios need executes that succeed or are refused with 429"
    )
    assert hit.reset is not None, f"an execute answered {hit.status} without X-RateLimit-Reset"
    return hit


def _room(policy: RateLimitPolicy, per_request_s: float, planned: int) -> float:
    """Seconds a burst of ``planned`` requests needs left in its window: twice the probe's pace,
    at least 1 s (noisy machines), at most half a window (waiting longer than that gains nothing)."""
    return min(policy.window_s / 2, max(1.0, 2 * per_request_s * planned))


def _align(
    client: httpx.Client,
    creds: list[Credential],
    policy: RateLimitPolicy,
    ledger: Ledger,
    recorder: Recorder,
    *,
    fresh: bool,
    planned: int,
) -> list[WindowStart]:
    """Probe each workspace once in a window with room for ``planned`` more requests (and, when
    ``fresh``, in which none of them was used before): wait for the next window until that holds."""
    client.get("/_stcore/health")  # open the connection, so the probe's time is an execute's
    waited, attempts = 0.0, 0
    while True:
        attempts += 1
        starts = []
        for cred in creds:
            t0 = time.monotonic()
            starts.append(
                WindowStart(
                    cred, _answered(_execute(client, cred, ledger, endpoint=policy.endpoint, t0=t0)), t0
                )
            )
        resets = {s.probe.reset for s in starts}
        left = min(s.probe.reset or 0 for s in starts) - time.time()
        need = _room(policy, max(s.probe.elapsed_s for s in starts), planned)
        unused = all(s.probe.status == 200 and s.probe.remaining == policy.limit - 1 for s in starts)
        if len(resets) == 1 and left >= need and (unused or not fresh):
            recorder.note(
                "alignment",
                {
                    "waited_s": round(waited, 3),
                    "probes": attempts,
                    "window_left_s": round(left, 3),
                    "fresh": unused,
                    "workspaces": [c.workspace for c in creds],
                },
            )
            return starts
        if attempts >= 3:
            pytest.fail(
                f"workspace(s) {[c.workspace for c in creds]} did not start a window "
                f"{'with the full quota ' if fresh else ''}after waiting {waited:.1f} s "
                f"(last probes: {[s.probe.row() for s in starts]}): is another client using them?"
            )
        wait = max(0.0, max(s.probe.reset or 0 for s in starts) - time.time()) + EPSILON_S
        if waited + wait > policy.max_wait_s:
            pytest.skip(f"the next rate-limit window starts in {wait:.1f} s, beyond rate_limit.max_wait_s")
        time.sleep(wait)  # until the reset the server announced
        waited += wait


def _use_up(client: httpx.Client, start: WindowStart, policy: RateLimitPolicy, ledger: Ledger) -> Burst:
    """Execute until the first 429 (at most quota + 1 requests after the probe)."""
    hits = [start.probe]
    while hits[-1].status != 429 and len(hits) <= policy.limit + 1:
        hits.append(_answered(_execute(client, start.cred, ledger, endpoint=policy.endpoint, t0=start.t0)))
    assert hits[-1].status == 429, (
        f"workspace {start.cred.workspace}: {len(hits)} executes in one window, none refused "
        f"(quota {policy.limit}): {' '.join(str(h.status) for h in hits)}"
    )
    return Burst(start.cred, hits)


async def _parallel(
    recorder: Recorder,
    cred: Credential,
    urls: list[str],
    count: int,
    *,
    endpoint: str,
    timeout_s: float,
    t0: float,
    ledger: Ledger | None = None,
) -> list[Hit]:
    """``count`` executes at once, round-robin over ``urls``; a request without an answer is a Hit too."""
    clients = [recorder.async_client(u, timeout=timeout_s) for u in urls]

    async def one(i: int) -> Hit:
        client, url = clients[i % len(clients)], urls[i % len(urls)]
        sent, mono = time.time(), time.monotonic()
        try:
            r = await client.post(endpoint, headers=cred.authorization, json=NOTIFY)
        except httpx.HTTPError as exc:
            recorder.record_error("POST", f"{url}{endpoint}", f"{type(exc).__name__}: {exc}")
            return Hit(
                None,
                cred.workspace,
                url,
                sent,
                time.time(),
                (mono - t0) * 1000,
                error=f"{type(exc).__name__} after {time.time() - sent:.2f} s",
            )
        return Hit(r, cred.workspace, url, sent, time.time(), (mono - t0) * 1000)

    try:
        hits = list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for c in clients:
            await c.aclose()
    if ledger is not None:
        for h in hits:
            ledger.saw(h)
    return sorted(hits, key=lambda h: h.t_ms)


def _off_window(burst: Burst) -> tuple[list[Hit], list[Hit]]:
    """Answers not counted in the window the probe opened: (decided before that window ended —
    by a replica's in-process fallback, whose reset is a token refill time —, answered after it)."""
    window = burst.hits[0].reset or 0
    off = [h for h in burst.hits if h.reset is not None and h.reset != window]
    return [h for h in off if h.received_at < window], [h for h in off if h.received_at >= window]


def _assert_one_window(burst: Burst) -> None:
    fallback, late = _off_window(burst)
    window = burst.hits[0].reset
    assert not fallback, (
        f"{len(fallback)} execute(s) answered before window {window} ended carry X-RateLimit-Reset "
        f"{sorted({h.reset for h in fallback if h.reset is not None})}: a replica decided them on its "
        f"in-process fallback instead of the shared quota: {fallback[0].row()}"
    )
    assert not late, f"the burst ran past the end of window {window}: inconclusive {late[0].row()}"


def _once_more_after_fallback(
    send: Callable[[WindowStart], Burst], start: WindowStart, policy: RateLimitPolicy, recorder: Recorder
) -> Burst:
    """Send a burst; if a replica decided part of it on its in-process fallback (its Redis call timed
    out: the relay fails open, by design, and a loaded machine can stall it past its Redis timeout), note it
    and send the burst once more in a fresh window. Twice in a row fails the scenario."""
    burst = send(start)
    fallback, _ = _off_window(burst)
    if fallback and start.realign is not None:
        recorder.note("fallback_during_first_burst", burst.evidence(policy))
        burst = send(start.realign())
    return burst


def _check_all(problems: list[str], what: str) -> None:
    # the first problem goes on the first line: that line is the reason results/summary.json keeps
    more = f" (+{len(problems) - 1} more)\n  " + "\n  ".join(problems[1:12]) if len(problems) > 1 else ""
    assert not problems, f"{what}: {problems[0] if problems else ''}{more}"


# -- bursts ----------------------------------------------------------------------------------------


@given("a workspace with time left in the current rate-limit window", target_fixture="rl_start")
def _(
    http: httpx.Client, target: Target, rl_policy: RateLimitPolicy, rl_ledger: Ledger, recorder: Recorder
) -> WindowStart:
    creds = rl_ledger.pick(_workspace_keys(target), 1, fresh=True, primary=_primary(target))
    return _align(http, creds, rl_policy, rl_ledger, recorder, fresh=False, planned=rl_policy.limit + 5)[0]


@given("a workspace with its full rate-limit quota at the start of a window", target_fixture="rl_start")
def _(
    http: httpx.Client, target: Target, rl_policy: RateLimitPolicy, rl_ledger: Ledger, recorder: Recorder
) -> WindowStart:
    creds = rl_ledger.pick(_workspace_keys(target), 1, fresh=True, primary=_primary(target))

    def start() -> WindowStart:
        return _align(http, creds, rl_policy, rl_ledger, recorder, fresh=True, planned=3 * rl_policy.limit)[0]

    first = start()
    first.realign = start
    return first


@when(parsers.parse("the workspace sends a burst of quota + {extra:d} executes"), target_fixture="rl_burst")
def _(
    http: httpx.Client,
    rl_start: WindowStart,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: Recorder,
    extra: int,
) -> Burst:
    def send(start: WindowStart) -> Burst:
        hits = [start.probe]
        while len(hits) < rl_policy.limit + extra:
            hits.append(_execute(http, start.cred, rl_ledger, endpoint=rl_policy.endpoint, t0=start.t0))
        return Burst(start.cred, hits)

    burst = _once_more_after_fallback(send, rl_start, rl_policy, recorder)
    recorder.note("burst", burst.evidence(rl_policy))
    return burst


@then("at least one execute of the burst is refused with 429")
def _(rl_burst: Burst) -> None:
    odd = [h.row() for h in rl_burst.hits if h.status not in (200, 429)]
    assert not odd, f"executes answered neither 200 nor 429: {odd}"
    assert rl_burst.refused, f"no 429 in a burst of {len(rl_burst.hits)} executes: {rl_burst.statuses()}"


@then("every refused execute carries Retry-After and the X-RateLimit headers")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    problems = []
    for h in rl_burst.refused:
        where = f"429 at t={h.t_ms:.0f} ms"
        for name in ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            if h.number(name) is None:
                problems.append(f"{where}: {name} is {h.header(name)!r}, not an integer")
        if h.retry_after is not None and h.retry_after < 1:
            problems.append(f"{where}: Retry-After {h.retry_after} tells the client to retry at once")
        if h.number("X-RateLimit-Limit") not in (None, rl_policy.limit):
            problems.append(
                f"{where}: X-RateLimit-Limit {h.header('X-RateLimit-Limit')} != quota {rl_policy.limit}"
            )
        if h.remaining not in (None, 0):
            problems.append(f"{where}: X-RateLimit-Remaining is {h.remaining} on a refusal (expected 0)")
        if h.reset is not None and not h.received_at - 1 <= h.reset <= h.received_at + rl_policy.window_s + 1:
            problems.append(f"{where}: X-RateLimit-Reset {h.reset} is not within the current window")
    _check_all(problems, "refusals without usable rate-limit guidance")


@then("exactly the quota of executes is admitted, all in one window")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    _assert_one_window(rl_burst)
    n = rl_policy.limit
    assert len(rl_burst.admitted) == n, (
        f"{len(rl_burst.admitted)} of {len(rl_burst.hits)} executes admitted in one window, quota {n}: "
        f"{rl_burst.statuses()}"
    )
    assert [h.status for h in rl_burst.hits] == [200] * n + [429] * (len(rl_burst.hits) - n), (
        f"the first {n} executes should be admitted and every later one refused: {rl_burst.statuses()}"
    )


@then("X-RateLimit-Remaining counts down to 0 and never goes below")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    seen = [h.header("X-RateLimit-Remaining") for h in rl_burst.hits]
    expected = [str(max(0, rl_policy.limit - i)) for i in range(1, len(rl_burst.hits) + 1)]
    assert seen == expected, f"X-RateLimit-Remaining was {seen}, expected {expected}"


@then("Retry-After on every refusal is at least 1 second and agrees with X-RateLimit-Reset")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    assert rl_burst.refused, "no refusal to check"
    problems = []
    for h in rl_burst.refused:
        ra, reset = h.retry_after, h.reset
        if ra is None or reset is None:
            problems.append(
                f"429 at t={h.t_ms:.0f} ms: Retry-After {h.header('Retry-After')!r}, reset {reset}"
            )
            continue
        until_reset = reset - h.received_at
        if ra < 1:
            problems.append(f"429 at t={h.t_ms:.0f} ms: Retry-After {ra} (< 1 s invites an immediate retry)")
        if abs(ra - until_reset) > CLOCK_TOLERANCE_S or ra > rl_policy.window_s + 1:
            problems.append(
                f"429 at t={h.t_ms:.0f} ms: Retry-After {ra} s, "
                f"but X-RateLimit-Reset is {until_reset:.2f} s away"
            )
    _check_all(problems, f"Retry-After disagrees with the reset (tolerance {CLOCK_TOLERANCE_S} s)")


@then("every refusal is a problem document that must not be cached")
def _(rl_burst: Burst) -> None:
    problems = []
    for h in rl_burst.refused:
        assert h.response is not None
        where = f"429 at t={h.t_ms:.0f} ms"
        if "no-store" not in (h.header("Cache-Control") or ""):
            problems.append(f"{where}: Cache-Control is {h.header('Cache-Control')!r}, not no-store")
        ctype = (h.header("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/problem+json":
            problems.append(f"{where}: Content-Type {ctype!r}, not application/problem+json")
            continue
        try:
            doc = h.response.json()
        except ValueError:
            problems.append(f"{where}: the body is not JSON: {h.response.text[:100]!r}")
            continue
        if doc.get("status") != 429 or not all(isinstance(doc.get(k), str) for k in ("title", "detail")):
            problems.append(f"{where}: not a problem document for a 429: {str(doc)[:200]}")
    _check_all(problems, "refusals that are not uncacheable problem documents")


def _sf_list(value: str | None) -> dict[str, dict[str, str]]:
    """A structured-field list ``"name";k=v;k=v, ...`` by item name (enough for RateLimit/-Policy)."""
    items: dict[str, dict[str, str]] = {}
    for item in (value or "").split(","):
        name, *params = (p.strip() for p in item.split(";"))
        if name:
            items[name.strip('"')] = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in params)}
    return items


@then("the RateLimit and RateLimit-Policy fields agree with the X-RateLimit headers")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    problems = []
    for h in rl_burst.hits:
        where = f"{h.status} at t={h.t_ms:.0f} ms"
        policies, fields = _sf_list(h.header("RateLimit-Policy")), _sf_list(h.header("RateLimit"))
        if len(fields) != 1 or not policies:
            problems.append(
                f"{where}: RateLimit {h.header('RateLimit')!r}, RateLimit-Policy "
                f"{h.header('RateLimit-Policy')!r}"
            )
            continue
        ((name, rl),) = fields.items()
        pol = policies.get(name)
        if pol is None:
            problems.append(
                f"{where}: RateLimit names policy {name!r}, RateLimit-Policy lists {list(policies)}"
            )
            continue
        try:
            q, w, r, t = int(pol["q"]), int(pol["w"]), int(rl["r"]), int(rl["t"])
        except (KeyError, ValueError):
            problems.append(f"{where}: q/w/r/t missing or not integers: {pol} {rl}")
            continue
        if q != h.number("X-RateLimit-Limit") or q != rl_policy.limit:
            problems.append(
                f"{where}: q={q}, X-RateLimit-Limit {h.header('X-RateLimit-Limit')}, quota {rl_policy.limit}"
            )
        if w != rl_policy.window_s:
            problems.append(f"{where}: w={w}, window {rl_policy.window_s} s")
        if r != h.remaining:
            problems.append(f"{where}: r={r}, X-RateLimit-Remaining {h.header('X-RateLimit-Remaining')}")
        if h.status == 429 and t != h.retry_after:
            problems.append(f"{where}: t={t}, Retry-After {h.header('Retry-After')}")
        if h.reset is None or abs(t - (h.reset - h.received_at)) > CLOCK_TOLERANCE_S:
            problems.append(
                f"{where}: t={t} s, but X-RateLimit-Reset {h.reset} is "
                f"{(h.reset or 0) - h.received_at:.2f} s away"
            )
    _check_all(problems, "RateLimit / RateLimit-Policy disagree with the X-RateLimit headers")


# -- window roll-over, isolation, the client choosing its workspace ----------------------------------


@given("the rate-limit window is short enough to wait for")
def _(rl_policy: RateLimitPolicy) -> None:
    if rl_policy.window_s > rl_policy.max_wait_s:
        pytest.skip(
            f"the rate-limit window is {rl_policy.window_s} s, longer than rate_limit.max_wait_s "
            f"({rl_policy.max_wait_s:g} s): not waiting for it to roll over"
        )


@given("a workspace that has used its rate-limit quota in the current window", target_fixture="rl_exhausted")
def _(
    http: httpx.Client, target: Target, rl_policy: RateLimitPolicy, rl_ledger: Ledger, recorder: Recorder
) -> Burst:
    creds = rl_ledger.pick(_workspace_keys(target), 1, fresh=False, primary=_primary(target))
    start = _align(http, creds, rl_policy, rl_ledger, recorder, fresh=False, planned=rl_policy.limit + 10)[0]
    return _use_up(http, start, rl_policy, rl_ledger)


@when("the rate-limit window rolls over", target_fixture="rl_rolled_at")
def _(rl_exhausted: Burst, rl_policy: RateLimitPolicy) -> float:
    refusal = rl_exhausted.hits[-1]
    assert refusal.reset is not None and refusal.retry_after is not None
    # a client that honours Retry-After (and the announced reset) waits this long, and no longer
    until = max(refusal.reset, refusal.received_at + refusal.retry_after) + EPSILON_S
    assert until - refusal.received_at <= rl_policy.window_s + CLOCK_TOLERANCE_S, (
        f"the refusal asks to wait {until - refusal.received_at:.1f} s, "
        f"longer than a {rl_policy.window_s} s window"
    )
    time.sleep(max(0.0, until - time.time()))
    return time.time()


@then("the workspace's next execute is admitted with a fresh quota")
def _(
    http: httpx.Client,
    rl_exhausted: Burst,
    rl_rolled_at: float,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: Recorder,
) -> None:
    refusal = rl_exhausted.hits[-1]
    hit = _execute(http, rl_exhausted.cred, rl_ledger, endpoint=rl_policy.endpoint)
    recorder.note(
        "rollover",
        {
            "workspace": rl_exhausted.cred.workspace,
            "refusal": refusal.row(),
            "waited_s": round(rl_rolled_at - refusal.received_at, 3),
            "next": hit.row(),
        },
    )
    assert hit.status == 200, (
        f"{hit.status} {hit.row()} after waiting {rl_rolled_at - refusal.received_at:.2f} s "
        f"(Retry-After {refusal.retry_after}, reset {refusal.reset})"
    )
    assert hit.remaining == rl_policy.limit - 1, (
        f"a new window should leave {rl_policy.limit - 1}: {hit.row()}"
    )
    assert hit.reset is not None and refusal.reset is not None and hit.reset > refusal.reset, (
        f"X-RateLimit-Reset did not move on: {refusal.reset} -> {hit.reset}"
    )


@given("two workspaces with their full rate-limit quota at the start of a window", target_fixture="rl_pair")
def _(
    http: httpx.Client, target: Target, rl_policy: RateLimitPolicy, rl_ledger: Ledger, recorder: Recorder
) -> list[WindowStart]:
    creds = rl_ledger.pick(_workspace_keys(target), 2, fresh=True, primary=_primary(target))
    assert len(creds) == 2, "the target has keys for one workspace only"
    return _align(http, creds, rl_policy, rl_ledger, recorder, fresh=True, planned=rl_policy.limit + 5)


@when("the first workspace uses up its quota", target_fixture="rl_exhausted")
def _(http: httpx.Client, rl_pair: list[WindowStart], rl_policy: RateLimitPolicy, rl_ledger: Ledger) -> Burst:
    return _use_up(http, rl_pair[0], rl_policy, rl_ledger)


@then("the second workspace's quota is intact")
def _(
    http: httpx.Client,
    rl_pair: list[WindowStart],
    rl_exhausted: Burst,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: Recorder,
) -> None:
    other = rl_pair[1]
    hit = _execute(http, other.cred, rl_ledger, endpoint=rl_policy.endpoint, t0=rl_pair[0].t0)
    recorder.note(
        "isolation",
        {
            "exhausted": rl_exhausted.cred.workspace,
            "other": other.cred.workspace,
            "exhausted_timeline": [h.row() for h in rl_exhausted.hits],
            "other_probe": other.probe.row(),
            "other_after": hit.row(),
        },
    )
    assert hit.reset == rl_exhausted.hits[-1].reset, "the check left the window: inconclusive"
    assert hit.status == 200 and hit.remaining == rl_policy.limit - 2, (
        f"workspace {other.cred.workspace} used 1 execute, then {rl_exhausted.cred.workspace} used up its "
        f"quota; {other.cred.workspace}'s next execute got {hit.status} with X-RateLimit-Remaining "
        f"{hit.remaining} (expected 200 and {rl_policy.limit - 2})"
    )


def _other_workspace(target: Target, mine: str) -> str:
    other = target.credential("dev", exclude_workspace=mine)
    return other.workspace if other is not None else "ws-b"


@when(
    "it retries naming another workspace in an X-Workspace-ID header, a query parameter or a body field",
    target_fixture="rl_retries",
)
def _(
    http: httpx.Client,
    target: Target,
    rl_exhausted: Burst,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: Recorder,
) -> list[tuple[str, Hit]]:
    cred = rl_exhausted.cred
    other = _other_workspace(target, cred.workspace)
    tries: list[tuple[str, dict[str, Any]]] = [
        (f"X-Workspace-ID: {v[:20]}{'…' if len(v) > 20 else ''}", {"headers": {"X-Workspace-ID": v}})
        for v in (other, "other-tenant", "a:b*", "*", "a" * 300)
    ]
    tries += [
        (f"?workspace={other}", {"params": {"workspace": other}}),
        (f'body "workspace": "{other}"', {"body": {**NOTIFY, "workspace": other}}),
    ]
    retries = [
        (label, _execute(http, cred, rl_ledger, endpoint=rl_policy.endpoint, **kw)) for label, kw in tries
    ]
    recorder.note(
        "workspace_spoofing",
        {
            "workspace": cred.workspace,
            "exhausted": rl_exhausted.hits[-1].row(),
            "retries": [{"try": lbl, **h.row()} for lbl, h in retries],
        },
    )
    return retries


@then("every retry is refused and counted against the workspace's own quota")
def _(rl_exhausted: Burst, rl_retries: list[tuple[str, Hit]]) -> None:
    reset = rl_exhausted.hits[-1].reset
    problems = []
    for label, h in rl_retries:
        if label.startswith("body") and h.status == 422:
            continue  # refused as an unknown field before it is counted: fine, nothing was admitted
        if h.status != 429 or h.remaining != 0:
            problems.append(
                f"{label}: {h.status} with X-RateLimit-Remaining {h.header('X-RateLimit-Remaining')}"
                f" — the request escaped workspace {rl_exhausted.cred.workspace}'s used-up quota"
            )
        elif h.reset != reset:
            problems.append(
                f"{label}: counted in window {h.reset}, not {reset}: inconclusive (window rolled)"
            )
    _check_all(problems, "the client chose the workspace it is counted against")


# -- Redis keys ------------------------------------------------------------------------------------


@pytest.fixture
def rl_redis_client(target: Target) -> Iterator[redis.Redis]:
    if not target.redis_url:
        pytest.skip(
            f"{target.name}: its Redis cannot be inspected "
            "(only the reference stack exposes target.redis_url)"
        )
    client = redis.Redis.from_url(
        target.redis_url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
    )
    try:
        yield client
    finally:
        client.close()


@given("the target's Redis can be inspected", target_fixture="rl_redis")
def _(rl_redis_client: redis.Redis) -> redis.Redis:
    assert rl_redis_client.ping(), "the target's Redis does not answer PING"
    return rl_redis_client


@when(
    "a workspace sends executes naming other workspaces in X-Workspace-ID headers", target_fixture="rl_named"
)
def _(http: httpx.Client, target: Target, rl_policy: RateLimitPolicy, rl_ledger: Ledger) -> list[Hit]:
    cred = rl_ledger.pick(_workspace_keys(target), 1, fresh=False, primary=_primary(target))[0]
    values = ["other-tenant", _other_workspace(target, cred.workspace), "a:b*", "*", "rl:x:1", "a" * 300]
    return [
        _answered(_execute(http, cred, rl_ledger, endpoint=rl_policy.endpoint, headers={"X-Workspace-ID": v}))
        for v in values
    ]


@then("every rate-limit key in Redis is rl:<configured workspace>:<current window index> with a TTL")
def _(
    rl_redis: redis.Redis, rl_named: list[Hit], target: Target, rl_policy: RateLimitPolicy, recorder: Recorder
) -> None:
    configured = {c.workspace for c in target.credentials.values()}
    current = math.floor(time.time() / rl_policy.window_s)
    keys = sorted(str(k) for k in rl_redis.scan_iter(match="rl:*", count=1000))
    ttls = {k: int(rl_redis.pttl(k)) for k in keys}
    recorder.note(
        "redis_keys",
        {
            "configured_workspaces": sorted(configured),
            "current_window": current,
            "keys": [{"key": k[:120], "pttl_ms": ttls[k]} for k in keys],
        },
    )
    mine = rl_named[-1]
    assert mine.reset is not None
    own = f"rl:{mine.workspace}:{mine.reset // rl_policy.window_s - 1}"
    assert own in keys, f"no key {own} for the executes just counted; rl:* keys are {keys[:20]}"
    problems = []
    for k in keys:
        m = RL_KEY.fullmatch(k)
        if m is None or m["ws"] not in configured:
            problems.append(f"{k[:120]!r} does not name a configured workspace {sorted(configured)}")
        elif not current - 2 <= int(m["index"]) <= current + 1:
            problems.append(f"{k!r}: window index {m['index']} is not the current one ({current})")
        ttl = ttls[k]
        if ttl == -1 or ttl > (2 * rl_policy.window_s + 5) * 1000:
            problems.append(f"{k[:120]!r}: PTTL {ttl} ms (must expire within about a window)")
    _check_all(problems, "rate-limit keys carry client-chosen text or never expire")


# -- concurrency -----------------------------------------------------------------------------------


@when(
    parsers.parse("the workspace sends {factor:d} x quota executes at once, spread over every replica"),
    target_fixture="rl_burst",
)
def _(
    target: Target,
    rl_start: WindowStart,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: Recorder,
    factor: int,
) -> Burst:
    def send(start: WindowStart) -> Burst:
        hits = asyncio.run(
            _parallel(
                recorder,
                start.cred,
                target.base_urls,
                factor * rl_policy.limit,
                endpoint=rl_policy.endpoint,
                timeout_s=target.request_timeout_s,
                t0=start.t0,
                ledger=rl_ledger,
            )
        )
        return Burst(start.cred, [start.probe, *hits])

    burst = _once_more_after_fallback(send, rl_start, rl_policy, recorder)
    hits = burst.hits[1:]
    per_replica = {
        u: {
            "admitted": sum(1 for h in burst.admitted if h.replica == u),
            "refused": sum(1 for h in burst.refused if h.replica == u),
        }
        for u in target.base_urls
    }
    recorder.note(
        "parallel_burst",
        burst.evidence(
            rl_policy,
            per_replica=per_replica,
            duration_s=round(max(h.received_at for h in hits) - hits[0].sent_at, 3),
        ),
    )
    return burst


@then("exactly the quota of executes is admitted in that window across the replicas")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    odd = [h.row() for h in rl_burst.hits if h.status not in (200, 429)]
    assert not odd, f"executes answered neither 200 nor 429: {odd[:5]}"
    _assert_one_window(rl_burst)
    assert len(rl_burst.admitted) == rl_policy.limit, (
        f"{len(rl_burst.admitted)} of {len(rl_burst.hits)} parallel executes admitted in one window over "
        f"{len({h.replica for h in rl_burst.hits})} replica(s); quota {rl_policy.limit}"
    )


# -- Redis outages ---------------------------------------------------------------------------------


def _backends(client: httpx.Client) -> dict[str, float]:
    r = client.get("/metrics")
    assert r.status_code == 200, f"GET {client.base_url}/metrics answered {r.status_code}"
    found = {m["backend"]: float(m["value"]) for m in _BACKEND_LINE.finditer(r.text)}
    assert found, f"GET {client.base_url}/metrics has no rate_limiter_backend gauge"
    return found


def _wait_backend(
    replicas: dict[str, httpx.Client], backend: str, timeout_s: float
) -> tuple[float, dict[str, Any]]:
    """Poll every replica's metrics until each reports ``backend``; (seconds it took, last readings)."""
    t0 = time.monotonic()
    pending = dict(replicas)
    readings: dict[str, Any] = {}
    while True:
        for url, client in list(pending.items()):
            readings[url] = _backends(client)
            if readings[url].get(backend) == 1.0:
                del pending[url]
        took = time.monotonic() - t0
        if not pending or took > timeout_s:
            return took, {"pending": sorted(pending), "readings": readings}
        time.sleep(0.1)


def _redis_answers(url: str | None) -> bool:
    if not url:
        return True
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@pytest.fixture
def rl_redis_restored(target: Target, rl_replicas: dict[str, httpx.Client]) -> Iterator[None]:
    """Whatever a scenario does to Redis, it runs again afterwards and every replica is back on it
    (note: a restarted Redis starts with empty quotas)."""
    stack = target.stack
    if stack is None or not target.controllable:
        pytest.skip(f"{target.name}: needs control of the target's Redis")
    yield
    stack.resume_redis()  # wakes a paused server; nothing happens to a running or dead one
    if not _redis_answers(target.redis_url):
        stack.restart_redis()
    took, state = _wait_backend(rl_replicas, "redis", timeout_s=15)
    assert not state["pending"], f"after restoring Redis, replicas still off it after {took:.1f} s: {state}"


@given("the rate limiter of every replica is on Redis")
def _(rl_redis_restored: None, rl_replicas: dict[str, httpx.Client], recorder: Recorder) -> None:
    _, state = _wait_backend(rl_replicas, "redis", timeout_s=5)
    recorder.note("backend_before", state["readings"])
    assert not state["pending"], f"replicas not on the Redis limiter: {state}"


def _outage_executes(target: Target, recorder: Recorder, dev: Credential, per_replica: int = 3) -> list[Hit]:
    urls = target.base_urls
    return asyncio.run(
        _parallel(
            recorder,
            dev,
            urls,
            per_replica * len(urls),
            endpoint="/actions/execute",
            timeout_s=OUTAGE_CLIENT_TIMEOUT_S,
            t0=time.monotonic(),
        )
    )


@when("Redis hangs and executes are sent to every replica", target_fixture="rl_outage")
def _(target: Target, rl_redis_restored: None, dev: Credential, recorder: Recorder) -> list[Hit]:
    assert target.stack is not None
    target.stack.pause_redis()
    hits = _outage_executes(target, recorder, dev)
    recorder.note(
        "redis_hung",
        {
            "how": "SIGSTOP (pause_redis)",
            "requests": [h.row() for h in hits],
            "max_latency_ms": round(max(h.elapsed_s for h in hits) * 1000, 1),
        },
    )
    return hits


@when("Redis is killed and executes are sent to every replica", target_fixture="rl_outage")
def _(target: Target, rl_redis_restored: None, dev: Credential, recorder: Recorder) -> list[Hit]:
    assert target.stack is not None
    target.stack.kill_redis()
    hits = _outage_executes(target, recorder, dev)
    recorder.note(
        "redis_killed",
        {
            "how": "SIGKILL (kill_redis)",
            "requests": [h.row() for h in hits],
            "max_latency_ms": round(max(h.elapsed_s for h in hits) * 1000, 1),
        },
    )
    return hits


def _succeeded(hits: list[Hit], bound_s: float | None) -> None:
    problems = []
    for h in hits:
        if h.error is not None:
            problems.append(f"{h.replica}: no answer ({h.error})")
        elif h.status != 200:
            problems.append(
                f"{h.replica}: {h.status} {h.response.text[:160] if h.response is not None else ''}"
            )
        elif bound_s is not None and h.elapsed_s > bound_s:
            problems.append(f"{h.replica}: answered after {h.elapsed_s:.2f} s (bound {bound_s:g} s)")
    _check_all(problems, "executes failed or stalled while Redis was away")


@then(parsers.parse("every execute succeeds within {seconds:g} seconds, none with a 5xx"))
def _(rl_outage: list[Hit], recorder: Recorder, seconds: float) -> None:
    recorder.note(
        "latency_bound",
        {
            "bound_s": seconds,
            "max_latency_s": round(max(h.elapsed_s for h in rl_outage), 3),
            "why": "Redis calls are bounded at 250 ms connect + 250 ms socket (reference stack); the bound "
            "adds margin for the request's own work on a noisy machine and stays far below the 10 s a "
            "Redis client without timeouts waits",
        },
    )
    _succeeded(rl_outage, seconds)


@then("every execute succeeds, none with a 5xx")
def _(rl_outage: list[Hit]) -> None:
    _succeeded(rl_outage, None)


@then("every replica's rate limiter has fallen back to the in-process limiter")
def _(rl_replicas: dict[str, httpx.Client], recorder: Recorder) -> None:
    _, state = _wait_backend(rl_replicas, "memory", timeout_s=1)
    recorder.note("backend_during_outage", state["readings"])
    assert not state["pending"], f"replicas not on the in-process limiter while Redis is away: {state}"


@when("Redis answers again", target_fixture="rl_redis_back_at")
def _(target: Target) -> float:
    assert target.stack is not None
    target.stack.resume_redis()
    return time.monotonic()


@when("Redis is started again", target_fixture="rl_redis_back_at")
def _(target: Target) -> float:
    assert target.stack is not None
    target.stack.restart_redis()  # returns once it answers PING (with empty quotas)
    return time.monotonic()


@then(parsers.parse("every replica's rate limiter is back on Redis within {seconds:g} seconds"))
def _(
    rl_redis_back_at: float, rl_replicas: dict[str, httpx.Client], recorder: Recorder, seconds: float
) -> None:
    _, state = _wait_backend(rl_replicas, "redis", timeout_s=seconds + 1)
    took = time.monotonic() - rl_redis_back_at if not state["pending"] else None
    recorder.note(
        "redis_recovery",
        {"seconds": round(took, 3) if took is not None else None, "bound_s": seconds, **state},
    )
    assert took is not None and took <= seconds, (
        f"the rate limiter was not back on Redis on every replica within {seconds:g} s: {state}"
    )


# -- rate limiting switched off --------------------------------------------------------------------


@pytest.fixture
def rl_unlimited_replica(target: Target) -> Iterator[str]:
    if target.stack is None or not target.controllable:
        pytest.skip(f"{target.name}: needs control of the target to start a replica with other settings")
    with target.stack.extra_replica({"RATE_LIMIT_ENABLED": "false"}) as url:
        yield url


@given("a replica of the target running with RATE_LIMIT_ENABLED=false", target_fixture="rl_unlimited_url")
def _(rl_unlimited_replica: str) -> str:
    return rl_unlimited_replica


@when(
    parsers.parse("a developer sends {factor:d} x quota executes at once to that replica"),
    target_fixture="rl_unlimited_burst",
)
def _(
    rl_unlimited_url: str,
    dev: Credential,
    target: Target,
    rl_policy: RateLimitPolicy,
    recorder: Recorder,
    factor: int,
) -> Burst:
    with recorder.client(rl_unlimited_url, timeout=target.request_timeout_s) as c:
        c.get("/_stcore/health")
    hits = asyncio.run(
        _parallel(
            recorder,
            dev,
            [rl_unlimited_url],
            factor * rl_policy.limit,
            endpoint=rl_policy.endpoint,
            timeout_s=target.request_timeout_s,
            t0=time.monotonic(),
        )
    )
    burst = Burst(dev, hits)
    duration = max(h.received_at for h in hits) - min(h.sent_at for h in hits)
    recorder.note(
        "burst_rate_limit_disabled",
        burst.evidence(rl_policy, setting="RATE_LIMIT_ENABLED=false", duration_s=round(duration, 3)),
    )
    return burst


@then("none of them is refused with 429")
def _(rl_unlimited_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    hits = rl_unlimited_burst.hits
    assert len(hits) > 2 * rl_policy.limit, "too few executes to prove anything"
    odd = [h.row() for h in hits if h.status != 200]
    assert not odd, f"{len(odd)} of {len(hits)} executes not admitted with rate limiting off: {odd[:5]}"
    # more than twice the quota inside one window's time: an enabled limiter must have refused some
    duration = max(h.received_at for h in hits) - min(h.sent_at for h in hits)
    assert duration < rl_policy.window_s, (
        f"the burst took {duration:.2f} s, longer than a {rl_policy.window_s} s window: inconclusive"
    )
