"""The Docker engine side of the ``containers`` backend: the engine, images, owners, readiness.

:func:`docker_available` finds the engine testcontainers will use and pings it; :func:`ensure_image`
pulls an image the engine lacks, unless it is a local build. testcontainers' reaper (Ryuk) is an
image pulled from Docker Hub, so it is off unless the environment asks for it. Its job is done here
instead: containers carry an owner label (:func:`owner_labels`); those of a process that died are
removed when the next one is created (:func:`reap_orphans`), and a process removes its own leftovers
when it exits (:func:`remove_ours_at_exit`). :class:`ServerAnswers` is the readiness wait strategy:
a real PING or query, polled until a deadline.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import math
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound, NotFound
from requests.exceptions import RequestException
from testcontainers.core.docker_client import get_docker_host
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from gate.errors import StackError

LABEL_OWNER = "dev.relay-gate.owner"
LABEL_COMPONENT = "dev.relay-gate.component"

LOCAL_IMAGE_PREFIX = "relay-gate-local/"  # built by .ci/build-images.sh, published nowhere
_BUILD_HINT = "bash .ci/build-images.sh (builds relay-gate-local/* images from Debian packages)"
DOCKER_FIX = "start a Docker engine (bash .ci/start-docker.sh, or dockerd) or use --backend embedded"
DOCKER_ERRORS = (DockerException, RequestException)
_GONE = frozenset({"exited", "dead", "removing"})


def _engine() -> tuple[str, dict[str, str]]:
    """Where the engine testcontainers will use is (DOCKER_HOST, ~/.testcontainers.properties, the docker
    context), and the environment that makes docker.from_env() reach the same one."""
    host = get_docker_host()
    env = {**os.environ, "DOCKER_HOST": host} if host else dict(os.environ)
    return host or "unix:///var/run/docker.sock", env


def engine_client(timeout: float) -> docker.DockerClient:
    """A client of the engine :func:`docker_available` pings; the caller closes it."""
    return docker.from_env(timeout=max(1, math.ceil(timeout)), environment=_engine()[1])


def docker_available(timeout: float = 2.0) -> tuple[bool, str]:
    """Whether a Docker engine answers a ping within ``timeout``; the text says which one, or why not."""
    where, _env = _engine()
    if where.startswith("unix://"):
        # docker-py leaks the socket of a failed unix connect (a ResourceWarning): knock first ourselves.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            try:
                probe.connect(where.removeprefix("unix://"))
            except OSError as exc:
                return False, f"no Docker engine answered at {where}: {exc.strerror or short(exc)}"
    try:
        # from_env negotiates the API version: already a round trip to the engine.
        client = engine_client(timeout)
    except Exception as exc:  # whatever the failure, there is no usable engine; the reason is what matters
        return False, f"no Docker engine answered at {where}: {short(exc)}"
    try:
        client.ping()
        version = client.version().get("Version", "?")
    except Exception as exc:
        return False, f"the Docker engine at {where} did not answer a ping: {short(exc)}"
    finally:
        client.close()
    return True, f"Docker {version} at {where}"


def short(exc: BaseException | None, limit: int = 240) -> str:
    """An exception as one line of at most ``limit`` characters, for error messages."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- calls and images ----------------------------------------------------------------------------------


@contextlib.contextmanager
def docker_call(component: str, action: str) -> Iterator[None]:
    """Turn the Docker SDK's failures into a StackError that says what we were doing."""
    try:
        yield
    except DOCKER_ERRORS as exc:
        raise StackError(component, f"Docker failed while {action}: {short(exc)}", fix=DOCKER_FIX) from exc


def ensure_image(client: docker.DockerClient, image: str, *, component: str, image_env: str) -> None:
    """Make sure ``image`` is in the engine: pull it unless it is a local build; StackError saying how."""
    with docker_call(component, "looking up the image"):
        try:
            client.images.get(image)
            return
        except ImageNotFound:
            pass
    if image.startswith(LOCAL_IMAGE_PREFIX):
        # Never published anywhere: asking a registry would only add a confusing second error.
        raise StackError(
            component,
            f"image {image} is not in the local Docker engine",
            fix=f"build it: {_BUILD_HINT}; or set {image_env} to another image",
        )
    try:
        client.images.pull(image)
    except DOCKER_ERRORS as exc:
        raise StackError(
            component,
            f"image {image} is not in the local Docker engine and pulling it failed: {short(exc)}",
            fix=f"docker pull {image} where a registry is reachable; or {_BUILD_HINT} and set "
            f"{image_env}=relay-gate-local/...; or use --backend embedded",
        ) from exc


