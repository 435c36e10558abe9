"""Rate-limit headers as real limiters send them, read from a response's headers and the client's clock.

:func:`parse` takes the headers (a mapping such as ``httpx.Headers``, or ``(name, value)`` pairs) and
``now`` (epoch seconds on the client's clock, when the response arrived) and returns
:class:`RateLimitHeaders`: one :class:`Field` per header, each either missing, ok (with its parsed
value) or **malformed** (present but not in the grammar: its raw value is kept and says why), never
a malformed header mistaken for a missing one. The grammar accepted, with its sources:

``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (de facto; ``X-Rate-Limit-*`` as X/Twitter spells it)
    Limit and Remaining are non-negative integers; a Limit may be followed by quota policies
    (``10, 10;w=1, 1000;w=3600``: draft-ietf-httpapi-ratelimit-headers-01 §3.1, as Envoy sends it).
    Reset is integer or fractional seconds, either an epoch (GitHub, Discord ``1470173023.123``) or a
    delta (Envoy, Kong), told apart by magnitude: from :data:`EPOCH_MIN` (2001-09-09) on it is an epoch;
    from :data:`EPOCH_MS_MIN` on it is taken for epoch *milliseconds* and refused.
``Retry-After`` (RFC 9110 §10.2.3)
    delay-seconds (``1*DIGIT``: ``2.0`` is malformed, as urllib3 and others refuse it) or an HTTP-date
    in any of its three forms (RFC 9110 §5.6.7, :mod:`gate.oracles.httpdate`).
``RateLimit`` / ``RateLimit-Policy`` (draft-ietf-httpapi-ratelimit-headers-08 to -11)
    Structured-field Lists (RFC 9651) of policies named by Strings: ``"default";r=50;t=30`` and
    ``"burst";q=100;w=60`` (r, q required non-negative Integers; t, w optional; pk a Byte Sequence;
    other parameters ignored as the draft says). Also the draft-07 forms express-rate-limit still
    sends: ``RateLimit: limit=100, remaining=0, reset=30`` (a Dictionary) and ``RateLimit-Policy: 100;w=60``.
``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (drafts -00 to -06; Kong, GitLab, express-rate-limit)
    As the X- trio (GitLab sends RateLimit-Reset as an epoch, the drafts as a delta).

Everything normalises to the client's clock: a reset or Retry-After is a :class:`Moment` with its
absolute epoch (``at``) and the seconds from ``now`` (``delta``), and says which kind was sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from gate.oracles import sf
from gate.oracles.httpdate import parse_http_date

EPOCH_MIN = 1_000_000_000  # 2001-09-09 as epoch seconds; as a delta, 31 years: nobody waits that long
EPOCH_MS_MIN = 100_000_000_000  # year 5138 in seconds, 1973 in milliseconds: milliseconds it is

T = TypeVar("T")
Headers = Mapping[str, str] | Iterable[tuple[str, str]]
MomentKind = Literal["epoch", "delta", "date"]


class Malformed(ValueError):
    """Why a present header value is outside the grammar (the caller keeps the raw value)."""


@dataclass(frozen=True)
class Field(Generic[T]):
    """One header as received: ``raw`` is None when absent; ``problem`` says why a present one is bad."""

    name: str
    raw: str | None = None
    value: T | None = None
    problem: str | None = None

    @property
    def present(self) -> bool:
        return self.raw is not None

    @property
    def ok(self) -> bool:
        return self.present and self.problem is None

    @property
    def malformed(self) -> bool:
        return self.present and self.problem is not None

    def describe(self) -> str:
        """``missing``, ``malformed: '<raw>' (<why>)`` or the raw value of a good one."""
        if not self.present:
            return "missing"
        if self.malformed:
            return f"malformed: {self.raw!r} ({self.problem})"
        return repr(self.raw)


@dataclass(frozen=True)
class Moment:
    """A point in time a header names: ``sent`` as written (seconds, or epoch seconds of an HTTP-date),
    ``at`` as an epoch on the client's clock and ``delta`` = ``at`` - now."""

    kind: MomentKind
    sent: int | float
    at: float
    delta: float


