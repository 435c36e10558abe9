"""Steps for features/headers.feature: provoke each status, check the header set, analyse and grade it.

Each status has one recipe (:data:`RECIPES`) that needs as little of the target as possible: 200, 401,
404, 405 and 413 need nothing but the URL; 403 and 422 a developer key; 429 a key and the rate-limit
policy; 500 the target's fault path. The judging is gate.oracles.headercheck's (pure functions); what was
received is noted as ``headers_by_status`` (like ``curl -I``), the analysis as ``findings`` and ``grade``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import pytest
from pytest_bdd import parsers, then, when

from features.support import quota, skips
from features.support.executes import NOTIFY
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, Target
from gate.oracles import headercheck

OVER_LIMIT_BYTES = 1024 * 1024  # the reference limit is 64 KiB; 1 MiB is over any sensible API's
QUOTA_PROBE = {"preview_id": "relay-gate-headers-quota-probe"}  # counted, then refused: no side effect
# the reference stack's third workspace: single-workspace scenarios elsewhere use dev (default) and ws-a
QUOTA_CREDENTIAL = "dev-ws-b"


@dataclass
class Provoked:
    """One response asked for a given status."""

    status: int
    how: str
    response: httpx.Response

    @property
    def received(self) -> list[tuple[str, str]]:
        """The response's headers as received: names as sent, duplicates kept, in order."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.response.headers.raw]


@dataclass
class Analysis:
    response: httpx.Response
    findings: list[headercheck.Finding]
    grade: headercheck.Grade


Recipe = Callable[[httpx.Client, Credential | None], httpx.Response]


def _too_large(http: httpx.Client, _: Credential | None) -> httpx.Response:
    body = b'{"pad": "' + b"x" * OVER_LIMIT_BYTES + b'"}'
    return http.post("/actions/preview", content=body, headers={"Content-Type": "application/json"})


def _auth(cred: Credential | None) -> dict[str, str]:
    assert cred is not None
    return cred.authorization


# status -> (how, recipe, needs a developer key)
RECIPES: dict[int, tuple[str, Recipe, bool]] = {
    200: ("GET /_stcore/health", lambda h, _: h.get("/_stcore/health"), False),
    401: ("GET /actions without a key", lambda h, _: h.get("/actions"), False),
    404: ("GET an unknown path", lambda h, _: h.get(f"/relay-gate/no-such-path-{uuid.uuid4().hex}"), False),
    405: ("DELETE /actions", lambda h, _: h.delete("/actions"), False),
    413: (f"POST {OVER_LIMIT_BYTES} bytes to /actions/preview", _too_large, False),
    403: ("GET /audit with a developer key", lambda h, c: h.get("/audit", headers=_auth(c)), True),
    422: (
        "POST malformed JSON to /actions/preview with a developer key",
        lambda h, c: h.post(
            "/actions/preview",
            content=b'{"action": "notify.send", "params": {',
            headers={**_auth(c), "Content-Type": "application/json"},
        ),
        True,
    ),
}


def _statuses(text: str) -> list[int]:
    found = [int(s) for s in re.findall(r"\b\d{3}\b", text)]
    unknown = [s for s in found if s not in RECIPES]
    if not found or unknown:
        raise ValueError(f"no recipe to provoke {unknown or text!r}; known: {sorted(RECIPES)}")
    return found


def _note_received(recorder: ExchangeRecorder, provoked: list[Provoked]) -> None:
    recorder.note(
        "headers_by_status",
        {str(p.response.status_code): [list(pair) for pair in p.received] for p in provoked},
    )
    recorder.note("provoked", [{"status": p.status, "how": p.how, "answered": p.response.status_code}
                               for p in provoked])  # fmt: skip


def _provoke(
    http: httpx.Client, recorder: ExchangeRecorder, statuses: list[int], cred: Credential | None
) -> list[Provoked]:
    out = []
    for status in statuses:
        how, recipe, _ = RECIPES[status]
        try:
            response = recipe(http, cred)
        except httpx.TransportError as exc:
            # e.g. a server that answers 413 and closes before the upload is read: try once more
            recorder.record_error(how.split()[0], f"{http.base_url} ({how})", f"{type(exc).__name__}: {exc}")
            response = recipe(http, cred)
        out.append(Provoked(status, how, response))
    _note_received(recorder, out)
    return out


