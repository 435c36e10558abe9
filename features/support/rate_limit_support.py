"""What the rate-limit steps send and see: executes as the client saw them, bursts, and a ledger of
the windows each workspace was used in.

Everything is observed over HTTP: an execute's status and its rate-limit headers, one at a time
(:func:`execute_hit`) or many at once over several replicas (:func:`parallel`). The headers are read by the
gate's own oracle (:mod:`gate.oracles.ratelimit`): a header that is present but garbled is *malformed*
(the steps say so, with the raw value), never mistaken for a missing one. X-RateLimit-Reset may be an
epoch (the reference relay) or a delta (other limiters); :attr:`Hit.reset` is always the epoch.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx

from features.support.executes import NOTIFY, post_execute
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, RateLimitPolicy, Target
from gate.oracles import ratelimit

# Retry-After is ceil()ed to whole seconds (< 1 s) and the client reads the clock after the answer:
# Retry-After, RateLimit's t and X-RateLimit-Reset - now may differ by this much. Client and server
# clocks must agree (they are one clock on the reference stack; NTP elsewhere).
CLOCK_TOLERANCE_S = 2.0
EPSILON_S = 0.05  # start a little after a reset, so the first request lands in the new window
# A reset sent as a delta is ceil()ed to whole seconds by most limiters and read at the client's receipt
# time: two answers of one window can name ends up to ~1 s apart, and windows are longer than that.
DELTA_RESET_JITTER_S = 1.5


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

    @cached_property
    def rl(self) -> ratelimit.RateLimitHeaders:
        """The rate-limit headers as the gate's oracle reads them, on the client's clock at receipt."""
        headers = self.response.headers if self.response is not None else ()
        return ratelimit.parse(headers, now=self.received_at)

    @property
    def remaining(self) -> int | None:
        return self.rl.remaining.value

    @property
    def reset(self) -> float | None:
        """X-RateLimit-Reset as an epoch on the client's clock (None when missing or malformed)."""
        return self.rl.reset_at

    @property
    def retry_after(self) -> float | None:
        """Seconds Retry-After asks to wait, from receipt (None when missing or malformed)."""
        return self.rl.retry_in

    @property
    def elapsed_s(self) -> float:
        return self.received_at - self.sent_at

    def row(self) -> dict[str, Any]:
        return {
            "t_ms": round(self.t_ms, 1),
            "elapsed_ms": round(self.elapsed_s * 1000, 1),
            "replica": self.replica,
            "status": self.status if self.error is None else f"no answer: {self.error}",
            "remaining": _as_sent(self.rl.remaining),
            "retry_after": _as_sent(self.rl.retry_after),
            "reset": _as_sent(self.rl.reset),
        }


def _as_sent(f: ratelimit.Field[Any]) -> int | float | str | None:
    """A header for the evidence: its number when it parsed (a date stays as written), else the raw text."""
    if not f.ok:
        return f.raw
    value = f.value
    if isinstance(value, ratelimit.Moment):
        return value.sent if value.kind != "date" else f.raw
    return value if isinstance(value, int) else f.raw


def same_window(a: Hit, b: Hit) -> bool:
    """Whether two answers name the end of the same window: exactly, when both resets are epochs (the
    limiter computed both from one window); within :data:`DELTA_RESET_JITTER_S` when either is a delta."""
    if a.reset is None or b.reset is None:
        return False
    if a.rl.reset_kind == b.rl.reset_kind == "epoch":
        return a.reset == b.reset
    return abs(a.reset - b.reset) < DELTA_RESET_JITTER_S


def reset_kinds(hits: list[Hit]) -> list[str]:
    """How X-RateLimit-Reset was sent over these answers: ``epoch`` and/or ``delta`` seconds."""
    return sorted({h.rl.reset_kind for h in hits if h.rl.reset_kind is not None})


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
            "reset_kinds": reset_kinds(self.hits),
            **extra,
            "timeline": [h.row() for h in self.hits],
            "first_429_headers": dict(first_429.response.headers)
            if first_429 and first_429.response
            else None,
        }


# -- whose quota to spend -------------------------------------------------------------------------


@dataclass
class Ledger:
    """In which window (its X-RateLimit-Reset) these steps last used each workspace, this session."""

    last_reset: dict[str, float] = field(default_factory=dict)

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


def workspace_keys(target: Target) -> list[Credential]:
    """One key per workspace (dev keys preferred): the workspaces these steps can spend quota in."""
    by_ws: dict[str, Credential] = {}
    for c in sorted(target.credentials.values(), key=lambda c: (c.role != "dev", c.name)):
        by_ws.setdefault(c.workspace, c)
    return list(by_ws.values())


def primary_workspace(target: Target) -> str | None:
    dev = target.credential("dev")
    return dev.workspace if dev else None


# -- sending ---------------------------------------------------------------------------------------


def execute_hit(
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
    """One execute (:func:`~features.support.executes.post_execute`) as a :class:`Hit`, its window booked
    in ``ledger``."""
    sent, mono = time.time(), time.monotonic()
    r = post_execute(client, cred, body, endpoint=endpoint, headers=headers, params=params)
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


def answered(hit: Hit) -> Hit:
    assert hit.status in (200, 429), (
        f"an execute for workspace {hit.workspace} answered {hit.status} "
        f"({hit.error or (hit.response.text[:200] if hit.response is not None else '')}): "
        "the rate-limit scenarios need executes that succeed or are refused with 429"
    )
    assert hit.reset is not None, (
        f"an execute answered {hit.status} with X-RateLimit-Reset {hit.rl.reset.describe()}: the "
        "rate-limit scenarios place their bursts by it"
    )
    return hit


async def parallel(
    recorder: ExchangeRecorder,
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


def check_all(problems: list[str], what: str) -> None:
    # the first problem goes on the first line: that line is the reason results/summary.json keeps
    more = f" (+{len(problems) - 1} more)\n  " + "\n  ".join(problems[1:12]) if len(problems) > 1 else ""
    assert not problems, f"{what}: {problems[0] if problems else ''}{more}"
