"""features/support/rate_limit_long.py without a stack: the long window is always far from both its ends, and
each judge accepts the reference relay's exact answers and names what each plausible mistake gets
wrong — the mistakes a 3 s window lets through."""

from __future__ import annotations

import math

import httpx
import pytest

from features.support import rate_limit_long as long
from features.support.rate_limit_support import Hit

LIMIT = 4
WINDOW = 3600
T0 = 1_796_427_451.3  # 1349 s before the end of its hour-long window (1796428800)
END = 1_796_428_800


def answers(
    n: int = LIMIT + 3,
    *,
    reset: object = None,
    retry_after: object = None,
    t: object = None,
    policy: str | None = None,
    body: bytes | None = None,
    cache: str = "no-store",
) -> list[Hit]:
    """What the reference relay sends for ``n`` executes 10 ms apart, each field replaceable by a
    function of (index, receipt time) or a constant."""

    def pick(value: object, i: int, at: float, default: object) -> str:
        v = default if value is None else value
        return str(v(i, at) if callable(v) else v)

    hits = []
    for i in range(n):
        sent = T0 + i * 0.01
        at = sent + 0.004
        admitted = i < LIMIT
        remaining = max(0, LIMIT - i - 1)
        wait = math.ceil(END - sent)
        headers = {
            "X-RateLimit-Limit": str(LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": pick(reset, i, at, END),
            "RateLimit-Policy": policy or f'"workspace";q={LIMIT};w={WINDOW}',
            "RateLimit": f'"workspace";r={remaining};t={pick(t, i, at, wait)}',
            "Cache-Control": cache,
        }
        if admitted:
            response = httpx.Response(200, headers=headers, json={"status": "delivered"})
        else:
            headers["Retry-After"] = pick(retry_after, i, at, wait)
            content = body or b'{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"x"}'
            ctype = "text/plain" if body else "application/problem+json"
            response = httpx.Response(429, headers={**headers, "Content-Type": ctype}, content=content)
        hits.append(Hit(response, "default", "http://relay", sent, at, i * 10.0))
    return hits


def test_the_long_window_is_always_minutes_from_both_its_ends() -> None:
    for now in range(1_796_400_000, 1_796_400_000 + 2 * 86_400, 7):
        w = long.long_window(now + 0.5)
        into = (now + 0.5) % w
        assert long.MARGIN_S <= into <= w - long.MARGIN_S


def test_window_end_is_epoch_aligned() -> None:
    assert long.window_end(T0, WINDOW) == END
    assert long.window_end(END, WINDOW) == END + WINDOW


def test_the_reference_relays_answers_pass_every_judge() -> None:
    hits = answers()
    assert long.countdown_problems(hits, LIMIT) == []
    assert long.reset_problems(hits, WINDOW) == []
    assert long.ietf_problems(hits, LIMIT, WINDOW) == []
    assert long.refusal_problems(hits, WINDOW) == []


@pytest.mark.parametrize(
    ("mistake", "hits", "judge", "found"),
    [
        ("Retry-After = the window", answers(retry_after=WINDOW), "refusal", "Retry-After 3600"),
        ("Retry-After one window late", answers(retry_after=lambda i, at: math.ceil(END - at) + WINDOW),
         "refusal", "Retry-After 4949"),
        ("Retry-After 0", answers(retry_after=0), "refusal", "Retry-After 0"),
        ("t = the window", answers(t=WINDOW), "ietf", "t=3600"),
        ("reset = window start", answers(reset=END - WINDOW), "reset", "(-3600 s)"),
        ("reset = now + window (sliding)", answers(reset=lambda i, at: math.ceil(at) + WINDOW), "reset",
         "(+2252 s)"),
        ("reset as a delta", answers(reset=lambda i, at: math.ceil(END - at)), "reset", "delta seconds"),
        ("policy named by a token", answers(policy=f"workspace;q={LIMIT};w={WINDOW}"), "ietf",
         "RateLimit-Policy"),
        ("w = 60 written in", answers(policy=f'"workspace";q={LIMIT};w=60'), "ietf", "w=60"),
        ("a cacheable 429", answers(cache="public, max-age=60"), "refusal", "not no-store"),
        ("a plain-text 429", answers(body=b"Too Many Requests"), "refusal", "not a problem document"),
    ],
)  # fmt: skip
def test_each_mistake_is_named(mistake: str, hits: list[Hit], judge: str, found: str) -> None:
    judges = {
        "reset": lambda: long.reset_problems(hits, WINDOW),
        "ietf": lambda: long.ietf_problems(hits, LIMIT, WINDOW),
        "refusal": lambda: long.refusal_problems(hits, WINDOW),
    }
    problems = judges[judge]()
    assert problems and found in problems[0], (mistake, problems)


def test_one_admission_too_many_and_a_negative_remaining_are_named() -> None:
    too_many = answers()
    too_many[LIMIT] = answers()[0]  # an admitted answer where a refusal belongs
    assert any("statuses" in p for p in long.countdown_problems(too_many, LIMIT))
    negative = answers()
    negative[-1].response.headers["X-RateLimit-Remaining"] = "-1"  # type: ignore[union-attr]
    assert any("malformed: '-1'" in p for p in long.countdown_problems(negative, LIMIT))


def test_fewer_executes_than_the_quota_are_all_admitted() -> None:
    assert long.countdown_problems(answers(2), LIMIT) == []
