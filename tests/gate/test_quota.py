"""gate/client/quota.py: the quota plan — whose workspace each scenario spends, in which window, and when a
plan cannot fit, before the first request."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.client.quota import FEW, SPENDS, PlanError, Scenario, load_room, make_plan, plan_load

ROOT = Path(__file__).resolve().parents[2]


def _tagged() -> list[tuple[Scenario, list[str]]]:
    """Every scenario of features/*.feature with its @quota-* tag and all its tags, in file order."""
    out = []
    for path in sorted((ROOT / "features").glob("*.feature")):
        tags: list[str] = []
        for line in path.read_text().splitlines():
            s = line.strip()
            if s.startswith("@"):
                tags += [t.lstrip("@") for t in s.split()]
            elif s.startswith("Scenario"):
                title = s.split(":", 1)[1].strip()
                spend = [t for t in tags if t in SPENDS]
                assert len(spend) == 1, f"{path.name}: {title!r} needs exactly one @quota-* tag, has {spend}"
                admin = spend[0] == "quota-exhausts" and "needs-admin-key" in tags
                out.append((Scenario(f"{path.name}::{title}", title, spend[0], admin=admin), tags))
                tags = []
            elif s.startswith("Feature"):
                tags = []
    return out


def _scenarios() -> list[Scenario]:
    return [s for s, _ in _tagged()]


def _deployment_scenarios() -> list[Scenario]:
    """What runs against a deployment: nothing that needs control of its Redis/PostgreSQL (the plan
    is made of the scenarios that will run, features/support/quota.py), no Redis inspection (no
    [redis] in the config)."""
    return [s for s, tags in _tagged() if "needs-control" not in tags and "keys in Redis" not in s.title]


def test_the_seed_deployment_waits_for_one_window_with_three_workspaces() -> None:
    """60 executes per 60 s, the keys relay-gate serve makes: default (admin, dev), ws-a, ws-b."""
    plan = make_plan(
        _deployment_scenarios(),
        limit=60,
        window_s=60,
        max_wait_s=60,
        workspaces=["default", "ws-a", "ws-b"],
        admin_workspaces=["default"],
    )
    assert plan.waits == 1 and plan.windows == 2, plan.render()
    by_title = {s.scenario.title: s for s in plan.steps}
    rollover = by_title["The quota comes back when the window rolls over"]
    isolation = by_title["One workspace using up its quota leaves another workspace's quota intact"]
    assert rollover.waits and isolation.window == rollover.window + 1
    # the workspaces isolation needs fresh were not touched in its window before it
    assert all(
        not (set(s.workspaces) & set(isolation.workspaces))
        for s in plan.steps
        if s.window == isolation.window and s is not isolation
    ), plan.render()


def test_no_scenario_meets_a_quota_another_one_spent() -> None:
    """Replay the plan window by window: a scenario that needs room finds it, a fresh one finds its
    workspaces untouched in its window."""
    for workspaces in (["default", "ws-a", "ws-b"], ["default", "ws-a"], ["default", "a", "b", "c", "d"]):
        plan = make_plan(
            _scenarios(),
            limit=10,
            window_s=3,
            max_wait_s=15,
            workspaces=workspaces,
            admin_workspaces=["default"],
        )
        used: dict[tuple[int, str], int] = {}
        for step in plan.steps:
            spend = step.scenario.spend
            if spend in FEW:
                (w,) = step.workspaces
                assert used.get((step.window, w), 0) + FEW[spend] <= 10, plan.render()
                used[(step.window, w)] = used.get((step.window, w), 0) + FEW[spend]
            elif spend.startswith("quota-fresh"):
                for w in step.workspaces:
                    assert used.get((step.window, w), 0) == 0, f"{step.scenario.title}: {w}\n{plan.render()}"
                    used[(step.window, w)] = 10
            elif spend in ("quota-exhausts", "quota-rollover"):
                (w,) = step.workspaces
                used[(step.window, w)] = 10
                if spend == "quota-rollover":
                    used[(step.window + 1, w)] = 1


def test_the_plan_keeps_every_scenario_and_puts_the_few_execute_ones_first() -> None:
    scenarios = _scenarios()
    plan = make_plan(
        scenarios,
        limit=60,
        window_s=60,
        max_wait_s=60,
        workspaces=["default", "ws-a", "ws-b"],
        admin_workspaces=["default"],
    )
    assert sorted(plan.order()) == sorted(s.key for s in scenarios)
    kinds = [s.scenario.spend for s in plan.steps]
    last_few = max(i for i, k in enumerate(kinds) if k in FEW or k == "quota-none")
    first_other = min(i for i, k in enumerate(kinds) if k not in FEW and k != "quota-none")
    assert last_few < first_other
    assert plan.to_json()["steps"][0].keys() == {"scenario", "spend", "workspaces", "window", "waits"}


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"workspaces": ["default"]}, "two workspaces at once"),
        ({"max_wait_s": 15}, "raise it to 60"),
        ({"limit": 4}, "a scenario sends 7"),
        ({"workspaces": []}, "[credentials]"),
        ({"admin_workspaces": []}, "add the admin key of a dev key's workspace"),
    ],
)
def test_a_plan_that_cannot_fit_says_the_numbers_and_what_to_add(
    kwargs: dict[str, object], says: str
) -> None:
    args: dict[str, object] = {
        "limit": 60,
        "window_s": 60,
        "max_wait_s": 60,
        "workspaces": ["default", "a", "b"],
        "admin_workspaces": ["default"],
    }
    args.update(kwargs)
    with pytest.raises(PlanError) as err:
        make_plan(_scenarios(), **args)  # type: ignore[arg-type]
    assert says in str(err.value)


def test_the_rendered_plan_names_every_spending_scenario_and_its_workspace() -> None:
    plan = make_plan(
        _deployment_scenarios(),
        limit=60,
        window_s=60,
        max_wait_s=60,
        workspaces=["default", "a", "b"],
        admin_workspaces=["default"],
    )
    text = plan.render()
    assert text.startswith("quota plan: ") and "1 wait(s) of at most 60 s" in text
    for step in plan.steps:
        if step.scenario.spend != "quota-none":
            assert step.scenario.title in text


def test_a_scenario_using_up_a_workspace_with_its_admin_key_gets_a_workspace_that_has_one() -> None:
    admin = [s for s in _scenarios() if s.admin]
    assert admin, "no @quota-exhausts scenario needs the admin key any more: drop this test"
    for admins in (["ws-b"], ["ws-a", "ws-b"]):
        plan = make_plan(
            _scenarios(), limit=10, window_s=3, max_wait_s=15, workspaces=["default", "ws-a", "ws-b"],
            admin_workspaces=admins,
        )  # fmt: skip
        for step in plan.steps:
            if step.scenario.admin:
                assert set(step.workspaces) <= set(admins), plan.render()


# -- the load step ---------------------------------------------------------------------------------


def test_a_load_that_fits_the_quota_is_planned_with_room_for_chance() -> None:
    plan = plan_load(
        limit=60, window_s=60, keys=3, rate=24, weights={"list": 11, "preview": 11, "execute": 2}
    )
    assert (
        plan.executes_per_s == 2.0 and plan.per_window == 40.0 and plan.room == pytest.approx(40.83, abs=0.01)
    )
    assert "40.0 per workspace per 60 s window" in plan.render()
    # the room leaves three standard deviations of Poisson chance below the limit
    for limit in (5, 10, 60, 1000):
        m = load_room(limit)
        assert m + 3 * m**0.5 == pytest.approx(limit, rel=1e-9)


def test_a_load_that_cannot_fit_says_rate_share_window_against_keys_and_limit() -> None:
    with pytest.raises(PlanError) as err:
        plan_load(limit=60, window_s=60, keys=3, rate=120, weights={"list": 4, "preview": 4, "execute": 2})
    text = str(err.value)
    assert "120 req/s x 20.0 % executes x 60 s = 1440 executes per window over 3 workspace(s)" in text
    assert "Lower --rate to 10.2" in text and "give keys of 36 workspaces" in text


def test_a_load_without_executes_needs_no_room() -> None:
    plan = plan_load(limit=1, window_s=60, keys=1, rate=1000, weights={"list": 1, "preview": 0, "execute": 0})
    assert plan.executes_per_s == 0
