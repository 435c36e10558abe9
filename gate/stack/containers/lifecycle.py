"""The lifecycle every server of the ``containers`` backend shares: one server, one container, host network.

:class:`ContainerService` creates the container (labelled as this process's, orphans of dead processes
reaped first), waits for its server with a real readiness probe, and maps stop/kill/pause/close onto
the Docker engine. ContainerRedis and ContainerPostgres (gate/stack/containers/backend.py) say what runs
inside.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from datetime import timedelta
from types import TracebackType
from typing import Any, ClassVar, NoReturn, Self

from docker.errors import NotFound
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer

from gate.errors import PortTaken, StackError
from gate.stack.containers.engine import (
    DOCKER_ERRORS,
    DOCKER_FIX,
    ContainerExited,
    ServerAnswers,
    docker_available,
    docker_call,
    engine_client,
    ensure_image,
    owner_labels,
    reap_orphans,
    remove_ours_at_exit,
    short,
)
from gate.stack.ports import address_in_use, on_free_port, port_in_use

HOST = "127.0.0.1"
_UP = frozenset({"running", "paused"})


class ContainerService:
    """One server in one container on the host network: the lifecycle both services share.

    A subclass says what runs and how to probe it: the methods that raise NotImplementedError.
    """

    component: ClassVar[str]
    image_env: ClassVar[str]
    default_image: ClassVar[str]
    version_env: ClassVar[str]  # the image's ENV naming the server version (official images set it)

    def __init__(self, *, image: str | None = None, port: int | None = None) -> None:
        self.image = image or os.environ.get(self.image_env) or self.default_image
        self._fixed_port = port is not None
        self._port = port
        self._container: DockerContainer | None = None
        self._version: str | None = None
        # Ryuk would be pulled from Docker Hub: off unless TESTCONTAINERS_RYUK_DISABLED says otherwise.
        if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:
            testcontainers_config.ryuk_disabled = True

    # -- what a subclass says about its server --------------------------------------------------------
    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _environment(self, port: int) -> dict[str, str]:
        return {}

    def _create_options(self) -> dict[str, Any]:
        return {}

    def _readiness(self) -> ServerAnswers:
        raise NotImplementedError

    def _read_version(self) -> str:
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------------------
    def _start(self, timeout: float) -> None:
        status = self._status()
        if status in _UP:
            return
        if status is not None:
            # Same container, same port, same data: what restart() promises.
            with self._docker_call("starting the container again"):
                self._wrapped().start()
            self._await_ready(timeout, remove_on_failure=False)
            return
        if self._fixed_port:
            if port_in_use(self.port):
                raise StackError(
                    self.component,
                    f"port {self.port} on {HOST} is already in use",
                    fix="stop whatever listens there, or let relay-gate pick a free port (omit the port)",
                )
            self._launch(self.port, timeout)
            return
        # A container removed behind our back is replaced on the same port, if that is still free.
        keep = self._port is not None and not port_in_use(self._port)
        on_free_port(
            self.component, lambda port: self._launch(port, timeout), first=self._port if keep else None
        )

    def _launch(self, port: int, timeout: float) -> int:
        """A new container whose server listens on ``port``, ready; on failure it is removed again
        (PortTaken when the port was taken before the server could bind it)."""
        self._port = port
        self._create_and_start(port)
        try:
            self._await_ready(timeout, remove_on_failure=True)
        except StackError as exc:
            if address_in_use(exc.log_tail):
                raise PortTaken(
                    self.component,
                    port,
                    f"{HOST}:{port} was taken before the server in the container could bind it",
                    log_tail=exc.log_tail,
                ) from exc
            raise
        return port

    def _create_and_start(self, port: int) -> None:
        ok, why = docker_available()
        if not ok:
            raise StackError(self.component, why, fix=DOCKER_FIX)
        with self._docker_call("connecting to the engine"):
            container = (
                DockerContainer(self.image)
                .with_command(self._command(port))
                .with_envs(**self._environment(port))
                .with_name(f"relay-gate-{self.component}-{port}-{secrets.token_hex(3)}")
                .with_kwargs(
                    # `network`, not `network_mode`: then testcontainers does not also try to attach the
                    # container to a Docker-in-Docker runner's network. The engine sets NetworkMode=host.
                    network="host",
                    labels=owner_labels(self.component),
                    **self._create_options(),
                )
            )
        client = container.get_docker_client().client
        try:
            reap_orphans(client)
            ensure_image(client, container.image, component=self.component, image_env=self.image_env)
            remove_ours_at_exit()
            with self._docker_call("creating and starting the container"):
                container.start()  # create + start; readiness is ours (_await_ready), not a strategy here
        except BaseException:
            # Removes a container that was created but did not start, and closes the client (else its
            # socket lingers until garbage collection: a ResourceWarning).
            with contextlib.suppress(*DOCKER_ERRORS):
                container.stop()
            raise
        self._container = container

    def _await_ready(self, timeout: float, *, remove_on_failure: bool) -> None:
        strategy = self._readiness().with_startup_timeout(timedelta(seconds=max(1, math.ceil(timeout))))
        fix = f"read `docker logs {self._name()}` (image {self.image})"
        try:
            strategy.wait_until_ready(self._tc())
        except ContainerExited:
            code = self._wrapped().attrs.get("State", {}).get("ExitCode", "?")
            self._fail(f"container exited with status {code} before {strategy.what}", fix, remove_on_failure)
        except TimeoutError as exc:
            self._fail(str(exc), fix, remove_on_failure)
        try:
            if self._version is None:
                self._version = self._read_version()
        except Exception as exc:  # it answered a moment ago: a failure here is worth reporting as such
            self._fail(f"answered, then failed to report its version: {short(exc)}", fix, remove_on_failure)

    def _fail(self, problem: str, fix: str, remove: bool) -> NoReturn:
        log = self.log_tail(20)
        with contextlib.suppress(StackError):
            if remove:
                self.close()
            else:
                self.kill()
        raise StackError(self.component, problem, fix=fix, log_tail=log)

    def _stop(self, timeout: float) -> None:
        status = self._status()
        if status not in _UP:
            return
        with self._docker_call("stopping the container"):
            if status == "paused":
                self._wrapped().unpause()  # a frozen server could not act on the stop signal
            self._wrapped().stop(timeout=max(1, math.ceil(timeout)))

    def kill(self) -> None:
        """``docker kill``: SIGKILL, no shutdown work (a crash). A paused container is killed too."""
        status = self._status()
        if status not in _UP:
            return
        with self._docker_call("killing the container"):
            self._wrapped().kill()
            if status == "paused":
                # Engines differ on whether SIGKILL reaches frozen processes before they are thawed.
                with contextlib.suppress(*DOCKER_ERRORS):
                    self._wrapped().unpause()
            self._wrapped().wait(timeout=10)

    def pause(self) -> None:
        """``docker pause`` (cgroup freezer): the port still accepts connections but nothing answers."""
        if self._status() == "running":
            with self._docker_call("pausing the container"):
                self._wrapped().pause()

    def resume(self) -> None:
        """``docker unpause`` after :meth:`pause`."""
        if self._status() == "paused":
            with self._docker_call("resuming the container"):
                self._wrapped().unpause()

    def close(self) -> None:
        """Remove the container and its data (``docker rm -f -v``). Safe to call twice."""
        container, self._container = self._container, None
        if container is None:
            return
        try:
            container.stop(force=True, delete_volume=True)  # testcontainers' stop() removes
        except NotFound:
            pass
        except DOCKER_ERRORS as exc:
            raise StackError(
                self.component, f"Docker failed to remove the container: {short(exc)}", fix=DOCKER_FIX
            ) from exc

    # -- facts ----------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise StackError(self.component, "has no port yet: call start() first")
        return self._port

    @property
    def version(self) -> str:
        """The server's version (e.g. ``7.0.15``, ``15.18``): asked of the server once it has started,
        read from the image's metadata before that."""
        if self._version is not None:
            return self._version
        with self._docker_call("reading the image's metadata"):
            client = engine_client(10)
            try:
                env = client.images.get(self.image).attrs.get("Config", {}).get("Env") or []
            finally:
                client.close()
        for entry in env:
            name, _, value = entry.partition("=")
            if name == self.version_env and value:
                return value.split("-")[0].split("+")[0]  # "16.4-1.pgdg120+2" -> "16.4"
        raise StackError(self.component, f"image {self.image} does not say its version: start it first")

    @property
    def container_id(self) -> str | None:
        """The Docker id of the current container (None before start and after close)."""
        return str(self._wrapped().id) if self._container is not None else None

    def _status(self) -> str | None:
        """created / running / paused / exited / dead; None when there is no container (any more)."""
        if self._container is None:
            return None
        try:
            self._wrapped().reload()
        except NotFound:
            # Removed behind our back: the next start creates a new one.
            self._tc().get_docker_client().client.close()
            self._container = None
            return None
        except DOCKER_ERRORS as exc:
            raise StackError(
                self.component, f"the Docker engine did not answer: {short(exc)}", fix=DOCKER_FIX
            ) from exc
        return str(self._wrapped().status)

    def _is_up(self) -> bool:
        return self._status() in _UP

    def log_tail(self, lines: int = 15) -> str:
        if self._container is None:
            return ""
        try:
            data: bytes = self._wrapped().logs(tail=lines)
        except DOCKER_ERRORS:
            return ""
        return data.decode("utf-8", "replace").rstrip("\n")

    # -- internals ------------------------------------------------------------------------------------
    def _tc(self) -> DockerContainer:
        if self._container is None:
            raise StackError(self.component, "has no container: call start() first")
        return self._container

    def _wrapped(self) -> Any:
        return self._tc().get_wrapped_container()

    def _name(self) -> str:
        return str(self._wrapped().name) if self._container is not None else "?"

    def _docker_call(self, action: str) -> contextlib.AbstractContextManager[None]:
        return docker_call(self.component, action)

    def __enter__(self) -> Self:
        try:
            self._start(self._default_timeout())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _default_timeout(self) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        try:
            state = self._status() or "no container"
        except StackError:
            state = "unknown"
        return f"<{type(self).__name__} {self.image} {HOST}:{self._port} {state}>"
