"""Journey weights and keys from the environment."""

from __future__ import annotations

import pytest

from load import settings


def test_weights_default_and_subset() -> None:
    assert settings.parse_weights(None) == {"list": 4, "preview": 4, "execute": 2}
    assert settings.parse_weights("list=1") == {"list": 1, "preview": 0, "execute": 0}
    assert settings.parse_weights(" list = 6 , execute=1") == {"list": 6, "preview": 0, "execute": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lists=1", "not NAME=WEIGHT"),
        ("list", "not NAME=WEIGHT"),
        ("list=x", "must be an integer"),
        ("list=-1", "must not be negative"),
        ("list=0,preview=0", "at least one journey"),
    ],
)
def test_bad_weights_name_the_variable(text: str, message: str) -> None:
    with pytest.raises(settings.LoadSettingsError, match=message) as info:
        settings.parse_weights(text)
    assert settings.WEIGHTS_ENV in str(info.value)


def test_keys_from_one_or_several_variables() -> None:
    env = {"RELAY_API_KEY": "key-a", "RELAY_API_KEYS": "key-b, key-a,,key-c"}
    assert settings.api_keys(env) == ["key-a", "key-b", "key-c"]
    with pytest.raises(settings.LoadSettingsError, match="RELAY_API_KEY"):
        settings.require_keys({})


def test_think_time() -> None:
    assert settings.parse_think_time("0.5-1.5") == (0.5, 1.5)
    assert settings.parse_think_time("2") == (2.0, 2.0)
    for bad in ("x", "2-1", "-1"):
        with pytest.raises(settings.LoadSettingsError, match="--think-time"):
            settings.parse_think_time(bad)
