"""gate/client/target.py: the receiver's control token, from a stack or a deployment's TOML, kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.client.target import Target
from gate.errors import UsageError
from gate.stack.reference import Stack, StackConfig

TOKEN = "receiver-token-from-the-environment-42"


def config(tmp_path: Path, deliveries: str) -> Path:
    path = tmp_path / "target.toml"
    path.write_text(f'[target]\nbase_url = "https://relay.example.com"\n\n[deliveries]\n{deliveries}')
    return path


def test_a_deployment_names_the_variable_holding_the_receivers_token(tmp_path: Path) -> None:
    path = config(tmp_path, 'receiver_url = "https://rx.example.com/"\ntoken_env = "STG_RX_TOKEN"\n')
    target = Target.from_config(None, path, environ={"STG_RX_TOKEN": TOKEN})
    assert target.receiver_url == "https://rx.example.com" and target.receiver_token == TOKEN
    assert TOKEN in target.secret_values()
    assert TOKEN not in repr(target) and TOKEN not in str(target.describe())


def test_an_unset_token_variable_leaves_the_receiver_unreadable_not_the_config_invalid(
    tmp_path: Path,
) -> None:
    path = config(tmp_path, 'receiver_url = "https://rx.example.com"\ntoken_env = "STG_RX_TOKEN"\n')
    target = Target.from_config(None, path, environ={})
    assert target.receiver_url is not None and target.receiver_token is None


@pytest.mark.parametrize("token_line", ["", 'token_env = ""\n', "token_env = 3\n"])
def test_a_receiver_without_token_env_is_a_usage_error(tmp_path: Path, token_line: str) -> None:
    path = config(tmp_path, f'receiver_url = "https://rx.example.com"\n{token_line}')
    with pytest.raises(UsageError, match="token_env"):
        Target.from_config(None, path, environ={})


def test_no_receiver_needs_no_token(tmp_path: Path) -> None:
    target = Target.from_config(None, config(tmp_path, ""), environ={})
    assert target.receiver_url is None and target.receiver_token is None


def test_a_stack_target_carries_the_stacks_token() -> None:
    stack = Stack(StackConfig())  # described as a started one would be, without starting it
    stack.ports, stack.receiver_url, stack.receiver_token = [9], "http://127.0.0.1:10", TOKEN
    target = Target.from_stack(stack)
    assert target.receiver_token == TOKEN and TOKEN in target.secret_values()
    assert stack.describe()["receiver_token"] == TOKEN and TOKEN in stack.secret_values()


# -- the config's schema ------------------------------------------------------------------------------


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "staging.toml"
    path.write_text('[target]\nbase_url = "https://relay.example.com"\n' + text)
    return path


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[rate_limit]\nlimit = 60\nwindow_s = 60\nmax_wiat_s = 60\n", "max_wiat_s"),
        ("[deliveries]\nreciever_url = 'https://rx.example.com'\n", "reciever_url"),
        ("[credentials]\ndev = { env = 'K', workspce = 'default' }\n", "workspce"),
        ("[redis]\nurl = 'redis://x'\n", "'url'"),
        ("[rate_limits]\nlimit = 60\n", "rate_limits"),
    ],
)
def test_an_unknown_key_is_refused_naming_it(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(UsageError, match="unknown") as err:
        Target.from_config(None, _toml(tmp_path, text), environ={})
    assert named in str(err.value) and "known" in str(err.value)


def test_max_wait_defaults_to_one_window(tmp_path: Path) -> None:
    target = Target.from_config(
        None, _toml(tmp_path, "[rate_limit]\nlimit = 60\nwindow_s = 60\n"), environ={}
    )
    assert target.rate_limit is not None and target.rate_limit.max_wait_s == 60


def test_redis_inspection_is_optional_and_its_password_secret(tmp_path: Path) -> None:
    plain = Target.from_config(None, _toml(tmp_path, ""), environ={})
    assert plain.redis_url is None
    path = _toml(tmp_path, "[redis]\nurl_env = 'STG_REDIS'\n")
    target = Target.from_config(None, path, environ={"STG_REDIS": "redis://:s3cr3t-pw@127.0.0.1:6390/0"})
    assert target.redis_url == "redis://:s3cr3t-pw@127.0.0.1:6390/0" and "s3cr3t-pw" in target.secret_values()
    with pytest.raises(UsageError, match="redis://"):
        Target.from_config(None, path, environ={"STG_REDIS": "http://127.0.0.1:6390"})


def test_the_delivery_policy_defaults_to_the_documented_one_and_can_be_given(tmp_path: Path) -> None:
    default = Target.from_config(None, config(tmp_path, ""), environ={})
    assert (default.delivery_timeout_s, default.delivery_max_attempts, default.delivery_backoff_base_s) == (
        5.0,
        3,
        0.2,
    )
    given = Target.from_config(
        None, config(tmp_path, "timeout_s = 2\nmax_attempts = 5\nbackoff_base_s = 0.5\n"), environ={}
    )
    assert (given.delivery_timeout_s, given.delivery_max_attempts, given.delivery_backoff_base_s) == (
        2.0,
        5,
        0.5,
    )


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("max_attempts = 0\n", "max_attempts"),
        ("max_attempts = 2.5\n", "max_attempts"),
        ("max_attempts = true\n", "max_attempts"),
        ("backoff_base_s = -1\n", "backoff_base_s"),
        ('backoff_base_s = "0.2"\n', "backoff_base_s"),
    ],
)
def test_a_bad_delivery_policy_is_a_usage_error_naming_the_key(tmp_path: Path, line: str, named: str) -> None:
    with pytest.raises(UsageError, match=named):
        Target.from_config(None, config(tmp_path, line), environ={})


def _with_replicas(tmp_path: Path, replicas: str) -> Path:
    path = tmp_path / "staging.toml"
    path.write_text(f'[target]\nbase_url = "https://relay.example.com/"\nreplica_urls = {replicas}\n')
    return path


def test_replica_urls_reach_each_replica_and_the_base_url_stays_first(tmp_path: Path) -> None:
    replicas = '["http://10.0.3.11:8000/", "http://10.0.3.12:8000"]'
    target = Target.from_config(None, _with_replicas(tmp_path, replicas), environ={})
    assert target.base_url == "https://relay.example.com"  # requests go through the entry point
    assert target.replicas == ["http://10.0.3.11:8000", "http://10.0.3.12:8000"]
    assert target.base_urls == ["https://relay.example.com", *target.replicas]  # "every replica" steps


def test_without_replica_urls_the_base_url_is_the_only_replica(tmp_path: Path) -> None:
    target = Target.from_config(None, _toml(tmp_path, ""), environ={})
    assert target.replicas == [target.base_url] and target.base_urls == [target.base_url]


@pytest.mark.parametrize("replicas", ['"http://10.0.3.11"', '["ftp://10.0.3.11"]', "[1, 2]"])
def test_replica_urls_that_are_not_a_list_of_http_urls_are_refused(tmp_path: Path, replicas: str) -> None:
    with pytest.raises(UsageError, match="replica_urls"):
        Target.from_config(None, _with_replicas(tmp_path, replicas), environ={})
