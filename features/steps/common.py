"""Steps and fixtures every feature shares: the credentials, the smoke, executes found in the audit trail.

Steps talk to the Target over HTTP only. Data passes through fixtures (``target_fixture``), never a
global context. Every module of features/steps is a pytest plugin (features/plugin.py registers them),
so any feature can use them; what they share that is not a step is in features/support.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from features.support import quota, skips
from features.support.api_support import walk_audit
from features.support.executes import NOTIFY, Execution, admitted_execute
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, Target


@pytest.fixture
def dev(target: Target, request: pytest.FixtureRequest) -> Credential:
    """A dev key: of the workspace the quota plan gave this scenario (features/support/quota.py), so its
    executes never meet a quota another scenario spent."""
    cred = target.credential("dev")
    if cred is None:
        skips.missing_config(f"{target.name}: no dev key configured")
    planned = quota.assigned(request, target)
    return planned[0] if planned and planned[0].role == "dev" else cred


@pytest.fixture
def admin(target: Target) -> Credential:
    cred = target.credential("admin")
    if cred is None:
        skips.missing_config(f"{target.name}: no admin key configured")
    return cred


@pytest.fixture
def scenario_clock() -> dict[str, float]:
    return {"t0": time.monotonic()}


# -- smoke ------------------------------------------------------------------------------------------


@given("the service reports healthy", target_fixture="health")
def _(http: httpx.Client, scenario_clock: dict[str, float]) -> httpx.Response:
    scenario_clock["t0"] = time.monotonic()
    r = http.get("/_stcore/health")
    assert r.status_code == 200, f"GET /_stcore/health answered {r.status_code}"
    assert r.json() == {"ok": True}, f"health body was {r.text[:200]}"
    return r


@when("a developer lists the actions", target_fixture="listing")
def _(http: httpx.Client, dev: Credential) -> httpx.Response:
    return http.get("/actions", headers=dev.authorization)


@then("the catalogue lists at least one action with a parameter schema")
def _(listing: httpx.Response) -> None:
    assert listing.status_code == 200, f"GET /actions answered {listing.status_code}"
    actions = listing.json().get("actions", [])
    assert actions, "the catalogue is empty"
    assert all("id" in a and isinstance(a.get("parameters"), dict) for a in actions)


@when("the developer previews an action and executes the preview", target_fixture="execution")
def _(http: httpx.Client, dev: Credential, recorder: ExchangeRecorder, target: Target) -> Execution:
    p = http.post("/actions/preview", headers=dev.authorization, json=NOTIFY)
    assert p.status_code == 200, f"preview answered {p.status_code}: {p.text[:300]}"
    preview = p.json()
    recorder.note(
        "preview", {k: preview.get(k) for k in ("action", "destination_host", "body", "body_sha256")}
    )
    # the workspace's quota is shared with other scenarios: a 429 is waited out, not a smoke failure
    return admitted_execute(http, dev, {"preview_id": preview["preview_id"]}, target=target)


@then("the execute succeeds with a delivered webhook")
def _(execution: Execution) -> None:
    r = execution.response
    assert r.status_code == 200, f"execute answered {r.status_code}: {r.text[:300]}"
    assert execution.json.get("delivery", {}).get("status") == "delivered", execution.json


@then("an admin finds the execute in the audit log with status ok")
def _(http: httpx.Client, admin: Credential, execution: Execution, recorder: ExchangeRecorder) -> None:
    rid = execution.json["request_id"]
    found = find_in_audit(http, admin, {rid}, status="ok")
    recorder.note("audit_match", {"request_id": rid, "found": rid in found})
    assert rid in found, f"request {rid} is not in GET /audit?status=ok"


@then(parsers.parse("the smoke took at most {seconds:d} seconds"))
def _(scenario_clock: dict[str, float], recorder: ExchangeRecorder, seconds: int) -> None:
    took = time.monotonic() - scenario_clock["t0"]
    recorder.note("smoke_duration_s", round(took, 3))
    assert took <= seconds, f"the smoke took {took:.1f} s (limit {seconds} s)"


def find_in_audit(
    http: httpx.Client, admin: Credential, wanted: set[str], *, status: str | None = None, pages: int = 10
) -> set[str]:
    """Request ids from ``wanted`` found in the audit log (newest first, following cursors)."""
    found: set[str] = set()
    params: dict[str, Any] = {"limit": 500}
    if status:
        params["status"] = status
    for doc in walk_audit(http, admin, params, pages=pages):
        found |= {item["request_id"] for item in doc["items"]} & wanted
        if found == wanted:
            break
    return found
