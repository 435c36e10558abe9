"""The drill on a deployment restores the deployment's own latest backup ([backups] of its target config)
on a server of the gate's, judges the RPO on that backup's real age, and leaves its backup folder as it
found it — the checks that damage a backup damage copies."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gate.cli import main
from gate.client.target import SCHEMA, Target
from gate.drill.deployment import copy_latest, restore_to
from gate.drill.layout import list_backups
from gate.errors import UsageError
from gate.stack.ports import free_port
from gate.stack.reference import Stack, StackConfig

ROOT = Path(__file__).resolve().parents[2]
LATEST = "The latest backup restores and matches its source table by table, within the RPO and RTO"
SURVIVE = "Executes made through the API survive the restore"
TOOLING = (
    "A corrupted backup fails the drill, saying why",
    "A truncated backup fails the drill, saying why",
    "A missing backup fails the drill, saying why",
    "No backup at all fails the drill, saying why",
)


def fake_backup(root: Path, stem: str = "relay-20260101T090000Z", day: str = "2026-01-01") -> Path:
    """A backup's files as relay-gate backup lays them out (content irrelevant to these tests)."""
    (root / day).mkdir(parents=True, exist_ok=True)
    (root / day / f"{stem}.dump").write_bytes(b"PGDMP" + bytes(range(256)) * 4)
    (root / day / f"{stem}.manifest.json").write_text('{"schema": "relay-gate/backup-manifest@1"}\n')
    return root / day


def tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with the SHA-256 of its bytes: equal means untouched."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def write_config(path: Path, backups: str, extra: str = "") -> Path:
    path.write_text(
        f'[target]\nname = "staging"\nbase_url = "http://127.0.0.1:9"\n{extra}\n[backups]\n{backups}'
    )
    return path


# -- the config ------------------------------------------------------------------------------------


def test_backups_is_a_known_section_and_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    assert SCHEMA["backups"] == frozenset({"dir", "rpo", "rto"})
    fake_backup(tmp_path / "conf" / "staging-backups")
    config = write_config(tmp_path / "conf" / "t.toml", 'dir = "staging-backups"\nrpo = "2d"\nrto = 600\n')
    target = Target.from_config(None, config, environ={})
    assert target.backups is not None and target.database_url is None  # [database] is optional
    assert target.backups.dir == (tmp_path / "conf" / "staging-backups").resolve()
    assert (target.backups.rpo_s, target.backups.rto_s) == (2 * 86400, 600)
    assert target.describe()["backups"] == {"dir": str(target.backups.dir), "rpo_s": 172800, "rto_s": 600}
    defaults = Target.from_config(None, write_config(config, f'dir = "{target.backups.dir}"\n'), environ={})
    assert defaults.backups is not None and (defaults.backups.rpo_s, defaults.backups.rto_s) == (93600, 900)
    assert Target.from_config(None, write_config(config, ""), environ={}).backups is None  # empty table


@pytest.mark.parametrize(
    ("backups", "says"),
    [
        ('dir = "nowhere"\n', "backups.dir .*nowhere does not exist: point it at the --dir"),
        (
            'dir = "empty"\n',
            r"backups.dir .*empty holds no backup \(no YYYY-MM-DD/<db>-<UTC>.manifest.json\)",
        ),
        ('rpo = "26h"\n', "backups.dir must name the folder"),
        ('dir = "ok"\nrpo = "a day"\n', "backups.rpo 'a day' is not a duration: give seconds or a string"),
        ('dir = "ok"\nrto = "-5m"\n', "backups.rto '-5m' is not a duration"),
        ('dir = "ok"\nrto = 0\n', "backups.rto 0 is not a duration"),
        (
            'dir = "ok"\nkeep = 3\n',
            r"unknown key\(s\) \['keep'\] in \[backups\]; known: \['dir', 'rpo', 'rto'\]",
        ),
    ],
)
def test_a_bad_backups_section_is_a_usage_error_naming_the_key(
    tmp_path: Path, backups: str, says: str
) -> None:
    (tmp_path / "empty" / "2026-01-01").mkdir(parents=True)  # a day folder, but no manifest in it
    fake_backup(tmp_path / "ok")
    with pytest.raises(UsageError, match=says):
        Target.from_config(None, write_config(tmp_path / "t.toml", backups), environ={})


