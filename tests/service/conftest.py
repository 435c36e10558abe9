"""Fixtures shared by the service tests that run the relay over TCP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gate.client.receiver import ReceiverClient
from gate.stack.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[ReceiverClient]:
    """A real webhook receiver on a free loopback port, and a client to read what it captured."""
    with Receiver() as rx:
        client = ReceiverClient(rx.url, token=rx.token)
        yield client
        client.close()
