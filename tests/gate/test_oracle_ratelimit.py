"""The rate-limit header oracle (gate/oracles/): real limiters' headers, the delta/epoch boundary,
HTTP-date round trips, structured fields against an independent parser, and garbled headers that
must come out malformed with their raw value, never missing.

Every real sample names where it was read. Header values are copied as published; where a document
gives only a header's name, the value is ours and the comment says so.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from decimal import Decimal
from typing import Any

import http_sf
import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gate.oracles import httpdate, ratelimit, sf
from gate.oracles.ratelimit import EPOCH_MIN, EPOCH_MS_MIN, QuotaPolicy, ServiceLimit

NOW = 1_700_000_000.0  # the client's clock for the samples that carry no Date header


def at_date(date: str) -> float:
    """The client's clock as the response's Date header gives it."""
    parsed = httpdate.parse_http_date(date, now=NOW)
    assert parsed is not None, date
    return parsed[0]


# -- real limiters and API providers ----------------------------------------------------------------


def test_github_rest_api_sends_epoch_resets() -> None:
    # https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
    # (github/docs content/rest/using-the-rest-api/rate-limits-for-the-rest-api.md: x-ratelimit-reset is
    # "in UTC epoch seconds"); the values are the page's former examples, github/docs
    # content/rest/overview/resources-in-the-rest-api.md (#29242, "Document the x-ratelimit-used ...")
    ok = ratelimit.parse(
        {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "56", "x-ratelimit-used": "4",
         "x-ratelimit-reset": "1372700873", "Date": "Mon, 01 Jul 2013 17:27:06 GMT"},
        now=at_date("Mon, 01 Jul 2013 17:27:06 GMT"),
    )  # fmt: skip
    assert (ok.limit.value, ok.remaining.value, ok.reset_kind) == (60, 56, "epoch")
    assert ok.reset_at == 1372700873 and ok.reset_in == pytest.approx(1372700873 - 1372699626)
    assert not ok.retry_after.present and not ok.malformed
    # "If you exceed the rate limit, an error response returns" (403; 429 today)
    over = ratelimit.parse(
        [("Date", "Tue, 20 Aug 2013 14:50:41 GMT"), ("x-ratelimit-limit", "60"),
         ("x-ratelimit-remaining", "0"), ("x-ratelimit-used", "60"), ("x-ratelimit-reset", "1377013266")],
        now=at_date("Tue, 20 Aug 2013 14:50:41 GMT"),
    )  # fmt: skip
    assert over.remaining.value == 0 and over.reset_kind == "epoch" and 0 < (over.reset_in or 0) < 3600


def test_x_api_spells_the_fields_x_rate_limit() -> None:
    # https://docs.x.com/fundamentals/rate-limits ("Checking your limits")
    h = ratelimit.parse(
        {"x-rate-limit-limit": "900", "x-rate-limit-remaining": "847", "x-rate-limit-reset": "1705420800"},
        now=NOW,
    )
    assert (h.limit.name, h.limit.value, h.remaining.value) == ("X-Rate-Limit-Limit", 900, 847)
    assert h.reset_kind == "epoch" and h.reset_at == 1705420800


def test_discord_sends_a_fractional_epoch_reset_and_retry_after_in_seconds() -> None:
    # discord/discord-api-docs docs/topics/rate-limits.md, "Example Exceeded User Rate Limit Response"
    # (https://discord.com/developers/docs/topics/rate-limits)
    headers = [("Content-Type", "application/json"), ("Retry-After", "65"), ("X-RateLimit-Limit", "10"),
               ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "1470173023.123"),
               ("X-RateLimit-Reset-After", "64.57"), ("X-RateLimit-Bucket", "abcd1234"),
               ("X-RateLimit-Scope", "user")]  # fmt: skip
    now = 1470173023.123 - 64.57
    h = ratelimit.parse(headers, now=now)
    assert h.reset_kind == "epoch" and h.reset.value is not None and h.reset.value.sent == 1470173023.123
    assert h.reset_in == pytest.approx(64.57)
    assert h.retry_after.value is not None and h.retry_after.value.kind == "delta" and h.retry_in == 65
    assert (h.limit.value, h.remaining.value) == (10, 0) and not h.malformed


def test_cloudflare_api_sends_the_current_ietf_fields() -> None:
    # https://developers.cloudflare.com/fundamentals/api/reference/limits/ ("Rate limiting headers");
    # the page gives retry-after only by name: its value here is ours
    h = ratelimit.parse(
        {"Ratelimit": '"default";r=50;t=30', "Ratelimit-Policy": '"burst";q=100;w=60', "retry-after": "30"},
        now=NOW,
    )
    assert h.ratelimit.value == (ServiceLimit("default", 50, 30),)
    assert h.policy.value == (QuotaPolicy("burst", 100, 60),)
    assert h.retry_in == 30 and not h.limit.present and not h.malformed


def test_kong_rate_limiting_plugin_sends_the_older_draft_trio() -> None:
    # Kong/docs.konghq.com app/_hub/kong-inc/rate-limiting/_index.md ("Headers sent to the client",
    # https://docs.konghq.com/hub/kong-inc/rate-limiting/): RateLimit-Reset is "the time remaining
    # (in seconds) until the quota is reset"; X-RateLimit-*-Minute name their window in the field name
    h = ratelimit.parse(
        {"RateLimit-Limit": "6", "RateLimit-Remaining": "4", "RateLimit-Reset": "47",
         "X-RateLimit-Limit-Minute": "10", "X-RateLimit-Remaining-Minute": "9"},
        now=NOW,
    )  # fmt: skip
    assert (h.draft_limit.value, h.draft_remaining.value) == (6, 4)
    assert h.draft_reset.value is not None and h.draft_reset.value.kind == "delta"
    assert h.draft_reset.value.at == NOW + 47
    # the per-window names are not X-RateLimit-Limit: absent, not malformed
    assert not h.limit.present and h.limit.describe() == "missing" and not h.malformed


def test_gitlab_sends_rate_limit_reset_as_an_epoch_and_its_date_agrees() -> None:
    # a 429 from GitLab.com's API, https://gitlab.com/gitlab-org/gitlab/-/issues/199738
    date = "Thu, 30 Jan 2020 14:14:16 GMT"
    h = ratelimit.parse(
        [("Date", date), ("RateLimit-Limit", "600"), ("RateLimit-Observed", "5"),
         ("RateLimit-Remaining", "595"), ("RateLimit-Reset", "1580393717"),
         ("RateLimit-ResetTime", "Thu, 30 Jan 2020 14:15:17 GMT")],
        now=at_date(date),
    )  # fmt: skip
    reset = h.draft_reset.value
    assert reset is not None and reset.kind == "epoch" and reset.delta == 61
    assert at_date("Thu, 30 Jan 2020 14:15:17 GMT") == reset.at  # RateLimit-ResetTime, the same moment


def test_express_rate_limit_every_header_version_it_sends() -> None:
    # express-rate-limit/express-rate-limit source/headers.ts: setLegacyHeaders, setDraft6Headers,
    # setDraft7Headers, setDraft8Headers (shapes from the code; limit 100 per 60 s, 99 left, 60 s to go)
    legacy = ratelimit.parse(
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "99", "X-RateLimit-Reset": "1700000060"},
        now=NOW,
    )  # Math.ceil(resetTime / 1000): epoch seconds
    assert legacy.reset_kind == "epoch" and legacy.reset_in == 60
    draft6 = ratelimit.parse(
        {"RateLimit-Policy": "100;w=60", "RateLimit-Limit": "100", "RateLimit-Remaining": "99",
         "RateLimit-Reset": "60"},
        now=NOW,
    )  # fmt: skip
    assert draft6.policy.value == (QuotaPolicy(None, 100, 60),)
    assert draft6.draft_reset.value is not None and draft6.draft_reset.value.kind == "delta"
    draft7 = ratelimit.parse(
        {"RateLimit-Policy": "100;w=60", "RateLimit": "limit=100, remaining=99, reset=60"}, now=NOW
    )
    assert draft7.ratelimit.value == (ServiceLimit(None, 99, 60, None, 100),)
    # draft-8: "<name>"; q=..; w=..; pk=:<base64 of 12 hex characters>: (response.append: may repeat)
    draft8 = ratelimit.parse(
        [("RateLimit-Policy", '"100-per-minute"; q=100; w=60; pk=:ZTNiMGM0NDI5OGZj:'),
         ("RateLimit", '"100-per-minute"; r=99; t=60')],
        now=NOW,
    )  # fmt: skip
    assert draft8.policy.value == (QuotaPolicy("100-per-minute", 100, 60, None, b"e3b0c44298fc"),)
    assert draft8.ratelimit.value == (ServiceLimit("100-per-minute", 99, 60),)


def test_envoy_sends_a_limit_followed_by_its_quota_policies_and_a_delta_reset() -> None:
    # envoyproxy/envoy api/envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto,
    # enable_x_ratelimit_headers: "X-RateLimit-Limit ... followed by the description of the quota policy";
    # X-RateLimit-Reset is "the number of seconds until reset of the current time-window"
    h = ratelimit.parse(
        {"X-RateLimit-Limit": '10, 10;window=1;name="per-ip", 1000;window=3600',
         "X-RateLimit-Remaining": "9", "X-RateLimit-Reset": "1"},
        now=NOW,
    )  # fmt: skip
    assert (h.limit.value, h.remaining.value, h.reset_kind, h.reset_at) == (10, 9, "delta", NOW + 1)


def test_shopify_retry_after_with_a_fraction_is_malformed_as_rfc_9110_defines_it() -> None:
    # https://shopify.dev/docs/api/admin-rest/usage/rate-limits ("Retry-After header")
    h = ratelimit.parse({"X-Shopify-Shop-Api-Call-Limit": "40/40", "Retry-After": "2.0"}, now=NOW)
    assert h.retry_after.malformed and h.retry_after.raw == "2.0" and h.retry_in is None
    assert h.retry_after.describe().startswith("malformed: '2.0' (delay-seconds are whole")
    # an independent client agrees: urllib3 refuses the header rather than guess
    from urllib3.exceptions import InvalidHeader
    from urllib3.util.retry import Retry

    with pytest.raises(InvalidHeader):
        Retry().parse_retry_after("2.0")


def test_the_ietf_drafts_own_examples() -> None:
    # draft-ietf-httpapi-ratelimit-headers-11 (ietf-wg-httpapi/ratelimit-headers), Appendix B.1.4:
    # a 429 whose Retry-After is an HTTP-date and whose RateLimit names the same moment
    date = "Mon, 05 Aug 2019 09:27:00 GMT"
    h = ratelimit.parse(
        {"Date": date, "Retry-After": "Mon, 05 Aug 2019 09:27:05 GMT", "RateLimit": '"default";r=0;t=5'},
        now=at_date(date),
    )
    assert h.retry_after.value is not None and h.retry_after.value.kind == "date" and h.retry_in == 5
    assert h.ratelimit.value == (ServiceLimit("default", 0, 5),)
    # §3: several policies in one field; FAQ: a list split over two field lines is one list
    both = ratelimit.parse({"RateLimit-Policy": '"burst";q=100;w=60,"daily";q=1000;w=86400'}, now=NOW)
    split = ratelimit.parse(
        [("RateLimit-Policy", '"sliding";q=100;w=60;burst=1000'),
         ("RateLimit-Policy", '"fixed";q=5000;w=3600;burst=0'), ("RateLimit", '"sliding";r=50;t=44')],
        now=NOW,
    )  # fmt: skip
    assert [p.name for p in both.policy.value or ()] == ["burst", "daily"]
    assert [(p.name, p.quota) for p in split.policy.value or ()] == [("sliding", 100), ("fixed", 5000)]
    # §3.2 and §4.2: partition keys, a quota unit, a limit without a window
    pk = ratelimit.parse(
        {"RateLimit-Policy": '"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:',
         "RateLimit": '"default";r=999;pk=:dHJpYWwxMjEzMjM=:'},
        now=NOW,
    )  # fmt: skip
    assert pk.policy.value is not None and pk.policy.value[0].unit == "content-bytes"
    assert pk.ratelimit.value == (ServiceLimit("default", 999, None, b"trial121323"),)


# -- the delta / epoch boundary --------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=EPOCH_MIN - 1), st.floats(min_value=0, max_value=4e9))
@example(EPOCH_MIN - 1, NOW)
def test_a_reset_below_the_epoch_boundary_is_a_delta_from_now(seconds: int, now: float) -> None:
    h = ratelimit.parse({"X-RateLimit-Reset": str(seconds)}, now=now)
    assert h.reset_kind == "delta" and h.reset_in == seconds and h.reset_at == now + seconds


@given(st.integers(min_value=EPOCH_MIN, max_value=EPOCH_MS_MIN - 1), st.floats(min_value=0, max_value=4e9))
@example(EPOCH_MIN, NOW)
def test_a_reset_from_the_epoch_boundary_on_is_an_absolute_epoch(epoch: int, now: float) -> None:
    h = ratelimit.parse({"X-RateLimit-Reset": str(epoch)}, now=now)
    assert h.reset_kind == "epoch" and h.reset_at == epoch and h.reset_in == epoch - now


@given(st.decimals(min_value=0, max_value=EPOCH_MS_MIN - 1, places=3, allow_nan=False, allow_infinity=False))
def test_fractional_resets_are_classified_by_the_same_boundary(value: Decimal) -> None:
    h = ratelimit.parse({"X-RateLimit-Reset": f"{value:f}"}, now=NOW)
    assert h.reset.ok, h.reset.describe()
    assert h.reset_kind == ("epoch" if value >= EPOCH_MIN else "delta")
    assert h.reset_at == pytest.approx(float(value) if value >= EPOCH_MIN else NOW + float(value))


@given(st.integers(min_value=EPOCH_MS_MIN, max_value=10**16))
@example(1_700_000_000_000)
def test_a_reset_in_epoch_milliseconds_is_malformed_not_a_date_in_the_year_55000(millis: int) -> None:
    h = ratelimit.parse({"X-RateLimit-Reset": str(millis)}, now=NOW)
    assert h.reset.malformed and h.reset.raw == str(millis) and "milliseconds" in (h.reset.problem or "")


# -- HTTP-date --------------------------------------------------------------------------------------

EPOCHS = st.integers(min_value=-62135596800 + 86400, max_value=253402300799)  # 0001-01-02 .. 9999-12-31


@given(EPOCHS)
@example(784111777)  # RFC 9110's own example: Sun, 06 Nov 1994 08:49:37 GMT
def test_imf_fixdate_round_trips_and_matches_the_standard_library(epoch: int) -> None:
    text = httpdate.format_http_date(epoch)
    assert httpdate.parse_http_date(text, now=NOW) == (epoch, "imf-fixdate")
    if epoch >= 0:  # email.utils writes and reads the same format (RFC 5322 is its ancestor)
        assert text == email.utils.formatdate(epoch, usegmt=True)
        assert email.utils.parsedate_to_datetime(text).timestamp() == epoch


@given(EPOCHS)
def test_asctime_round_trips(epoch: int) -> None:
    text = httpdate.format_http_date(epoch, "asctime")
    assert httpdate.parse_http_date(text, now=NOW) == (epoch, "asctime")


@given(st.integers(min_value=-49 * 365 * 86400, max_value=49 * 365 * 86400), st.floats(0, 4e9))
def test_rfc850_round_trips_within_fifty_years_of_now(offset: int, now: float) -> None:
    epoch = int(now) + offset
    text = httpdate.format_http_date(epoch, "rfc850")
    assert httpdate.parse_http_date(text, now=now) == (epoch, "rfc850")


def test_an_rfc850_year_more_than_fifty_years_ahead_is_the_past_century() -> None:
    now = dt.datetime(2026, 5, 1, tzinfo=dt.UTC).timestamp()
    assert httpdate.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now=now) == (784111777, "rfc850")
    parsed = httpdate.parse_http_date("Friday, 01-Jan-72 00:00:00 GMT", now=now)
    assert parsed is not None and dt.datetime.fromtimestamp(parsed[0], dt.UTC).year == 2072


@given(EPOCHS.filter(lambda e: e >= 0), st.sampled_from(["imf-fixdate", "rfc850", "asctime"]))
def test_retry_after_as_any_http_date_form_is_the_moment_it_names(epoch: int, form: Any) -> None:
    now = float(epoch - 30)
    h = ratelimit.parse({"Retry-After": httpdate.format_http_date(epoch, form)}, now=now)
    assert h.retry_after.value is not None and h.retry_after.value.kind == "date"
    assert (h.retry_at, h.retry_in) == (epoch, 30)


@given(st.integers(min_value=0, max_value=10**12))
def test_retry_after_delay_seconds_are_a_delta_from_now(seconds: int) -> None:
    h = ratelimit.parse({"Retry-After": str(seconds)}, now=NOW)
    assert (h.retry_in, h.retry_at) == (seconds, NOW + seconds)


# -- present but garbled: malformed with the raw value, never missing ------------------------------


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("X-RateLimit-Reset", "2026-05-01T12:00:03Z"),  # RFC 3339: some limiters do, the gate does not
        ("X-RateLimit-Reset", "Fri, 01 May 2026 12:00:03 GMT"),
        ("X-RateLimit-Reset", "soon"),
        ("X-RateLimit-Reset", "1e9"),
        ("X-RateLimit-Reset", "-3"),
        ("X-RateLimit-Reset", "1700000000000"),  # milliseconds
        ("X-RateLimit-Remaining", "-1"),
        ("X-RateLimit-Remaining", "4.0"),
        ("X-RateLimit-Remaining", "four"),
        ("X-RateLimit-Limit", "60/min"),
        ("X-RateLimit-Limit", "10, 10;w=1,"),
        ("X-RateLimit-Limit", "10;w=1, 10"),
        ("Retry-After", "1.5"),
        ("Retry-After", "-1"),
        ("Retry-After", "in a minute"),
        ("Retry-After", "sun, 06 nov 1994 08:49:37 gmt"),  # HTTP-date is case-sensitive
        ("Retry-After", "Sun, 06 Nov 1994 08:49:37 UTC"),
        ("Retry-After", "Sun, 31 Nov 1994 08:49:37 GMT"),  # no 31 November
        ("Retry-After", "Sun, 06 Nov 1994 24:00:00 GMT"),
        ("Retry-After", "2026-05-01T12:00:03Z"),
        ("RateLimit", "workspace;r=0;t=3"),  # the policy named by a Token, not a String
        ("RateLimit", '"workspace";t=3'),  # no r
        ("RateLimit", '"workspace";r=-1;t=3'),
        ("RateLimit", '"workspace";r=0;t=1.5'),
        ("RateLimit", '"workspace";r=0,'),
        ("RateLimit", '"workspace" r=0'),
        ("RateLimit", "limit=100, remaining=ten, reset=30"),
        ("RateLimit-Policy", '"workspace";w=60'),  # no q
        ("RateLimit-Policy", '"workspace";q=10;w=0'),
        ("RateLimit-Policy", '"workspace";q=10;pk=abc'),
        ("RateLimit-Policy", '"workspace;q=10;w=60'),
        ("RateLimit-Policy", "workspace;q=10;w=60"),
        ("RateLimit-Reset", "tomorrow"),
    ],
)
def test_a_garbled_header_is_malformed_with_its_raw_value(name: str, raw: str) -> None:
    h = ratelimit.parse(httpx.Headers({name: raw}), now=NOW)
    (f,) = [f for f in h.fields if f.name.lower() == name.lower()]
    assert f.present and f.malformed and not f.ok and f.raw == raw and f.value is None
    assert f.describe().startswith(f"malformed: {raw!r} (") and f.problem
    assert h.malformed == [f]


@pytest.mark.parametrize("raw", ["", "   "])
def test_an_empty_header_is_malformed_not_missing(raw: str) -> None:
    for name in ("X-RateLimit-Reset", "Retry-After", "RateLimit", "RateLimit-Policy"):
        f = next(f for f in ratelimit.parse([(name, raw)], now=NOW).fields if f.name == name)
        assert f.malformed and f.raw == "", (name, f)


def test_a_singleton_header_sent_twice_is_malformed_with_both_values() -> None:
    date = "Sun, 06 Nov 1994 08:49:37 GMT"
    headers = httpx.Headers([("X-RateLimit-Remaining", "3"), ("x-ratelimit-remaining", "2"),
                             ("Retry-After", date), ("Retry-After", "1")])  # fmt: skip
    h = ratelimit.parse(headers, now=NOW)
    assert h.remaining.malformed and h.remaining.raw == "3, 2"
    assert "sent 2 times" in (h.remaining.problem or "")
    # the date's own comma stays intact: the fields are taken line by line, not from a joined value
    assert h.retry_after.raw == f"{date}, 1" and h.retry_after.malformed


def test_missing_headers_are_missing_and_nothing_else() -> None:
    h = ratelimit.parse([("Content-Type", "application/json")], now=NOW)
    assert all(not f.present and not f.malformed and not f.ok and f.describe() == "missing" for f in h.fields)
    assert (h.reset_kind, h.reset_at, h.reset_in, h.retry_at, h.retry_in) == (None,) * 5


def test_names_are_case_insensitive_and_any_header_shape_reads_the_same() -> None:
    pairs = [("x-RATELIMIT-reset", "30"), ("RETRY-AFTER", "30"), ("ratelimit", '"w";r=0;t=30')]
    shapes = (pairs, dict(pairs), httpx.Headers(pairs))
    parsed = [ratelimit.parse(shape, now=NOW) for shape in shapes]  # type: ignore[arg-type]
    assert parsed[0] == parsed[1] == parsed[2]
    assert parsed[0].reset_in == 30 and parsed[0].retry_in == 30


def test_the_reference_relays_headers_parse_cleanly() -> None:
    # docs/service.md, "Rate limiting": what the reference relay promises on a refusal
    h = ratelimit.parse(
        {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000003",
         "RateLimit-Policy": '"workspace";q=10;w=3', "RateLimit": '"workspace";r=0;t=3', "Retry-After": "3"},
        now=NOW,
    )  # fmt: skip
    assert not h.malformed and h.reset_kind == "epoch" and h.reset_in == 3 == h.retry_in


# -- structured fields, against an independent parser (http-sf, RFC 9651) --------------------------


def _norm(value: Any) -> Any:
    """Both parsers' values as tagged plain data (their types differ: Token, Date, DisplayString)."""
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_norm(v) for v in value)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, sf.Date):
        return ("date", int(value))
    if isinstance(value, dt.datetime):
        return ("date", int(value.timestamp()))
    if isinstance(value, sf.Token | http_sf.Token):
        return ("token", str(value))
    if isinstance(value, sf.DisplayString | http_sf.DisplayString):
        return ("display", str(value))
    return (type(value).__name__, value)


