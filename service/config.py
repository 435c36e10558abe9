"""The one Settings class of the relay service: every knob, read from the environment, loud on bad values.

The seed's variable names are kept (``RATE_LIMIT_ENABLED``, ``RATE_LIMIT_EXEC_PER_MIN``, ``REDIS_URL``,
``ACTIONS_SIGNING_SECRET``, ``ADMIN_KEY``, ``DEV_KEY``, ``DATABASE_URL``); new settings follow the same
style. A bad value stops the process at start-up with a message that names the variable.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import cached_property
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Workspace identifiers end up inside Redis keys (``rl:{workspace}:{window}``) and audit rows, so they
# are restricted to a shape that cannot carry a key separator, a glob character or an unbounded length.
WORKSPACE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # for pydantic (Rust regex: $ is the very end)
WORKSPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")  # for Python: \Z, since $ admits a final newline
# API keys are opaque bearer tokens (RFC 6750 b64token characters); 16 characters at the least.
API_KEY_RE = re.compile(r"^[A-Za-z0-9\-._~+/]{16,256}=*\Z")

MIN_SECRET_BYTES = 32


def signing_key_bytes(secret: str) -> bytes:
    """The HMAC key a configured signing secret stands for.

    ``whsec_<base64>`` (the Standard Webhooks form) is the base64-decoded bytes; anything else (the
    seed's ``openssl rand -hex 32``) is its UTF-8 bytes. Both signature schemes use the same key.
    """
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    return secret.encode("utf-8")


class ApiKey(BaseModel):
    """One bearer key: what it may do and which workspace it acts for."""

    key: SecretStr
    role: Literal["admin", "dev"]
    workspace: str

    @field_validator("key")
    @classmethod
    def _key_shape(cls, v: SecretStr) -> SecretStr:
        if not API_KEY_RE.match(v.get_secret_value()):
            raise ValueError("API keys must be 16-256 token characters (A-Z a-z 0-9 - . _ ~ + /)")
        return v

    @field_validator("workspace")
    @classmethod
    def _workspace_shape(cls, v: str) -> str:
        if not WORKSPACE_RE.match(v):
            raise ValueError(f"workspace {v!r} must match {WORKSPACE_RE.pattern}")
        return v


def _check_url(name: str, value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{name} must be a {'/'.join(schemes)} URL with a host, got an unparsable value")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError as exc:
        raise ValueError(f"{name} has an invalid port") from exc
    return value


class Settings(BaseSettings):
    """Every setting of the relay service. Environment variable = field name in upper case."""

    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    # -- rate limiting (seed item 1) --------------------------------------------------------------
    rate_limit_enabled: bool = True
    # Executes admitted per workspace per window. The name is the seed's; the window is
    # RATE_LIMIT_WINDOW_S (60 s by default, hence "per min").
    rate_limit_exec_per_min: int = Field(60, ge=1, le=1_000_000)
    rate_limit_window_s: int = Field(60, ge=1, le=86_400)
    redis_url: str | None = None
    # Every Redis call is bounded by these, so a hung Redis cannot stall a request.
    redis_connect_timeout_ms: int = Field(100, ge=1, le=10_000)
    redis_socket_timeout_ms: int = Field(100, ge=1, le=10_000)
    # After a Redis failure the limiter re-probes with exponential backoff up to this cap.
    redis_reprobe_max_s: float = Field(2.0, gt=0, le=60)

    # -- webhook delivery and signing (seed item 2) --------------------------------------------------
    actions_signing_secret: SecretStr | None = None
    # More secrets for rotation: each one also signs (webhook-signature carries one v1 entry per secret).
    actions_signing_secrets_extra: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    webhook_url: str | None = None
    # host[:port] entries a delivery may go to; empty means only WEBHOOK_URL's own host.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(3, ge=1, le=10)
    webhook_backoff_base_s: float = Field(0.2, ge=0, le=10)

    # -- security headers (seed item 3) --------------------------------------------------------------
    security_headers_profile: Literal["strict", "seed"] = "strict"

    # -- auth ----------------------------------------------------------------------------------------
    admin_key: SecretStr | None = None
    dev_key: SecretStr | None = None
    # JSON list of {"key": ..., "role": "admin"|"dev", "workspace": ...} for more keys and workspaces.
    api_keys: list[ApiKey] = Field(default_factory=list)

    # -- audit log -----------------------------------------------------------------------------------
    database_url: SecretStr | None = None
    db_pool_min: int = Field(1, ge=0, le=100)
    db_pool_max: int = Field(10, ge=1, le=100)
    db_timeout_s: float = Field(2.0, gt=0, le=60)
    db_statement_timeout_ms: int = Field(2000, ge=1, le=600_000)

    # -- request handling ----------------------------------------------------------------------------
    max_body_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024)
    # Key for the stateless preview_id tokens; derived from the signing secret or admin key when unset.
    preview_secret: SecretStr | None = None
    preview_ttl_s: int = Field(900, ge=10, le=86_400)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("actions_signing_secrets_extra", mode="before")
    @classmethod
    def _split_secrets(cls, v: object) -> object:
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v: object) -> object:
        if isinstance(v, str):
            return [s.strip().lower() for s in v.split(",") if s.strip()]
        return v

    @field_validator("actions_signing_secret")
    @classmethod
    def _secret_length(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(signing_key_bytes(v.get_secret_value())) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (generate: openssl rand -hex 32)")
        return v

    @field_validator("actions_signing_secrets_extra")
    @classmethod
    def _extra_secret_length(cls, v: list[SecretStr]) -> list[SecretStr]:
        for s in v:
            if len(signing_key_bytes(s.get_secret_value())) < MIN_SECRET_BYTES:
                raise ValueError(f"every secret must be at least {MIN_SECRET_BYTES} bytes")
        return v

    @field_validator("admin_key", "dev_key")
    @classmethod
    def _key_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not API_KEY_RE.match(v.get_secret_value()):
            raise ValueError("API keys must be 16-256 token characters (A-Z a-z 0-9 - . _ ~ + /)")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        return _check_url("REDIS_URL", v, ("redis", "rediss", "unix"))

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, v: str | None) -> str | None:
        return _check_url("WEBHOOK_URL", v, ("http", "https"))

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            try:
                _check_url("DATABASE_URL", v.get_secret_value(), ("postgresql", "postgres"))
            except ValueError:
                # never echo the value: it carries the database password
                raise ValueError("DATABASE_URL must be a postgresql:// URL with a host") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        seen: set[str] = set()
        for k in self.all_keys:
            raw = k.key.get_secret_value()
            if raw in seen:
                raise ValueError("API_KEYS: the same key is configured twice")
            seen.add(raw)
        if (
            self.webhook_url
            and self.webhook_allowed_hosts
            and not destination_allowed(self.webhook_url, self.allowed_hosts)
        ):
            raise ValueError(
                f"WEBHOOK_URL host {host_port(self.webhook_url)} is not in WEBHOOK_ALLOWED_HOSTS"
            )
        return self

    # -- derived -------------------------------------------------------------------------------------
    @property
    def all_keys(self) -> list[ApiKey]:
        keys = list(self.api_keys)
        if self.admin_key is not None:
            keys.append(ApiKey(key=self.admin_key, role="admin", workspace="default"))
        if self.dev_key is not None:
            keys.append(ApiKey(key=self.dev_key, role="dev", workspace="default"))
        return keys

    @property
    def signing_keys(self) -> list[bytes]:
        """HMAC keys, primary first; empty when signing is not configured."""
        if self.actions_signing_secret is None:
            return []
        secrets = [self.actions_signing_secret, *self.actions_signing_secrets_extra]
        return [signing_key_bytes(s.get_secret_value()) for s in secrets]

    @property
    def allowed_hosts(self) -> frozenset[str]:
        if self.webhook_allowed_hosts:
            return frozenset(self.webhook_allowed_hosts)
        return frozenset({host_port(self.webhook_url)}) if self.webhook_url else frozenset()

    @cached_property
    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret, for redaction: none of these may reach a log line."""
        vals = [k.key.get_secret_value() for k in self.all_keys]
        for s in (self.actions_signing_secret, self.preview_secret, *self.actions_signing_secrets_extra):
            if s is not None:
                vals.append(s.get_secret_value())
        if self.database_url is not None:
            pw = urlsplit(self.database_url.get_secret_value()).password
            if pw:
                vals.append(pw)
        return tuple(v for v in vals if v)


def host_port(url: str) -> str:
    """``host:port`` of a URL, lower case, with the scheme's default port filled in."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


# ASCII controls, space and DEL: no URI contains them raw (RFC 3986). urlsplit silently drops some of
# them (tab, CR, LF, leading C0/space) while the HTTP client refuses them, so a URL carrying any is one
# the allowlist check and the request would read differently: refused, never reinterpreted.
_NOT_IN_A_URI = re.compile(r"[\x00-\x20\x7f]")


def destination_allowed(url: str, allowed: frozenset[str]) -> bool:
    """True when ``url`` is http(s) without userinfo and its host (or host:port) is allowlisted.

    Never raises: a URL that does not parse (unbalanced IPv6 brackets, a host that changes under NFKC
    normalisation, a bad port) is simply not allowed.
    """
    if _NOT_IN_A_URI.search(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    try:
        hp = host_port(url)
    except ValueError:
        return False
    return hp in allowed or parts.hostname.lower() in allowed
