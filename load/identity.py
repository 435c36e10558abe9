"""Which workers a distributed run may count: each worker's identity, the master's bookkeeping of
who joined, who was refused and who came late, and how load.json names them.

A worker introduces itself to the master right after it connects (``relay_hello``): its host, pid and
source address, a digest of the code it runs (the locustfile Locust loaded and the ``load`` package
beside it), a digest of its SLO spec (the parsed spec with every default explicit, so formatting
does not matter) and the settings that shape its requests (journey weights, action mix). The master
compares them with its own: a worker that differs, or that never introduces itself (not relay-gate's
locustfile), is refused — removed and told to quit — and named in the verdict. Its measurements could
not be merged into the same verdict.

This module does not import Locust: load/distributed.py drives it inside Locust processes, and
load/verdict.py reads what :meth:`Fleet.facts` wrote into load.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load import actions, settings
from load.slos import SloSpec

LOAD_PACKAGE = Path(__file__).resolve().parent
# the master waits this long (by default) for --expect-workers workers to join; 0 waits forever
DEFAULT_JOIN_TIMEOUT_S = 60.0
# a worker that connected must introduce itself within this long, or it is refused
HELLO_TIMEOUT_S = 5.0


def code_digest(locustfiles: Iterable[str | Path]) -> str:
    """SHA-256 over the locustfile(s) Locust loaded and the ``load`` package's modules (what the
    worker's recording, encoding and pacing run on), by content: the path does not matter."""
    h = hashlib.sha256()
    files = [Path(f) for f in locustfiles]
    files += sorted(LOAD_PACKAGE.glob("*.py"))
    for path in files:
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes() if path.is_file() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def spec_digest(spec: SloSpec) -> str:
    data = spec.to_json()
    data.pop("source", None)  # the same spec read from another path is the same spec
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def request_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """What shapes a worker's requests besides its code: the journey weights and the action mix."""
    return {
        "weights": settings.parse_weights(environ.get(settings.WEIGHTS_ENV)),
        "actions": actions.chooser(environ).__name__,
    }


def introduce(
    *,
    locustfiles: Iterable[str | Path],
    spec: SloSpec,
    environ: Mapping[str, str],
    source_address: str | None,
) -> dict[str, Any]:
    """This process's identity, as a worker sends it and as the master compares against."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "source_address": source_address,
        "code": code_digest(locustfiles),
        "spec": spec_digest(spec),
        "settings": request_settings(environ),
    }


def mismatch(master: Mapping[str, Any], worker: Mapping[str, Any]) -> str | None:
    """Why ``worker`` cannot be counted with ``master`` (None when it can)."""
    problems = []
    for key, what in (("code", "locustfile or load/ code"), ("spec", "SLO spec")):
        theirs, ours = str(worker.get(key))[:12], str(master.get(key))[:12]
        if worker.get(key) != master.get(key):
            problems.append(f"its {what} differs (digest {theirs}, the master's {ours})")
    if worker.get("settings") != master.get("settings"):
        problems.append(f"its request settings {worker.get('settings')} differ from {master.get('settings')}")
    return "; ".join(problems) or None


def describe(node: str, info: Mapping[str, Any] | None) -> str:
    """``node`` (Locust's worker id: hostname + uuid) with what the worker told about itself."""
    if not info:
        return node
    where = [f"pid {info.get('pid')}"]
    if info.get("source_address"):
        where.append(f"from {info['source_address']}")
    return f"{node} ({', '.join(where)})"


@dataclass
class Fleet:
    """The master's view of its workers, kept across Locust's test resets (workers join before)."""

    expected: int | None = None  # --expect-workers (None: not waited for, e.g. the web UI)
    join_timeout_s: float = DEFAULT_JOIN_TIMEOUT_S
    info: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> its hello
    accepted: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)  # node -> why
    participants: set[str] = field(default_factory=set)  # accepted workers the test started with
    late: set[str] = field(default_factory=set)  # joined after the test had started
    timed_out: bool = False  # the join timeout passed with fewer than ``expected`` workers

    def reset_test(self) -> None:
        self.participants = set()
        self.late = set()

    def name(self, node: str) -> str:
        return describe(node, self.info.get(node))

    def facts(self) -> dict[str, Any]:
        """What load.json's ``facts.workers`` records (load/verdict.py judges it)."""
        return {
            "expected": self.expected,
            "join_timeout_s": self.join_timeout_s,
            "joined": sorted(self.participants),
            "refused": {node: self.refused[node] for node in sorted(self.refused)},
            "late": sorted(self.late),
            "timed_out": self.timed_out,
            "names": {node: self.name(node) for node in sorted({*self.info, *self.participants})},
        }


def problems(workers: Mapping[str, Any] | None) -> list[str]:
    """Why the workers of a run (``facts.workers`` of a load.json) make it invalid; empty when none."""
    if not workers:
        return []
    names: Mapping[str, str] = workers.get("names", {})
    out = []
    expected, joined = workers.get("expected"), list(workers.get("joined", []))
    never = int(expected) - len(joined) - len(workers.get("refused", {})) if expected is not None else 0
    if never > 0:
        who = ", ".join(names.get(n, n) for n in joined) or "none"
        out.append(
            f"{never} of {expected} expected workers never joined within the "
            f"{workers.get('join_timeout_s', 0):g} s join timeout (joined: {who})"
        )
    for node, why in workers.get("refused", {}).items():
        out.append(f"worker {names.get(node, node)} was refused: {why}")
    for node in workers.get("late", []):
        out.append(f"worker {names.get(node, node)} joined after the test had started")
    return out