@pytest.mark.parametrize("verb", ["run", "check"])
def test_bad_backups_input_stops_the_verb_with_exit_2_before_any_request(
    tmp_path: Path, verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens at the target URL: an unreachable target would be exit 5, so exit 2 says the
    config was refused before the gate sent anything."""
    url = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "t.toml", 'dir = "missing-backups"\n')
    argv = [verb, "--target-url", url, "--target-config", str(config), "--results", str(tmp_path / "r")]
    assert main([*argv, "--out", str(tmp_path / "p")] if verb == "run" else argv) == 2
    err = capsys.readouterr().err
    assert "backups.dir" in err and "does not exist: point it at the --dir" in err
    assert not (tmp_path / "r" / "run.json").exists()


def test_the_restore_goes_to_a_server_of_the_gates_never_the_deployments() -> None:
    assert restore_to({}) == "embedded"
    assert restore_to({"RELAY_GATE_RESTORE_TO": "auto"}) == "embedded"  # auto would mean same locally
    url = "postgresql://gate:pw@scratch.internal:5432/postgres"
    assert restore_to({"RELAY_GATE_RESTORE_TO": url}) == url
    with pytest.raises(UsageError, match="never on the deployment's own"):
        restore_to({"RELAY_GATE_RESTORE_TO": "same"})


def test_without_backups_the_drill_step_is_not_run_for_missing_configuration(tmp_path: Path) -> None:
    """A backup the gate took itself would prove the gate's tooling, not the deployment's backups."""
    from gate.drill.deployment import NO_BACKUPS, drill_deployment
    from gate.verdict import Outcome

    config = tmp_path / "t.toml"
    config.write_text('[target]\nname = "staging"\nbase_url = "http://127.0.0.1:9"\n')
    target = Target.from_config(None, config, environ={})
    assert target.backups is None
    assert drill_deployment(target, tmp_path / "results") == (4, NO_BACKUPS, Outcome.MISSING_CONFIG)
    assert not (tmp_path / "results").exists()


def test_a_copy_of_the_latest_backup_leaves_the_original_untouched(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    fake_backup(theirs, "relay-20260101T090000Z", "2026-01-01")
    fake_backup(theirs, "relay-20260102T090000Z", "2026-01-02")
    before = tree(theirs)
    copy = copy_latest(theirs, tmp_path / "copy")
    assert copy.dump == tmp_path / "copy" / "2026-01-02" / "relay-20260102T090000Z.dump"
    assert copy.dump.read_bytes() == (theirs / "2026-01-02" / "relay-20260102T090000Z.dump").read_bytes()
    assert list_backups(tmp_path / "copy") == [copy]
    copy.dump.unlink()  # what the damage checks do to it
    assert tree(theirs) == before


# -- a deployment: a stack started here, treated as external through its target config ----------------


@pytest.fixture(scope="module")
def staging() -> Iterator[Stack]:
    with Stack(StackConfig(replicas=1, rate_limit=1000, window_s=60)) as stack:
        yield stack


def scheduled_backup(staging: Stack, folder: Path, *, age: timedelta | None = None) -> Path:
    """What the deployment's own job does: ``relay-gate backup``. With ``age``, the manifest says it
    was taken that long ago (the dump's checksum does not cover the manifest, so it stays valid)."""
    env = {**os.environ, "DATABASE_URL": str(staging.database_url)}
    proc = subprocess.run([sys.executable, "-m", "gate.cli", "backup", "--dir", str(folder)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (backup,) = list_backups(folder)
    if age is not None:
        manifest = json.loads(backup.manifest_path.read_text())
        taken = datetime.now(UTC) - age
        manifest["taken_at"] = taken.isoformat(timespec="microseconds").replace("+00:00", "Z")
        backup.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return backup.dump


def gate_run(
    staging: Stack, tmp_path: Path, config: Path
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    results, out = tmp_path / "results", tmp_path / "pack"
    env = {**os.environ, "STG_DB": str(staging.database_url)}
    env.pop("RELAY_GATE_RESTORE_TO", None)
    argv = ["run", "--target-url", staging.base_url, "--target-config", str(config), "--skip", "load",
            "--skip", "faults", "-m", "drill", "--results", str(results), "--out", str(out)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "gate.cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    return proc, results, out


def scenarios(results: Path) -> dict[str, dict[str, object]]:
    summary = json.loads((results / "features" / "summary.json").read_text())
    return {s["scenario"]: s for f in summary["features"] for s in f["scenarios"]}


@pytest.mark.stack
def test_the_drill_restores_the_deployments_latest_backup_and_leaves_its_folder_as_it_was(
    staging: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "conf" / "staging-backups"
    fake_backup(folder, "relay-20200101T000000Z", "2020-01-01")  # an older one: never the one restored
    latest = scheduled_backup(staging, folder)
    config = write_config(tmp_path / "conf" / "staging.toml", 'dir = "staging-backups"\nrpo = "1h"\n',
                          '[database]\nurl_env = "STG_DB"\n')  # fmt: skip
    before = tree(folder)
    proc, results, out = gate_run(staging, tmp_path, config)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 4, output[-4000:]  # load and faults skipped: not a pass, nothing failed
    steps = {s["name"]: s for s in json.loads((results / "run.json").read_text())["steps"]}
    assert (steps["features"]["exit_code"], steps["drill"]["exit_code"]) == (0, 0), output[-4000:]

    drill = json.loads((results / "drill" / "drill.json").read_text())
    assert drill["verdict"] == "PASSED" and drill["backup"]["file"] == str(latest)
    assert drill["rpo"]["scope"] == "latest" and drill["rpo"]["target_s"] == 3600 and drill["rpo"]["passed"]
    assert drill["restore_target"]["mode"] == "embedded" and drill["restore_target"]["server_removed"]
    assert drill["source"]["database"] == "relay" and drill["verified_marker"] is None
    assert drill["summary"]["matching"] == drill["summary"]["tables"] >= 3

    found = scenarios(results)
    assert found[LATEST]["outcome"] == "passed", found[LATEST]
    assert (found[SURVIVE]["outcome"], found[SURVIVE]["category"]) == ("skipped", "not_applicable")
    assert "cannot make a deployment take a backup" in str(found[SURVIVE]["reason"])
    assert all(found[t]["outcome"] == "passed" for t in TOOLING), {t: found[t] for t in TOOLING}
    record = json.loads((results / "features" / "scenarios" / f"{found[LATEST]['slug']}.json").read_text())
    notes = record["notes"]
    assert notes["backup"]["file"] == latest.name and "the deployment's latest" in notes["backup"]["source"]

    assert tree(folder) == before, "the deployment's backup folder changed"
    report = (out / "RESTORE-DRILL-REPORT.md").read_text()
    main_table, tooling = report.split("### Checks of relay-gate's drill tooling")
    assert (
        LATEST in main_table
        and "The latest backup in the backup folder is younger than the RPO" in main_table
    )
    assert all(t in tooling.split("## Verdict")[0] and t not in main_table for t in TOOLING)


@pytest.mark.stack
def test_a_two_day_old_latest_backup_fails_the_rpo_with_its_real_age_and_still_restores(
    staging: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "staging-backups"
    scheduled_backup(staging, folder, age=timedelta(days=2))
    config = write_config(tmp_path / "staging.toml", f'dir = "{folder}"\nrpo = "26h"\n')  # no [database]
    before = tree(folder)
    proc, results, out = gate_run(staging, tmp_path, config)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-4000:]

    drill = json.loads((results / "drill" / "drill.json").read_text())
    assert drill["verdict"] == "FAILED" and drill["exit_code"] == 1
    assert drill["reason"] == "RPO exceeded: the latest backup is 2.0 d old, target 1.1 d", drill["reason"]
    assert drill["rpo"]["scope"] == "latest" and not drill["rpo"]["passed"]
    assert 2 * 86400 <= drill["rpo"]["measured_s"] < 2 * 86400 + 600
    # still restored and verified in full: an old backup is proven restorable (or not) all the same
    assert drill["summary"]["matching"] == drill["summary"]["tables"] >= 3 and drill["rto"]["passed"]
    assert drill["source"]["from"] == "the backup's manifest"  # no [database]: the manifest names it

    found = scenarios(results)
    assert found[LATEST]["outcome"] == "failed" and "RPO exceeded" in str(found[LATEST]["reason"])
    assert all(found[t]["outcome"] == "passed" for t in TOOLING), {t: found[t] for t in TOOLING}
    assert tree(folder) == before, "the deployment's backup folder changed"

    report = (out / "RESTORE-DRILL-REPORT.md").read_text()
    rpo_row = next(
        ln for ln in report.splitlines() if ln.startswith("| The latest backup in the backup folder")
    )
    assert "**FAIL**" in rpo_row and f"{drill['rpo']['measured_s']} s measured, target 93600.0 s" in rpo_row
