"""Replicas of the reference stack started for one scenario with other settings, and what they leave.

A long-window replica counts in the stack's Redis under keys of its own window
(``rl:{workspace}:{floor(now / window)}``): those keys outlive the scenario by up to an hour, and the
keys-in-Redis scenario would rightly call them strangers to the 3 s window. :class:`ExtraReplicas`
deletes them before the replica starts (an earlier scenario of the session may have counted in the same
window) and again at teardown, stops every replica and every
:class:`~features.support.redis_switch.RedisSwitch` it made, in reverse order.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from features.support.redis_switch import RedisSwitch
from gate.client.target import Target


@dataclass(frozen=True)
class LongReplica:
    """A replica with a long window whose current instance (``index``) cannot end during the scenario."""

    url: str
    limit: int
    window_s: int
    index: int

    @property
    def end(self) -> int:
        return (self.index + 1) * self.window_s

    def key(self, workspace: str) -> str:
        return f"rl:{workspace}:{self.index}"


class ExtraReplicas:
    def __init__(self, target: Target, exits: contextlib.ExitStack) -> None:
        assert target.stack is not None and target.controllable
        self.target = target
        self.stack = target.stack
        self._exits = exits

    def start(self, settings: Mapping[str, str]) -> str:
        """One more replica with ``settings`` (an empty value restores the service's default)."""
        return self._exits.enter_context(self.stack.extra_replica(dict(settings)))

    def switch(self, *, on: bool) -> RedisSwitch:
        """A switch in front of the stack's Redis, closed with the scenario."""
        assert self.target.redis_url is not None
        return self._exits.enter_context(RedisSwitch.in_front_of(self.target.redis_url, on=on))

    def long_window(self, settings: Mapping[str, str], *, limit: int, window_s: int) -> LongReplica:
        index = math.floor(time.time() / window_s)
        workspaces = sorted({c.workspace for c in self.target.credentials.values()})
        keys = [f"rl:{ws}:{index}" for ws in workspaces]
        self.forget(keys)
        self._exits.callback(self.forget, keys)
        env = {**settings, "RATE_LIMIT_EXEC_PER_MIN": str(limit), "RATE_LIMIT_WINDOW_S": str(window_s)}
        return LongReplica(self.start(env), limit, window_s, index)

    def redis(self) -> redis.Redis:
        assert self.target.redis_url is not None
        client = redis.Redis.from_url(
            self.target.redis_url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        self._exits.callback(client.close)
        return client

    def forget(self, keys: list[str]) -> None:
        if not keys or not self.target.redis_url:
            return
        client = redis.Redis.from_url(self.target.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.delete(*keys)
        finally:
            client.close()
