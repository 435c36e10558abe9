"""The gate as a deploy pipeline gets it: a wheel installed into a fresh venv, without the checkout.

``installed_gate`` builds the wheel from a copy of the tree and installs it with the pinned versions
(constraints.txt) into a fresh venv, once per session (about 40 s); it yields that venv's bin/.
``clean_env`` is this environment without what points at the checkout or its venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# what a copy of the tree for building leaves out: environments, caches, outputs
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    "results", "out", "artifacts",
)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what points at the checkout or its venv."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS", "RELAY_GATE_SECRETS_FD")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    return {**env, **extra}


@pytest.fixture(scope="session")
def installed_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the gate installed from its wheel (pinned by constraints.txt); its bin/."""
    base = tmp_path_factory.mktemp("wheel")
    src, wheels, venv = base / "src", base / "wheels", base / "venv"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)  # pip builds in the tree: not in ours
    env = clean_env()
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("relay_gate-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    yield venv / "bin"
