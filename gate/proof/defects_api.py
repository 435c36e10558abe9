"""Deliberate defects of the API contract (docs/service.md outside its rate-limit and header sections):
endpoints, request bodies, previews, errors, request ids, metrics — area ``api`` — and authentication
and the audit log's listing — area ``audit``.

Each is a change someone makes to the relay for a reason that sounds good at the time, and each breaks
one promise of the document; ``caught_by`` names the scenarios of features/api.feature (or
features/audit.feature) that fail against it, and no other scenario of its area may
(tests/features/test_proof_api.py and test_proof_audit.py, ``relay-gate selftest --area api --area
audit``). The building blocks are in gate/proof/parts_api.py; docs/promises/service.toml names, for
each promise, the defects that break it.
"""

from __future__ import annotations

from gate.proof import parts
from gate.proof import parts_api as api
from gate.proof.catalogue import A_DB_DOWN, A_EXACT_KEY, A_PENDING, Defect, Variant

# -- the scenarios that catch them (features/api.feature, features/audit.feature) ----------------------

LIVENESS = "Liveness and readiness answer without a key, liveness to GET and HEAD alike"
DEPENDENCIES = "Liveness touches no dependency, and readiness follows the audit database but not Redis"
CATALOGUE = (
    "Any key lists the action catalogue, each action with a description and a JSON schema of its parameters"
)
OPENAPI = "/openapi.json describes every documented operation, and there is no HTML docs UI"
PREVIEW_BYTES = "A preview shows the exact bytes execute delivers, their SHA-256 and the destination host"
PREVIEW_FREE = "A preview has no side effects: no webhook and no audit record"
REDEEM = "A preview_id executes only unaltered and in the workspace it was issued to, as often as asked"
EXPIRY = "A preview_id can no longer be executed once PREVIEW_TTL_S has passed"
REPLICAS = "A preview_id issued by one replica executes on another"
EXECUTE = (
    "An execute answers with its request id, webhook id, delivery status and latency, and writes one "
    "audit record"
)
WORKSPACE = "The workspace an action runs for comes only from the key"
ALLOWLIST = (
    "A destination must be an http(s) URL on an allowed host and port, without userinfo, control "
    "characters or spaces"
)
UNKNOWN = "An action request with a field the document does not name is refused"
PROBLEMS = "Every refusal is a problem document carrying its request id, and bad input is never a 5xx"
ALLOW = "A method a path does not serve is answered 405 with an Allow header listing every method it serves"
BODY_LIMIT = "A body of exactly MAX_BODY_BYTES is read and one byte more is refused with 413, chunked or not"
REQUEST_IDS = "Every response carries an X-Request-ID the service minted, never one the client sent"
RATE_LIMITED = "A rate-limited execute is refused before anything is written, and counted as a breach"
METRICS = "Metrics use the documented names and buckets, and clients cannot create label values"

A_NEWEST_FIRST = "The audit log lists newest first, and its cursor pages through every record once"
A_LIMITS = "The audit log takes a limit from 1 to 500, and refuses 0 and 501"
A_FILTERS = "Each audit filter narrows the records, and a date-time without an offset is read as UTC"

_route_label = api.raw_labels(route=True, method=False)
_method_label = api.raw_labels(route=False, method=True)

