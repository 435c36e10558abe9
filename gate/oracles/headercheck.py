"""Security-header analysis for the @headers scenarios: pure functions over header values, no I/O.

Nothing here raises on what a server sends: garbage values become findings, never exceptions.

- :func:`check_headers` — a response against the expected set: each header present exactly once
  with its exact value, ``Server`` / ``X-Powered-By`` absent.
- :func:`parse_csp` / :func:`analyse_csp` — Content-Security-Policy (CSP Level 3 parsing).
- :func:`parse_hsts` / :func:`analyse_hsts` — Strict-Transport-Security (RFC 6797 parsing).
- :func:`analyse` / :func:`grade` — every finding, and an offline, Mozilla-Observatory-style grade.

Grading rubric
--------------
The score starts at 100; each finding subtracts its points once (a finding names every directive it
concerns); the score is floored at 0. There are no bonuses, so A+ means no deduction at all. Letters
use the Mozilla HTTP Observatory's thresholds::

    A+ 100   A 90-99   A- 85-89   B+ 80-84   B 70-79   B- 65-69   C+ 60-64   C 50-59
    C- 45-49   D+ 40-44   D 30-39   D- 25-29   F 0-24

The header values are judged as sent; whether the transport was HTTPS is not this module's business.
"Effective script-src" is ``script-src``, else ``default-src``; likewise for ``style-src`` and
``object-src``. 0-point findings are reported for the reviewer but cost nothing.

=============================== ====== ============================================================
finding                         points when
=============================== ====== ============================================================
csp-missing                     25     no Content-Security-Policy, or one without any directive
csp-script-unrestricted         20     neither script-src nor default-src: scripts from anywhere
csp-script-unsafe-inline        20     effective script-src has 'unsafe-inline' (no nonce/hash)
csp-script-unsafe-eval          10     effective script-src has 'unsafe-eval'
csp-script-wildcard             20     effective script-src has ``*`` or a scheme source
                                       (``https:``, ``data:``…), unless 'strict-dynamic'
csp-object-src-missing          5      no object-src while default-src is not 'none'
csp-style-unsafe-inline         5      effective style-src has 'unsafe-inline'
csp-wildcard-source             5      ``*`` in any other directive
csp-scheme-source               0      a scheme source in any other directive (``img-src data:``)
csp-wildcard-host               0      a host wildcard (``https://*.example.com``) anywhere
csp-base-uri-missing            5      no base-uri
csp-form-action-missing         5      no form-action
csp-frame-ancestors-missing     5      no frame-ancestors
hsts-missing                    20     no Strict-Transport-Security
hsts-invalid                    20     present, but a browser would ignore it (no/bad max-age,
                                       a repeated directive)
hsts-max-age-short              10     max-age below 15552000 s (180 days, the Observatory's
                                       "six months"); max-age=0 switches HSTS off
hsts-no-includesubdomains       10     no includeSubDomains
hsts-preload-ineligible         5      preload without hstspreload.org's requirements
                                       (max-age >= 31536000 and includeSubDomains)
clickjacking-unprotected        20     neither frame-ancestors nor X-Frame-Options DENY/SAMEORIGIN
x-content-type-options-missing  5      X-Content-Type-Options is not ``nosniff``
referrer-policy-unsafe          5      Referrer-Policy unsafe-url or no-referrer-when-downgrade
referrer-policy-missing         0      no Referrer-Policy (browsers default to a safe policy)
x-xss-protection-enabled        0      X-XSS-Protection switches the removed XSS auditor on
                                       (OWASP: send ``0``)
implementation-disclosed        5      Server or X-Powered-By present
=============================== ====== ============================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from gate.oracles.headers import FORBIDDEN

RUBRIC: dict[str, int] = {
    "csp-missing": 25,
    "csp-script-unrestricted": 20,
    "csp-script-unsafe-inline": 20,
    "csp-script-unsafe-eval": 10,
    "csp-script-wildcard": 20,
    "csp-object-src-missing": 5,
    "csp-style-unsafe-inline": 5,
    "csp-wildcard-source": 5,
    "csp-scheme-source": 0,
    "csp-wildcard-host": 0,
    "csp-base-uri-missing": 5,
    "csp-form-action-missing": 5,
    "csp-frame-ancestors-missing": 5,
    "hsts-missing": 20,
    "hsts-invalid": 20,
    "hsts-max-age-short": 10,
    "hsts-no-includesubdomains": 10,
    "hsts-preload-ineligible": 5,
    "clickjacking-unprotected": 20,
    "x-content-type-options-missing": 5,
    "referrer-policy-unsafe": 5,
    "referrer-policy-missing": 0,
    "x-xss-protection-enabled": 0,
    "implementation-disclosed": 5,
}

# (lowest score, letter), best first: the Observatory's thresholds
THRESHOLDS: tuple[tuple[int, str], ...] = (
    (100, "A+"), (90, "A"), (85, "A-"), (80, "B+"), (70, "B"), (65, "B-"), (60, "C+"),
    (50, "C"), (45, "C-"), (40, "D+"), (30, "D"), (25, "D-"), (0, "F"),
)  # fmt: skip
LETTERS: tuple[str, ...] = tuple(letter for _, letter in THRESHOLDS)

SIX_MONTHS_S = 15_552_000
PRELOAD_MIN_MAX_AGE_S = 31_536_000

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
ProblemKind = Literal["missing", "wrong-value", "duplicated", "forbidden"]


@dataclass(frozen=True)
class Finding:
    code: str  # a key of RUBRIC
    header: str
    detail: str

    @property
    def points(self) -> int:
        return RUBRIC[self.code]


@dataclass(frozen=True)
class Grade:
    score: int
    letter: str
    deductions: tuple[tuple[str, int], ...]  # (finding code, points), each > 0


@dataclass(frozen=True)
class HeaderProblem:
    kind: ProblemKind
    header: str
    expected: str | None
    received: tuple[str, ...]

    def describe(self) -> str:
        if self.kind == "missing":
            return f"{self.header} is missing (expected {self.expected!r})"
        if self.kind == "wrong-value":
            return f"{self.header} is {self.received[0]!r}, expected {self.expected!r}"
        if self.kind == "duplicated":
            return f"{self.header} appears {len(self.received)} times: {list(self.received)!r}"
        return f"{self.header} is present ({', '.join(map(repr, self.received))})"


@dataclass(frozen=True)
class Hsts:
    max_age: int | None
    include_subdomains: bool
    preload: bool
    error: str | None  # why a browser would ignore the header; None when it is valid


# -- headers as received ---------------------------------------------------------------------------


def pairs(headers: Headers) -> list[tuple[str, str]]:
    """``headers`` as (name, value) pairs, in order, duplicates kept."""
    multi = getattr(headers, "multi_items", None)  # httpx.Headers: .items() would join duplicates
    if callable(multi):
        return [(str(k), str(v)) for k, v in multi()]
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), str(v)) for k, v in items]


def values_of(headers: Headers, name: str) -> list[str]:
    """Every value of ``name`` (case-insensitive), outer whitespace stripped, in order received."""
    wanted = name.lower()
    return [v.strip(" \t") for k, v in pairs(headers) if k.lower() == wanted]


def check_headers(
    received: Headers, expected: Mapping[str, str], *, forbidden: Iterable[str] = FORBIDDEN
) -> list[HeaderProblem]:
    """Each expected header exactly once with exactly its value; no forbidden header at all."""
    got = pairs(received)
    problems: list[HeaderProblem] = []
    for name, value in expected.items():
        vals = tuple(values_of(got, name))
        if not vals:
            problems.append(HeaderProblem("missing", name, value, vals))
        elif len(vals) > 1:
            problems.append(HeaderProblem("duplicated", name, value, vals))
        elif vals[0] != value.strip(" \t"):
            problems.append(HeaderProblem("wrong-value", name, value, vals))
    for name in forbidden:
        vals = tuple(values_of(got, name))
        if vals:
            problems.append(HeaderProblem("forbidden", name, None, vals))
    return problems


# -- Content-Security-Policy -----------------------------------------------------------------------

_WS = re.compile(r"[\t\n\f\r ]+")
_DIRECTIVE_NAME = re.compile(r"[A-Za-z0-9-]+")
_SCHEME_SOURCE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_HOST_WILDCARD = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*://)?\*\.")
_SCRIPT = ("script-src", "script-src-elem", "script-src-attr")

Policy = dict[str, tuple[str, ...]]


def parse_csp(value: str) -> Policy:
    """Directive name (lower case) -> source list, as CSP Level 3 parses a serialized policy.

    Only the first policy of a comma-separated list is parsed (a further policy can only restrict).
    A repeated directive is ignored, as browsers do; so are names that are not ASCII tokens.
    """
    policy: Policy = {}
    first = value.split(",", 1)[0]
    for token in first.split(";"):
        parts = [p for p in _WS.split(token) if p]
        if not parts or not _DIRECTIVE_NAME.fullmatch(parts[0]):
            continue
        name = parts[0].lower()
        if name not in policy:
            policy[name] = tuple(parts[1:])
    return policy


def _effective(policy: Policy, directive: str) -> tuple[str, ...] | None:
    if directive in policy:
        return policy[directive]
    return policy.get("default-src")


def _lower(sources: Iterable[str]) -> set[str]:
    return {s.lower() for s in sources}


def _is_none(sources: tuple[str, ...] | None) -> bool:
    return sources is not None and _lower(sources) == {"'none'"}


def _script_directives(policy: Policy) -> dict[str, tuple[str, ...]]:
    """The directives that decide where scripts come from (default-src stands in for script-src)."""
    out = {d: policy[d] for d in _SCRIPT if d in policy}
    if "script-src" not in policy and "default-src" in policy:
        out["default-src"] = policy["default-src"]
    return out


def _script_findings(policy: Policy) -> list[Finding]:
    h = "Content-Security-Policy"
    found: dict[str, list[str]] = {}
    for name, sources in _script_directives(policy).items():
        src = _lower(sources)
        neutralised = any(s.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-")) for s in src)
        if "'unsafe-inline'" in src and not neutralised:
            found.setdefault("csp-script-unsafe-inline", []).append(f"{name} 'unsafe-inline'")
        if "'unsafe-eval'" in src:
            found.setdefault("csp-script-unsafe-eval", []).append(f"{name} 'unsafe-eval'")
        if "'strict-dynamic'" not in src:
            for s in sources:
                if s == "*" or _SCHEME_SOURCE.fullmatch(s):
                    found.setdefault("csp-script-wildcard", []).append(f"{name} {s}")
    return [Finding(code, h, "scripts allowed by " + ", ".join(where)) for code, where in found.items()]


def analyse_csp(value: str | None) -> list[Finding]:
    """Findings for one Content-Security-Policy value (``None``: the header is absent)."""
    h = "Content-Security-Policy"
    policy = parse_csp(value) if value is not None else {}
    if not policy:
        why = "no Content-Security-Policy" if value is None else f"no directive in {value[:120]!r}"
        return [Finding("csp-missing", h, why)]
    out: list[Finding] = []
    if _effective(policy, "script-src") is None:
        out.append(Finding("csp-script-unrestricted", h, "neither script-src nor default-src is set"))
    out += _script_findings(policy)
    if "object-src" not in policy and not _is_none(policy.get("default-src")):
        out.append(Finding("csp-object-src-missing", h, "no object-src, and default-src is not 'none'"))
    style = _effective(policy, "style-src")
    if style is not None and "'unsafe-inline'" in _lower(style):
        out.append(Finding("csp-style-unsafe-inline", h, "styles allow 'unsafe-inline'"))

    judged = _script_directives(policy)
    wildcard: list[str] = []
    scheme: list[str] = []
    hosts: list[str] = []
    for name, sources in policy.items():
        for s in sources:
            if _HOST_WILDCARD.match(s):
                hosts.append(f"{name} {s}")
            elif name in judged:
                continue
            elif s == "*":
                wildcard.append(name)
            elif _SCHEME_SOURCE.fullmatch(s):
                scheme.append(f"{name} {s}")
    if wildcard:
        out.append(Finding("csp-wildcard-source", h, f"'*' in {', '.join(wildcard)}"))
    if scheme:
        out.append(Finding("csp-scheme-source", h, f"scheme sources: {', '.join(scheme)}"))
    if hosts:
        out.append(Finding("csp-wildcard-host", h, f"host wildcards: {', '.join(hosts)}"))
    for directive in ("base-uri", "form-action", "frame-ancestors"):
        if directive not in policy:
            out.append(Finding(f"csp-{directive}-missing", h, f"no {directive}"))
    return out


# -- Strict-Transport-Security ---------------------------------------------------------------------


def parse_hsts(value: str) -> Hsts:
    """RFC 6797 section 6.1: ``max-age`` required, no directive twice, unknown directives ignored."""
    seen: dict[str, str | None] = {}
    for raw in value.split(";"):
        part = raw.strip(" \t")
        if not part:
            continue
        name, eq, val = part.partition("=")
        key = name.strip(" \t").lower()
        if key in seen:
            return Hsts(None, False, False, f"directive {key!r} appears more than once")
        v = val.strip(" \t") if eq else None
        if v is not None and len(v) >= 2 and v[0] == v[-1] == '"':
            v = v[1:-1]
        seen[key] = v
    include = "includesubdomains" in seen
    preload = "preload" in seen
    age = seen.get("max-age")
    if "max-age" not in seen or age is None:
        return Hsts(None, include, preload, "no max-age directive")
    if not (age.isascii() and age.isdigit()):
        return Hsts(None, include, preload, f"max-age {age[:40]!r} is not a number of seconds")
    # RFC 9111 5.1: a delta-seconds too large to represent counts as 2**31
    return Hsts(int(age) if len(age) <= 18 else 2**31, include, preload, None)


def analyse_hsts(value: str | None) -> list[Finding]:
    """Findings for one Strict-Transport-Security value (``None``: the header is absent)."""
    h = "Strict-Transport-Security"
    if value is None:
        return [Finding("hsts-missing", h, "no Strict-Transport-Security")]
    hsts = parse_hsts(value)
    if hsts.error is not None or hsts.max_age is None:
        return [Finding("hsts-invalid", h, f"ignored by browsers: {hsts.error}")]
    out: list[Finding] = []
    if hsts.max_age < SIX_MONTHS_S:
        out.append(Finding("hsts-max-age-short", h, f"max-age={hsts.max_age} is under {SIX_MONTHS_S} s"))
    if not hsts.include_subdomains:
        out.append(
            Finding("hsts-no-includesubdomains", h, "no includeSubDomains: subdomains are not covered")
        )
    if hsts.preload and (hsts.max_age < PRELOAD_MIN_MAX_AGE_S or not hsts.include_subdomains):
        why = []
        if hsts.max_age < PRELOAD_MIN_MAX_AGE_S:
            why.append(f"max-age={hsts.max_age} < {PRELOAD_MIN_MAX_AGE_S}")
        if not hsts.include_subdomains:
            why.append("no includeSubDomains")
        detail = f"preload is asked for, but hstspreload.org would refuse it: {'; '.join(why)}"
        out.append(Finding("hsts-preload-ineligible", h, detail))
    return out


# -- everything, and the grade ---------------------------------------------------------------------

_UNSAFE_REFERRER = {"unsafe-url", "no-referrer-when-downgrade"}
_REFERRER_POLICIES = _UNSAFE_REFERRER | {
    "no-referrer", "origin", "origin-when-cross-origin", "same-origin", "strict-origin",
    "strict-origin-when-cross-origin",
}  # fmt: skip


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    vals = values_of(headers, name)
    return vals[0] if vals else None


def analyse(headers: Headers) -> list[Finding]:
    """Every finding of the rubric for one response's headers (the first value of each name)."""
    got = pairs(headers)
    csp = _first(got, "Content-Security-Policy")
    out = analyse_csp(csp) + analyse_hsts(_first(got, "Strict-Transport-Security"))
    xfo = (_first(got, "X-Frame-Options") or "").lower()
    if "frame-ancestors" not in parse_csp(csp or "") and xfo not in ("deny", "sameorigin"):
        why = "neither CSP frame-ancestors nor X-Frame-Options DENY/SAMEORIGIN"
        out.append(Finding("clickjacking-unprotected", "X-Frame-Options", why))
    if (_first(got, "X-Content-Type-Options") or "").lower() != "nosniff":
        out.append(Finding("x-content-type-options-missing", "X-Content-Type-Options", "not 'nosniff'"))
    referrer = _first(got, "Referrer-Policy")
    if referrer is None:
        out.append(Finding("referrer-policy-missing", "Referrer-Policy", "no Referrer-Policy"))
    else:
        known = [t for t in (p.strip(" \t").lower() for p in referrer.split(",")) if t in _REFERRER_POLICIES]
        if known and known[-1] in _UNSAFE_REFERRER:  # the last policy a browser knows wins
            out.append(Finding("referrer-policy-unsafe", "Referrer-Policy", f"{known[-1]} leaks full URLs"))
    xxp = _first(got, "X-XSS-Protection")
    if xxp is not None and xxp.startswith("1"):
        why = f"{xxp!r} switches on the removed XSS auditor; OWASP recommends '0'"
        out.append(Finding("x-xss-protection-enabled", "X-XSS-Protection", why))
    leaks = [f"{n}: {v}" for n in FORBIDDEN for v in values_of(got, n)]
    if leaks:
        out.append(Finding("implementation-disclosed", "Server", "; ".join(leaks)[:200]))
    return out


def letter_for(score: int) -> str:
    for lowest, letter in THRESHOLDS:
        if score >= lowest:
            return letter
    return "F"


def at_least(letter: str, minimum: str) -> bool:
    """Whether ``letter`` is ``minimum`` or better (both from :data:`LETTERS`)."""
    return LETTERS.index(letter) <= LETTERS.index(minimum)


def grade_findings(findings: Iterable[Finding]) -> Grade:
    deductions: dict[str, int] = {}
    for f in findings:
        if f.points > 0:
            deductions.setdefault(f.code, f.points)
    score = max(0, 100 - sum(deductions.values()))
    return Grade(score, letter_for(score), tuple(deductions.items()))


def grade(headers: Headers) -> Grade:
    """The Observatory-style grade of one response's headers (see the rubric above)."""
    return grade_findings(analyse(headers))
