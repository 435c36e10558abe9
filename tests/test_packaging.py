"""The gate as a deploy pipeline gets it: a wheel, installed without the source checkout.

``relay-gate check`` runs its scenarios in a child pytest configured by features/pytest-check.ini and
features/plugin.py, both inside the package; paths on the command line are the caller's. The slow
test builds the wheel from a copy of the tree, installs it with the pinned versions into a fresh venv
and runs the smoke from an unrelated folder with a relative --target-config.
"""

from __future__ import annotations

import configparser
import json
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from gate.stack.reference import Stack, StackConfig
from tests.plugins.wheel_fixtures import clean_env

ROOT = Path(__file__).resolve().parents[1]
INI = ROOT / "features" / "pytest-check.ini"


def test_the_scenarios_own_config_matches_the_checkout() -> None:
    """features/pytest-check.ini (what an installed gate runs with) says what pyproject.toml says, plus
    the plugin pyproject.toml gets from the root conftest."""
    ini = configparser.ConfigParser()
    ini.read(INI)
    pytest_ini = ini["pytest"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert shlex.split(pytest_ini["addopts"]) == ["-p", "features.plugin", *project["addopts"]]
    assert pytest_ini["filterwarnings"].split() == project["filterwarnings"]
    assert pytest_ini["minversion"] == project["minversion"]
    assert ini.getboolean("pytest", "xfail_strict") is project["xfail_strict"]
    assert "features.plugin" in (ROOT / "conftest.py").read_text()


@pytest.mark.packaging
@pytest.mark.stack
def test_an_installed_gate_checks_a_deployment_from_the_callers_folder(
    installed_gate: Path, tmp_path: Path
) -> None:
    installed = installed_gate
    where = subprocess.run(
        [installed / "python", "-c", "import features, gate; print(features.__file__, gate.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=clean_env(), check=True,
    ).stdout  # fmt: skip
    assert str(ROOT) not in where, f"the venv imports the checkout: {where}"

    caller = tmp_path / "pipeline"
    (caller / "conf").mkdir(parents=True)
    (caller / "conf" / "staging.toml").write_text(
        '[target]\nname = "staging"\n\n[credentials]\n'
        'dev = { env = "STG_DEV_KEY", workspace = "default" }\n'
        'admin = { env = "STG_ADMIN_KEY", workspace = "default" }\n'
    )
    with Stack(StackConfig(replicas=1)) as staging:
        env = clean_env(STG_DEV_KEY=staging.key("dev").key, STG_ADMIN_KEY=staging.key("admin").key)
        proc = subprocess.run(
            [installed / "relay-gate", "check", "-m", "smoke", "--target-url", staging.base_url,
             "--target-config", "conf/staging.toml"],
            capture_output=True, text=True, cwd=caller, env=env, timeout=300,
        )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "Post-deploy smoke: 1 passed, 0 failed, 0 skipped" in proc.stdout
    (run,) = (caller / "results").iterdir()  # the default results/<run-id>, under the caller's folder
    assert {p.name for p in run.iterdir()} >= {"run.json", "features"}
    summary = json.loads((run / "features" / "summary.json").read_text())
    assert summary["target"]["name"] == "staging"
    assert json.loads((run / "run.json").read_text())["exit_code"] == 0
    site = Path(where.split()[0]).parents[1]
    assert not (site / "results").exists(), "results were written beside the installed package"
