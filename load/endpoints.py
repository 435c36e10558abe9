"""The endpoints a load run exercises and judges, by the names the SLO spec and results files use.

A request is grouped by its route (Locust's ``name=``), so ``(method, route)`` maps a Locust sample
back to one of these names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    route: str
    what: str


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("list", "GET", "/actions", "the action catalogue"),
        Endpoint("preview", "POST", "/actions/preview", "validate an action, show what execute would send"),
        Endpoint("execute", "POST", "/actions/execute", "audited, signed webhook delivery"),
    )
}
BY_ROUTE: dict[tuple[str, str], str] = {(e.method, e.route): e.name for e in ENDPOINTS.values()}


@functools.lru_cache(maxsize=1024)  # once per response in the generator; a locustfile has few routes
def endpoint_for(method: str, route: str) -> str:
    """The endpoint name of a sample, or ``"METHOD route"`` for a request of a journey someone added."""
    return BY_ROUTE.get((method.upper(), route), f"{method.upper()} {route}")
