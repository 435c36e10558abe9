"""How the gate connects to a target: TLS verification, a client certificate, proxies.

Target config (docs/gate.md, "TLS and proxies")::

    [tls]
    ca_bundle = "certs/staging-ca.pem"     # PEM CA certificates to trust; relative to the config file
    client_cert = "certs/gate.pem"          # optional: a client certificate (mutual TLS) ...
    client_key = "certs/gate-key.pem"       # ... and its unencrypted key (or put both in client_cert)

    [network]
    proxies_from_env = true   # HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY (default: no proxy)

Certificates are verified everywhere the gate talks to a target — the scenarios' clients, the
receiver client, the reachability probes, Locust — and there is no switch to turn that off: a
certificate the gate cannot verify is an error, never a warning. Without ``ca_bundle`` the trust store
is certifi's (what httpx and Locust use by default); with it, the bundle replaces it. A bundle or
certificate that cannot be read is a usage error (exit 2) raised while the config is read, before any
request is sent. Proxies are used only when the config says so, and then only the proxy variables are
read: not netrc, not SSL_CERT_FILE, which httpx's ``trust_env`` would also bring in.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import certifi

from gate.errors import UsageError

TLS_KEYS = frozenset({"ca_bundle", "client_cert", "client_key"})
NETWORK_KEYS = frozenset({"proxies_from_env"})
# what Locust's processes read (load/transport.py): the parent resolves, the children only load
CA_BUNDLE_ENV = "RELAY_LOAD_CA_BUNDLE"
CLIENT_CERT_ENV = "RELAY_LOAD_CLIENT_CERT"
CLIENT_KEY_ENV = "RELAY_LOAD_CLIENT_KEY"
PROXY_ENV = "RELAY_LOAD_PROXY"


@dataclass(frozen=True)
class Transport:
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    proxies_from_env: bool = False
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)  # tests

    # -- TLS ------------------------------------------------------------------------------------------
    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """Verifying context: the CA bundle (or certifi's), hostname checked, the client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_bundle or certifi.where()))
        if self.client_cert is not None:
            ctx.load_cert_chain(
                str(self.client_cert),
                str(self.client_key) if self.client_key else None,
                password=_no_password,
            )
        return ctx

    # -- proxies --------------------------------------------------------------------------------------
    def proxy_for(self, url: str) -> str | None:
        """The proxy for ``url``: none unless ``proxies_from_env``; then as curl and urllib read the
        environment (``<scheme>_proxy`` or ``all_proxy``, lower case first; ``no_proxy`` bypasses)."""
        if not self.proxies_from_env:
            return None
        env = os.environ if self.environ is None else self.environ
        parts = urlsplit(url)
        proxy = _env(env, f"{parts.scheme}_proxy") or _env(env, "all_proxy")
        if not proxy:
            return None
        if _bypassed(parts.hostname or "", parts.port, _env(env, "no_proxy") or ""):
            return None
        return proxy

    # -- clients --------------------------------------------------------------------------------------
    def httpx_options(self, url: str) -> dict[str, Any]:
        """What an httpx client talking to ``url`` is built with (never ``trust_env``)."""
        return {"verify": self.ssl_context, "trust_env": False, "proxy": self.proxy_for(url)}

    def locust_env(self, url: str) -> dict[str, str]:
        """The environment that gives Locust (load/transport.py) the same verification and proxy."""
        env = {
            CA_BUNDLE_ENV: str(self.ca_bundle or ""),
            CLIENT_CERT_ENV: str(self.client_cert or ""),
            CLIENT_KEY_ENV: str(self.client_key or ""),
            PROXY_ENV: "",
        }
        proxy = self.proxy_for(url)
        if proxy:
            parts = urlsplit(proxy)
            if parts.username or parts.password:
                raise UsageError(
                    f"the proxy for {url} needs credentials, which the load generator cannot send "
                    "(geventhttpclient takes a proxy's host and port only); exempt the target with "
                    "NO_PROXY or use a proxy without authentication"
                )
            env[PROXY_ENV] = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        return env

    def describe(self) -> dict[str, Any]:
        return {
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else None,
            "client_certificate": self.client_cert is not None,
            "proxies_from_env": self.proxies_from_env,
        }

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        tls: Mapping[str, Any],
        network: Mapping[str, Any],
        *,
        base: Path | None,
        where: str,
        environ: Mapping[str, str] | None = None,
    ) -> Transport:
        """``[tls]`` and ``[network]`` of a target config whose folder is ``base``; every file is read
        now, so a bad one is a usage error naming its key before any request is sent."""
        paths = {key: _path(tls, key, base, where) for key in ("ca_bundle", "client_cert", "client_key")}
        if paths["client_key"] is not None and paths["client_cert"] is None:
            raise UsageError(f"{where}: [tls].client_key needs [tls].client_cert (the certificate it signs)")
        proxies = network.get("proxies_from_env", False)
        if not isinstance(proxies, bool):
            raise UsageError(f"{where}: [network].proxies_from_env must be true or false")
        transport = cls(**paths, proxies_from_env=proxies, environ=environ)
        transport.check(where, written=tls)
        return transport

    def check(self, where: str, *, written: Mapping[str, Any] | None = None) -> None:
        """Load every file the context needs, now; say which key is wrong (as ``written`` in the config,
        and where that led) and how to fix it."""

        def shown(key: str, path: Path | None) -> str:
            raw = (written or {}).get(key)
            return f"{raw!r} ({path})" if raw is not None and str(raw) != str(path) else repr(str(path))

        try:
            ctx = ssl.create_default_context()
            if self.ca_bundle is not None:
                ctx.load_verify_locations(cafile=str(self.ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"{where}: [tls].ca_bundle = {shown('ca_bundle', self.ca_bundle)} cannot be used "
                f"({_why(exc)}); give the path of a readable PEM file of the CA certificates that sign "
                "the target's certificate, relative to the target config"
            ) from None
        if self.client_cert is not None:
            try:
                ctx.load_cert_chain(
                    str(self.client_cert), str(self.client_key) if self.client_key else None,
                    password=_no_password,
                )  # fmt: skip
            except (OSError, ssl.SSLError, _EncryptedKey) as exc:
                raise UsageError(
                    f"{where}: [tls].client_cert = {shown('client_cert', self.client_cert)} / client_key "
                    f"= {shown('client_key', self.client_key)} cannot be used ({_why(exc)}); give a "
                    "readable PEM certificate and its unencrypted key (both in client_cert, or the key "
                    "in client_key)"
                ) from None

    def check_proxy(self, url: str, where: str) -> None:
        proxy = self.proxy_for(url)
        if proxy is not None and urlsplit(proxy).scheme not in ("http", "https"):
            raise UsageError(
                f"{where}: [network].proxies_from_env picks the proxy {proxy!r} for {url} from the "
                "environment; only http:// and https:// proxies are supported (exempt the target with "
                "NO_PROXY, or set proxies_from_env = false)"
            )


def _env(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name.lower()) or env.get(name.upper()) or None


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """NO_PROXY as urllib and curl read it: ``*``, or names (``example.com`` and ``.example.com`` both
    cover subdomains), optionally ``:port``; IP addresses match exactly."""
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        name, _, want_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        name = name.lstrip(".").strip("[]")
        if not name or (want_port and str(port) != want_port):
            continue
        if host == name or host.endswith("." + name):
            return True
    return False


def _path(table: Mapping[str, Any], key: str, base: Path | None, where: str) -> Path | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where}: [tls].{key} must be a file path (relative to the target config)")
    path = Path(value).expanduser()
    return path if path.is_absolute() or base is None else Path(os.path.abspath(base / path))


class _EncryptedKey(Exception):
    def __str__(self) -> str:
        return "the key is encrypted"


def _no_password() -> str:
    # without a callback OpenSSL would prompt on the terminal for an encrypted key's passphrase
    raise _EncryptedKey


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# -- reachability ---------------------------------------------------------------------------------------


def tls_failure(exc: BaseException) -> str | None:
    """The TLS reason behind an httpx error (an unverifiable certificate, a refused handshake), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return text if "[SSL" in text or "CERTIFICATE" in text.upper() else None
