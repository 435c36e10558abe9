"""The stack's own Python servers, the relay replicas and the webhook receiver: started on a port, and
adopted only when the server answering there proves it is the process we started.

Each gets a random instance nonce in ``RELAY_GATE_INSTANCE``. A replica (``python -m gate.stack.relay``)
reports it at :data:`INSTANCE_PATH`, the receiver in its health; readiness needs the matching nonce
as well as the usual 200, so a stack never adopts another stack's server that got to the port first.
Anything else answering there is a :class:`~gate.errors.PortTaken`: our process is stopped and
:func:`gate.stack.ports.on_free_port` tries another port.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from gate.client.receiver import TOKEN_ENV
from gate.errors import PortTaken
from gate.stack.ports import on_free_port
from gate.stack.procs import ManagedProcess, wait_until
from gate.stack.receiver import INSTANCE_ENV

__all__ = [
    "INSTANCE_ENV",
    "INSTANCE_PATH",
    "new_instance",
    "relay_process",
    "start_receiver",
    "wait_relay_ready",
]

HOST = "127.0.0.1"
INSTANCE_PATH = "/_gate/instance"  # gate.stack.relay answers {"instance": RELAY_GATE_INSTANCE} here


def new_instance() -> str:
    """A nonce naming one server process of one stack."""
    return secrets.token_hex(16)


def _instance_in(response: httpx.Response) -> str | None:
    try:
        doc = response.json()
    except ValueError:
        return None
    value = doc.get("instance") if isinstance(doc, dict) else None
    return str(value) if value is not None else None


def _not_ours(component: str, port: int, url: str, response: httpx.Response) -> PortTaken:
    theirs = _instance_in(response)
    who = f"instance {theirs}" if theirs else "no instance of ours"
    return PortTaken(
        component,
        port,
        f"another server answers on {HOST}:{port} (GET {url}: {response.status_code}, {who}): "
        "not adopting it",
    )


# -- relay replicas ---------------------------------------------------------------------------------


def relay_process(
    name: str, port: int, *, workdir: Path, env: Mapping[str, str], defect: str | None = None
) -> ManagedProcess:
    """A relay replica as the stack runs it (not started): gate.stack.relay on ``port``, a fresh nonce.

    gate.stack.relay is ``python -m service`` plus the /_gate/fault route (to see an unhandled 500), the
    instance route, and the way a deliberate defect is switched in.
    """
    # -P: it runs in the caller's folder, whose own gate/ or service/ must not shadow ours
    argv = [sys.executable, "-P", "-m", "gate.stack.relay", "--host", HOST, "--port", str(port)]
    if defect:
        argv += ["--defect", defect]
    safe = name.replace("[", "-").replace("]", "").replace(":", "-")
    return ManagedProcess(
        name, argv, log_path=workdir / f"{safe}.log", env={**env, INSTANCE_ENV: new_instance()}
    )


def wait_relay_ready(proc: ManagedProcess, port: int, *, timeout: float) -> None:
    """Wait until the replica on ``port`` answers with its nonce and ``/_stcore/ready`` answers 200.

    On a :class:`PortTaken` (it could not bind, or another server answers there) it is stopped first.
    """
    assert proc.env is not None
    nonce = proc.env[INSTANCE_ENV]
    base = f"http://{HOST}:{port}"

    def ready() -> bool:
        r = httpx.get(f"{base}{INSTANCE_PATH}", timeout=1.0)
        if r.status_code != 200 or _instance_in(r) != nonce:
            raise _not_ours(proc.name, port, INSTANCE_PATH, r)
        return httpx.get(f"{base}/_stcore/ready", timeout=1.0).status_code == 200

    try:
        wait_until(
            ready,
            timeout=timeout,
            component=proc.name,
            what=f"GET {base}/_stcore/ready answering 200 from instance {nonce[:8]}…",
            fix="read the relay log below; `python -m service` with the same environment fails the same way",
            proc=proc,
            port=port,
        )
    except PortTaken:
        proc.stop(timeout=5)
        raise


# -- the receiver -----------------------------------------------------------------------------------


def start_receiver(
    workdir: Path, env: Mapping[str, str], *, token: str, timeout: float
) -> tuple[ManagedProcess, int]:
    """``python -m gate.stack.receiver`` on a free port, adopted once its health answers with its nonce.

    The control token travels in the environment (``ps`` shows argv). Returns the process and its port.
    """

    def launch(port: int) -> tuple[ManagedProcess, int]:
        nonce = new_instance()
        proc = ManagedProcess(
            "receiver",
            [sys.executable, "-P", "-m", "gate.stack.receiver", "--host", HOST, "--port", str(port)],
            log_path=workdir / "receiver.log",
            env={**env, TOKEN_ENV: token, INSTANCE_ENV: nonce},
        ).start()
        url = f"http://{HOST}:{port}/_receiver/health"

        def ready() -> bool:
            r = httpx.get(url, timeout=0.5)
            if r.status_code != 200 or _instance_in(r) != nonce:
                raise _not_ours("receiver", port, "/_receiver/health", r)
            return True

        try:
            wait_until(
                ready,
                timeout=timeout,
                component="receiver",
                what=f"GET {url} answering 200 from instance {nonce[:8]}…",
                fix=f"run `{TOKEN_ENV}=... python -m gate.stack.receiver --port N` by hand to see why",
                proc=proc,
                port=port,
            )
        except BaseException:
            proc.stop(timeout=5)
            raise
        return proc, port

    return on_free_port("receiver", launch)
