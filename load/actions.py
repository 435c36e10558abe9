"""What the load sends to /actions/preview and /actions/execute.

Against a real system an execute is real: the relay delivers it, signed, to the workspace's webhook.
By default the load therefore sends only the **harmless action**: ``notify.send`` at severity
``info`` to the channel ``relay-gate-load``, with a message that says it is a load test and needs no
action — a receiver can route or drop that channel. ``RELAY_LOAD_ACTIONS=catalogue`` sends the whole
catalogue instead (notify, tickets, deploy promotions with varying parameters): only for the
reference stack, whose receiver is the gate's own (``relay-gate load`` sets it there).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from typing import Any

ACTIONS_ENV = "RELAY_LOAD_ACTIONS"
HARMLESS_CHANNEL = "relay-gate-load"
_sequence = itertools.count(1)


def harmless(n: int | None = None) -> dict[str, Any]:
    """The action a load sends to a real system: a notification nobody needs to act on."""
    n = next(_sequence) if n is None else n
    return {
        "action": "notify.send",
        "params": {
            "channel": HARMLESS_CHANNEL,
            "message": f"relay-gate load test request {n}: no action needed",
            "severity": "info",
        },
    }


def catalogue(n: int | None = None) -> dict[str, Any]:
    """One of the catalogue's actions with valid, varying parameters (the reference stack only)."""
    n = next(_sequence) if n is None else n
    kind = random.choice(("notify.send", "ticket.create", "deploy.promote"))  # noqa: S311
    if kind == "notify.send":
        params: dict[str, Any] = {
            "channel": "ops-alerts",
            "message": f"load test message {n}",
            "severity": "info",
        }
    elif kind == "ticket.create":
        params = {"title": f"load test ticket {n}", "priority": "normal", "labels": ["load-test"]}
    else:
        params = {"service": "relay", "version": f"1.{n % 100}.{n}", "environment": "staging"}
    return {"action": kind, "params": params}


def chooser(environ: Mapping[str, str]) -> Any:
    """The request maker the environment asks for (harmless unless told otherwise)."""
    return catalogue if environ.get(ACTIONS_ENV, "harmless").strip().lower() == "catalogue" else harmless
