"""The quota plan: which workspace each scenario spends its executes in, and when, before the first
request is sent.

A deployment limits executes per workspace per fixed window (the seed: 60 per 60 s). Scenarios spend
that quota in different ways, declared by a tag on each scenario (:data:`SPENDS`):

    @quota-none      sends no execute
    @quota-N         N executes (1, 3, 6 or 7) from a workspace with room left
    @quota-exhausts  uses a workspace's quota up in the current window (need not find it full)
    @quota-fresh     needs one workspace untouched in the current window, and uses it up
    @quota-fresh-two needs two workspaces untouched in the current window (isolation)
    @quota-rollover  uses a workspace up, waits for the next window, then spends one there

:func:`make_plan` orders the scenarios and assigns workspaces so that no scenario is refused
because another one spent its quota:

1. the scenarios that send a few executes, on the workspace other features use (then on the others,
   as their counts fill it);
2. those that need a fresh workspace, while the others are still untouched;
3. those that only need a workspace used up (they reuse one that already is);
4. the roll-over (its wait ends the window the others used);
5. the one that needs two fresh workspaces at once, in the window the roll-over opened.

A window is waited for only where a scenario needs one: the whole rate-limit feature waits for one
window on a deployment with three workspaces. The plan is simulated window by window; a scenario that
cannot fit (too few workspaces, a wait longer than ``max_wait_s``) makes the plan infeasible (exit
2), with the numbers and what to add.

The runtime still reads the clock (features/support/rate_limit_windows.py): a burst starts in a window with
room, and waits for the next one when a slow run drifted past the planned window. The plan decides
*whose* quota is spent; the clock decides *when exactly*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# @quota-N: how many executes a scenario declares it sends (features/plugin.py lists the tags)
FEW = {"quota-1": 1, "quota-3": 3, "quota-6": 6, "quota-7": 7}
SPENDS = ("quota-none", *FEW, "quota-exhausts", "quota-fresh", "quota-fresh-two", "quota-rollover")
# run order by kind: see the module docstring
_ORDER = {"quota-none": 0, **dict.fromkeys(FEW, 0), "quota-fresh": 1, "quota-exhausts": 2,
          "quota-rollover": 3, "quota-fresh-two": 4}  # fmt: skip


class PlanError(ValueError):
    """The scenarios selected cannot run against this quota: the message says what to add."""


@dataclass(frozen=True)
class Scenario:
    key: str  # the test's node id
    title: str
    spend: str  # one of SPENDS
    # quota-exhausts only: it must use up a workspace that has an admin key (it executes with that key too)
    admin: bool = False


@dataclass(frozen=True)
class Step:
    scenario: Scenario
    workspaces: tuple[str, ...]  # in the order the scenario uses them
    window: int  # planned window, counted from the first request of the run
    waits: bool  # the scenario waits for a window to begin before it can run

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario.title, "spend": self.scenario.spend,
                "workspaces": list(self.workspaces), "window": self.window, "waits": self.waits}  # fmt: skip


@dataclass
class Plan:
    limit: int
    window_s: float
    max_wait_s: float
    workspaces: list[str]
    steps: list[Step] = field(default_factory=list)

    @property
    def windows(self) -> int:
        return 1 + max((s.window for s in self.steps), default=0)

    @property
    def waits(self) -> int:
        return sum(s.waits for s in self.steps)

    def order(self) -> list[str]:
        return [s.scenario.key for s in self.steps]

    def workspaces_of(self, key: str) -> tuple[str, ...]:
        return next((s.workspaces for s in self.steps if s.scenario.key == key), ())

    def to_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit, "window_s": self.window_s, "max_wait_s": self.max_wait_s,
            "workspaces": self.workspaces, "windows": self.windows, "waits": self.waits,
            "longest_wait_s": self.window_s if self.waits else 0,
            "steps": [s.to_json() for s in self.steps],
        }  # fmt: skip

    def render(self) -> str:
        """The plan as a terminal shows it: one line per window and scenario."""
        lines = [
            f"quota plan: {len(self.steps)} scenario(s) over {len(self.workspaces)} workspace(s) "
            f"({', '.join(self.workspaces)}), {self.limit} executes per {self.window_s:g} s each; "
            f"{self.windows} window(s), {self.waits} wait(s) of at most {self.window_s:g} s"
        ]
        for s in self.steps:
            if s.scenario.spend == "quota-none":
                continue
            wait = "waits" if s.waits else ""
            lines.append(
                f"  window {s.window} {wait:<5}  {', '.join(s.workspaces):<18} {s.scenario.spend:<16} "
                f"{s.scenario.title}"
            )
        return "\n".join(lines)


@dataclass
class _Window:
    used: dict[str, int]
    exhausted: set[str]

    @classmethod
    def empty(cls, workspaces: Sequence[str]) -> _Window:
        return cls({w: 0 for w in workspaces}, set())

    def fresh(self) -> list[str]:
        return [w for w, n in self.used.items() if n == 0]

    def room(self, w: str, limit: int) -> int:
        return 0 if w in self.exhausted else limit - self.used[w]

    def exhaust(self, w: str, limit: int) -> None:
        self.used[w] = limit
        self.exhausted.add(w)


def make_plan(
    scenarios: Sequence[Scenario],
    *,
    limit: int,
    window_s: float,
    max_wait_s: float,
    workspaces: Sequence[str],
    primary: str | None = None,
    admin_workspaces: Sequence[str] = (),
) -> Plan:
    """Order ``scenarios`` and give each its workspaces (``primary``: the one other features use, by
    default the first; ``admin_workspaces``: those with an admin key, where an ``admin`` scenario
    exhausts its quota); :class:`PlanError` when they cannot all run."""
    if not workspaces:
        raise PlanError("the target config names no key: add [credentials] (one dev key per workspace)")
    wss = list(workspaces)
    primary = primary if primary in wss else wss[0]
    plan = Plan(limit, window_s, max_wait_s, wss)
    spending = [s for s in scenarios if s.spend != "quota-none"]
    problems = _impossible(spending, limit=limit, window_s=window_s, max_wait_s=max_wait_s, n_ws=len(wss))
    admins = [x for x in wss if x in admin_workspaces]
    if any(s.admin for s in spending) and not admins:
        problems.append(
            "a scenario uses up the quota of a workspace with an admin key, and no configured workspace "
            "has both a dev and an admin key: add the admin key of a dev key's workspace to [credentials]"
        )
    if problems:
        raise PlanError("; ".join(problems))
    ordered = sorted(scenarios, key=lambda s: _ORDER[s.spend])  # stable: feature order within a kind
    w, win = 0, _Window.empty(wss)

    def advance() -> None:
        nonlocal w, win
        w, win = w + 1, _Window.empty(wss)

    # the others first, so fresh workspaces stay fresh for the scenarios that need them
    others = [x for x in wss if x != primary]
    for s in ordered:
        waits = False
        if s.spend == "quota-none":
            plan.steps.append(Step(s, (), w, False))
            continue
        if s.spend in FEW:
            n = FEW[s.spend]
            room = [x for x in [primary, *others] if win.room(x, limit) >= n]
            if not room:
                advance()
                waits, room = True, [primary]
            ws: tuple[str, ...] = (room[0],)
            win.used[room[0]] += n
        elif s.spend in ("quota-fresh", "quota-fresh-two"):
            need = 2 if s.spend == "quota-fresh-two" else 1
            fresh = [x for x in [*others, primary] if x in win.fresh()]
            if len(fresh) < need:
                advance()
                waits, fresh = True, [*others, primary]
            ws = tuple(fresh[:need])
            win.exhaust(ws[0], limit)
            for x in ws[1:]:
                win.used[x] += 1  # the second workspace only shows its quota is intact
        elif s.spend == "quota-exhausts":
            allowed = admins if s.admin else wss
            spent = [x for x in [*others, primary] if x in win.exhausted and x in allowed]
            pick = spent[0] if spent else min(allowed, key=lambda x: (win.room(x, limit), x == primary))
            ws = (pick,)
            win.exhaust(pick, limit)
        else:  # quota-rollover: use one up in this window, wait, spend one in the next
            spent = [x for x in [primary, *others] if x in win.exhausted]
            pick = spent[0] if spent else primary
            ws = (pick,)
            win.exhaust(pick, limit)
            plan.steps.append(Step(s, ws, w, True))  # the scenario itself waits for the next window
            advance()
            win.used[pick] += 1
            continue
        plan.steps.append(Step(s, ws, w, waits))
    return plan


def _impossible(
    scenarios: Sequence[Scenario], *, limit: int, window_s: float, max_wait_s: float, n_ws: int
) -> list[str]:
    """What no ordering can fix, in numbers, with what to add."""
    out = []
    two = [s.title for s in scenarios if s.spend == "quota-fresh-two"]
    if two and n_ws < 2:
        out.append(
            f"{len(two)} scenario(s) need two workspaces at once ({two[0]!r}) and the config gives keys "
            f"for {n_ws}: add a dev key of another workspace to [credentials]"
        )
    most = max((FEW[s.spend] for s in scenarios if s.spend in FEW), default=0)
    if limit < most:
        out.append(f"the quota is {limit} executes per window; a scenario sends {most} in one")
    waits = [s.title for s in scenarios if s.spend == "quota-rollover"]
    # a roll-over is always waited for; fresh workspaces beyond the ones there are need another window
    fresh = sum(
        2 if s.spend == "quota-fresh-two" else 1 for s in scenarios if s.spend.startswith("quota-fresh")
    )
    if fresh > n_ws:
        waits.append(f"{fresh} fresh workspace(s) with {n_ws} workspace(s)")
    if waits and max_wait_s < window_s:
        out.append(
            f"waiting for the next window can take up to {window_s:g} s ({waits[0]}) but "
            f"rate_limit.max_wait_s is {max_wait_s:g}: raise it to {window_s:g} (or leave it out: the "
            f"default is one window), or add workspaces / deselect the scenario"
        )
    return out


# -- the load step ----------------------------------------------------------------------------------


def load_room(limit: int) -> float:
    """Executes a load may plan per workspace and window: three standard deviations below the limit.

    Locust picks each request's journey at random by weight, so the executes a window gets vary like
    Poisson arrivals (standard deviation ~ the square root of the mean): planning ``m`` with
    ``m + 3 sqrt(m) <= limit`` keeps a refused execute rarer than one window in a few hundred
    (60 -> 40.8, 10 -> 4, 1000 -> 906)."""
    return max(0.0, (math.sqrt(limit + 2.25) - 1.5) ** 2)


@dataclass(frozen=True)
class LoadPlan:
    """How a load's executes fit the deployment's quota: per window, per workspace."""

    limit: int
    window_s: float
    workspaces: int
    executes_per_s: float  # over the whole run; the keys take them round-robin, request by request

    @property
    def per_window(self) -> float:
        """Executes each workspace gets in one window, on average."""
        return self.executes_per_s * self.window_s / self.workspaces

    @property
    def room(self) -> float:
        return load_room(self.limit)

    def to_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit, "window_s": self.window_s, "workspaces": self.workspaces,
            "executes_per_s": round(self.executes_per_s, 3),
            "per_workspace_per_window": round(self.per_window, 1), "room_per_window": round(self.room, 1),
        }  # fmt: skip

    def render(self) -> str:
        return (
            f"load quota plan: {self.executes_per_s:.2f} executes/s over {self.workspaces} workspace(s): "
            f"{self.per_window:.1f} per workspace per {self.window_s:g} s window, of {self.room:.1f} planned "
            f"room (quota {self.limit})"
        )


def plan_load(*, limit: int, window_s: float, keys: int, rate: float, weights: dict[str, int]) -> LoadPlan:
    """The open model's executes (``rate`` x the execute share), taken round-robin by ``keys``
    workspaces; :class:`PlanError` with the numbers and what to change when a workspace would get
    more than :func:`load_room` of its quota in a window."""
    if keys < 1:
        raise PlanError("the load has no key: add [credentials] (one dev key per workspace)")
    share = weights.get("execute", 0) / sum(weights.values())
    plan = LoadPlan(limit, window_s, keys, rate * share)
    if share and plan.per_window > plan.room:
        fits_rate = plan.room * keys / (share * window_s)
        fits_keys = math.ceil(plan.executes_per_s * window_s / plan.room) if plan.room else "more"
        raise PlanError(
            f"the load sends {rate:g} req/s x {100 * share:.1f} % executes x {window_s:g} s = "
            f"{rate * share * window_s:.0f} executes per window over {keys} workspace(s), "
            f"{plan.per_window:.0f} each; each allows {limit}, of which {plan.room:.0f} can be planned "
            f"(Locust picks journeys at random: the rest is room for chance). Lower --rate to "
            f"{fits_rate:.1f} or the execute weight (--weights), or give keys of {fits_keys} workspaces "
            "([load] credentials in the target config)"
        )
    return plan