DEFECTS = (
    # endpoints
    Defect("health-head-not-routed", "api",
           "HEAD /_stcore/health is not routed (only GET is): `curl -I` health checks get 405",
           lambda: Variant(patch=api.head_of_health_removed),
           caught_by=(LIVENESS, ALLOW, OPENAPI)),
    Defect("liveness-checks-the-database", "api",
           "liveness wired to the readiness check: /_stcore/health answers 503 while the audit database "
           "is down, and the orchestrator restarts healthy replicas",
           lambda: Variant(patch=api.liveness_pings_the_database), needs_control=True,
           caught_by=(DEPENDENCIES,)),
    Defect("readiness-requires-redis", "api",
           "readiness pings Redis too: every replica leaves the load balancer while Redis is down, "
           "although the limiter falls back",
           lambda: Variant(patch=api.readiness_pings_redis), needs_control=True,
           caught_by=(DEPENDENCIES,)),
    Defect("readiness-ignores-the-database", "api",
           "readiness is a copy of liveness: 200 with the audit database down",
           lambda: Variant(patch=api.readiness_without_the_database), needs_control=True,
           caught_by=(DEPENDENCIES,)),
    Defect("catalogue-without-parameter-schemas", "api",
           "GET /actions lists each action's parameter names, not their JSON schema (\"generating "
           "schemas is slow\")",
           lambda: Variant(patch=api.catalogue_of_parameter_names),
           caught_by=(CATALOGUE,)),
    Defect("swagger-ui-left-on", "api",
           "the HTML docs UI served at /docs, which the API's CSP forbids",
           lambda: Variant(patch=api.swagger_ui_on),
           caught_by=(OPENAPI,)),
    Defect("openapi-hides-the-audit-endpoint", "api",
           "GET /audit left out of /openapi.json (\"admin endpoints are not for the public docs\")",
           lambda: Variant(patch=api.hide_from_schema("/audit")),
           caught_by=(OPENAPI,)),
    # previews and execute
    Defect("preview-body-ascii-escaped", "api",
           "preview shows (and hashes) the body as json.dumps renders it by default, non-ASCII escaped: "
           "not the bytes execute sends",
           lambda: Variant(wrap=api.preview_ascii_escaped),
           caught_by=(PREVIEW_BYTES,)),
    Defect("preview-host-without-port", "api",
           "preview names the destination's host without its port",
           lambda: Variant(wrap=api.preview_host_without_port),
           caught_by=(PREVIEW_BYTES,)),
    Defect("preview-sends-a-test-webhook", "api",
           "preview checks the destination is reachable by delivering the webhook in the background",
           lambda: Variant(patch=api.preview_side_effect(api.test_delivery)),
           caught_by=(PREVIEW_FREE,)),
    Defect("preview-writes-an-audit-record", "api",
           "preview records a pending audit row \"for traceability\"",
           lambda: Variant(patch=api.preview_side_effect(api.pending_audit_row)),
           caught_by=(PREVIEW_FREE,)),
    Defect("preview-spends-execute-quota", "api",
           "each preview is counted against the workspace's execute quota (\"previews cost as much as "
           "executes\")",
           lambda: Variant(patch=api.preview_side_effect(api.spend_quota)),
           caught_by=(PREVIEW_FREE,)),
    Defect("preview-id-mac-not-checked", "api",
           "execute trusts a preview_id's payload without checking its HMAC (\"we issued it\")",
           lambda: Variant(patch=api.preview_signer(mac=False)),
           caught_by=(REDEEM,)),
    Defect("preview-id-any-workspace", "api",
           "execute redeems a preview_id issued to another workspace",
           lambda: Variant(patch=api.preview_signer(workspace=False)),
           caught_by=(REDEEM,)),
    Defect("preview-id-single-use", "api",
           "a preview_id is refused once executed, although PREVIEW_TTL_S says how long it can be executed",
           lambda: Variant(patch=api.preview_signer(single_use=True)),
           caught_by=(REDEEM,)),
    Defect("preview-id-never-expires", "api",
           "execute does not check a preview_id's expiry",
           lambda: Variant(patch=api.preview_signer(expiry=False)), needs_control=True,
           caught_by=(EXPIRY,)),
    Defect("preview-key-per-replica", "api",
           "each replica draws its own preview key (PREVIEW_SECRET unset, nothing to derive it from): a "
           "preview_id works only where it was issued",
           lambda: Variant(patch=api.preview_key_per_process),
           caught_by=(REPLICAS,)),
    Defect("execute-reports-another-webhook-id", "api",
           "the execute response names a webhook id made for it, not the one the delivery carried",
           lambda: Variant(wrap=api.execute_reports_a_new_webhook_id),
           caught_by=(EXECUTE,)),
    Defect("workspace-from-query-parameter", "api",
           "a `workspace` query parameter chooses the workspace an action runs for (\"so admins can act "
           "for a team\", applied to every key)",
           lambda: Variant(overrides=api.workspace_from_query),
           caught_by=(WORKSPACE,)),
    # request bodies
    Defect("allowlist-ignores-the-port", "api",
           "WEBHOOK_ALLOWED_HOSTS names WEBHOOK_URL's host without its port: every port on it is allowed",
           lambda: Variant(patch=api.bare_host_allowlist),
           caught_by=(ALLOWLIST,)),
    Defect("destination-userinfo-stripped", "api",
           "a URL normaliser in front of the validation strips userinfo from a destination instead of "
           "refusing it",
           lambda: Variant(wrap=api.edit_request_json(api.BODY_PATHS, api.userinfo_stripped)),
           caught_by=(ALLOWLIST,)),
    Defect("destination-controls-stripped", "api",
           "control characters and spaces are removed from a destination (as urlsplit does with tab, CR "
           "and LF) instead of refusing it",
           lambda: Variant(wrap=api.edit_request_json(api.BODY_PATHS, api.controls_and_spaces_stripped)),
           caught_by=(ALLOWLIST,)),
    Defect("unknown-fields-dropped", "api",
           "fields the request models do not name are dropped \"for forward compatibility\" instead of "
           "refused: a misspelt destination goes to the default one",
           lambda: Variant(wrap=api.edit_request_json(api.BODY_PATHS, api.unknown_fields_dropped)),
           caught_by=(UNKNOWN,)),
    # errors
    Defect("http-errors-in-fastapi-format", "api",
           "404 and 405 answered by FastAPI's default handler: {\"detail\": ...} as application/json, "
           "and Allow naming the first route's methods",
           lambda: Variant(patch=api.fastapi_default_http_errors),
           caught_by=(PROBLEMS, ALLOW)),
    Defect("validation-errors-in-fastapi-format", "api",
           "422s answered by FastAPI's default handler: {\"detail\": [...]} as application/json",
           lambda: Variant(patch=api.fastapi_default_validation_errors),
           caught_by=(PROBLEMS,)),
    Defect("problems-without-request-id", "api",
           "problem documents go out without request_id",
           lambda: Variant(wrap=api.problems_without_request_id),
           caught_by=(PROBLEMS,)),
    Defect("debug-body-log-500s-on-non-utf8", "api",
           "a debug middleware decodes every request body as UTF-8 to log it: a body that is not UTF-8 "
           "is a 500",
           lambda: Variant(wrap=api.body_decoded_for_a_debug_log),
           caught_by=(PROBLEMS,)),
    Defect("allow-of-the-first-route-only", "api",
           "a 405's Allow names the methods of the first route matching the path (Starlette's), so "
           "POST /_stcore/health says Allow: GET",
           lambda: Variant(patch=api.allow_of_first_route_only),
           caught_by=(ALLOW,)),
    Defect("body-limit-trusts-content-length", "api",
           "the body limit checks Content-Length only: a chunked body of any size is read",
           lambda: Variant(patch=api.content_length_only),
           caught_by=(BODY_LIMIT,)),
    Defect("body-limit-counted-per-message", "api",
           "the body limit holds each piece the server reads to the limit, not their sum: a body "
           "trickled in chunks is read whole, whatever its size",
           lambda: Variant(patch=api.limit_per_message),
           caught_by=(BODY_LIMIT,)),
    Defect("body-limit-refuses-exactly-the-limit", "api",
           "the body limit compares with >=: a body of exactly MAX_BODY_BYTES is refused",
           lambda: Variant(patch=api.limit_exclusive),
           caught_by=(BODY_LIMIT,)),
    Defect("request-id-taken-from-the-client", "api",
           "a client's X-Request-ID (a UUID) is \"propagated\" as the request's id: two deliveries can "
           "share one, and a client can name them",
           lambda: Variant(patch=api.request_ids_from_clients),
           caught_by=(REQUEST_IDS,)),
    Defect("request-id-only-on-success", "api",
           "X-Request-ID is set on 2xx responses only: refusals go without it",
           lambda: Variant(wrap=parts.drop_header(b"x-request-id", lambda s: s >= 400)),
           caught_by=(REQUEST_IDS, PROBLEMS)),
    # the rate limit's bookkeeping
    Defect("rate-limited-executes-audited", "api",
           "every execute attempt is audited, the rate-limited ones too: an error row is written before "
           "the 429",
           lambda: Variant(patch=api.refusals_audited),
           caught_by=(RATE_LIMITED,)),
    Defect("rate-limit-breaches-not-counted", "api",
           "the 429 returns before rate_limit_breaches_total is incremented",
           lambda: Variant(patch=api.breaches_uncounted),
           caught_by=(RATE_LIMITED,)),
    # metrics
    Defect("metrics-route-label-is-the-path", "api",
           "requests that match no route are counted under their own path: every client can add series",
           lambda: Variant(wrap=_route_label[0], patch=_route_label[1]),
           caught_by=(METRICS,)),
    Defect("metrics-method-label-is-the-method", "api",
           "unknown methods are counted under their own name, not OTHER: every client can add series",
           lambda: Variant(wrap=_method_label[0], patch=_method_label[1]),
           caught_by=(METRICS,)),
    Defect("metrics-default-buckets", "api",
           "the latency histograms use prometheus_client's default buckets: no 1.2 s bucket, the seed's "
           "SLO threshold is no bucket ratio",
           lambda: Variant(patch=api.default_buckets),
           caught_by=(METRICS,)),
    # authentication
    Defect("key-matched-by-its-prefix", "audit",
           "keys are looked up by their first 16 characters (an index on the key's prefix) and the rest is "
           "never compared",
           lambda: Variant(patch=api.keys_by_prefix()),
           caught_by=(A_EXACT_KEY,)),
    Defect("bearer-scheme-case-sensitive", "audit",
           "only 'Bearer' is accepted as the scheme: 'bearer <key>' is refused although HTTP auth schemes "
           "are case-insensitive",
           lambda: Variant(patch=api.bearer_case_sensitive),
           caught_by=(A_EXACT_KEY,)),
    # the audit log's listing and writing
    Defect("audit-lists-oldest-first", "audit",
           "GET /audit orders by created_at ascending",
           lambda: Variant(audit=parts.audit_log(api.AuditOldestFirst)),
           caught_by=(A_NEWEST_FIRST,)),
    Defect("audit-cursor-repeats-a-row", "audit",
           "the cursor compares with <=: each page starts with the last row of the one before",
           lambda: Variant(audit=parts.audit_log(api.AuditCursorInclusive)),
           caught_by=(A_NEWEST_FIRST,)),
    Defect("audit-limit-clamped", "audit",
           "a limit over 500 is clamped to 500 instead of refused",
           lambda: Variant(wrap=api.audit_limit_clamped),
           caught_by=(A_LIMITS,)),
    Defect("audit-time-offset-dropped", "audit",
           "since/until lose their offset (replace(tzinfo=UTC) on aware values too): 12:00+02:00 is read "
           "as 12:00 UTC",
           lambda: Variant(wrap=api.audit_offset_dropped),
           caught_by=(A_FILTERS,)),
    Defect("audit-time-without-offset-refused", "audit",
           "since/until without an offset are refused with 422 instead of read as UTC",
           lambda: Variant(wrap=api.audit_naive_refused),
           caught_by=(A_FILTERS,)),
    Defect("audit-action-filter-ignored", "audit",
           "the action filter is accepted and has no effect",
           lambda: Variant(wrap=api.audit_action_ignored),
           caught_by=(A_FILTERS,)),
    Defect("audit-row-written-after-delivery", "audit",
           "the audit row is inserted once, complete, after the delivery: nothing is on record while the "
           "webhook is in flight, and a database that fails then leaves a webhook without its row",
           lambda: Variant(audit=parts.audit_log(api.AuditRowAtTheEnd)),
           caught_by=(A_PENDING, A_DB_DOWN)),
)  # fmt: skip
