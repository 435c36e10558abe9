"""TLS and proxies: certificates verified everywhere the gate talks to a target, with the target
config's CA bundle and client certificate; proxies only when the config says so.

Real TLS throughout: a CA and certificates made with ``cryptography`` (tests/gate/tlsproxy.py) and an
HTTPS front on 127.0.0.1 relaying to a reference stack, which the gate treats as a deployment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives import serialization

from features.support.recording import ExchangeRecorder
from gate.client.probe import probe
from gate.client.receiver import ReceiverClient
from gate.client.target import Target
from gate.client.transport import PROXY_ENV, Transport
from gate.errors import InfrastructureError, UsageError
from gate.redaction import Redactor
from gate.stack.receiver import Receiver
from gate.stack.reference import Stack, StackConfig
from load.launch import LOCUSTFILE
from tests.gate.tlsproxy import Pki, TlsProxy, make_pki
from tests.load import fakeserver

PY = sys.executable


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _upstream(url: str) -> tuple[str, int]:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return host, int(port.rstrip("/"))


def _config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "staging.toml"
    path.write_text(text)
    return path


# -- the target config ----------------------------------------------------------------------------------


def test_ca_bundle_and_client_cert_resolve_against_the_config_file(tmp_path: Path, pki: Pki) -> None:
    certs = tmp_path / "conf" / "certs"
    certs.mkdir(parents=True)
    for src in (pki.ca, pki.client_cert, pki.client_key):
        (certs / src.name).write_bytes(src.read_bytes())
    cfg = _config(
        tmp_path / "conf",
        '[tls]\nca_bundle = "certs/ca.pem"\nclient_cert = "certs/client.pem"\n'
        'client_key = "certs/client-key.pem"\n',
    )
    t = Target.from_config("https://127.0.0.1:9", cfg)
    assert t.transport.ca_bundle == certs / "ca.pem" and t.transport.client_key == certs / "client-key.pem"
    assert t.describe()["transport"] == {
        "ca_bundle": str(certs / "ca.pem"), "client_certificate": True, "proxies_from_env": False,
    }  # fmt: skip
    # no config at all: verified against the default store, no proxy
    assert Target.from_config("https://example.com", None).transport == Transport()


@pytest.mark.parametrize(
    ("tls", "needle"),
    [
        ('ca_bundle = "missing.pem"', "[tls].ca_bundle = "),
        ('ca_bundle = "not-pem.txt"', "[tls].ca_bundle = "),
        ("ca_bundle = 3", "[tls].ca_bundle must be a file path"),
        ('client_key = "client-key.pem"', "[tls].client_key needs [tls].client_cert"),
        ('client_cert = "client.pem"\nclient_key = "server-key.pem"', "[tls].client_cert = 'client.pem' ("),
        ('client_cert = "client.pem"\nclient_key = "encrypted-key.pem"', "the key is encrypted"),
        ("verify = false", "unknown key(s) ['verify'] in [tls]"),
    ],
)
def test_a_bad_tls_section_is_a_usage_error_naming_the_key(
    tmp_path: Path, pki: Pki, tls: str, needle: str
) -> None:
    for src in (pki.client_cert, pki.client_key, pki.server_key):
        (tmp_path / src.name).write_bytes(src.read_bytes())
    (tmp_path / "not-pem.txt").write_text("this is not a certificate\n")
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), password=None)
    (tmp_path / "encrypted-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    cfg = _config(tmp_path, f"[tls]\n{tls}\n")
    with pytest.raises(UsageError) as info:
        Target.from_config("https://127.0.0.1:9", cfg)
    assert needle in str(info.value)
    if "ca_bundle = " in needle:
        assert "PEM file of the CA certificates" in str(info.value)  # ... and the fix


def test_proxies_only_when_the_config_says_so(tmp_path: Path) -> None:
    env = {"HTTPS_PROXY": "http://proxy.internal:3128", "http_proxy": "http://plain.internal:8080",
           "NO_PROXY": "localhost,.corp.example"}  # fmt: skip
    off = Transport(environ=env)
    assert off.proxy_for("https://staging.example.com") is None
    assert off.httpx_options("https://staging.example.com")["trust_env"] is False
    on = Transport(proxies_from_env=True, environ=env)
    assert on.proxy_for("https://staging.example.com") == "http://proxy.internal:3128"
    assert on.proxy_for("http://staging.example.com:8000") == "http://plain.internal:8080"
    assert on.proxy_for("https://api.corp.example") is None and on.proxy_for("http://localhost:1") is None
    assert on.locust_env("https://staging.example.com")[PROXY_ENV] == "proxy.internal:3128"
    with pytest.raises(UsageError, match="cannot send"):
        Transport(proxies_from_env=True, environ={"HTTPS_PROXY": "http://u:p@proxy:1"}).locust_env(
            "https://x"
        )
    cfg = _config(tmp_path, "[network]\nproxies_from_env = true\n")
    with pytest.raises(UsageError, match="only http:// and https:// proxies"):
        Target.from_config("https://x.example", cfg, environ={"ALL_PROXY": "socks5://proxy:1080"})
    with pytest.raises(UsageError, match="true or false"):
        Target.from_config("https://x.example", _config(tmp_path, '[network]\nproxies_from_env = "yes"\n'))


class _ForwardProxy(BaseHTTPRequestHandler):
    """An HTTP proxy that answers every request itself, keeping the request lines it saw."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.requestline)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_clients_use_the_proxy_the_environment_names_when_configured() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"HTTP_PROXY": f"http://127.0.0.1:{server.server_address[1]}"}
        rec = ExchangeRecorder(Redactor(()), transport=Transport(proxies_from_env=True, environ=env))
        with rec.client("http://relay.staging.invalid:8080", timeout=5) as client:
            assert client.get("/actions").status_code == 200
    finally:
        server.shutdown()
        server.server_close()
    assert _ForwardProxy.seen == ["GET http://relay.staging.invalid:8080/actions HTTP/1.1"]


