"""The rate-limit and header settings default to what docs/service.md's Configuration table says."""

from __future__ import annotations

import pytest

from service.config import Settings
from tests.service_doc import configuration

# variable -> (Settings field, the documented default read as that field's value)
DOCUMENTED: dict[str, tuple[str, object]] = {
    "RATE_LIMIT_ENABLED": ("rate_limit_enabled", True),
    "RATE_LIMIT_EXEC_PER_MIN": ("rate_limit_exec_per_min", 60),
    "RATE_LIMIT_WINDOW_S": ("rate_limit_window_s", 60),
    "REDIS_URL": ("redis_url", None),
    "REDIS_CONNECT_TIMEOUT_MS": ("redis_connect_timeout_ms", 100),
    "REDIS_SOCKET_TIMEOUT_MS": ("redis_socket_timeout_ms", 100),
    "REDIS_REPROBE_MAX_S": ("redis_reprobe_max_s", 2.0),
    "SECURITY_HEADERS_PROFILE": ("security_headers_profile", "strict"),
}


def _read(cell: str) -> object:
    if cell == "unset":
        return None
    if cell in ("true", "false"):
        return cell == "true"
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def test_the_table_states_the_defaults_this_test_holds_the_service_to() -> None:
    table = configuration()
    assert {v: _read(table[v]) for v in DOCUMENTED} == {v: d for v, (_, d) in DOCUMENTED.items()}


@pytest.mark.parametrize("variable", sorted(DOCUMENTED))
def test_the_service_defaults_to_the_documented_value(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for v in DOCUMENTED:
        monkeypatch.delenv(v, raising=False)
    field, default = DOCUMENTED[variable]
    assert getattr(Settings(_env_file=None), field) == default  # type: ignore[call-arg]


@pytest.mark.parametrize("variable", ["RATE_LIMIT_EXEC_PER_MIN", "RATE_LIMIT_WINDOW_S"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_quota_or_window_below_one_is_refused(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable.lower()):
        Settings(_env_file=None)  # type: ignore[call-arg]
