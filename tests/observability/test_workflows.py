"""The release and backup workflows: valid against GitHub's workflow schema (check-jsonschema), free of
zizmor findings of medium severity or above, actions pinned by commit SHA, least privilege.

check-jsonschema and zizmor come from PyPI (the dev extra); without them these tests skip, saying so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gate.observability import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
FILES = [WORKFLOWS / "release.yml", WORKFLOWS / "backup.yml"]
BLOCKING = {"Medium", "High"}


def _tool(name: str) -> str:
    # the venv's bin is not on PATH when pytest runs as .venv/bin/pytest
    for candidate in (Path(sys.executable).parent / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.skip(f"{name} is not installed (pip install {'check-jsonschema' if 'json' in name else name})")


def _zizmor(*paths: Path) -> list[dict]:
    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--format", "json", *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.stdout.strip().startswith("["), proc.stderr
    return list(json.loads(proc.stdout))


def test_workflows_validate_against_the_github_workflow_schema() -> None:
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing_of_medium_severity_or_above() -> None:
    findings = _zizmor(*FILES)
    blocking = [
        f"{f['ident']} ({f['determinations']['severity']}): {f.get('desc', '')}"
        for f in findings
        if f["determinations"]["severity"] in BLOCKING
    ]
    assert not blocking, "\n".join(blocking)


def test_zizmor_would_catch_an_unpinned_injectable_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: bad\non: pull_request\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    idents = {f["ident"] for f in _zizmor(bad) if f["determinations"]["severity"] in BLOCKING}
    assert {"unpinned-uses", "template-injection", "artipacked"} <= idents


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actions_are_pinned_by_sha_and_privileges_are_least(path: Path) -> None:
    text = path.read_text()
    uses = re.findall(r"uses:\s*(\S+)", text)
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{ref} is not pinned by commit SHA"
    assert re.search(r"^permissions: \{\}$", text, re.M), "the workflow default must grant nothing"
    assert "write" not in "".join(re.findall(r"permissions:\n((?:\s+\S+: \S+\n)+)", text))
    checkouts = text.count("uses: actions/checkout@")
    assert text.count("persist-credentials: false") == checkouts
    # secrets only ever reach a step through env:, never a run: script's text
    for block in re.findall(r"run: \|\n((?:\s{10,}.*\n)+)|run: (.*)\n", text):
        assert "${{" not in "".join(block), f"expression inside a run script in {path.name}"
