"""The Redactor: known secrets of any length, URL passwords whether known or not, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.client.target import Target
from gate.redaction import REDACTED, Redactor, mask_url_passwords
from gate.results import INFRA_MARKER, record_infrastructure_error, write_json


def test_short_secrets_are_redacted_too() -> None:
    r = Redactor(["k!7~", "x", "a-much-longer-secret-k!7~"])
    assert r.text("key k!7~ then a-much-longer-secret-k!7~ and x") == (
        f"key {REDACTED} then {REDACTED} and {REDACTED}"
    )


def test_redaction_is_idempotent_even_for_secrets_inside_the_marker() -> None:
    r = Redactor(["ACT", "RED"])
    once = r.text("ACT RED")
    assert once == f"{REDACTED} {REDACTED}"
    assert r.text(once) == once, "a second redactor (the parent after the child) must not mangle it"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://relay:hunter2@db:5432/relay", "postgresql://relay:[REDACTED]@db:5432/relay"),
        ("redis://:s3cr@127.0.0.1:6379/0", "redis://:[REDACTED]@127.0.0.1:6379/0"),
        ("GET http://gate:p@ss@receiver/x", "GET http://gate:[REDACTED]@receiver/x"),
        ("repr: receiver_url='https://u:tok@h:1'", "repr: receiver_url='https://u:[REDACTED]@h:1'"),
        ('{"u":"redis://:pw@h:6379","mail":"a@b"}', '{"u":"redis://:[REDACTED]@h:6379","mail":"a@b"}'),
        # no password: nothing to hide
        ("http://127.0.0.1:8080/path?a=b@c", "http://127.0.0.1:8080/path?a=b@c"),
        ("https://user@host/x", "https://user@host/x"),
        ("mail ops@example.com at 10:30", "mail ops@example.com at 10:30"),
    ],
)
def test_url_passwords_are_masked_whether_or_not_they_are_known(text: str, expected: str) -> None:
    assert mask_url_passwords(text) == expected
    assert Redactor().text(text) == expected


def test_a_known_password_is_redacted_in_its_other_spellings() -> None:
    r = Redactor(["p%40ss"])  # as it stands in a URL; psycopg's messages print it decoded
    assert r.text("password p@ss, url-encoded p%40ss") == f"password {REDACTED}, url-encoded {REDACTED}"


def test_a_redactor_learns_secrets_made_up_later() -> None:
    r = Redactor()
    assert r.text("stack key abc123") == "stack key abc123"
    assert r.add(["abc123"]) and not r.add(["abc123"])
    assert r.text("stack key abc123") == f"stack key {REDACTED}"


def test_headers_and_json_values() -> None:
    r = Redactor(["tok1"])
    assert r.headers([("Authorization", "Bearer anything"), ("X-Echo", "tok1")]) == [
        ["Authorization", f"Bearer {REDACTED}"],
        ["X-Echo", REDACTED],
    ]
    assert r.obj({"tok1": ["redis://:pw@h", 3, None]}) == {REDACTED: [f"redis://:{REDACTED}@h", 3, None]}


def test_a_stream_tail_that_could_still_become_a_secret_is_held_back() -> None:
    r = Redactor(["supersecret"])
    assert r.could_continue("....sup") and r.could_continue("url postgresql:")
    assert not r.could_continue("....F.") and not r.could_continue("postgresql://u:p@h/db ")


def test_provenance_never_records_a_url_password(tmp_path: Path) -> None:
    target = Target(
        name="staging",
        base_urls=["https://probe:b4sic@staging.example.com"],
        receiver_url="https://gate:r3c@receiver.example.com",
        database_url="postgresql://relay:d8pw@db.example.com/relay",
    )
    assert {"b4sic", "r3c", "d8pw"} <= set(target.secret_values())
    assert target.describe()["base_urls"] == [f"https://probe:{REDACTED}@staging.example.com"]
    run = write_json(
        tmp_path / "run.json",
        "run",
        1,
        {"target": target.describe()},
        redactor=Redactor(target.secret_values()),
    )
    text = run.read_text()
    assert all(s not in text for s in ("b4sic", "r3c", "d8pw")), text
    assert json.loads(text)["target"]["name"] == "staging"


def test_infrastructure_error_files_are_redacted(tmp_path: Path) -> None:
    record_infrastructure_error(
        tmp_path,
        "postgres at postgresql://relay:d8pw@db/relay said no to key k3y",
        redactor=Redactor(["k3y"]),
    )
    text = (tmp_path / "features" / INFRA_MARKER).read_text()
    assert "d8pw" not in text and "k3y" not in text and text.count(REDACTED) == 2
    record_infrastructure_error(tmp_path, "unreachable: http://u:d8pw@host")  # no redactor: URLs still
    assert "d8pw" not in (tmp_path / "features" / INFRA_MARKER).read_text()
