"""Security headers on every status the service can answer with, under a real uvicorn over TCP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from service.headers import PROFILES
from tests.service_doc import header_profiles
from tests.threaded import ThreadedServer

ADMIN = "admin-key-0123456789abcdef"
DEV = "dev-key-0123456789abcdef00"


def _settings(profile: str) -> Settings:
    return Settings(
        _env_file=None,
        admin_key=ADMIN,
        dev_key=DEV,
        security_headers_profile=profile,
        rate_limit_exec_per_min=1,
        webhook_url="http://127.0.0.1:9/hook",
        max_body_bytes=2048,
    )


@pytest.fixture(scope="module", params=sorted(PROFILES))
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    app = create_app(_settings(request.param))

    async def boom() -> None:
        raise RuntimeError("forced failure for the header test")

    app.add_api_route("/_test/boom", boom, methods=["GET"])
    with ThreadedServer(app) as server:
        yield server.url, request.param


def _responses(base: str) -> dict[int, httpx.Response]:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    dev = {"Authorization": f"Bearer {DEV}"}
    ok_body = {"action": "notify.send", "params": {"channel": "ops", "message": "hi"}}
    with httpx.Client(base_url=base, timeout=5) as c:
        out = {
            200: c.get("/_stcore/health"),
            401: c.get("/actions"),
            403: c.get("/audit", headers=dev),
            404: c.get("/no-such-route"),
            405: c.delete("/actions", headers=auth),
            413: c.post("/actions/preview", headers=auth, content=b"{" + b" " * 4096 + b"}"),
            422: c.post(
                "/actions/preview", headers={**auth, "Content-Type": "application/json"}, content=b"{nope"
            ),
            500: c.get("/_test/boom"),
            503: c.get("/_stcore/ready"),  # no DATABASE_URL in this app
        }
        # quota 1: the first execute takes the slot (and then fails with 503: no audit log), the second is 429
        c.post("/actions/execute", headers=dev, json=ok_body)
        out[429] = c.post("/actions/execute", headers=dev, json=ok_body)
    return out


def test_every_status_carries_the_profile_exactly_once(served: tuple[str, str]) -> None:
    base, profile = served
    expected = PROFILES[profile]
    responses = _responses(base)
    for status, resp in responses.items():
        assert resp.status_code == status, (status, resp.text)
        for name, value in expected.items():
            got = resp.headers.get_list(name)
            assert got == [value], f"{status}: {name} = {got!r}"
        assert "server" not in resp.headers, f"{status} leaks Server: {resp.headers.get('server')}"
        assert "x-powered-by" not in resp.headers
        assert resp.headers.get("x-request-id")


def test_errors_are_problem_json(served: tuple[str, str]) -> None:
    base, _ = served
    for status, resp in _responses(base).items():
        if status < 400:
            continue
        assert resp.headers["content-type"].startswith("application/problem+json"), status
        body = resp.json()
        assert body["status"] == status
        assert body["title"] and body["detail"]
        assert "Traceback" not in resp.text and "RuntimeError" not in resp.text


def test_seed_profile_is_the_seed_verbatim() -> None:
    seed = PROFILES["seed"]
    assert seed["Strict-Transport-Security"] == "max-age=15552000; includeSubDomains; preload"
    assert seed["X-XSS-Protection"] == "1; mode=block"
    assert (
        "connect-src 'self' https://relay-production-f2a6.up.railway.app https://*.vercel.app"
        in (seed["Content-Security-Policy"])
    )


def test_strict_profile_follows_owasp() -> None:
    strict = PROFILES["strict"]
    assert strict["X-XSS-Protection"] == "0"
    assert strict["Content-Security-Policy"].startswith("default-src 'none'")
    max_age = int(strict["Strict-Transport-Security"].split("max-age=")[1].split(";")[0])
    assert max_age >= 31536000 or "preload" not in strict["Strict-Transport-Security"]
    assert strict["Cross-Origin-Opener-Policy"] and strict["Cross-Origin-Resource-Policy"]


def test_the_profiles_are_the_documented_table() -> None:
    """service.headers.PROFILES is exactly the table of docs/service.md ("Security headers"): every
    header of every profile, with its value, and nothing more."""
    documented = header_profiles()
    assert set(PROFILES) == set(documented)
    for name, headers in documented.items():
        assert PROFILES[name] == headers, f"profile {name!r} differs from docs/service.md's table"