# -- the clients, against real TLS ----------------------------------------------------------------------


@pytest.fixture
def https_fake(pki: Pki) -> Iterator[TlsProxy]:
    """HTTPS in front of a tiny server answering 200 to everything."""
    with fakeserver.answering() as url, TlsProxy(_upstream(url), pki) as proxy:
        yield proxy


def test_the_probe_and_the_recorded_clients_verify(https_fake: TlsProxy, pki: Pki) -> None:
    trusted = Transport(ca_bundle=pki.ca)
    probe(https_fake.url, trusted)
    with pytest.raises(InfrastructureError) as info:
        probe(https_fake.url, Transport())  # certifi does not know our CA
    message = str(info.value)
    assert "TLS failed" in message and "certificate verify failed" in message
    assert "[tls].ca_bundle" in message
    with pytest.raises(InfrastructureError, match="TLS failed"):
        probe(https_fake.url, Transport(ca_bundle=pki.other_ca))

    rec = ExchangeRecorder(Redactor(()), transport=trusted)
    with rec.client(https_fake.url, timeout=5) as client:
        assert client.get("/actions").status_code == 200
    assert rec.exchanges[0]["url"].startswith("https://127.0.0.1:")
    with (
        ExchangeRecorder(Redactor(())).client(https_fake.url, timeout=5) as client,
        pytest.raises(Exception) as failed,
    ):
        client.get("/actions")
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)


def test_the_receiver_client_verifies(pki: Pki) -> None:
    with Receiver() as rx, TlsProxy(("127.0.0.1", rx.port), pki) as front:
        trusted = ReceiverClient(front.url, token=rx.token, transport=Transport(ca_bundle=pki.ca))
        untrusted = ReceiverClient(front.url, token=rx.token)
        try:
            assert trusted.healthy() and trusted.instance() == rx.instance
            assert not untrusted.healthy()
        finally:
            trusted.close()
            untrusted.close()


def test_a_client_certificate_is_presented_when_asked(pki: Pki) -> None:
    with fakeserver.answering() as url, TlsProxy(_upstream(url), pki, require_client_cert=True) as front:
        probe(front.url, Transport(ca_bundle=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key))
        with pytest.raises(InfrastructureError, match="TLS failed"):
            probe(front.url, Transport(ca_bundle=pki.ca))


# -- relay-gate against an HTTPS deployment -------------------------------------------------------------


@pytest.fixture(scope="module")
def staging() -> Iterator[Stack]:
    with Stack(StackConfig(replicas=1)) as s:
        yield s


@pytest.fixture(scope="module")
def https_staging(staging: Stack, pki: Pki) -> Iterator[TlsProxy]:
    with TlsProxy(_upstream(staging.base_url), pki) as front:
        yield front


def gate(*argv: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "gate.cli", *argv], capture_output=True, text=True, timeout=300, cwd=cwd,
        env={**os.environ, **env},
    )  # fmt: skip


def _staging_config(folder: Path, staging: Stack, tls: str = "") -> tuple[Path, dict[str, str]]:
    env = {"STG_DEV_KEY": staging.key("dev").key, "STG_ADMIN_KEY": staging.key("admin").key}
    cfg = _config(
        folder,
        f"""[target]
name = "staging"
[credentials]
dev = {{ env = "STG_DEV_KEY", workspace = "default" }}
admin = {{ env = "STG_ADMIN_KEY", workspace = "default" }}
[rate_limit]
limit = {staging.config.rate_limit}
window_s = {staging.config.window_s}
{tls}
""",
    )
    return cfg, env


