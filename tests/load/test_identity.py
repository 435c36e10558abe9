"""load/identity.py and the ``workers`` validity check: which workers a distributed run may count,
and how the verdict names those it could not (no Locust: synthetic documents)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.errors import EXIT_INVALID, EXIT_OK, EXIT_SLO
from load import identity, slos
from load.identity import Fleet
from load.launch import LOCUSTFILE
from tests.load.factory import check, document, healthy, record, roundtrip

SPEC = "[endpoints.list]\nerror_rate_max_pct = 1\nlatency = [{ percentile = 95, max_ms = 2000 }]\n"


def hello(
    tmp_path: Path, *, spec: str = SPEC, weights: str = "list=1", locustfile: Path = LOCUSTFILE
) -> dict:
    path = tmp_path / f"slos-{abs(hash(spec))}.toml"
    path.write_text(spec)
    return identity.introduce(
        locustfiles=[locustfile],
        spec=slos.load(path),
        environ={"RELAY_LOAD_WEIGHTS": weights},
        source_address="127.0.0.2",
    )


def test_the_same_code_spec_and_settings_match(tmp_path: Path) -> None:
    # the same spec written differently (comments, another file) is the same spec
    a = hello(tmp_path)
    b = hello(tmp_path, spec="# the same\n" + SPEC.replace(" = ", "="))
    assert identity.mismatch(a, b) is None


def test_a_different_spec_locustfile_or_weights_is_named(tmp_path: Path) -> None:
    master = hello(tmp_path)
    other_spec = hello(tmp_path, spec=SPEC.replace("2000", "1999"))
    assert "its SLO spec differs" in (identity.mismatch(master, other_spec) or "")
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(LOCUSTFILE.read_text() + "\n# changed\n")
    other_code = hello(tmp_path, locustfile=locustfile)
    assert "its locustfile or load/ code differs" in (identity.mismatch(master, other_code) or "")
    other_mix = hello(tmp_path, weights="list=1,preview=1")
    assert "request settings" in (identity.mismatch(master, other_mix) or "")
    # a worker that sent nothing about itself matches nothing
    assert identity.mismatch(master, {}) is not None


def fleet(**kw: object) -> dict:
    f = Fleet(expected=2, join_timeout_s=60.0)
    f.info = {"w1": {"pid": 11, "source_address": "127.0.0.2"}, "w2": {"pid": 12}}
    for k, v in kw.items():
        setattr(f, k, v)
    return f.facts()


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (fleet(participants={"w1"}), "1 of 2 expected workers never joined within the 60 s join timeout "
         "(joined: w1 (pid 11, from 127.0.0.2))"),
        (fleet(participants={"w1"}, refused={"w2": "its SLO spec differs"}),
         "worker w2 (pid 12) was refused: its SLO spec differs"),
        (fleet(participants={"w1", "w2", "w3"}, late={"w3"}), "worker w3 joined after the test had started"),
    ],
)  # fmt: skip
def test_worker_trouble_makes_even_a_pass_invalid_and_names_the_worker(facts: dict, expected: str) -> None:
    doc = roundtrip(document(healthy(), facts={"workers": facts}))
    c = check(doc, "workers")
    assert not c["ok"] and c["blocks"] == "verdict" and c["detail"] == expected
    assert doc["verdict"]["exit_code"] == EXIT_INVALID
    assert f"workers: {expected}" in doc["verdict"]["reasons"]


def test_worker_trouble_overrides_a_breach_too() -> None:
    rec = healthy()
    record(rec, "execute", 60, ms=1249.0)
    doc = document(rec, facts={"workers": fleet(participants={"w1"})})
    assert doc["verdict"]["exit_code"] == EXIT_INVALID
    assert document(rec)["verdict"]["exit_code"] == EXIT_SLO  # the same without the missing worker


def test_every_worker_in_time_is_a_valid_run_and_a_dead_one_is_named() -> None:
    doc = document(healthy(), facts={"workers": fleet(participants={"w1", "w2"})})
    assert check(doc, "workers")["ok"] and doc["verdict"]["exit_code"] == EXIT_OK
    dead = document(healthy(), facts={"workers": fleet(participants={"w1", "w2"}), "missing_workers": ["w2"]})
    c = check(dead, "worker_reports")
    assert not c["ok"] and "no final measurements from w2 (pid 12)" in c["detail"]
    assert dead["verdict"]["exit_code"] == EXIT_INVALID


def test_a_single_process_run_has_no_workers_check() -> None:
    assert all(c["check"] != "workers" for c in document(healthy())["validity"])
