"""A Target: what the acceptance scenarios talk to — base URL(s), credentials, policies, capabilities.

Scenarios never reach into the service; they speak HTTP to a Target. The same scenarios therefore run
against the reference stack (a Target made from a :class:`~gate.stack.reference.Stack`, which can also kill
and pause its dependencies) and against any deployment (a base URL plus an optional TOML file for what
cannot be discovered). Header checks need nothing but the URL.

Target config (TOML), every section optional::

    [target]
    name = "staging"
    base_url = "https://relay-staging.example.com"       # --target-url wins over this

    [credentials]                                          # keys by environment-variable name
    admin = { env = "RELAY_ADMIN_KEY", workspace = "default" }
    dev   = { env = "RELAY_DEV_KEY", workspace = "default" }
    dev-b = { env = "RELAY_DEV_KEY_B", workspace = "team-b", role = "dev" }

    [rate_limit]
    endpoint = "/actions/execute"
    limit = 60
    window_s = 60
    max_wait_s = 60            # longest wait for a window (default: one window_s)

    [signing]
    secret_env = "ACTIONS_SIGNING_SECRET"

    [deliveries]
    receiver_url = "https://receiver.staging.example.com"   # speaks gate.stack.receiver's /_receiver/ API
    timeout_s = 5              # the service's WEBHOOK_TIMEOUT_S: how long "no webhook" watches
    max_attempts = 3           # the service's WEBHOOK_MAX_ATTEMPTS (default 3)
    backoff_base_s = 0.2       # the service's WEBHOOK_BACKOFF_BASE_S (default 0.2)
    token_env = "RELAY_RECEIVER_TOKEN"   # holds the token it was started with (RELAY_GATE_RECEIVER_TOKEN)

    [headers]
    profile = "strict"         # or "seed", or a table of exact values under [headers.expected]
    error_path = "/_debug/fault"   # a path known to answer an unhandled 500, if the target has one

    [database]
    url_env = "DATABASE_URL"   # optional: names the database the backups must be of

    [backups]                  # the restore drill on a deployment (gate/client/target_backups.py)
    dir = "backups/relay"      # the --dir of its scheduled relay-gate backup; relative to this file
    rpo = "26h"                # optional (default 26h)
    rto = "15m"                # optional (default 15m)

    [redis]
    url_env = "RELAY_REDIS_URL"  # optional: lets the keys-in-Redis scenario inspect the limiter's keys

    [load]
    credentials = ["dev", "dev-b"]   # the keys the load spends executes with (default: one per workspace)
    [tls]                      # gate/client/transport.py: certificates are always verified
    ca_bundle = "certs/staging-ca.pem"   # relative to this file; replaces the default trust store
    client_cert = "certs/gate.pem"       # optional, mutual TLS (with client_key, or the key inside)
    client_key = "certs/gate-key.pem"

    [network]
    proxies_from_env = false   # true: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY are honoured

    [api]
    max_body_bytes = 65536     # the service's MAX_BODY_BYTES (default: the documented 65536)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from gate.client.target_backups import KEYS as BACKUPS_KEYS
from gate.client.target_backups import Backups, parse_backups
from gate.client.transport import NETWORK_KEYS, TLS_KEYS, Transport
from gate.errors import UsageError
from gate.oracles.headers import PROFILES
from gate.redaction import mask_url_passwords, url_password

if TYPE_CHECKING:
    from gate.stack.reference import Stack

Role = Literal["admin", "dev"]
# every key the target config knows, per section (credentials: any name, each a table of CREDENTIAL_KEYS);
# anything else is refused, naming it: a misspelt key must not silently leave a criterion unchecked
SCHEMA: dict[str, frozenset[str] | None] = {
    "target": frozenset({"name", "base_url", "replica_urls"}),
    "credentials": None,
    "rate_limit": frozenset({"endpoint", "limit", "window_s", "max_wait_s"}),
    "signing": frozenset({"secret_env"}),
    "deliveries": frozenset({"receiver_url", "token_env", "timeout_s", "max_attempts", "backoff_base_s"}),
    "headers": frozenset({"profile", "error_path", "expected"}),
    "database": frozenset({"url_env"}),
    "redis": frozenset({"url_env"}),
    "load": frozenset({"credentials"}),
    "backups": BACKUPS_KEYS,
    "tls": TLS_KEYS,
    "network": NETWORK_KEYS,
    "api": frozenset({"max_body_bytes"}),
}
CREDENTIAL_KEYS = frozenset({"env", "workspace", "role"})
DEFAULT_MAX_BODY_BYTES = 65_536  # docs/service.md, Configuration: MAX_BODY_BYTES
_SECTIONS = set(SCHEMA)


@dataclass(frozen=True)
class Credential:
    name: str
    role: Role
    workspace: str
    key: str = field(repr=False)

    @property
    def authorization(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass(frozen=True)
class RateLimitPolicy:
    limit: int
    window_s: int
    endpoint: str = "/actions/execute"
    max_wait_s: float = 15.0


@dataclass
class Target:
    name: str
    base_urls: list[str]
    credentials: dict[str, Credential] = field(default_factory=dict)
    rate_limit: RateLimitPolicy | None = None
    rate_limit_enabled: bool = True
    receiver_url: str | None = None
    receiver_token: str | None = field(default=None, repr=False)  # the receiver's control token
    signing_secrets: list[str] = field(default_factory=list, repr=False)
    header_profile: str | None = "strict"
    expected_headers: dict[str, str] | None = None
    fault_path: str | None = None
    database_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    backups: Backups | None = None  # a deployment's own backups, for the restore drill
    stack: Stack | None = field(default=None, repr=False)
    request_timeout_s: float = 10.0
    backend: str = "external"
    # names of [credentials] the load step spends its executes with (default: one key per workspace)
    load_credentials: list[str] = field(default_factory=list)
    # the service's per-attempt delivery timeout (WEBHOOK_TIMEOUT_S): how long "no webhook was sent"
    # must watch the receiver before it may say so
    delivery_timeout_s: float = 5.0
    # the service's WEBHOOK_MAX_ATTEMPTS and WEBHOOK_BACKOFF_BASE_S: what the delivery scenarios hold
    # its retries to (docs/webhooks.md's defaults unless the target config says otherwise)
    delivery_max_attempts: int = 3
    delivery_backoff_base_s: float = 0.2
    # how clients reach it: TLS verification (a CA bundle, a client certificate) and proxies
    transport: Transport = field(default_factory=Transport)
    # the service's MAX_BODY_BYTES: the body-limit scenarios send exactly this many bytes, and one more
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # URLs that each reach one replica behind the base URL ([target] replica_urls; the stack's own):
    # what a scenario needs to send one request to one replica and the next to another
    replica_urls: list[str] = field(default_factory=list)

    # -- what the target offers ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.base_urls[0]

    @property
    def replicas(self) -> list[str]:
        """One URL per replica when they are known, else the base URL alone."""
        return self.replica_urls or self.base_urls[:1]

    @property
    def controllable(self) -> bool:
        # the reference stack owns its dependencies and can kill them; a deployment's are not the gate's
        return self.stack is not None

    def credential(self, role: Role, *, exclude_workspace: str | None = None) -> Credential | None:
        """A key of ``role`` (admin keys also do dev things), optionally of another workspace."""
        for c in self.credentials.values():
            if c.role == role and c.workspace != exclude_workspace:
                return c
        if role == "dev":
            for c in self.credentials.values():
                if c.workspace != exclude_workspace:
                    return c
        return None

    def secret_values(self) -> list[str]:
        """Values that must never appear in results or evidence."""
        out = [c.key for c in self.credentials.values()] + list(self.signing_secrets)
        if self.receiver_token:
            out.append(self.receiver_token)
        # a password in any URL the target names (a receiver token, a basic-auth'd base URL) is a
        # secret too: known, it is redacted even where it appears outside its URL
        for url in (self.database_url, self.redis_url, self.receiver_url, *self.base_urls):
            pw = url_password(url)
            if pw:
                out.append(pw)
        if self.stack is not None:
            out += self.stack.secret_values()
        return sorted({v for v in out if v}, key=len, reverse=True)

    def expected(self) -> dict[str, str] | None:
        if self.expected_headers is not None:
            return dict(self.expected_headers)
        # the gate's own oracle, written from docs/service.md: never the service's profile
        if self.header_profile is not None and self.header_profile in PROFILES:
            return dict(PROFILES[self.header_profile])
        return None

    def describe(self) -> dict[str, Any]:
        """The target as results record it: no secrets, only what exists."""
        return {
            "name": self.name,
            "backend": self.backend,
            "base_urls": [mask_url_passwords(u) for u in self.base_urls],
            "replica_urls": [mask_url_passwords(u) for u in self.replicas],
            "credentials": [
                {"name": c.name, "role": c.role, "workspace": c.workspace} for c in self.credentials.values()
            ],
            "rate_limit": None
            if self.rate_limit is None
            else {
                "limit": self.rate_limit.limit,
                "window_s": self.rate_limit.window_s,
                "endpoint": self.rate_limit.endpoint,
            },
            "receiver": self.receiver_url is not None,
            "signing_secret": bool(self.signing_secrets),
            "header_profile": self.header_profile,
            "controllable": self.controllable,
            "database": self.database_url is not None,
            "backups": self.backups.describe() if self.backups is not None else None,
            "transport": self.transport.describe(),
            "versions": self.stack.versions() if self.stack is not None else {},
            # a deliberate defect switched on (selftest, proof tests): the evidence says so
            "defect": self.stack.config.defect if self.stack is not None else None,
        }

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_stack(cls, stack: Stack) -> Target:
        cfg = stack.config
        return cls(
            name=f"reference stack ({cfg.backend})" + (f", defect {cfg.defect}" if cfg.defect else ""),
            base_urls=stack.base_urls,
            replica_urls=list(stack.base_urls),
            credentials={k.name: Credential(k.name, k.role, k.workspace, k.key) for k in stack.keys},
            rate_limit=RateLimitPolicy(limit=cfg.rate_limit, window_s=cfg.window_s),
            rate_limit_enabled=cfg.rate_limit_enabled,
            receiver_url=stack.receiver_url,
            receiver_token=stack.receiver_token,
            signing_secrets=[stack.signing_secret] if stack.signing_secret else [],
            header_profile=cfg.header_profile,
            fault_path=stack.describe().get("fault_path"),
            database_url=stack.database_url,
            redis_url=stack.redis_url,
            stack=stack,
            backend=cfg.backend,
            delivery_timeout_s=stack.webhook_timeout_s,
            delivery_max_attempts=stack.webhook_max_attempts,
            delivery_backoff_base_s=stack.webhook_backoff_base_s,
            max_body_bytes=int(cfg.service_env.get("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
        )

    @classmethod
    def from_config(
        cls, url: str | None, config_path: Path | None, *, environ: Mapping[str, str] | None = None
    ) -> Target:
        env = os.environ if environ is None else environ
        doc: dict[str, Any] = {}
        if config_path is not None:
            doc = _load_toml(config_path)
        where = str(config_path) if config_path else "target"
        tsec = _table(doc, "target", where)
        base_url = url or tsec.get("base_url")
        if not base_url:
            raise UsageError("no target URL: pass --target-url or set [target].base_url in the target config")
        _check_url(str(base_url), "target URL")
        replica_urls = tsec.get("replica_urls", [])
        if not isinstance(replica_urls, list) or not all(isinstance(u, str) for u in replica_urls):
            raise UsageError(
                f"{where}: target.replica_urls must be a list of URLs, each reaching one replica directly"
            )
        for u in replica_urls:
            _check_url(u, "target.replica_urls entry")
        replica_urls = [u.rstrip("/") for u in replica_urls]

        creds: dict[str, Credential] = {}
        for name, spec in _table(doc, "credentials", where).items():
            if not isinstance(spec, dict):
                raise UsageError(
                    f"{where}: credentials.{name} must be a table {{ env = ..., workspace = ... }}"
                )
            var = spec.get("env")
            if not isinstance(var, str) or not var:
                raise UsageError(f"{where}: credentials.{name}.env must name an environment variable")
            role = spec.get("role", "admin" if name == "admin" else "dev")
            if role not in ("admin", "dev"):
                raise UsageError(f"{where}: credentials.{name}.role must be 'admin' or 'dev'")
            value = env.get(var)
            if value:  # a credential whose variable is unset is absent: its scenarios skip, saying so
                creds[name] = Credential(name, role, str(spec.get("workspace", "default")), value)

        rl = _table(doc, "rate_limit", where)
        policy = None
        if rl:
            try:
                policy = RateLimitPolicy(
                    limit=_positive_int(rl, "limit", where),
                    window_s=_positive_int(rl, "window_s", where),
                    endpoint=str(rl.get("endpoint", "/actions/execute")),
                    # default: one window, so a scenario that needs a fresh window can always wait for it
                    max_wait_s=float(rl.get("max_wait_s", rl.get("window_s", 15.0))),
                )
            except (TypeError, ValueError):
                raise UsageError(f"{where}: rate_limit.max_wait_s must be a number") from None

        signing = _table(doc, "signing", where)
        secrets: list[str] = []
        if "secret_env" in signing:
            value = env.get(str(signing["secret_env"]))
            if value:
                secrets.append(value)

        deliveries = _table(doc, "deliveries", where)
        receiver = deliveries.get("receiver_url")
        receiver_token = None
        if receiver is not None:
            _check_url(str(receiver), "deliveries.receiver_url")
            if urlsplit(str(receiver)).username or urlsplit(str(receiver)).password:
                # userinfo becomes Basic auth and would replace the receiver's bearer token
                raise UsageError(
                    f"{where}: deliveries.receiver_url must not carry credentials; give the receiver's "
                    "token by variable name in deliveries.token_env"
                )
            token_env = deliveries.get("token_env")
            if not isinstance(token_env, str) or not token_env:
                raise UsageError(
                    f"{where}: deliveries.token_env must name the environment variable holding the "
                    "receiver's control token (the RELAY_GATE_RECEIVER_TOKEN it was started with)"
                )
            # unset: the receiver is there but cannot be read; its scenarios skip, saying so
            receiver_token = env.get(token_env) or None
        timeout = deliveries.get("timeout_s", 5.0)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 60:
            raise UsageError(
                f"{where}: deliveries.timeout_s must be the service's WEBHOOK_TIMEOUT_S in seconds (0-60]"
            )
        max_attempts = deliveries.get("max_attempts", 3)
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or not 1 <= max_attempts <= 10:
            raise UsageError(
                f"{where}: deliveries.max_attempts must be the service's WEBHOOK_MAX_ATTEMPTS, 1 to 10"
            )
        backoff = deliveries.get("backoff_base_s", 0.2)
        if not isinstance(backoff, int | float) or isinstance(backoff, bool) or not 0 <= backoff <= 10:
            raise UsageError(
                f"{where}: deliveries.backoff_base_s must be the service's WEBHOOK_BACKOFF_BASE_S in "
                "seconds, 0 to 10"
            )

        headers = _table(doc, "headers", where)
        profile = headers.get("profile", "strict")
        expected = headers.get("expected")
        if expected is not None and not isinstance(expected, dict):
            raise UsageError(f"{where}: headers.expected must be a table of header = value")
        if expected is None and profile not in PROFILES:
            raise UsageError(
                f"{where}: headers.profile must be one of {sorted(PROFILES)} (or give headers.expected)"
            )

        load_names = _table(doc, "load", where).get("credentials", [])
        if not isinstance(load_names, list) or not all(isinstance(n, str) for n in load_names):
            raise UsageError(f"{where}: load.credentials must be a list of [credentials] names")
        unknown = [n for n in load_names if n not in _table(doc, "credentials", where)]
        if unknown:
            raise UsageError(
                f"{where}: load.credentials names {unknown}, which [credentials] does not define"
            )

        db = _table(doc, "database", where)
        db_url = env.get(str(db["url_env"])) if "url_env" in db else None
        # optional: with it, the keys-in-Redis scenario can look; without it, that scenario is not
        # applicable to the target (its Redis is not the gate's to read)
        rsec = _table(doc, "redis", where)
        redis_url = env.get(str(rsec["url_env"])) if "url_env" in rsec else None
        if redis_url is not None and urlsplit(redis_url).scheme not in ("redis", "rediss"):
            raise UsageError(f"{where}: the variable redis.url_env names does not hold a redis:// URL")

        max_body = _table(doc, "api", where).get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        if not isinstance(max_body, int) or isinstance(max_body, bool) or max_body < 1:
            raise UsageError(
                f"{where}: api.max_body_bytes must be the service's MAX_BODY_BYTES, a positive integer"
            )

        backups = parse_backups(_table(doc, "backups", where), config_path=config_path, where=where)
        # every certificate file is read now: a bad one is exit 2 before any request is sent
        transport = Transport.from_config(
            _table(doc, "tls", where), _table(doc, "network", where),
            base=config_path.parent if config_path is not None else None, where=where, environ=environ,
        )  # fmt: skip
        for u in (str(base_url), *replica_urls):
            transport.check_proxy(u, where)

        return cls(
            name=str(tsec.get("name", urlsplit(str(base_url)).hostname)),
            base_urls=[str(base_url).rstrip("/")]
            + [u for u in replica_urls if u != str(base_url).rstrip("/")],
            replica_urls=replica_urls,
            credentials=creds,
            rate_limit=policy,
            receiver_url=str(receiver).rstrip("/") if receiver else None,
            receiver_token=receiver_token,
            signing_secrets=secrets,
            header_profile=str(profile) if expected is None else "custom",
            expected_headers={str(k): str(v) for k, v in expected.items()} if expected else None,
            fault_path=str(headers["error_path"]) if "error_path" in headers else None,
            database_url=db_url,
            redis_url=redis_url,
            backups=backups,
            delivery_timeout_s=float(timeout),
            delivery_max_attempts=max_attempts,
            delivery_backoff_base_s=float(backoff),
            load_credentials=list(load_names),
            transport=transport,
            max_body_bytes=max_body,
        )


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"target config {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"target config {path} is not valid TOML: {exc}") from None
    unknown = set(doc) - _SECTIONS
    if unknown:
        raise UsageError(f"{path}: unknown section(s) {sorted(unknown)}; known: {sorted(_SECTIONS)}")
    for section, keys in SCHEMA.items():
        table = doc.get(section)
        if not isinstance(table, dict):
            continue  # _table() says what is wrong with it
        if keys is None:  # credentials: each entry a table of CREDENTIAL_KEYS
            for name, spec in table.items():
                extra = set(spec) - CREDENTIAL_KEYS if isinstance(spec, dict) else set()
                if extra:
                    raise UsageError(
                        f"{path}: unknown key(s) {sorted(extra)} in credentials.{name}; "
                        f"known: {sorted(CREDENTIAL_KEYS)}"
                    )
            continue
        extra = set(table) - keys
        if extra:
            raise UsageError(f"{path}: unknown key(s) {sorted(extra)} in [{section}]; known: {sorted(keys)}")
    return doc


def _table(doc: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise UsageError(f"{where}: [{name}] must be a table")
    return value


def _positive_int(table: dict[str, Any], key: str, where: str) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{where}: rate_limit.{key} must be a positive integer")
    return value


def _check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{what} {url!r} is not an http(s) URL")
