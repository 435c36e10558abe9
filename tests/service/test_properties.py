"""Properties of the code that reads what the other side sends: signature verifiers and header parsers.

Whatever arrives — any bytes, any header mapping (names and values that are not text, huge values,
lone surrogates, unicode digits), any header value — the verifiers of :mod:`service.signing` raise
nothing but their documented :class:`SignatureError`, with one of its documented reasons, and the
parsers of :mod:`gate.oracles.headercheck` raise nothing at all. Beyond "never raises":

- signing round-trips for any body, id and key set; a changed byte is always caught;
- the receiver-side :class:`ReplayGuard` behaves exactly like a small model of its contract (remember
  after processing, forget after the window, bounded memory that drops the soonest expiry first);
- the CSP and HSTS parsers return values with the shape they document, and :func:`check_headers`
  passes a response carrying exactly the profile, and fails it when a profile header is doubled.

The hand-written examples and the first garbage properties live in tests/service/test_signing.py and
tests/gate/test_headercheck.py; this module adds the adversarial shapes they do not generate.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gate.oracles.headercheck import (
    FORBIDDEN,
    LETTERS,
    RUBRIC,
    analyse,
    analyse_csp,
    analyse_hsts,
    check_headers,
    grade,
    parse_csp,
    parse_hsts,
)
from service.headers import PROFILES
from service.signing import (
    MAX_SIGNATURE_ENTRIES,
    MAX_SIGNATURE_HEADER_CHARS,
    ReplayGuard,
    SignatureError,
    standard_signature,
    verify_standard,
    verify_x_signature,
    x_signature,
)

KEY = b"p" * 32
NOW = 1_728_274_800
TOLERANCE_S = 300
REASONS = {
    "missing_header",
    "malformed_header",
    "timestamp_too_old",
    "timestamp_too_new",
    "no_matching_signature",
}
STANDARD_NAMES = ("webhook-id", "webhook-timestamp", "webhook-signature")

# -- building blocks -------------------------------------------------------------------------------------

# Every code point, lone surrogates included (a lenient HTTP stack can hand those over).
any_text = st.text(st.characters(codec=None), max_size=80)
# Digits that are digits to str.isdigit() and int() but not to an ASCII-only parser.
unicode_digits = st.text(
    st.sampled_from("0123456789\u0660\u0661\u06f5\u0966\uff10\uff19\U0001d7ce"), max_size=20
)


def huge(alphabet: str = "v1,=aA0 ") -> st.SearchStrategy[str]:
    """Strings longer than every bound the verifiers set (``MAX_SIGNATURE_HEADER_CHARS`` and up)."""
    unit = st.text(st.sampled_from(alphabet), min_size=1, max_size=8)
    count = st.integers(MAX_SIGNATURE_HEADER_CHARS + 1, 4 * MAX_SIGNATURE_HEADER_CHARS)
    return st.builds(lambda u, n: u * n, unit, count)


# what a header value can be after a careless receiver got hold of it
non_text = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
)
header_names = st.one_of(
    st.sampled_from([*STANDARD_NAMES, "Webhook-Id", "WEBHOOK-TIMESTAMP", "Webhook-Signature", "X-Signature"]),
    any_text,
    st.binary(max_size=12),
    st.integers(),
    st.tuples(st.text(max_size=4)),
)
timestamps = st.one_of(
    st.integers(NOW - 2 * TOLERANCE_S, NOW + 2 * TOLERANCE_S).map(str),
    st.integers().map(str),
    unicode_digits,
    st.builds(
        lambda pad, ts: f"{pad}{ts}{pad}",
        st.sampled_from([" ", "\t", "\n", "\u00a0", "+", "-"]),
        st.just(NOW),
    ),
    st.text(st.characters(codec="ascii", categories=["Nd"]), min_size=16, max_size=400),
)
signature_entries = st.one_of(
    st.builds(lambda v, sig: f"{v},{sig}", st.sampled_from(["v1", "v1a", "V1", "v2", ""]), any_text),
    st.binary(min_size=0, max_size=40).map(lambda b: "v1," + base64.b64encode(b).decode()),
    any_text,
)
signatures = st.one_of(
    st.lists(signature_entries, max_size=MAX_SIGNATURE_ENTRIES + 4).map(" ".join),
    st.just("v1,AAAA " * (MAX_SIGNATURE_ENTRIES + 1)),
    huge(),
)


def assert_documented(exc: SignatureError) -> None:
    assert exc.reason in REASONS, exc.reason
    assert isinstance(str(exc), str)


# -- verify_standard -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    headers=st.one_of(
        st.dictionaries(header_names, st.one_of(any_text, non_text), max_size=6),
        non_text,
        any_text,
        st.lists(st.tuples(any_text, any_text), max_size=3),
    ),
    body=st.binary(max_size=256),
)
def test_verify_standard_on_any_header_mapping_raises_only_signature_error(headers: Any, body: bytes) -> None:
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], body, headers, now=NOW)
    assert_documented(exc.value)


@settings(max_examples=300, deadline=None)
@given(
    msg_id=st.one_of(any_text, huge("msg_.: \u00e9"), non_text),
    ts=st.one_of(timestamps, non_text),
    sig=st.one_of(signatures, non_text),
    names=st.tuples(*(st.sampled_from([n, n.upper(), n.title()]) for n in STANDARD_NAMES)),
    body=st.binary(max_size=256),
)
def test_verify_standard_on_adversarial_values_raises_only_signature_error(
    msg_id: Any, ts: Any, sig: Any, names: tuple[str, str, str], body: bytes
) -> None:
    headers = dict(zip(names, (msg_id, ts, sig), strict=True))
    try:
        verify_standard([KEY], body, headers, now=NOW)
    except SignatureError as exc:
        assert_documented(exc)
    else:  # pragma: no cover - would mean hypothesis forged an HMAC
        pytest.fail(f"garbage verified: {headers!r}")


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=4, unique=True),
    msg_id=st.text(st.characters(codec="utf-8"), min_size=1, max_size=60),
    skew=st.integers(-TOLERANCE_S, TOLERANCE_S),
    body=st.binary(max_size=512),
    flip=st.integers(min_value=0),
)
def test_standard_signatures_round_trip_and_any_changed_byte_is_caught(
    keys: list[bytes], msg_id: str, skew: int, body: bytes, flip: int
) -> None:
    ts = NOW + skew
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": standard_signature(keys, msg_id, ts, body),
    }
    for key in keys:  # every key of a rotation verifies on its own
        verify_standard([key], body, headers, now=NOW)
    tampered = bytearray(body + b"\x00")
    tampered[flip % len(tampered)] ^= 0x01
    with pytest.raises(SignatureError) as exc:
        verify_standard(keys, bytes(tampered), headers, now=NOW)
    assert exc.value.reason == "no_matching_signature"


# -- verify_x_signature --------------------------------------------------------------------------------

x_headers = st.one_of(
    any_text,
    huge("sha256=0aF "),
    non_text,
    st.builds(
        lambda p, h: p + h, st.sampled_from(["sha256=", "SHA256=", " sha256=", "sha1=", "sha256:"]), any_text
    ),
    st.builds(
        lambda p, h: p + h,
        st.just("sha256="),
        st.text(st.sampled_from("0123456789abcdefABCDEF\uff10\u0660g"), min_size=60, max_size=68),
    ),
)


@settings(max_examples=300, deadline=None)
@given(header=x_headers, body=st.binary(max_size=256))
def test_verify_x_signature_on_any_header_value_raises_only_signature_error(header: Any, body: bytes) -> None:
    with pytest.raises(SignatureError) as exc:
        verify_x_signature([KEY], body, header)
    assert_documented(exc.value)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=512),
    pad=st.sampled_from(["", " ", "\t", " \t "]),
    upper=st.booleans(),
    flip=st.integers(min_value=0),
)
def test_x_signature_round_trips_in_any_case_and_padding(
    body: bytes, pad: str, upper: bool, flip: int
) -> None:
    header = x_signature(KEY, body)
    if upper:
        header = header.upper()
    verify_x_signature([KEY], body, f"{pad}{header}{pad}")
    tampered = bytearray(body + b"\x00")
    tampered[flip % len(tampered)] ^= 0x80
    with pytest.raises(SignatureError) as exc:
        verify_x_signature([KEY], bytes(tampered), header)
    assert exc.value.reason == "no_matching_signature"


# -- ReplayGuard, the receiver side --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    msg_id=st.one_of(
        any_text, huge("msg_\u00e9."), st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
    ),
    ts=st.integers(NOW - TOLERANCE_S, NOW + TOLERANCE_S),
    later=st.integers(0, 3 * TOLERANCE_S),
)
def test_replay_guard_takes_any_id_and_refuses_a_replay_only_while_it_could_verify(
    msg_id: str, ts: int, later: int
) -> None:
    guard = ReplayGuard(tolerance_s=TOLERANCE_S, clock=lambda: NOW)
    guard.remember(msg_id, timestamp=ts, now=NOW)
    assert guard.seen(msg_id, now=NOW + later) == (NOW + later <= max(ts, NOW) + TOLERANCE_S)
    if not msg_id:
        return  # an empty webhook-id is a missing header: refused before the guard is asked
    try:
        body, sig = b"{}", standard_signature([KEY], msg_id, ts, b"{}")
    except UnicodeEncodeError:
        return  # a lone surrogate cannot be signed (or sent); the guard still took it above
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}
    with pytest.raises(SignatureError) as exc:
        verify_standard([KEY], body, headers, now=NOW + later, replay_guard=guard)
    # While the timestamp would still pass, the guard refuses the replay; after, the timestamp check does.
    fresh = NOW + later <= ts + TOLERANCE_S
    assert exc.value.reason == ("replayed" if fresh else "timestamp_too_old")


class ReplayGuardModel(RuleBasedStateMachine):
    """ReplayGuard against a dict model of its contract, over arbitrary ids, times and capacities."""

    ids = st.one_of(st.sampled_from(["msg_a", "msg_b", "msg_c", "", "\ud800", "msg_a "]), any_text)

    def __init__(self) -> None:
        super().__init__()
        self.now = float(NOW)
        self.model: dict[str, float] = {}
        self.tolerance = 0
        self.capacity = 1
        self.guard = ReplayGuard(tolerance_s=0, max_entries=1)

    @initialize(tolerance=st.integers(0, 50), capacity=st.integers(1, 5))
    def configure(self, tolerance: int, capacity: int) -> None:
        self.tolerance, self.capacity = tolerance, capacity
        self.guard = ReplayGuard(tolerance_s=tolerance, max_entries=capacity, clock=lambda: self.now)

    @rule(step=st.one_of(st.integers(0, 30), st.floats(0, 30, allow_nan=False)))
    def time_passes(self, step: float) -> None:
        self.now += step

    @rule(msg_id=ids, offset=st.integers(-60, 60))
    def remember(self, msg_id: str, offset: int) -> None:
        timestamp = int(self.now) + offset
        self.guard.remember(msg_id, timestamp=timestamp, now=self.now)
        # the contract: expired entries go; the latest expiry wins; when full, the soonest goes first
        self.model = {i: e for i, e in self.model.items() if e >= self.now}
        expires = max(timestamp, self.now) + self.tolerance
        if expires <= self.model.get(msg_id, float("-inf")):
            return
        while len(self.model) >= self.capacity and msg_id not in self.model:
            soonest = min(self.model, key=lambda i: (self.model[i], i))
            del self.model[soonest]
        self.model[msg_id] = expires

    @rule(msg_id=ids, ahead=st.integers(-5, 60))
    def seen(self, msg_id: str, ahead: int) -> None:
        at = self.now + ahead
        expected = msg_id in self.model and self.model[msg_id] >= at
        assert self.guard.seen(msg_id, now=at) == expected

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def a_remembered_id_is_seen_until_it_expires(self, data: st.DataObject) -> None:
        msg_id = data.draw(st.sampled_from(sorted(self.model)))
        assert self.guard.seen(msg_id, now=self.model[msg_id])
        assert not self.guard.seen(msg_id, now=self.model[msg_id] + 0.5)

    @invariant()
    def memory_is_bounded(self) -> None:
        assert len(self.guard) <= self.capacity


TestReplayGuardModel = ReplayGuardModel.TestCase
TestReplayGuardModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# -- gate.oracles.headercheck: parsers
# ------------------------------------------------------------------------

csp_tokens = st.sampled_from(
    ["script-src", "default-src", "DEFAULT-SRC", "*", "'unsafe-inline'", "'nonce-a'", "https:", "data:",
     "'none'", "*.x.com", ";", ",", " ", "\t", "\n", "\f", "\r", "\x0b", "\u00a0", "\u2028", "=", '"', "é"]
)  # fmt: skip
csp_values = st.one_of(
    any_text,
    st.lists(csp_tokens | st.text(max_size=6), max_size=60).map("".join),
    huge("default-src 'self'; *\u00a0,"),
)
hsts_values = st.one_of(
    any_text,
    st.lists(
        st.one_of(
            st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["max-age", "MAX-AGE", " max-age ", "maxage"]),
                      st.one_of(unicode_digits, st.integers().map(str), st.text(max_size=6),
                                st.integers(0, 10**40).map(lambda n: f'"{n}"'))),
            st.sampled_from(["includeSubDomains", "preload", "", " ", "=", '"', "\u00a0"]),
        ),
        max_size=8,
    ).map(";".join),
    huge("max-age=9;"),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(value=csp_values)
def test_parse_csp_never_raises_and_returns_directive_tokens(value: str) -> None:
    policy = parse_csp(value)
    for name, sources in policy.items():
        assert name == name.lower() and name and all(c.isascii() and (c.isalnum() or c == "-") for c in name)
        assert all(s and not any(c in s for c in " \t\n\f\r;,") for s in sources)
    assert all(f.code in RUBRIC for f in analyse_csp(value))


@settings(max_examples=400, deadline=None)
@given(value=hsts_values)
def test_parse_hsts_never_raises_and_is_either_valid_or_says_why_not(value: str) -> None:
    hsts = parse_hsts(value)
    assert isinstance(hsts.include_subdomains, bool) and isinstance(hsts.preload, bool)
    if hsts.error is None:
        assert isinstance(hsts.max_age, int) and hsts.max_age >= 0
    else:
        assert hsts.max_age is None and isinstance(hsts.error, str)
    assert all(f.code in RUBRIC for f in analyse_hsts(value))


# -- gate.oracles.headercheck: whole responses
# -------------------------------------------------------------------

profile_names = st.sampled_from(sorted(PROFILES))
any_value = st.one_of(any_text, csp_values, hsts_values, non_text)
header_mappings = st.one_of(
    st.dictionaries(
        header_names | st.sampled_from([*PROFILES["strict"], *FORBIDDEN]), any_value, max_size=10
    ),
    st.lists(st.tuples(header_names, any_value), max_size=10),
)


@settings(max_examples=300, deadline=None)
@given(received=header_mappings, profile=profile_names)
def test_analysis_grade_and_check_take_any_header_mapping(received: Any, profile: str) -> None:
    assert all(f.code in RUBRIC for f in analyse(received))
    g = grade(received)
    assert 0 <= g.score <= 100 and g.letter in LETTERS
    for problem in check_headers(received, PROFILES[profile]):
        assert isinstance(problem.describe(), str)


@settings(max_examples=200, deadline=None)
@given(raw=st.lists(st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=60)), max_size=10))
def test_analysis_takes_httpx_headers_of_any_bytes(raw: list[tuple[bytes, bytes]]) -> None:
    # what the gate really holds: an httpx response's headers, decoded however httpx decodes them
    headers = httpx.Headers(raw)
    assert 0 <= grade(headers).score <= 100
    check_headers(headers, PROFILES["strict"])


@settings(max_examples=200, deadline=None)
@given(
    profile=profile_names,
    extra=st.lists(st.tuples(st.from_regex(r"X-[A-Za-z0-9-]{1,12}", fullmatch=True), any_text), max_size=5),
    doubled=st.data(),
)
def test_check_headers_passes_exactly_the_profile_and_catches_a_doubled_header(
    profile: str, extra: list[tuple[str, str]], doubled: st.DataObject
) -> None:
    expected = PROFILES[profile]
    assume(not {n.lower() for n, _ in extra} & {n.lower() for n in [*expected, *FORBIDDEN]})
    sent = [*expected.items(), *extra]
    assert check_headers(sent, expected) == []
    # names are case-insensitive, values are not
    assert check_headers([(n.upper(), v) for n, v in sent], expected) == []
    name = doubled.draw(st.sampled_from(sorted(expected)))
    problems = check_headers([*sent, (name.lower(), expected[name])], expected)
    assert [(p.kind, p.header) for p in problems] == [("duplicated", name)]
