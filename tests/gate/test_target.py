"""gate/target.py: the receiver's control token, from a stack or a deployment's TOML, kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.errors import UsageError
from gate.stack import Stack, StackConfig
from gate.target import Target

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
    stack = Stack(
        StackConfig(
            backend="external",
            base_url="http://127.0.0.1:9",
            receiver_url="http://127.0.0.1:10",
            receiver_token=TOKEN,
        )
    )
    target = Target.from_stack(stack)
    assert target.receiver_token == TOKEN and TOKEN in target.secret_values()
    assert stack.describe()["receiver_token"] == TOKEN and TOKEN in stack.secret_values()
