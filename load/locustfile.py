"""Load test of the relay actions API: list, preview and execute, judged against load/slos.toml.

Run it as any locustfile (keys from the environment; see docs/load.md)::

    RELAY_API_KEY=... locust -f load/locustfile.py --host https://relay-staging.example.com \\
        --headless -u 30 -r 30 -t 5m --arrival-rate 300

``--arrival-rate R`` is the open model (R requests/s whatever the server does, latency from each
request's intended send time; ``-u`` is the pool of users sending them); without it, the classic
closed model: ``-u`` users, each waiting ``--think-time`` between requests. Either way every response
time lands in an HDR histogram per endpoint, and when Locust quits it prints the SLO verdict, writes
``results/<run-id>/load/load.json`` and exits 0 (pass), 3 (SLO breached), 4 (not valid evidence) or
5 (target unreachable, or the load generator failed). ``relay-gate load`` runs this same file.

Executes send the harmless action (load/actions.py: ``notify.send`` to the channel ``relay-gate-load``)
unless ``RELAY_LOAD_ACTIONS=catalogue``. Journey mix: ``RELAY_LOAD_WEIGHTS`` (default
``list=4,preview=4,execute=2``). Keys: ``RELAY_API_KEY``
or ``RELAY_API_KEYS`` (comma-separated; users take them round-robin, so keys of several workspaces
spread executes over several rate-limit buckets).

TLS: certificates are always verified; ``RELAY_LOAD_CA_BUNDLE`` names the CA bundle to trust,
``RELAY_LOAD_CLIENT_CERT`` / ``RELAY_LOAD_CLIENT_KEY`` a client certificate and ``RELAY_LOAD_PROXY`` an
HTTP proxy (``host:port``); ``relay-gate load`` sets them from the target config (load/transport.py).
"""

from __future__ import annotations

import json
import os
import sys

from locust import FastHttpUser, task
from locust.contrib.fasthttp import ResponseContextManager

from load import actions, plugin, transport
from load.settings import WEIGHTS_ENV, LoadSettingsError, parse_weights

try:
    WEIGHTS = parse_weights(os.environ.get(WEIGHTS_ENV))
    SSL_CONTEXT_FACTORY = transport.ssl_context_factory(os.environ)
    PROXY_HOST, PROXY_PORT = transport.proxy(os.environ)
except LoadSettingsError as exc:  # a usage error (exit 2), not a traceback from Locust's loader
    print(f"relay-gate load: {exc}", file=sys.stderr)
    sys.exit(2)


action_request = actions.chooser(os.environ)  # harmless unless RELAY_LOAD_ACTIONS=catalogue (load/actions.py)


def expect(resp: ResponseContextManager, field: str) -> None:
    """Pass a 200 whose JSON body has ``field``; fail anything else with a reason Locust groups by.

    A 429 is marked failed in Locust's own table (so it shows there), but the HDR recorder counts it
    apart from errors: the rate limiter doing its job is not a server error.
    """
    status = resp.status_code  # a property that asks the parser each time: read it once
    if status == 0:
        resp.failure(f"no response: {type(resp.error).__name__}: {resp.error}")
    elif status == 429:
        resp.failure("429 rate limited (counted apart, not a server error)")
    elif status != 200:
        resp.failure(f"HTTP {status}")
    else:
        try:
            # the bytes, not resp.json(): JSON is UTF-8 (RFC 8259), and resp.text would first work out
            # a charset from the headers and decode, on every response (invalid UTF-8 fails here too)
            body = json.loads(resp.content or b"")
        except ValueError:
            resp.failure("200 without a JSON body")
            return
        if not isinstance(body, dict) or field not in body:
            resp.failure(f"200 without {field!r} in the body")


class ActionsApiClient(FastHttpUser):
    """A client of the relay API: reads the catalogue, previews actions, executes them."""

    connection_timeout = 5.0  # an unreachable host fails fast
    network_timeout = 30.0  # a stalled server is measured up to 30 s, then counted as an error
    # certificates are verified (FastHttpUser's default is not to), with the target config's CA bundle
    # and client certificate when it has them, through its proxy if any (load/transport.py)
    insecure = False
    ssl_context_factory = staticmethod(SSL_CONTEXT_FACTORY) if SSL_CONTEXT_FACTORY else None
    proxy_host = PROXY_HOST
    proxy_port = PROXY_PORT

    def wait_time(self) -> float:
        return plugin.wait_time()

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {plugin.next_key()}"}

    @task(WEIGHTS["list"])
    def list_actions(self) -> None:
        with self.client.get(
            "/actions", name="/actions", headers=self.auth, context=plugin.pace("list"), catch_response=True
        ) as resp:
            expect(resp, "actions")

    @task(WEIGHTS["preview"])
    def preview(self) -> None:
        with self.client.post(
            "/actions/preview",
            name="/actions/preview",
            json=action_request(),
            headers=self.auth,
            context=plugin.pace("preview"),
            catch_response=True,
        ) as resp:
            expect(resp, "preview_id")

    @task(WEIGHTS["execute"])
    def execute(self) -> None:
        with self.client.post(
            "/actions/execute",
            name="/actions/execute",
            json=action_request(),
            # round-robin per request: every workspace's quota takes the same share of the executes
            headers={"Authorization": f"Bearer {plugin.next_execute_key()}"},
            context=plugin.pace("execute"),
            catch_response=True,
        ) as resp:
            expect(resp, "request_id")