def _theirs(text: str, kind: str) -> Any:
    try:
        return _norm(http_sf.parse(text.encode(), tltype=kind))
    except Exception:
        return "invalid"


def _ours(text: str, kind: str) -> Any:
    try:
        return _norm(sf.parse_list(text) if kind == "list" else sf.parse_dictionary(text))
    except sf.SFError:
        return "invalid"


SF_TEXT = st.text(alphabet='abcxyzAB019*-_.:/;,=?"()@%\\ \t+', max_size=30)
SF_SAMPLES = [
    '"default";r=50;t=30', '"burst";q=100;w=60,"daily";q=1000;w=86400', "100;w=60", "1.5, -2, 3.125",
    "limit=100, remaining=0, reset=30", '(1 2);x, ?0;y=:aGk=:', '@1659578233, %"f%c3%bc"', "a;b;c=?1",
    '"a\\"b", tok/en:1', "1.1234", "1234567890123456", "-", '"unterminated', "a,", ",a", "a;B=1",
]  # fmt: skip


@pytest.mark.parametrize("text", SF_SAMPLES)
@pytest.mark.parametrize("kind", ["list", "dictionary"])
def test_the_structured_field_parser_agrees_with_http_sf_on_samples(text: str, kind: str) -> None:
    assert _ours(text, kind) == _theirs(text, kind)


@given(SF_TEXT, st.sampled_from(["list", "dictionary"]))
def test_the_structured_field_parser_agrees_with_http_sf_on_anything(text: str, kind: str) -> None:
    assert _ours(text, kind) == _theirs(text, kind)


KEYS = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,6}", fullmatch=True)
BARE = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1),
    st.decimals(-(10**12) + 1, 10**12 - 1, places=3, allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
    st.from_regex(r"[A-Za-z*][A-Za-z0-9!#$%&'*+.^_`|~:/-]{0,8}", fullmatch=True).map(http_sf.Token),
    st.binary(max_size=12),
    st.booleans(),
)
ITEMS = st.tuples(BARE, st.dictionaries(KEYS, BARE, max_size=3))
MEMBERS = st.one_of(ITEMS, st.tuples(st.lists(ITEMS, max_size=3), st.dictionaries(KEYS, BARE, max_size=2)))


@given(st.lists(MEMBERS, min_size=1, max_size=4))
def test_what_http_sf_writes_the_gate_reads_back_the_same(members: list[Any]) -> None:
    text = http_sf.ser(members)
    assert _ours(text, "list") == _theirs(text, "list") != "invalid"