@when(parsers.parse("a client without a key provokes {statuses} responses"), target_fixture="provoked")
def _(http: httpx.Client, recorder: ExchangeRecorder, statuses: str) -> list[Provoked]:
    wanted = _statuses(statuses)
    needy = [s for s in wanted if RECIPES[s][2]]
    if needy:
        raise ValueError(f"{needy} need a developer key: use 'a developer provokes ... responses'")
    return _provoke(http, recorder, wanted, None)


@when(parsers.parse("a developer provokes {statuses} responses"), target_fixture="provoked")
def _(http: httpx.Client, recorder: ExchangeRecorder, dev: Credential, statuses: str) -> list[Provoked]:
    wanted = _statuses(statuses)
    if 403 in wanted and dev.role != "dev":
        skips.missing_config(f"a 403 needs a key without admin rights; the only key has role {dev.role}")
    return _provoke(http, recorder, wanted, dev)


def quota_credential(target: Target) -> Credential | None:
    """The key whose workspace this feature may exhaust: dev-ws-b, else the last dev key configured."""
    if QUOTA_CREDENTIAL in target.credentials:
        return target.credentials[QUOTA_CREDENTIAL]
    devs = [c for c in target.credentials.values() if c.role == "dev"]
    return devs[-1] if devs else target.credential("dev")


@when("a workspace goes over its execute quota", target_fixture="provoked")
def _(
    http: httpx.Client, target: Target, recorder: ExchangeRecorder, request: pytest.FixtureRequest
) -> list[Provoked]:
    planned = quota.assigned(request, target)
    policy, cred = target.rate_limit, planned[0] if planned else quota_credential(target)
    if not target.rate_limit_enabled:
        skips.not_applicable(f"{target.name}: rate limiting is disabled, so there is no 429 to check")
    assert policy is not None and cred is not None  # the scenario's tags guarantee both
    # An execute of an unknown preview is counted, then refused (422): no audit row, no webhook. A target
    # that validates before counting (no X-RateLimit-Remaining on that refusal) gets real executes.
    body: dict[str, Any] = QUOTA_PROBE
    sent: list[int] = []
    refused: httpx.Response | None = None
    for _ in range(2 * policy.limit + 2):  # enough to cross one window boundary mid-burst
        r = http.post(policy.endpoint, headers=cred.authorization, json=body)
        sent.append(r.status_code)
        if r.status_code == 429:
            refused = r
            break
        if body is QUOTA_PROBE and "x-ratelimit-remaining" not in r.headers:
            body = NOTIFY
    recorder.note("quota", {"credential": cred.name, "workspace": cred.workspace, "endpoint": policy.endpoint,
                            "limit": policy.limit, "window_s": policy.window_s,
                            "body": "unknown preview_id" if body is QUOTA_PROBE else "notify.send",
                            "statuses": sent})  # fmt: skip
    assert refused is not None, (
        f"{len(sent)} executes of workspace {cred.workspace} (limit {policy.limit} per {policy.window_s} s) "
        f"were never refused with 429; statuses: {sent}"
    )
    provoked = [Provoked(429, f"execute #{len(sent)} of workspace {cred.workspace} in one window", refused)]
    _note_received(recorder, provoked)
    return provoked


@when("a client requests the path that fails with an unhandled error", target_fixture="provoked")
def _(http: httpx.Client, target: Target, recorder: ExchangeRecorder) -> list[Provoked]:
    assert target.fault_path is not None  # @needs-fault-route
    provoked = [Provoked(500, f"GET {target.fault_path}", http.get(target.fault_path))]
    _note_received(recorder, provoked)
    return provoked


