"""The quota plan for this session: made from the scenarios' ``@quota-*`` tags before the first
request, used by the steps to know whose quota they spend.

At collection (after ``-m``/``-k`` deselected what they did), the scenarios that will run against the
target — those whose ``@needs-*`` tags the target meets — go to :func:`gate.client.quota.make_plan` with the
target's policy and workspaces. The feature items are reordered as planned, the plan is printed and
written to ``<results>/features/quota-plan.json``; a plan that cannot fit stops the session before
any request (``<results>/features/plan-refused.txt``, exit 4 of pytest, 2 of ``relay-gate check``).
Steps ask :func:`assigned` for the keys of the workspaces the plan gave their scenario.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from features.support.rate_limit_support import Ledger, primary_workspace, workspace_keys
from gate.client.quota import SPENDS, Plan, PlanError, Scenario, make_plan
from gate.client.target import Credential, RateLimitPolicy, Target
from gate.results import PLAN_REFUSED_MARKER, Redactor, write_json
from gate.stack.reference import StackConfig

PLAN_FILE = "quota-plan.json"
_PLAN_KEY = pytest.StashKey[Plan]()


def spend_of(item: pytest.Item) -> str | None:
    found = [m.name for m in item.iter_markers() if m.name in SPENDS]
    return found[0] if found else None


def _shape(config: pytest.Config) -> tuple[RateLimitPolicy | None, list[str], str | None, Target | None]:
    """(policy, workspaces, primary workspace, the deployment's Target or None for the reference
    stack), known before anything is started."""
    url = config.getoption("--target-url", default=None)
    path = config.getoption("--target-config", default=None)
    if url or path:
        target = Target.from_config(url, path)
        dev = target.credential("dev")
        return (target.rate_limit, [c.workspace for c in workspace_keys(target)],
                dev.workspace if dev else None, target)  # fmt: skip
    stack = StackConfig()  # what the session's stack will be: its policy and workspaces
    policy = RateLimitPolicy(limit=stack.rate_limit, window_s=stack.window_s)
    return policy, ["default", *stack.extra_workspaces], "default", None


def plan_session(
    config: pytest.Config, items: list[pytest.Item], runs: Callable[[pytest.Item, Target | None], bool]
) -> Plan | None:
    """Plan the scenarios among ``items`` that will run (``runs`` answers from their needs), reorder
    the items as planned; None when nothing spends quota or the target has no policy."""
    scenarios = [i for i in items if spend_of(i) is not None]
    untagged = [i.nodeid for i in items if _is_scenario(i) and spend_of(i) is None]
    if untagged:
        raise pytest.UsageError(f"scenario(s) without a @quota-* tag (gate/client/quota.py): {untagged[:3]}")
    policy, workspaces, primary, target = _shape(config)
    admin_workspaces = (
        [c.workspace for c in target.credentials.values() if c.role == "admin"] if target else ["default"]
    )  # the reference stack's admin key is default's
    running = [i for i in scenarios if runs(i, target)]
    if policy is None or not any(spend_of(i) != "quota-none" for i in running):
        return None
    plan = make_plan(
        [
            Scenario(i.nodeid, _title(i), str(spend_of(i)), admin=_exhausts_admin_workspace(i))
            for i in running
        ],
        limit=policy.limit,
        window_s=policy.window_s,
        max_wait_s=policy.max_wait_s,
        workspaces=workspaces,
        primary=primary,
        admin_workspaces=admin_workspaces,
    )
    _reorder(items, plan)
    config.stash[_PLAN_KEY] = plan
    return plan


def _exhausts_admin_workspace(item: pytest.Item) -> bool:
    """A scenario that uses up a workspace's quota and needs the admin key executes with that key in
    the used-up workspace: the plan gives it a workspace that has one."""
    return spend_of(item) == "quota-exhausts" and item.get_closest_marker("needs-admin-key") is not None


def _template(item: pytest.Item) -> Any:
    # pytest-bdd keeps the scenario template of each generated test function in this registry
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    fn = getattr(item, "function", None)
    return scenario_wrapper_template_registry.get(fn) if fn is not None else None


def _is_scenario(item: pytest.Item) -> bool:
    return _template(item) is not None


def _title(item: pytest.Item) -> str:
    return str(_template(item).name)


def _reorder(items: list[pytest.Item], plan: Plan) -> None:
    """The planned scenarios take the places the feature items held, in the plan's order; other
    items (unit tests collected in the same session) keep theirs."""
    rank = {key: n for n, key in enumerate(plan.order())}
    slots = [n for n, i in enumerate(items) if i.nodeid in rank]
    planned = sorted((items[n] for n in slots), key=lambda i: rank[i.nodeid])
    for n, item in zip(slots, planned, strict=True):
        items[n] = item


def refuse(config: pytest.Config, problem: PlanError) -> None:
    message = (
        f"the quota plan cannot fit: {problem}. Nothing was sent. (gate/client/quota.py; the target's "
        "[rate_limit] and [credentials] decide the room)"
    )
    results: Path | None = config.getoption("--results", default=None)
    if results is not None:
        (results / "features").mkdir(parents=True, exist_ok=True)
        (results / "features" / PLAN_REFUSED_MARKER).write_text(message + "\n")
    pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)


def record(config: pytest.Config, plan: Plan) -> None:
    """Print the plan and write it to the results."""
    reporter: Any = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(plan.render())
    results: Path | None = config.getoption("--results", default=None)
    if results is not None:
        write_json(results / "features" / PLAN_FILE, "quota-plan", 1, plan.to_json(), redactor=Redactor(()))


def plan_of(config: pytest.Config) -> Plan | None:
    return config.stash.get(_PLAN_KEY, None)


def assigned(request: pytest.FixtureRequest, target: Target, n: int = 1) -> list[Credential] | None:
    """The keys of the workspaces the plan gave this scenario (None: no plan covers it)."""
    plan = plan_of(request.config)
    if plan is None:
        return None
    names = plan.workspaces_of(request.node.nodeid)
    keys = {c.workspace: c for c in workspace_keys(target)}
    creds = [keys[w] for w in names if w in keys]
    return creds[:n] if len(creds) >= n else None


def choose(
    request: pytest.FixtureRequest, target: Target, ledger: Ledger, n: int = 1, *, fresh: bool
) -> list[Credential]:
    """The planned workspaces' keys; without a plan (no policy known up front), the ledger's pick."""
    planned = assigned(request, target, n)
    if planned is not None:
        return planned
    return ledger.pick(workspace_keys(target), n, fresh=fresh, primary=primary_workspace(target))


def read_plan(results: Path) -> dict[str, Any] | None:
    path = results / "features" / PLAN_FILE
    return dict(json.loads(path.read_text())) if path.exists() else None
