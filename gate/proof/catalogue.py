"""Deliberate defects of the reference service: how the gate proves that it can fail.

Each defect is a small, realistic variation of the relay — the kind of mistake a hardening sprint
makes — built through the app factory's injection points (limiter, audit log, deliverer client,
dependency overrides) or an ASGI wrapper (the parts are in gate/proof/parts.py). None is reachable
through a setting of the service: they exist only in this test-only factory, used by
``python -m gate.stack.relay --defect NAME``.

For every acceptance area there are defects that some scenario must catch; ``caught_by`` names the
scenario(s) written to catch each one: they must fail against it, and no other scenario may (a failure
nobody designed proves nothing). The tests in tests/features/ and ``relay-gate selftest`` run the
scenarios against each defect and require those failures.
The defects of the backup and drill tooling are in gate/proof/defects_drill.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp

from gate.proof import parts
from service.app import create_app
from service.audit import AuditLog
from service.config import Settings
from service.delivery import WebhookDeliverer

Area = Literal["rate_limit", "signing", "headers", "audit", "api"]


@dataclass
class Variant:
    """What a defect changes; empty means the reference service as shipped."""

    settings: dict[str, Any] = field(default_factory=dict)
    limiter: Callable[[Settings, Callable[[str], None]], Any] | None = None  # (settings, on_backend_change)
    audit: Callable[[Settings], AuditLog] | None = None
    delivery_hook: Callable[[Settings], parts.DeliveryHook] | None = None
    overrides: Callable[[], dict[Any, Any]] | None = None
    patch: Callable[[FastAPI], None] | None = None  # edits the built app (e.g. its key ring)
    wrap: parts.Wrap | None = None


@dataclass(frozen=True)
class Defect:
    name: str
    area: Area
    summary: str
    variant: Callable[[], Variant]
    needs_control: bool = False  # only a scenario that controls Redis/PostgreSQL can see it
    caught_by: tuple[str, ...] = ()  # the scenario(s) written to catch it: they must fail against it


# -- the scenarios that catch them (names as in features/*.feature; tests/gate/test_selftest.py checks) --

H_URL_ONLY = "Responses that need nothing but the URL carry the configured security headers"
H_RATE_LIMITED = "A rate-limited execute carries the configured security headers"
H_SERVER_ERROR = "An unhandled server error carries the configured security headers"
H_POLICY = "The security header policy is sound and grades at least A"

RL_SMOKE = "A burst past the quota is refused with 429 and rate-limit guidance (seed smoke)"
RL_EXACT = "Exactly the quota is admitted in one window, and the rate-limit headers count down and agree"
RL_IETF = "The IETF RateLimit and RateLimit-Policy fields agree with the X-RateLimit headers"
RL_ROLLOVER = "The quota comes back when the window rolls over"
RL_ISOLATION = "One workspace using up its quota leaves another workspace's quota intact"
RL_SPOOF = "The client cannot choose the workspace an execute is counted against"
RL_ADMIN = "A workspace's admin key is counted against the same quota as its developer keys"
RL_KEYS = "Rate-limit keys in Redis name only configured workspaces and always expire"
RL_PARALLEL = "Parallel executes spread over every replica admit exactly the quota"
RL_HUNG = "A hung Redis does not stall executes, and the limiter returns to Redis once it answers"
RL_KILLED = (
    "With Redis killed executes keep succeeding on the in-process fallback, and Redis takes over again"
)

# scenarios that vary methods, request shapes and settings (their defects are in gate/proof/defects_limits.py)
H_METHODS = (
    "Every method on every documented path and on an unknown one carries the configured security headers"
)
H_SHAPES = "CORS preflights, compressed responses and chunked uploads carry the configured security headers"
H_DEV_ENCODINGS = (
    "A developer's requests carry the configured security headers whatever the method and the body's encoding"
)
H_SEED_PROFILE = "A relay running the seed profile sends the seed's documented header values"
RL_LONG = "Over a long window the rate-limit headers state the exact window end, quota and wait"
RL_NO_TTL = "A rate-limit counter found without a TTL gets its expiry back from the next execute"
RL_FALLBACK_BOUND = (
    "On the in-process fallback each replica limits on its own, "
    "N replicas admit at most N x quota, never a 5xx"
)
RL_REPROBE = (
    "After a Redis failure a replica re-probes with its backoff capped at REDIS_REPROBE_MAX_S "
    "and returns to Redis"
)
RL_DEFAULTS = (
    "A relay started without rate-limit settings allows 60 executes per 60 s per workspace "
    "on its in-process limiter"
)
RL_DISABLED = "With RATE_LIMIT_ENABLED=false no execute is refused at any rate"
H_VARIED = (H_METHODS, H_SHAPES, H_DEV_ENCODINGS, H_SEED_PROFILE)

S_SIGNED = "Every delivery is signed and names the request that caused it"
S_HMAC = "X-Signature is the HMAC-SHA256 of the exact bytes received"
S_STANDARD = "The Standard Webhooks signature covers id, timestamp and body and verifies independently"
S_REQUEST_IDS = "Each delivery carries the request id and webhook id of its own execute"
S_ROTATING_RELAY = "A relay in the middle of a rotation signs each delivery with every secret, primary first"
# features/delivery.feature (the other delivery scenarios are named in gate/proof/defects_webhooks.py)
D_RETRY = "Every retry is the same event, with a fresh timestamp and fresh signatures"

A_NO_KEY = "A call without an API key is refused with a Bearer challenge"
A_UNKNOWN_KEY = "A call with an unknown API key is refused with a Bearer challenge"
A_DEV_KEY = "A developer key cannot read the audit log"
A_ADMIN_FINDS = "An admin finds the executes just made in the audit log, as the receiver saw them"
A_REFUSED = "A delivery the receiver refuses is answered 502 and audited as an error"
A_REFUSED_4XX = "A delivery the receiver refuses for good with a 4xx is answered 502 and audited as an error"
A_DB_DOWN = "With the audit database down, execute is refused and no webhook is sent"
A_EXACT_KEY = "Only the exact API key authenticates, whatever the case of the Bearer scheme"
A_PENDING = "An execute's audit record is on file, pending, before its webhook leaves"
H_DEV_REFUSALS = "Refusals of a developer's requests carry the configured security headers"
RL_ROLLOVER = "The quota comes back when the window rolls over"
RL_ISOLATION = "One workspace using up its quota leaves another workspace's quota intact"

# -- the catalogue ---------------------------------------------------------------------------------

_CATALOGUE = (
    # headers
    Defect("headers-missing-on-500", "headers",
           "security headers set inside ServerErrorMiddleware (BaseHTTPMiddleware style): "
           "an unhandled 500 goes out bare",
           lambda: Variant(wrap=parts.strip_security_when(lambda s: s >= 500)),
           caught_by=(H_SERVER_ERROR,)),
    Defect("headers-missing-on-429", "headers",
           "the 429 is produced outside the header middleware and carries no security headers",
           lambda: Variant(wrap=parts.strip_security_when(lambda s: s == 429)),
           caught_by=(H_RATE_LIMITED,)),
    Defect("hsts-without-includesubdomains", "headers",
           "HSTS without includeSubDomains",
           lambda: Variant(wrap=parts.replace_header(b"strict-transport-security", b"max-age=31536000")),
           caught_by=(H_POLICY, H_URL_ONLY, H_DEV_REFUSALS, H_SERVER_ERROR, H_RATE_LIMITED, *H_VARIED)),
    Defect("server-header-leak", "headers",
           "Server and X-Powered-By advertise the implementation",
           lambda: Variant(wrap=parts.edit_response(lambda s, h: [*h, *parts.LEAKS])),
           caught_by=(H_URL_ONLY, H_DEV_REFUSALS, H_SERVER_ERROR, H_RATE_LIMITED, *H_VARIED)),
    Defect("csp-loosened-for-swagger-ui", "headers",
           "the CSP written to make /docs work ('unsafe-inline' scripts from a CDN) ships on every response",
           lambda: Variant(wrap=parts.replace_header(b"content-security-policy", parts.DOCS_CSP)),
           caught_by=(H_POLICY, H_URL_ONLY, H_DEV_REFUSALS, H_SERVER_ERROR, H_RATE_LIMITED, *H_VARIED)),
    Defect("cache-control-sent-twice", "headers",
           "a layer appends its own Cache-Control instead of replacing it: 2xx responses carry two "
           "conflicting values",
           lambda: Variant(wrap=parts.append_header(b"cache-control", b"public, max-age=60",
                                                    lambda s: 200 <= s < 300)),
           caught_by=(H_URL_ONLY, *H_VARIED)),
    # rate limiting
    Defect("limiter-keyed-by-client-header", "rate_limit",
           "the rate-limit workspace is taken from the client's X-Workspace-ID header",
           lambda: Variant(overrides=parts.workspace_from_header),
           caught_by=(RL_SPOOF, RL_KEYS)),
    Defect("off-by-one-admission", "rate_limit",
           "admits limit + 1 executes per window",
           lambda: Variant(limiter=parts.off_by_one),
           caught_by=(RL_EXACT, RL_PARALLEL, RL_LONG, RL_FALLBACK_BOUND)),
    Defect("retry-after-zero", "rate_limit",
           "429 says Retry-After: 0",
           lambda: Variant(wrap=parts.replace_header(b"retry-after", b"0", lambda s: s == 429)),
           caught_by=(RL_SMOKE, RL_EXACT, RL_IETF, RL_LONG)),
    Defect("retry-after-fractional", "rate_limit",
           "429 says Retry-After: 1.4, the seconds to the reset not rounded up: not RFC 9110's "
           "delay-seconds, and clients such as urllib3 refuse the header",
           lambda: Variant(wrap=parts.retry_after_unrounded()),
           caught_by=(RL_SMOKE, RL_EXACT, RL_LONG)),
    Defect("remaining-negative", "rate_limit",
           "X-RateLimit-Remaining goes negative once over the limit",
           lambda: Variant(wrap=parts.replace_header(b"x-ratelimit-remaining", b"-1", lambda s: s == 429)),
           caught_by=(RL_SMOKE, RL_EXACT, RL_LONG)),
    Defect("ratelimit-policy-unquoted", "rate_limit",
           "RateLimit and RateLimit-Policy name the policy as a bare token (workspace;q=10;w=3), not the "
           "String the current IETF draft requires: a conformant client discards both fields",
           lambda: Variant(wrap=parts.ratelimit_policy_unquoted()),
           caught_by=(RL_IETF, RL_LONG, RL_DEFAULTS)),
    Defect("fallback-fails-closed", "rate_limit",
           "with Redis down the limiter refuses everything with 503 instead of falling back",
           lambda: Variant(limiter=parts.fails_closed), needs_control=True,
           caught_by=(RL_KILLED, RL_HUNG, RL_FALLBACK_BOUND, RL_REPROBE)),
    Defect("no-redis-timeout", "rate_limit",
           "Redis calls wait up to 10 s: a hung Redis stalls every execute",
           lambda: Variant(settings={"redis_connect_timeout_ms": 10_000, "redis_socket_timeout_ms": 10_000}),
           needs_control=True, caught_by=(RL_HUNG,)),
    Defect("limiter-incr-expire-not-atomic", "rate_limit",
           "INCR and EXPIRE are two commands and nothing re-arms a lost EXPIRE: counters without a TTL "
           "(the lost command modelled)",
           lambda: Variant(limiter=parts.incr_then_expire),
           caught_by=(RL_KEYS, RL_NO_TTL)),
    # Without Redis every replica limits alone on its in-process token bucket, so more than the parallel
    # burst sees it: no fixed window to place a burst in (its reset is a refill time that moves with every
    # request: the scenarios that align a burst fail, or pass when a first probe happens to land late in
    # a second), no keys in Redis, no Redis to return to.
    Defect("limiter-not-shared-across-replicas", "rate_limit",
           "REDIS_URL missing from the deployment: each replica counts alone on a token bucket, N replicas "
           "admit N quotas, no window is shared",
           lambda: Variant(settings={"redis_url": None}),
           caught_by=(RL_PARALLEL, RL_SMOKE, RL_EXACT, RL_IETF, RL_ROLLOVER, RL_ISOLATION, RL_SPOOF, RL_KEYS,
                      RL_HUNG, RL_KILLED, RL_LONG, RL_NO_TTL, RL_REPROBE)),
    # signing
    Defect("signature-over-reserialised-json", "signing",
           "X-Signature is computed over json.dumps(json.loads(body)), not the bytes sent",
           lambda: Variant(delivery_hook=parts.reserialised_signature),
           caught_by=(S_HMAC, S_ROTATING_RELAY, D_RETRY)),
    Defect("request-id-reused", "signing",
           "every delivery carries the same X-Request-ID",
           lambda: Variant(delivery_hook=parts.request_id_reused),
           caught_by=(S_REQUEST_IDS, D_RETRY)),
    Defect("webhook-timestamp-not-signed", "signing",
           "webhook-signature covers the body only, not id.timestamp.body (replays undetectable)",
           lambda: Variant(delivery_hook=parts.timestamp_not_signed),
           caught_by=(S_STANDARD, S_ROTATING_RELAY, D_RETRY)),
    Defect("unsigned-deliveries", "signing",
           "ACTIONS_SIGNING_SECRET not configured: deliveries go out unsigned",
           lambda: Variant(settings={"actions_signing_secret": None, "actions_signing_secrets_extra": []}),
           caught_by=(S_SIGNED, S_HMAC, S_STANDARD, S_ROTATING_RELAY, D_RETRY)),
    Defect("webhook-timestamp-in-milliseconds", "signing",
           "webhook-timestamp is sent (and signed) in milliseconds: every standard verifier rejects it as "
           "from the future",
           lambda: Variant(delivery_hook=parts.timestamp_in_milliseconds),
           caught_by=(S_STANDARD, S_ROTATING_RELAY, D_RETRY)),
    Defect("rotation-signs-with-one-secret", "signing",
           "mid-rotation, webhook-signature carries only the new secret's signature: receivers still on "
           "the current one reject every delivery",
           lambda: Variant(delivery_hook=parts.signs_with_primary_only), needs_control=True,
           caught_by=(S_ROTATING_RELAY,)),
    # auth and audit
    Defect("dev-key-reads-audit", "audit",
           "the admin check on /audit is missing: a dev key reads every workspace's audit log",
           lambda: Variant(overrides=parts.admin_check_missing),
           caught_by=(A_DEV_KEY,)),
    Defect("dev-key-reads-own-workspace-audit", "audit",
           "a dev key may read the audit log when it filters it to its own workspace (?workspace=own): "
           "the admin-only listing is open to every key of a workspace",
           lambda: Variant(overrides=parts.dev_reads_own_workspace_audit),
           caught_by=(A_DEV_KEY,)),
    Defect("unknown-key-accepted", "audit",
           "any bearer token is accepted as a dev key of workspace default",
           lambda: Variant(patch=parts.any_key_is_dev),
           caught_by=(A_UNKNOWN_KEY, A_EXACT_KEY)),
    Defect("failed-deliveries-not-audited", "audit",
           "the audit row is written only after a successful delivery",
           lambda: Variant(audit=parts.audit_log(parts.AuditOnlySuccesses)),
           caught_by=(A_REFUSED, A_REFUSED_4XX, A_DB_DOWN, A_PENDING)),
    Defect("refused-delivery-audited-ok", "audit",
           "a delivery the receiver refused with a 4xx is completed ok on file (only 5xx count as errors) "
           "while the caller gets 502",
           lambda: Variant(audit=parts.audit_log(parts.AuditOkBelow500)),
           caught_by=(A_REFUSED_4XX,)),
    Defect("failed-execute-without-ratelimit-headers", "audit",
           "the 502 of a failed delivery carries no X-RateLimit or RateLimit fields, though the execute "
           "was admitted and spent quota",
           lambda: Variant(wrap=parts.rate_limit_headers_dropped_on_502()),
           caught_by=(A_REFUSED, A_REFUSED_4XX)),
    Defect("webhook-sent-when-audit-failed", "audit",
           "execute carries on when the audit write fails: a webhook without its audit row",
           lambda: Variant(audit=parts.audit_log(parts.AuditSwallowsFailure)), needs_control=True,
           caught_by=(A_DB_DOWN,)),
    Defect("401-without-bearer-challenge", "audit",
           "refusals for a missing or unknown key are a bare 401, without the WWW-Authenticate challenge",
           lambda: Variant(wrap=parts.drop_header(b"www-authenticate", lambda s: s == 401)),
           caught_by=(A_NO_KEY, A_UNKNOWN_KEY)),
    Defect("audit-records-its-own-request-id", "audit",
           "the audit row gets an id the audit layer makes up, not the request's X-Request-ID: no "
           "delivery can be traced to its record",
           lambda: Variant(audit=parts.audit_log(parts.AuditMintsItsOwnId)),
           caught_by=(A_ADMIN_FINDS, A_REFUSED, A_REFUSED_4XX)),
)  # fmt: skip

# more of the catalogue, one module per contract area, each a tuple ``DEFECTS`` of :class:`Defect`
# (imported last: they build on this module's Defect, Variant and scenario names)
EXTRA_MODULES: tuple[str, ...] = (
    "gate.proof.defects_limits",
    "gate.proof.defects_webhooks",
    "gate.proof.defects_api",
)


def _everything() -> dict[str, Defect]:
    import importlib

    found = list(_CATALOGUE)
    for module in EXTRA_MODULES:
        found += importlib.import_module(module).DEFECTS
    names = [d.name for d in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RuntimeError(f"defect name(s) used twice in the catalogue: {twice}")
    return {d.name: d for d in found}


# Built on first use (PEP 562), not at import: an area module imported first (``from gate.proof import
# defects_api``) imports this one before its own DEFECTS exists, and an eager catalogue would find it
# half-initialised.
DEFECTS: dict[str, Defect]


def _catalogue() -> dict[str, Defect]:
    found: dict[str, Defect] | None = globals().get("DEFECTS")
    if found is None:
        found = globals()["DEFECTS"] = _everything()
    return found


def __getattr__(name: str) -> Any:
    if name == "DEFECTS":
        return _catalogue()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_app(settings: Settings, defect: str | None = None, *, fault_path: str | None = None) -> ASGIApp:
    """The relay app, with ``defect`` applied when given, and a route raising at ``fault_path``."""
    variant = _catalogue()[defect].variant() if defect else Variant()
    if variant.settings:
        settings = settings.model_copy(update=variant.settings)
    kwargs: dict[str, Any] = {}
    if variant.limiter is not None:
        kwargs["limiter_factory"] = variant.limiter
    if variant.audit is not None:
        kwargs["audit_log"] = variant.audit(settings)
    if variant.delivery_hook is not None:
        client = httpx.AsyncClient(
            trust_env=False, event_hooks={"request": [variant.delivery_hook(settings)]}
        )
        kwargs["deliverer"] = WebhookDeliverer(
            keys=settings.signing_keys,
            allowed_hosts=settings.allowed_hosts,
            timeout_s=settings.webhook_timeout_s,
            max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s,
            client=client,
        )
    app: FastAPI = create_app(settings, **kwargs)
    if variant.overrides is not None:
        app.dependency_overrides.update(variant.overrides())
    if variant.patch is not None:
        variant.patch(app)
    if fault_path:

        async def fault() -> None:
            raise RuntimeError("deliberate fault: relay-gate provokes an unhandled exception here")

        app.add_api_route(fault_path, fault, methods=["GET"], include_in_schema=False)
    return variant.wrap(app, settings) if variant.wrap is not None else app
