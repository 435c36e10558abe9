"""features/support/redis_switch.py against a real redis-server: it forwards while on, drops every connection
when cut (open ones included), and forwards again once restored."""

from __future__ import annotations

import redis

from features.support.redis_switch import RedisSwitch
from gate.stack.redis_server import EmbeddedRedis


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1, retry_on_timeout=False)


def test_forwards_cuts_and_restores(redis_server: EmbeddedRedis) -> None:
    with RedisSwitch.in_front_of(redis_server.url) as switch:
        url = switch.url_for(redis_server.url)
        assert f":{switch.port}" in url and url.startswith("redis://")
        c = client(url)
        try:
            assert c.ping()
            c.set("relay-gate:switch-test", "1")
            switch.cut()
            try:
                c.get("relay-gate:switch-test")
            except redis.ConnectionError:
                pass
            else:
                raise AssertionError("a cut switch let a command through")
            fresh = client(url)
            try:
                fresh.ping()
            except redis.ConnectionError:
                pass
            else:
                raise AssertionError("a cut switch let a new connection through")
            finally:
                fresh.close()
            switch.restore()
            assert c.get("relay-gate:switch-test") == b"1"
        finally:
            c.delete("relay-gate:switch-test")
            c.close()


def test_a_switch_made_off_refuses_from_the_start(redis_server: EmbeddedRedis) -> None:
    with RedisSwitch.in_front_of(redis_server.url, on=False) as switch:
        assert not switch.on
        c = client(switch.url_for(redis_server.url))
        try:
            c.ping()
        except redis.ConnectionError:
            pass
        else:
            raise AssertionError("an off switch answered")
        finally:
            c.close()


def test_url_for_keeps_credentials_and_database() -> None:
    with RedisSwitch("127.0.0.1", 6379, on=False) as switch:
        assert switch.url_for("redis://:pw@127.0.0.1:6390/3") == f"redis://:pw@127.0.0.1:{switch.port}/3"
