"""The gate's container image (Dockerfile, built by .ci/build-gate-image.sh): a deploy pipeline runs
``docker run ... relay-gate check --target-url URL``. Run here against a reference stack on the host,
with host networking (this engine has no bridge); no registry, no port mapping.

Skipped, with the reason, where no engine answers or the image was never built; when
RELAY_GATE_IMAGE names the image (CI does), a missing image fails instead.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import NotFound

from gate import __version__
from gate.stack.containers.engine import docker_available, engine_client, owner_labels, remove_ours_at_exit
from gate.stack.reference import Stack, StackConfig

pytestmark = pytest.mark.containers
IMAGE_ENV = "RELAY_GATE_IMAGE"
DEFAULT_IMAGE = "relay-gate-local/gate:latest"


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    ok, why = docker_available()
    if not ok:
        pytest.skip(why)
    client = engine_client(30)
    yield client
    client.close()


@pytest.fixture(scope="module")
def image(engine: docker.DockerClient) -> str:
    name = os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE
    try:
        engine.images.get(name)
    except NotFound:
        if os.environ.get(IMAGE_ENV):
            pytest.fail(f"{IMAGE_ENV}={name}, but the engine has no such image (.ci/build-gate-image.sh)")
        pytest.skip(f"no image {name}: build it with `.ci/build-images.sh python && .ci/build-gate-image.sh`")
    return name


def run(engine: docker.DockerClient, image: str, command: list[str], **kwargs: object) -> tuple[int, str]:
    """Run ``command`` in ``image`` on the host network to its end: (exit status, output)."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # nothing here may pull an image
    remove_ours_at_exit()
    container = engine.containers.run(
        image, command, network_mode="host", detach=True, labels=owner_labels("gate-image"), **kwargs
    )
    try:
        status = container.wait(timeout=300)
        return int(status["StatusCode"]), container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)


def test_the_image_runs_the_gate_as_a_user_by_default(engine: docker.DockerClient, image: str) -> None:
    config = engine.images.get(image).attrs["Config"]
    assert config["User"] == "relay-gate" and config["Cmd"] == ["relay-gate", "--help"]
    assert run(engine, image, ["relay-gate", "--version"]) == (0, f"relay-gate {__version__}\n")
    code, help_text = run(engine, image, [])
    assert code == 0 and help_text.startswith("usage: relay-gate")
    assert run(engine, image, ["id", "-u"]) == (0, "10001\n")


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A folder the container's user (uid 10001) can read: pytest's tmp_path is private to us."""
    folder = Path(tempfile.mkdtemp(prefix="relay-gate-image-"))
    folder.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    yield folder
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


@pytest.mark.stack
def test_the_image_checks_a_deployment_on_the_host(
    engine: docker.DockerClient, image: str, readable_dir: Path
) -> None:
    with Stack(StackConfig(replicas=1)) as staging:
        (readable_dir / "staging.toml").write_text(
            '[target]\nname = "staging"\n'
            '[credentials]\ndev = { env = "STG_DEV_KEY", workspace = "default" }\n'
            f"[rate_limit]\nlimit = {staging.config.rate_limit}\nwindow_s = {staging.config.window_s}\n"
        )
        (readable_dir / "staging.toml").chmod(0o644)
        code, output = run(
            engine, image,
            ["relay-gate", "check", "-m", "headers", "--target-url", staging.base_url,
             "--target-config", "config/staging.toml"],
            environment={"STG_DEV_KEY": staging.key("dev").key},
            volumes={str(readable_dir): {"bind": "/home/relay-gate/config", "mode": "ro"}},
        )  # fmt: skip
        secrets = staging.secret_values()
    assert code == 0, output[-4000:]
    assert "Security headers on every response: 7 passed, 0 failed, 2 skipped" in output, output[-4000:]
    assert "results in /home/relay-gate/results/" in output  # under the container's working directory
    for secret in secrets:
        assert secret not in output
