"""docs/service.md's Configuration section against service/config.py: what no request can show.

The table's variables are the Settings fields and its defaults their defaults; a bad value stops the
process with exit status 2 naming the variable, never echoing the value; API keys are 16-256 token
characters, workspace ids match the documented pattern; PREVIEW_SECRET is derived as documented; an
unset DATABASE_URL disables execute (503).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gate.client.receiver import ReceiverClient
from gate.stack.procs import free_port
from service.config import ApiKey, Settings
from service.preview import preview_key
from tests.service.serving import serve

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "service.md"


def documented() -> dict[str, str]:
    """variable -> default, from the table under "## Configuration" (one row may name two variables)."""
    section = DOC.read_text(encoding="utf-8").split("## Configuration", 1)[1]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 3:
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        defaults = [d.strip() for d in cells[1].replace("`", "").split(", ")]
        for i, name in enumerate(names):
            rows[name] = defaults[i] if len(defaults) == len(names) else defaults[0]
    return rows


def default_of(field: str) -> Any:
    info = Settings.model_fields[field]
    return info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]


# what the table writes for a default that is not a literal value
WORDS: dict[str, Any] = {"unset": None, "empty": [], "[]": [], "derived": None, "WEBHOOK_URL's host": []}


def test_the_table_documents_exactly_the_settings_and_their_defaults() -> None:
    rows = documented()
    fields = {name.upper(): name for name in Settings.model_fields}
    assert set(rows) == set(fields), (
        f"documented, not a setting: {sorted(set(rows) - set(fields))}; "
        f"a setting, not documented: {sorted(set(fields) - set(rows))}"
    )
    wrong = []
    for var, text in rows.items():
        actual = default_of(fields[var])
        if hasattr(actual, "get_secret_value"):
            actual = actual.get_secret_value()
        expected: Any = WORDS.get(text, text)
        if isinstance(actual, bool):
            expected = text == "true"
        elif isinstance(actual, int | float) and text not in WORDS:
            expected = type(actual)(text)
        if actual != expected:
            wrong.append(f"{var}: documented {text!r}, default {actual!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("length", "ok"), [(15, False), (16, True), (256, True), (257, False)])
def test_api_keys_are_16_to_256_token_characters(length: int, ok: bool) -> None:
    key = ("k" * length)[:length]
    for build in (
        lambda: Settings(_env_file=None, admin_key=key),  # type: ignore[call-arg]
        lambda: Settings(_env_file=None, dev_key=key),  # type: ignore[call-arg]
        lambda: ApiKey(key=key, role="dev", workspace="a"),  # type: ignore[arg-type]
    ):
        if ok:
            build()
        else:
            with pytest.raises(ValidationError):
                build()


@pytest.mark.parametrize(
    "key", ["key with a space 0123", "key-with-a-colon:01234", "key-\u00e9-0123456789abc", "k" * 15 + "\n"]
)
def test_api_keys_outside_the_token_characters_are_refused(key: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, admin_key=key)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("workspace", "ok"),
    [("a", True), ("ws-b_1", True), ("0", True), ("a" * 63, True), ("a" * 64, False), ("", False),
     ("A", False), ("-a", False), ("_a", False), ("a:b", False), ("a*", False), ("a\n", False),
     ("a b", False)],
)  # fmt: skip
def test_workspace_ids_match_the_documented_pattern(workspace: str, ok: bool) -> None:
    pattern = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # docs/service.md, API_KEYS
    assert (pattern.fullmatch(workspace) is not None and "\n" not in workspace) == ok
    if ok:
        ApiKey(key="k" * 16, role="dev", workspace=workspace)  # type: ignore[arg-type]
    else:
        with pytest.raises(ValidationError):
            ApiKey(key="k" * 16, role="dev", workspace=workspace)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("ADMIN_KEY", "fifteen-chars-k"),
        ("DEV_KEY", "a-key-with spaces-in-it"),
        ("API_KEYS", '[{"key": "long-enough-key-123456", "role": "dev", "workspace": "Team A"}]'),
        ("MAX_BODY_BYTES", "lots"),
        ("PREVIEW_TTL_S", "-1"),
        ("WEBHOOK_ALLOWED_HOSTS", "elsewhere.example"),
        ("LOG_LEVEL", "CHATTY"),
        ("DB_POOL_MIN", "50"),  # more than DB_POOL_MAX's 10
    ],
)
def test_a_bad_value_exits_2_naming_the_variable_without_echoing_it(var: str, value: str) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "WEBHOOK_URL": "http://hooks.example/relay",
        var: value,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "service", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert var in proc.stderr, proc.stderr
    if len(value) > 4:
        assert value not in proc.stderr, "the offending value was echoed"


def test_settings_are_read_from_the_environment_or_a_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("RATE_LIMIT_WINDOW_S=7\nPREVIEW_TTL_S=30\n")
    monkeypatch.setenv("PREVIEW_TTL_S", "45")
    settings = Settings(_env_file=dotenv)  # type: ignore[call-arg]
    assert (settings.rate_limit_window_s, settings.preview_ttl_s) == (7, 45), "the environment wins over .env"


def test_the_preview_key_is_derived_from_the_signing_secret_or_else_the_admin_key() -> None:
    def key(**values: Any) -> bytes:
        return preview_key(Settings(_env_file=None, **values))

    signing, other = "s" * 64, "t" * 64
    assert key(actions_signing_secret=signing) == key(actions_signing_secret=signing, admin_key="a" * 16)
    assert key(actions_signing_secret=signing) != key(actions_signing_secret=other)
    assert key(admin_key="a" * 16) == key(admin_key="a" * 16) != key(admin_key="b" * 16)
    assert key(preview_secret="p" * 32) == b"p" * 32
    # with nothing to derive it from, each process draws its own: replicas must then share PREVIEW_SECRET
    assert key() != key()


@pytest.mark.stack
def test_without_database_url_execute_is_503_and_nothing_is_delivered(receiver: ReceiverClient) -> None:
    dev = "dev-key-0123456789abcdef00"
    settings = Settings(_env_file=None, dev_key=dev, webhook_url=f"{receiver.base_url}/hook")  # type: ignore[call-arg]
    with serve(settings) as c:
        body = {"action": "notify.send", "params": {"channel": "ops", "message": "m"}}
        r = c.post("/actions/execute", headers={"Authorization": f"Bearer {dev}"}, json=body)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert c.get("/_stcore/ready").status_code == 503
    assert receiver.captures() == []
