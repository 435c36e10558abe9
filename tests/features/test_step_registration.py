"""features/plugin.py registers every module of features/steps as a pytest plugin, found through the
package (no hand-kept list): a module dropped into the package is a step module with nothing else to
edit, from a source checkout or an installed wheel alike."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

import features.steps
from features import plugin


def _fake_steps(root: Path, *modules: str) -> str:
    """A package ``<unique>.steps`` under ``root`` holding ``modules`` (empty files); its dotted name."""
    name = f"relay_gate_fake_{uuid.uuid4().hex}"
    steps = root / name / "steps"
    steps.mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (steps / "__init__.py").write_text("")
    for m in modules:
        (steps / f"{m}.py").write_text("")
    return f"{name}.steps"


def test_every_module_of_features_steps_is_registered(pytestconfig: pytest.Config) -> None:
    on_disk = {p.stem for p in Path(features.steps.__file__).parent.glob("*.py")} - {"__init__"}
    assert on_disk, "features/steps holds no step module"
    assert set(plugin.pytest_plugins) == {f"features.steps.{m}" for m in on_disk}
    assert plugin.pytest_plugins[0] == "features.steps.common"
    unregistered = [m for m in plugin.pytest_plugins if pytestconfig.pluginmanager.get_plugin(m) is None]
    assert not unregistered, f"step modules not registered in this session: {unregistered}"
    if (
        pytestconfig.getoption("assertmode") == "rewrite"
    ):  # a step module imported by another is rewritten too
        plain = [
            m
            for m in plugin.pytest_plugins
            if type(sys.modules[m].__loader__).__name__ != "AssertionRewritingHook"
        ]
        assert not plain, f"step modules whose asserts pytest did not rewrite: {plain}"


def test_a_module_dropped_into_the_package_is_picked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(tmp_path)
    package = _fake_steps(tmp_path, "zeta", "common", "alpha")
    assert plugin.step_modules(package) == [f"{package}.{m}" for m in ("common", "alpha", "zeta")]
    (tmp_path / package.replace(".", "/") / "beta.py").write_text("")
    assert plugin.step_modules(package) == [f"{package}.{m}" for m in ("common", "alpha", "beta", "zeta")]


def test_a_package_without_common_is_listed_sorted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(tmp_path)
    package = _fake_steps(tmp_path, "b", "a")
    assert plugin.step_modules(package) == [f"{package}.a", f"{package}.b"]