@dataclass(frozen=True)
class ServiceLimit:
    """One item of ``RateLimit``: the quota left (r) under a policy, and the effective window (t)."""

    policy: str | None  # None in the draft-07 Dictionary form, which names no policy
    remaining: int
    reset: int | None = None  # t, seconds
    partition: bytes | None = None  # pk
    limit: int | None = None  # only the draft-07 form carries it


@dataclass(frozen=True)
class QuotaPolicy:
    """One item of ``RateLimit-Policy``: quota q per window w (seconds)."""

    name: str | None  # None in the draft-06/07 form (``100;w=60``)
    quota: int
    window: int | None = None
    unit: str | None = None  # qu; the draft's default is "requests"
    partition: bytes | None = None


@dataclass(frozen=True)
class RateLimitHeaders:
    """Every rate-limit header of one response, parsed against the client's clock ``now``."""

    now: float
    limit: Field[int]
    remaining: Field[int]
    reset: Field[Moment]
    retry_after: Field[Moment]
    ratelimit: Field[tuple[ServiceLimit, ...]]
    policy: Field[tuple[QuotaPolicy, ...]]
    draft_limit: Field[int]  # RateLimit-Limit
    draft_remaining: Field[int]
    draft_reset: Field[Moment]
    fields: tuple[Field[Any], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        every = (self.limit, self.remaining, self.reset, self.retry_after, self.ratelimit, self.policy,
                 self.draft_limit, self.draft_remaining, self.draft_reset)  # fmt: skip
        object.__setattr__(self, "fields", every)

    @property
    def malformed(self) -> list[Field[Any]]:
        return [f for f in self.fields if f.malformed]

    @property
    def reset_kind(self) -> MomentKind | None:
        """How X-RateLimit-Reset was sent: ``epoch`` or ``delta`` seconds (None unless it is ok)."""
        return self.reset.value.kind if self.reset.value is not None else None

    @property
    def reset_at(self) -> float | None:
        return self.reset.value.at if self.reset.value is not None else None

    @property
    def reset_in(self) -> float | None:
        return self.reset.value.delta if self.reset.value is not None else None

    @property
    def retry_at(self) -> float | None:
        return self.retry_after.value.at if self.retry_after.value is not None else None

    @property
    def retry_in(self) -> float | None:
        return self.retry_after.value.delta if self.retry_after.value is not None else None


def parse(headers: Headers, *, now: float) -> RateLimitHeaders:
    """The rate-limit headers of one response; ``now`` is the client's clock when it arrived."""
    pairs = _pairs(headers)
    return RateLimitHeaders(
        now=now,
        limit=_single(pairs, ("X-RateLimit-Limit", "X-Rate-Limit-Limit"), parse_limit),
        remaining=_single(pairs, ("X-RateLimit-Remaining", "X-Rate-Limit-Remaining"), parse_count),
        reset=_single(pairs, ("X-RateLimit-Reset", "X-Rate-Limit-Reset"), lambda v: parse_reset(v, now=now)),
        retry_after=_single(pairs, ("Retry-After",), lambda v: parse_retry_after(v, now=now)),
        ratelimit=_listed(pairs, "RateLimit", parse_service_limits),
        policy=_listed(pairs, "RateLimit-Policy", parse_quota_policies),
        draft_limit=_single(pairs, ("RateLimit-Limit",), parse_limit),
        draft_remaining=_single(pairs, ("RateLimit-Remaining",), parse_count),
        draft_reset=_single(pairs, ("RateLimit-Reset",), lambda v: parse_reset(v, now=now)),
    )


# -- the values ------------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+")
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")


def parse_count(value: str) -> int:
    """A non-negative integer (X-RateLimit-Remaining, RateLimit-Remaining)."""
    if _DIGITS.fullmatch(value):
        return int(value)
    if re.fullmatch(r"-[0-9]+", value):
        raise Malformed("negative: a count of requests left is never below 0")
    raise Malformed("not a non-negative integer")


def parse_limit(value: str) -> int:
    """A non-negative integer, optionally followed by quota policies (``10, 10;w=1``: the expiring
    limit first, draft-ietf-httpapi-ratelimit-headers-01 §3.1)."""
    if _DIGITS.fullmatch(value) or "," not in value:
        return parse_count(value)
    try:
        members = sf.parse_list(value)
    except sf.SFError as exc:
        raise Malformed(f"not an integer, nor an integer followed by quota policies ({exc})") from exc
    (first, first_params), *policies = members
    limit = _count(first)
    if limit is None or first_params:
        raise Malformed("the expiring limit must come first, as a bare non-negative integer")
    if any(_count(p[0]) is None for p in policies):
        raise Malformed("each quota policy after the limit is an integer with parameters (10;w=1)")
    return limit


def parse_reset(value: str, *, now: float) -> Moment:
    """Seconds, integer or fractional: an epoch from :data:`EPOCH_MIN` on, else a delta."""
    if not _SECONDS.fullmatch(value):
        raise Malformed("not seconds: an epoch or a delta, integer or fractional (1700000000, 30, 1.5)")
    sent = int(value) if _DIGITS.fullmatch(value) else float(value)
    if sent >= EPOCH_MS_MIN:
        raise Malformed("epoch milliseconds? reset is epoch seconds or delta seconds")
    if sent >= EPOCH_MIN:
        return Moment("epoch", sent, float(sent), sent - now)
    return Moment("delta", sent, now + sent, float(sent))


def parse_retry_after(value: str, *, now: float) -> Moment:
    """RFC 9110 §10.2.3: ``HTTP-date / delay-seconds`` (``delay-seconds = 1*DIGIT``)."""
    if _DIGITS.fullmatch(value):
        seconds = int(value)
        return Moment("delta", seconds, now + seconds, float(seconds))
    date = parse_http_date(value, now=now)
    if date is not None:
        at, _form = date
        return Moment("date", at, at, at - now)
    if _SECONDS.fullmatch(value) or re.fullmatch(r"-[0-9]+(\.[0-9]+)?", value):
        raise Malformed("delay-seconds are whole non-negative seconds (RFC 9110 §10.2.3: 1*DIGIT)")
    raise Malformed("neither delay-seconds nor an HTTP-date (RFC 9110 §10.2.3)")


def parse_service_limits(value: str) -> tuple[ServiceLimit, ...]:
    """``RateLimit``: a List of ``"policy";r=..;t=..`` items, or the draft-07 Dictionary."""
    try:
        members = sf.parse_list(value)
    except sf.SFError as list_error:
        if "remaining=" not in value:
            raise Malformed(f"not a structured-field List: {list_error}") from list_error
        return (_draft07_limit(value),)
    if not members:
        raise Malformed("empty")
    limits = []
    for item, params in members:
        name = _policy_name(item)
        r = _required_count(params, "r")
        limits.append(ServiceLimit(name, r, _param_count(params, "t"), _param_bytes(params, "pk")))
    return tuple(limits)


def parse_quota_policies(value: str) -> tuple[QuotaPolicy, ...]:
    """``RateLimit-Policy``: a List of ``"name";q=..;w=..`` items (or draft-06/07 ``100;w=60``)."""
    try:
        members = sf.parse_list(value)
    except sf.SFError as exc:
        raise Malformed(f"not a structured-field List: {exc}") from exc
    if not members:
        raise Malformed("empty")
    policies = []
    for item, params in members:
        bare_quota = _count(item)
        if bare_quota is not None:  # draft-06/07: the quota itself is the item
            name, quota = None, bare_quota
        else:
            name, quota = _policy_name(item), _required_count(params, "q")
        window = _param_count(params, "w")
        if window == 0:
            raise Malformed("w=0: a window is a positive number of seconds")
        unit = params.get("qu")
        if unit is not None and (not isinstance(unit, str) or isinstance(unit, sf.Token)):
            raise Malformed(f"qu={unit!r}: a quota unit is a String")
        policies.append(QuotaPolicy(name, quota, window, unit, _param_bytes(params, "pk")))
    return tuple(policies)


def _draft07_limit(value: str) -> ServiceLimit:
    try:
        members = sf.parse_dictionary(value)
    except sf.SFError as exc:
        raise Malformed(f"neither a structured-field List nor the draft-07 Dictionary: {exc}") from exc
    got = {}
    for key in ("limit", "remaining", "reset"):
        member = members.get(key)
        n = _count(member[0]) if member is not None else None
        if n is None:
            raise Malformed(f"the draft-07 form needs {key}= as a non-negative integer")
        got[key] = n
    return ServiceLimit(None, got["remaining"], got["reset"], None, got["limit"])


def _policy_name(item: object) -> str:
    if isinstance(item, str) and not isinstance(item, sf.Token | sf.DisplayString):
        return item
    kind = "a Token" if isinstance(item, sf.Token) else type(item).__name__
    raise Malformed(f'a policy is named by a String ("name"), not {kind}: {item!r}')


def _param_count(params: sf.Params, key: str) -> int | None:
    if key not in params:
        return None
    n = _count(params[key])
    if n is None:
        raise Malformed(f"{key}={params[key]!r} is not a non-negative Integer")
    return n


def _required_count(params: sf.Params, key: str) -> int:
    n = _param_count(params, key)
    if n is None:
        raise Malformed(f"no {key}= parameter")
    return n


def _param_bytes(params: sf.Params, key: str) -> bytes | None:
    value = params.get(key)
    if value is not None and not isinstance(value, bytes):
        raise Malformed(f"{key}={value!r} is not a Byte Sequence (:base64:)")
    return value


def _count(value: object) -> int | None:
    """A non-negative structured-field Integer (not a Boolean, not a Date), else None."""
    if isinstance(value, int) and not isinstance(value, bool | sf.Date) and value >= 0:
        return int(value)
    return None


# -- finding them ----------------------------------------------------------------------------------


def _pairs(headers: Headers) -> list[tuple[str, str]]:
    """(lower-case name, value) for every field line, repeated fields kept apart."""
    multi = getattr(headers, "multi_items", None)  # httpx.Headers: items() would join repeats
    if callable(multi):
        items: Iterable[tuple[str, str]] = multi()
    elif isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    return [(str(k).lower(), str(v).strip(" \t")) for k, v in items]


def _single(pairs: list[tuple[str, str]], names: tuple[str, ...], parser: Callable[[str], T]) -> Field[T]:
    """A field that may occur once, under the first of ``names`` present."""
    for name in names:
        values = [v for k, v in pairs if k == name.lower()]
        if not values:
            continue
        raw = ", ".join(values)
        if len(values) > 1:
            return Field(name, raw, None, f"sent {len(values)} times; it may occur once")
        if not raw:
            return Field(name, raw, None, "empty")
        try:
            return Field(name, raw, parser(raw))
        except Malformed as bad:
            return Field(name, raw, None, str(bad))
    return Field(names[0])


def _listed(pairs: list[tuple[str, str]], name: str, parser: Callable[[str], T]) -> Field[T]:
    """A List field: several field lines are one list, joined with ", " (RFC 9651 §4.2)."""
    values = [v for k, v in pairs if k == name.lower()]
    if not values:
        return Field(name)
    raw = ", ".join(values)
    try:
        return Field(name, raw, parser(raw))
    except Malformed as bad:
        return Field(name, raw, None, str(bad))