# -- owners: the job Ryuk would do ------------------------------------------------------------------


def _owner_token(pid: int) -> str | None:
    """``<boot id>/<pid namespace>/<pid>/<start time>``: names one process, even once its pid is reused."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.readlink(f"/proc/{pid}/ns/pid")
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
    return f"{boot}/{pidns}/{pid}/{start}"


@functools.cache
def _owner_of(pid: int) -> str:
    return _owner_token(pid) or f"unknown/{pid}"


def _owner() -> str:
    """This process's owner label, per pid: a forked child owns its own containers."""
    return _owner_of(os.getpid())


def owner_labels(component: str) -> dict[str, str]:
    """The labels of a container this process creates: whose it is (for the reaping) and what it runs."""
    return {LABEL_OWNER: _owner(), LABEL_COMPONENT: component}


_atexit_registered = False


def _owner_gone(owner: str) -> bool:
    """True only for an owner that provably ran in our pid namespace during this boot and has exited.

    Containers of other machines, other containers (pid namespaces) or earlier boots are never judged.
    """
    mine, theirs = _owner().split("/"), owner.split("/")
    if len(mine) != 4 or len(theirs) != 4 or mine[:2] != theirs[:2] or not theirs[2].isdigit():
        return False
    return _owner_token(int(theirs[2])) != owner


def reap_orphans(client: docker.DockerClient) -> None:
    """Remove containers whose owning process died without close() (a SIGKILLed test run)."""
    with contextlib.suppress(*DOCKER_ERRORS):
        for container in client.containers.list(all=True, filters={"label": LABEL_OWNER}):
            if _owner_gone(container.labels.get(LABEL_OWNER, "")):
                with contextlib.suppress(*DOCKER_ERRORS):
                    container.remove(force=True, v=True)


def _remove_ours() -> None:
    """At exit: remove the containers this process created and never closed."""
    if not docker_available()[0]:
        return
    with contextlib.suppress(*DOCKER_ERRORS):
        client = engine_client(10)
        try:
            for container in client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={_owner()}"}):
                with contextlib.suppress(*DOCKER_ERRORS):
                    container.remove(force=True, v=True)
        finally:
            client.close()


def remove_ours_at_exit() -> None:
    """Have this process remove, when it exits, the containers it created and never closed."""
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_remove_ours)
        _atexit_registered = True


# -- readiness ----------------------------------------------------------------------------------------


class ContainerExited(Exception):
    """The container stopped running (or was removed) while we waited for its server."""


class ServerAnswers(WaitStrategy):
    """Ready when ``probe()`` returns True (a real PING or query); fails at once if the container exits.

    An exception from ``probe`` means "not yet"; the last one is reported if the deadline passes.
    """

    def __init__(self, probe: Callable[[], bool], what: str) -> None:
        super().__init__()
        self._probe = probe
        self.what = what
        self.last_error: BaseException | None = None
        self.exited = False
        self.with_poll_interval(0.05)

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        def check() -> bool:
            try:
                container.reload()
                self.exited = container.status in _GONE
            except NotFound:
                self.exited = True
            except DOCKER_ERRORS as exc:
                self.last_error = exc
                return False
            if self.exited:
                raise StopIteration  # the poll loop's "give up now"
            try:
                return self._probe()
            except Exception as exc:  # refused, reset, timed out, auth not set up yet...: not ready
                self.last_error = exc
                return False

        if self._poll(check):
            return
        if self.exited:
            raise ContainerExited(self.what)
        why = f" (last error: {short(self.last_error)})" if self.last_error else ""
        raise TimeoutError(f"{self.what} did not happen within {self._startup_timeout:g} s{why}")
