"""Paths on the command line are the caller's: made absolute once, in the parent, before any child."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gate import paths
from gate.commands.check import PACKAGE_ROOT, PYTEST_INI, pytest_argv


def test_path_options_are_resolved_against_the_callers_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(
        target_config=Path("conf/staging.toml"), results=Path("runs/../run"), out=None,
        pack=Path("/abs/pack"), keyword="not a path",
    )  # fmt: skip
    paths.absolutise(args)
    assert args.target_config == tmp_path / "conf" / "staging.toml"
    assert args.results == tmp_path / "run" and args.out is None and args.pack == Path("/abs/pack")
    assert args.keyword == "not a path"
    assert paths.default_results("r1") == tmp_path / "results" / "r1"
    assert paths.default_pack("r1") == tmp_path / "evidence" / "out" / "r1"


def test_the_child_pytest_gets_absolute_paths_and_the_features_own_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(
        backend="embedded", target_url="https://staging.example.com", target_config=Path("s.toml"),
        markexpr="smoke", keyword=None,
    )  # fmt: skip
    argv = pytest_argv(args, Path("run"))
    assert argv[1:4] == ["-P", "-m", "pytest"]  # the caller's own packages cannot shadow the gate's
    assert argv[argv.index("-c") + 1] == str(PYTEST_INI) and PYTEST_INI.is_file()
    assert argv[argv.index("--rootdir") + 1] == str(PACKAGE_ROOT)
    assert argv[argv.index("--results") + 1] == str(tmp_path / "run")
    assert argv[argv.index("--target-config") + 1] == str(tmp_path / "s.toml")
    assert f"--junitxml={tmp_path / 'run' / 'features' / 'junit.xml'}" in argv
    assert "pyproject.toml" not in " ".join(argv)
