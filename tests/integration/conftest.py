"""Fixtures: a fresh broker per test, stopped (and checked) afterwards."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtest import broker_factory  # noqa: E402


@pytest.fixture
def make_broker():
    """Factory: make_broker(*args, config=..., env=...) -> started Broker (mqtest.broker_factory)."""
    yield from broker_factory()


@pytest.fixture
def broker(make_broker):
    return make_broker()


@pytest.fixture
def remote_peer():
    """A network namespace on a veth pair (mqtest.RemotePeer), removed after."""
    from mqtest import RemotePeer
    why = RemotePeer.skip_reason()
    if why:
        pytest.skip(why)
    p = RemotePeer()
    yield p
    p.close()
