"""Fixtures: a fresh broker per test, stopped (and checked) afterwards."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtest import Broker  # noqa: E402


@pytest.fixture
def make_broker():
    """Factory: make_broker(*args, config=..., env=...) -> started Broker.
    Every broker it made is stopped at the end, and must exit cleanly."""
    made = []

    def make(*args, start=True, **kw):
        b = Broker(*args, **kw)
        made.append(b)
        return b.start() if start else b

    yield make
    errors = []
    for b in made:
        try:
            if b.proc:
                b.stop()
        except AssertionError as e:
            errors.append(str(e))
        finally:
            b.cleanup()
    if errors:
        pytest.fail("\n".join(errors))


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
