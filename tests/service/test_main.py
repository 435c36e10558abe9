"""``python -m service``: start-up validation and what the process writes to its log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gate.stack.procs import free_port, wait_until
from gate.stack.receiver import Receiver

SECRET = "signing-secret-" + "q" * 40
ADMIN = "admin-key-zzzzzzzzzzzzzzzzzz"
DEV = "dev-key-yyyyyyyyyyyyyyyyyyyy"


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RATE_LIMIT", "REDIS", "ACTIONS", "WEBHOOK"))
    }
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("ACTIONS_SIGNING_SECRET", "too-short-secret-value"),
        ("RATE_LIMIT_EXEC_PER_MIN", "0"),
        ("RATE_LIMIT_EXEC_PER_MIN", "-5"),
        ("REDIS_URL", "not a url"),
        ("WEBHOOK_URL", "ftp://example.com/x"),
        ("DATABASE_URL", "postgresql://u:hunter2hunter2@/nohost"),
        ("API_KEYS", '[{"key": "short", "role": "dev", "workspace": "a"}]'),
        ("API_KEYS", '[{"key": "long-enough-key-123456", "role": "dev", "workspace": "a:b*"}]'),
        ("SECURITY_HEADERS_PROFILE", "lax"),
    ],
)
def test_bad_configuration_exits_nonzero_naming_the_variable(var: str, value: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service", "--port", str(free_port())],
        env=_env(**{var: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert var in proc.stderr
    if len(value) > 8:
        assert value not in proc.stderr, "the offending value (maybe a secret) was echoed"


def test_logs_are_json_with_request_ids_and_no_secrets(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "relay.log"
    with Receiver() as rx, open(log_path, "wb") as log:
        env = _env(
            ACTIONS_SIGNING_SECRET=SECRET,
            ADMIN_KEY=ADMIN,
            DEV_KEY=DEV,
            WEBHOOK_URL=f"{rx.url}/hook",
            DATABASE_URL=f"postgresql://relay:pg-password-abcdef@127.0.0.1:{free_port()}/relay",
            DB_TIMEOUT_S="0.3",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(
                lambda: httpx.get(f"{base}/_stcore/health", timeout=0.5).status_code == 200,
                timeout=20,
                component="relay",
                what="health",
                proc=proc,  # type: ignore[arg-type]
                log=log_path,
            )
            with httpx.Client(base_url=base, timeout=5) as c:
                r = c.get("/_stcore/health")
                assert "server" not in r.headers
                c.get("/actions", headers={"Authorization": f"Bearer {DEV}"})
                c.get("/actions", headers={"Authorization": f"Bearer {DEV}x"})
                c.get("/audit", headers={"Authorization": f"Bearer {ADMIN}"})
                c.post(
                    "/actions/execute",
                    headers={"Authorization": f"Bearer {DEV}"},
                    json={"action": "notify.send", "params": {"channel": "a", "message": SECRET}},
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
    text = log_path.read_text()
    for secret in (SECRET, ADMIN, DEV, "pg-password-abcdef"):
        assert secret not in text, f"a secret reached the log: {secret[:6]}..."
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    access = [e for e in lines if e.get("logger") == "relay.access"]
    assert {e["route"] for e in access} >= {"/_stcore/health", "/actions", "/audit", "/actions/execute"}
    assert all(e.get("request_id") for e in access)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells how it ended
    assert proc.returncode in (0, -signal.SIGTERM)
    assert any("shutdown complete" in e.get("msg", "").lower() for e in lines), "no graceful shutdown"
