"""TLS verification and the proxy for Locust's users, from the environment ``relay-gate load`` sets.

gate/client/transport.py resolves the target config's ``[tls]`` and ``[network]`` in the parent and hands the
result over as environment variables (so plain ``locust -f load/locustfile.py`` takes them too):

``RELAY_LOAD_CA_BUNDLE``    PEM CA certificates to trust instead of the default store (certifi's)
``RELAY_LOAD_CLIENT_CERT``  a client certificate (mutual TLS); ``RELAY_LOAD_CLIENT_KEY`` its key
``RELAY_LOAD_PROXY``        ``host:port`` of an HTTP proxy (CONNECT for https targets)

Certificates are always verified: the User sets ``insecure = False`` (Locust's FastHttpUser defaults to
no verification). gevent's ssl is imported only when a context is made, inside a Locust process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gate.client.transport import CA_BUNDLE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, PROXY_ENV
from load.settings import LoadSettingsError


def ssl_context_factory(environ: Mapping[str, str]) -> Callable[..., Any] | None:
    """For FastHttpUser.ssl_context_factory: None (Locust's verifying default) unless a CA bundle or a
    client certificate is set. geventhttpclient calls it with ``cafile=`` its default bundle."""
    bundle = environ.get(CA_BUNDLE_ENV) or None
    cert = environ.get(CLIENT_CERT_ENV) or None
    key = environ.get(CLIENT_KEY_ENV) or None
    if bundle is None and cert is None:
        return None

    def factory(cafile: str | None = None, **_: Any) -> Any:
        import gevent.ssl

        ctx = gevent.ssl.create_default_context(cafile=bundle or cafile)
        if cert is not None:
            ctx.load_cert_chain(cert, key)
        return ctx

    return factory


def bind_source(address: str) -> None:
    """Send every new connection of this process's users from ``address`` (a multi-homed generator,
    or several workers on one host told apart by address). geventhttpclient makes its sockets in
    ``ConnectionPool._create_tcp_socket`` (documented there as the socket factory to override); the
    users' pools are made per User, so binding there covers plain and TLS connections alike."""
    import ipaddress

    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise LoadSettingsError(f"--source-address must be an IP address (got {address!r})") from None
    from geventhttpclient.connectionpool import ConnectionPool

    make = ConnectionPool._create_tcp_socket

    def bound(self: Any, family: int, socktype: int, protocol: int) -> Any:
        sock = make(self, family, socktype, protocol)
        sock.bind((address, 0))
        return sock

    ConnectionPool._create_tcp_socket = bound  # type: ignore[method-assign]


def proxy(environ: Mapping[str, str]) -> tuple[str | None, int | None]:
    """(host, port) of the proxy to use, or (None, None)."""
    value = (environ.get(PROXY_ENV) or "").strip()
    if not value:
        return None, None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise LoadSettingsError(f"{PROXY_ENV} must be HOST:PORT (got {value!r})")
    return host.strip("[]"), int(port)