@pytest.mark.stack
@pytest.mark.parametrize("tls", ["", '[tls]\nca_bundle = "other-ca.pem"'], ids=["default-store", "wrong-ca"])
def test_an_unverifiable_deployment_fails_closed(
    tmp_path: Path, staging: Stack, https_staging: TlsProxy, pki: Pki, tls: str
) -> None:
    (tmp_path / "other-ca.pem").write_bytes(pki.other_ca.read_bytes())
    cfg, env = _staging_config(tmp_path, staging, tls)
    proc = gate("check", "-m", "smoke", "--target-url", https_staging.url, "--target-config", cfg.name,
                env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "TLS failed" in proc.stderr and "certificate verify failed" in proc.stderr
    assert "[tls].ca_bundle" in proc.stderr


@pytest.mark.stack
def test_with_its_ca_bundle_the_smoke_and_headers_pass(
    tmp_path: Path, staging: Stack, https_staging: TlsProxy, pki: Pki
) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(pki.ca.read_bytes())
    cfg, env = _staging_config(tmp_path, staging, '[tls]\nca_bundle = "certs/ca.pem"')
    results = tmp_path / "run"
    proc = gate("check", "-m", "smoke or headers", "--target-url", https_staging.url, "--target-config",
                cfg.name, "--results", results.name, env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = json.loads((results / "features" / "summary.json").read_text())
    assert summary["target"]["transport"]["ca_bundle"] == str(tmp_path / "certs" / "ca.pem")
    scenarios = [s for f in summary["features"] for s in f["scenarios"]]
    assert {f["feature"] for f in summary["features"]} >= {"Post-deploy smoke"}
    assert sum(s["outcome"] == "passed" for s in scenarios) >= 5
    record = json.loads(next((results / "features" / "scenarios").glob("smoke-*.json")).read_text())
    assert all(e["url"].startswith("https://127.0.0.1:") for e in record["exchanges"])


@pytest.mark.stack
def test_an_unreadable_ca_bundle_is_exit_2_before_any_request(
    tmp_path: Path, staging: Stack, https_staging: TlsProxy
) -> None:
    cfg, env = _staging_config(tmp_path, staging, '[tls]\nca_bundle = "certs/nowhere.pem"')
    before = https_staging.connections
    for verb in (["check", "-m", "smoke"], ["load", "--duration", "2s"], ["smoke"]):
        proc = gate(
            *verb, "--target-url", https_staging.url, "--target-config", cfg.name, env=env, cwd=tmp_path
        )
        assert proc.returncode == 2, [*verb, proc.stdout, proc.stderr]
        assert "[tls].ca_bundle = 'certs/nowhere.pem'" in proc.stderr
        assert "No such file or directory" in proc.stderr and "relative to the target config" in proc.stderr
    assert https_staging.connections == before, "a request was sent before the config was refused"


LENIENT = "[endpoints.list]\nerror_rate_max_pct = 1\nmin_requests = 10\nlatency = [{ percentile = 95, max_ms = 5000, min_samples = 10 }]\n"  # noqa: E501


@pytest.mark.stack
def test_locust_verifies_with_the_ca_bundle(
    tmp_path: Path, staging: Stack, https_staging: TlsProxy, pki: Pki
) -> None:
    (tmp_path / "ca.pem").write_bytes(pki.ca.read_bytes())
    (tmp_path / "slos.toml").write_text(LENIENT)
    cfg, env = _staging_config(tmp_path, staging, '[tls]\nca_bundle = "ca.pem"')
    proc = gate("load", "--target-url", https_staging.url, "--target-config", cfg.name, "--rate", "20",
                "--duration", "3s", "--weights", "list=1", "--slos", "slos.toml", "--results", "run",
                env=env, cwd=tmp_path)  # fmt: skip
    doc = json.loads((tmp_path / "run" / "load" / "load.json").read_text())
    listed = doc["endpoints"]["list"]
    assert listed["requests"] >= 20 and listed["errors"] == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

    # the same locustfile without the bundle: every request fails on the certificate, none is trusted
    plain = subprocess.run(
        [PY, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
         "--host", https_staging.url, "-u", "2", "-r", "2", "-t", "2s", "--stop-timeout", "0",
         "--arrival-rate", "10", "--slos", "slos.toml", "--results-dir", "plain"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "RELAY_API_KEY": staging.key("dev").key, "RELAY_LOAD_WEIGHTS": "list=1"},
    )  # fmt: skip
    doc = json.loads((tmp_path / "plain" / "load" / "load.json").read_text())
    listed = doc["endpoints"]["list"]
    assert listed["requests"] > 0 and listed["errors"] == listed["requests"], plain.stderr[-3000:]
    assert "CERTIFICATE_VERIFY_FAILED" in plain.stderr or "certificate verify failed" in plain.stderr