def header_problems(provoked: list[Provoked], expected: Mapping[str, str]) -> list[str]:
    """What is wrong with the security headers of each provoked response: a response of another
    status than the one its recipe provokes is a problem of its own (nothing to check on it)."""
    problems: list[str] = []
    for p in provoked:
        if p.response.status_code != p.status:
            problems.append(f"{p.how} answered {p.response.status_code}, not {p.status}: nothing to check")
            continue
        problems += [
            f"{p.status} ({p.how}): {x.describe()}"
            for x in headercheck.check_headers(p.received, expected, forbidden=())
        ]
    return problems


def _listing(what: str, items: list[str]) -> str:
    # the first line is what results/summary.json keeps: make it say what is wrong
    return f"{len(items)} {what}: {items[0]}" + "".join(f"\n  {i}" for i in items[1:])


@then(
    "every provoked response carries each configured security header exactly once with its configured value"
)
def _(provoked: list[Provoked], target: Target, recorder: ExchangeRecorder) -> None:
    expected = target.expected()
    if expected is None:
        skips.missing_config(
            f"{target.name}: no expected header set (give [headers].profile or [headers.expected])"
        )
    problems = header_problems(provoked, expected)
    recorder.note("header_problems", problems)
    assert not problems, _listing(f"security header problem(s) ({target.header_profile} profile)", problems)


@then("no provoked response names the server implementation")
def _(provoked: list[Provoked]) -> None:
    leaks = [
        f"{p.response.status_code} ({p.how}): {x.describe()}"
        for p in provoked
        for x in headercheck.check_headers(p.received, {}, forbidden=headercheck.FORBIDDEN)
    ]
    assert not leaks, _listing("response(s) advertise the implementation", leaks)


# -- the policy: analysis and grade -------------------------------------------------------------------


@when("the security headers of a healthy response are analysed", target_fixture="header_analysis")
def _(http: httpx.Client, recorder: ExchangeRecorder) -> Analysis:
    provoked = Provoked(200, RECIPES[200][0], http.get("/_stcore/health"))
    _note_received(recorder, [provoked])
    findings = headercheck.analyse(provoked.received)
    g = headercheck.grade_findings(findings)
    recorder.note("findings", [{**asdict(f), "points": f.points} for f in findings])
    recorder.note(
        "grade", {"score": g.score, "letter": g.letter, "deductions": [list(d) for d in g.deductions]}
    )
    return Analysis(provoked.response, findings, g)


@then(parsers.parse("Strict-Transport-Security covers subdomains for at least {days:d} days"))
def _(header_analysis: Analysis, days: int) -> None:
    values = headercheck.values_of(header_analysis.response.headers, "Strict-Transport-Security")
    assert values, "no Strict-Transport-Security header"
    hsts = headercheck.parse_hsts(values[0])
    assert hsts.error is None and hsts.max_age is not None, (
        f"{values[0]!r} is ignored by browsers: {hsts.error}"
    )
    assert hsts.include_subdomains, f"{values[0]!r} has no includeSubDomains: subdomains are not covered"
    assert hsts.max_age >= days * 86_400, f"{values[0]!r}: max-age {hsts.max_age} s is under {days} days"


SCRIPT_FINDINGS = {
    "csp-missing",
    "csp-script-unrestricted",
    "csp-script-unsafe-inline",
    "csp-script-unsafe-eval",
    "csp-script-wildcard",
}


@then("the Content-Security-Policy allows no inline script, no eval and no script from any host")
def _(header_analysis: Analysis) -> None:
    bad = [f"{f.code}: {f.detail}" for f in header_analysis.findings if f.code in SCRIPT_FINDINGS]
    assert not bad, _listing("way(s) the CSP lets scripts through", bad)


@then(parsers.parse("the security headers grade at least {minimum}"))
def _(header_analysis: Analysis, minimum: str) -> None:
    if minimum not in headercheck.LETTERS:
        raise ValueError(f"unknown grade {minimum!r}; use one of {headercheck.LETTERS}")
    g = header_analysis.grade
    deductions = ", ".join(f"{code} -{points}" for code, points in g.deductions) or "none"
    assert headercheck.at_least(g.letter, minimum), (
        f"graded {g.letter} ({g.score}/100; {deductions}), below {minimum}"
    )
