"""gate.oracles.headercheck: the expected-set check, CSP and HSTS analysis, the grade; garbage never
raises."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate.oracles import headercheck as hc
from gate.oracles.headercheck import (
    RUBRIC,
    Hsts,
    analyse,
    analyse_csp,
    analyse_hsts,
    at_least,
    check_headers,
    grade,
    grade_findings,
    letter_for,
    parse_csp,
    parse_hsts,
)
from gate.oracles.headers import PROFILES

STRICT = PROFILES["strict"]
SEED = PROFILES["seed"]


def codes(findings: list[hc.Finding]) -> set[str]:
    return {f.code for f in findings}


def with_header(base: dict[str, str], name: str, value: str | None) -> dict[str, str]:
    out = {k: v for k, v in base.items() if k.lower() != name.lower()}
    if value is not None:
        out[name] = value
    return out


# -- the profiles of the reference service -----------------------------------------------------------


def test_strict_profile_has_no_finding_and_grades_a_plus() -> None:
    assert analyse(STRICT) == []
    assert grade(STRICT) == hc.Grade(100, "A+", ())


def test_seed_profile_reports_the_hsts_preload_finding() -> None:
    findings = {f.code: f for f in analyse(SEED)}
    assert "hsts-preload-ineligible" in findings
    assert "max-age=15552000 < 31536000" in findings["hsts-preload-ineligible"].detail
    # includeSubDomains is there: the preload finding is about max-age only
    assert "hsts-no-includesubdomains" not in findings


def test_seed_profile_grade_and_its_deductions() -> None:
    g = grade(SEED)
    assert g.deductions == (
        ("csp-object-src-missing", 5),
        ("csp-style-unsafe-inline", 5),
        ("hsts-preload-ineligible", 5),
    )
    assert (g.score, g.letter) == (85, "A-")
    # reported but free: data: images, a host wildcard in connect-src, the legacy XSS auditor
    assert {"csp-scheme-source", "csp-wildcard-host", "x-xss-protection-enabled"} <= codes(analyse(SEED))


def test_hsts_without_includesubdomains_is_a_finding() -> None:
    headers = with_header(STRICT, "Strict-Transport-Security", "max-age=31536000")
    assert codes(analyse(headers)) == {"hsts-no-includesubdomains"}
    assert grade(headers).score == 90


def test_server_header_is_a_finding_and_forbidden() -> None:
    received = [*STRICT.items(), ("server", "uvicorn"), ("x-powered-by", "FastAPI")]
    assert codes(analyse(received)) == {"implementation-disclosed"}
    problems = check_headers(received, STRICT)
    assert [(p.kind, p.header) for p in problems] == [("forbidden", "Server"), ("forbidden", "X-Powered-By")]
    assert "uvicorn" in problems[0].describe()


# -- the expected set --------------------------------------------------------------------------------


def test_check_headers_accepts_the_exact_set_case_insensitively() -> None:
    received = [(k.lower(), f" {v} ") for k, v in STRICT.items()]
    assert check_headers(received, STRICT) == []


def test_check_headers_reports_missing_wrong_duplicated_and_forbidden() -> None:
    expected = {
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    received = [
        ("x-frame-options", "SAMEORIGIN"),
        ("referrer-policy", "no-referrer"),
        ("Referrer-Policy", "no-referrer"),
        ("Server", "nginx"),
    ]
    problems = check_headers(received, expected)
    assert [(p.kind, p.header) for p in problems] == [
        ("wrong-value", "X-Frame-Options"),
        ("duplicated", "Referrer-Policy"),
        ("missing", "X-Content-Type-Options"),
        ("forbidden", "Server"),
    ]
    assert [p.describe() for p in problems] == [
        "X-Frame-Options is 'SAMEORIGIN', expected 'DENY'",
        "Referrer-Policy appears 2 times: ['no-referrer', 'no-referrer']",
        "X-Content-Type-Options is missing (expected 'nosniff')",
        "Server is present ('nginx')",
    ]


def test_values_are_compared_exactly() -> None:
    problems = check_headers({"X-Frame-Options": "deny"}, {"X-Frame-Options": "DENY"}, forbidden=())
    assert [p.kind for p in problems] == ["wrong-value"]


def test_httpx_headers_keep_their_duplicates() -> None:
    # httpx.Headers.items() joins repeated headers with ", "; the check must still see two of them
    headers = httpx.Headers([("x-frame-options", "DENY"), ("x-frame-options", "DENY")])
    assert [p.kind for p in check_headers(headers, {"X-Frame-Options": "DENY"})] == ["duplicated"]


# -- Content-Security-Policy ----------------------------------------------------------------------------


def test_parse_csp() -> None:
    assert parse_csp(" Default-Src 'self'  https://a.example ;; img-src data: ;script-src 'none'") == {
        "default-src": ("'self'", "https://a.example"),
        "img-src": ("data:",),
        "script-src": ("'none'",),
    }


def test_parse_csp_keeps_the_first_of_a_repeated_directive_and_the_first_policy() -> None:
    assert parse_csp("script-src 'self'; script-src *, script-src https:") == {"script-src": ("'self'",)}


def test_parse_csp_skips_names_that_are_not_tokens() -> None:
    assert parse_csp("scrípt-src *; img-src 'self'") == {"img-src": ("'self'",)}
    assert parse_csp("") == {}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'", set()),
        ("default-src 'self'; script-src 'self' 'unsafe-inline'", {"csp-script-unsafe-inline"}),
        ("default-src 'self' 'unsafe-eval'", {"csp-script-unsafe-eval"}),
        ("default-src 'self'; script-src 'unsafe-inline' 'nonce-abc'", set()),  # nonce: inline ignored
        ("default-src 'self'; script-src 'sha256-abc=' 'unsafe-inline'", set()),
        ("default-src *", {"csp-script-wildcard"}),
        ("default-src 'self'; script-src https:", {"csp-script-wildcard"}),
        ("default-src 'self'; script-src 'self' data:", {"csp-script-wildcard"}),
        ("default-src 'self'; script-src-elem *", {"csp-script-wildcard"}),
        ("default-src 'self'; script-src 'nonce-x' 'strict-dynamic' https:", set()),
        ("img-src 'self'", {"csp-script-unrestricted"}),
        ("default-src 'self'; style-src 'self' 'unsafe-inline'", {"csp-style-unsafe-inline"}),
        ("default-src 'none'; img-src *", {"csp-wildcard-source"}),
        ("default-src * ; script-src 'self'", {"csp-wildcard-source"}),
        ("default-src 'none'; img-src data: blob:", {"csp-scheme-source"}),
        ("default-src 'none'; connect-src https://*.example.com", {"csp-wildcard-host"}),
    ],
)
def test_analyse_csp(policy: str, expected: set[str]) -> None:
    complete = "; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    assert codes(analyse_csp(policy + complete)) == expected


@pytest.mark.parametrize(
    ("policy", "missing"),
    [
        ("default-src 'none'", False),
        ("default-src 'NONE'", False),
        ("default-src 'self'", True),
        ("default-src 'none' 'self'", True),
        ("script-src 'self'", True),
        ("default-src 'self'; object-src 'self'", False),
    ],
)
def test_object_src_is_missing_unless_default_src_is_none(policy: str, missing: bool) -> None:
    assert ("csp-object-src-missing" in codes(analyse_csp(policy))) is missing


def test_missing_navigation_directives_are_each_reported() -> None:
    assert codes(analyse_csp("default-src 'none'")) == {
        "csp-base-uri-missing",
        "csp-form-action-missing",
        "csp-frame-ancestors-missing",
    }


def test_missing_or_empty_csp_is_one_finding() -> None:
    assert codes(analyse_csp(None)) == {"csp-missing"}
    assert codes(analyse_csp(" ; ;")) == {"csp-missing"}


def test_clickjacking_needs_frame_ancestors_or_x_frame_options() -> None:
    no_xfo = with_header(STRICT, "X-Frame-Options", None)
    assert analyse(no_xfo) == []  # frame-ancestors 'none' covers it
    neither = with_header(
        no_xfo, "Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'"
    )
    assert codes(analyse(neither)) == {"csp-frame-ancestors-missing", "clickjacking-unprotected"}


# -- Strict-Transport-Security ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("max-age=31536000; includeSubDomains", Hsts(31536000, True, False, None)),
        ('MAX-AGE="63072000";INCLUDESUBDOMAINS ; preload', Hsts(63072000, True, True, None)),
        ("max-age=0", Hsts(0, False, False, None)),
        ("max-age=10; unknown=1; also", Hsts(10, False, False, None)),
        ("max-age=" + "9" * 5000, Hsts(2**31, False, False, None)),
    ],
)
def test_parse_hsts(value: str, parsed: Hsts) -> None:
    assert parse_hsts(value) == parsed


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("includeSubDomains", "no max-age directive"),
        ("max-age", "no max-age directive"),
        ("max-age=1y", "max-age '1y' is not a number of seconds"),
        ("max-age=-5", "max-age '-5' is not a number of seconds"),
        ("max-age=1; max-age=2", "directive 'max-age' appears more than once"),
        ("max-age=1; preload; Preload", "directive 'preload' appears more than once"),
    ],
)
def test_parse_hsts_invalid(value: str, error: str) -> None:
    assert parse_hsts(value).error == error
    assert codes(analyse_hsts(value)) == {"hsts-invalid"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {"hsts-missing"}),
        ("max-age=31536000; includeSubDomains", set()),
        ("max-age=31536000; includeSubDomains; preload", set()),
        ("max-age=15552000; includeSubDomains", set()),
        ("max-age=15551999; includeSubDomains", {"hsts-max-age-short"}),
        ("max-age=31536000", {"hsts-no-includesubdomains"}),
        ("max-age=15552000; includeSubDomains; preload", {"hsts-preload-ineligible"}),
        ("max-age=31536000; preload", {"hsts-no-includesubdomains", "hsts-preload-ineligible"}),
        ("max-age=0; includeSubDomains", {"hsts-max-age-short"}),
    ],
)
def test_analyse_hsts(value: str | None, expected: set[str]) -> None:
    assert codes(analyse_hsts(value)) == expected


def test_preload_ineligible_names_both_reasons() -> None:
    (preload,) = [f for f in analyse_hsts("max-age=100; preload") if f.code == "hsts-preload-ineligible"]
    assert preload.detail.endswith("max-age=100 < 31536000; no includeSubDomains")


# -- other headers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("X-Content-Type-Options", None, {"x-content-type-options-missing"}),
        ("X-Content-Type-Options", "NoSniff", set()),
        ("Referrer-Policy", None, {"referrer-policy-missing"}),
        ("Referrer-Policy", "unsafe-url", {"referrer-policy-unsafe"}),
        ("Referrer-Policy", "unsafe-url, strict-origin", set()),  # the last known policy wins
        ("Referrer-Policy", "no-referrer, made-up", set()),
        ("X-XSS-Protection", "1; mode=block", {"x-xss-protection-enabled"}),
        ("X-XSS-Protection", None, set()),
    ],
)
def test_other_headers(name: str, value: str | None, expected: set[str]) -> None:
    assert codes(analyse(with_header(STRICT, name, value))) == expected


# -- the grade ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "letter"),
    [(100, "A+"), (99, "A"), (90, "A"), (89, "A-"), (85, "A-"), (84, "B+"), (70, "B"), (69, "B-"),
     (60, "C+"), (50, "C"), (45, "C-"), (40, "D+"), (30, "D"), (25, "D-"), (24, "F"), (0, "F")],
)  # fmt: skip
def test_letters_follow_the_observatory_thresholds(score: int, letter: str) -> None:
    assert letter_for(score) == letter


def test_no_headers_at_all_grades_d_and_each_finding_counts_once() -> None:
    g = grade({})
    # the Observatory's own weights for these tests: 100 - 25 (CSP) - 20 (HSTS) - 20 (framing) - 5 = 30
    assert g.deductions == (
        ("csp-missing", 25), ("hsts-missing", 20), ("clickjacking-unprotected", 20),
        ("x-content-type-options-missing", 5),
    )  # fmt: skip
    assert (g.score, g.letter) == (30, "D")
    assert grade([("Strict-Transport-Security", "nope")] * 6).score == 30
    assert g.score == max(0, 100 - sum(points for _, points in g.deductions))
    assert len({code for code, _ in g.deductions}) == len(g.deductions)
    twice = grade_findings([hc.Finding("hsts-missing", "h", "a"), hc.Finding("hsts-missing", "h", "b")])
    assert twice.score == 80


def test_a_terrible_policy_floors_at_zero() -> None:
    csp = "script-src * 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src *"
    g = grade({"Content-Security-Policy": csp, "Server": "nginx/1.2", "Referrer-Policy": "unsafe-url"})
    assert sum(points for _, points in g.deductions) > 100
    assert (g.score, g.letter) == (0, "F")


def test_at_least() -> None:
    assert at_least("A+", "A") and at_least("A", "A") and not at_least("A-", "A")
    assert at_least("B", "B") and not at_least("F", "D-")


def test_the_docstring_rubric_is_the_rubric() -> None:
    assert hc.__doc__ is not None
    rows = re.findall(r"^([a-z][a-z-]+[a-z])\s+(\d+)\s+\S", hc.__doc__, flags=re.MULTILINE)
    assert dict((code, int(points)) for code, points in rows) == RUBRIC
    assert set(hc.LETTERS) == {letter for _, letter in hc.THRESHOLDS}


# -- garbage never raises ------------------------------------------------------------------------------

names = st.sampled_from(
    ["Content-Security-Policy", "Strict-Transport-Security", "X-Frame-Options", "Referrer-Policy",
     "X-XSS-Protection", "X-Content-Type-Options", "Server", "x-powered-by"]
) | st.text(max_size=20)  # fmt: skip
csp_ish = st.lists(
    st.sampled_from(["script-src", "default-src", "*", "'unsafe-inline'", "https:", "'nonce-a'", ";", ",",
                     " ", "'none'", "object-src", "*.x", "max-age=", "1", "preload", '"', "="])
    | st.text(max_size=8)
).map("".join)  # fmt: skip


@given(st.text() | csp_ish)
def test_parsers_and_analysers_never_raise(value: str) -> None:
    parse_csp(value)
    analyse_csp(value)
    parse_hsts(value)
    analyse_hsts(value)


@given(
    st.lists(st.tuples(names, st.text() | csp_ish), max_size=12),
    st.dictionaries(names, st.text(), max_size=5),
)
def test_analysis_grade_and_check_never_raise(
    received: list[tuple[str, str]], expected: dict[str, str]
) -> None:
    findings = analyse(received)
    assert all(f.code in RUBRIC for f in findings)
    g = grade(received)
    assert 0 <= g.score <= 100 and g.letter in hc.LETTERS
    for p in check_headers(received, expected):
        p.describe()
