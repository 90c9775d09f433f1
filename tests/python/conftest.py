"""Fixtures for the Python package's suite: the installed library and
package, and real brokers.

The package under test is the installed one: MQ_CLIENT_PREFIX names a
prefix that `cmake --install` filled (ci/test makes build/stage from the
Release build). Without it, the Release build in MQ_CLIENT_BUILD (default
build/) is installed into a temporary prefix first. Brokers are
mqtest.Broker (tests/integration), from MQ_BUILD_DIR as everywhere else.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from mqtest import broker_factory  # noqa: E402


def _prefix():
    prefix = os.environ.get("MQ_CLIENT_PREFIX")
    if prefix:
        return os.path.abspath(prefix), None
    build = os.environ.get("MQ_CLIENT_BUILD", os.path.join(ROOT, "build"))
    tmp = tempfile.mkdtemp(prefix="mqclient-stage-")
    r = subprocess.run(["cmake", "--install", build, "--prefix", tmp], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cmake --install {build} failed:\n{r.stdout}{r.stderr}")
    return tmp, tmp


PREFIX, _OWNED = _prefix()
_pydirs = glob.glob(os.path.join(PREFIX, "lib", "python3*", "dist-packages"))
if not _pydirs or not os.path.exists(os.path.join(_pydirs[0], "mqclient", "__init__.py")):
    raise RuntimeError(f"no mqclient package installed under {PREFIX}/lib/python3*/dist-packages")
PYDIR = _pydirs[0]
sys.path.insert(0, PYDIR)


def pytest_sessionfinish(session, exitstatus):
    if _OWNED:
        shutil.rmtree(_OWNED, ignore_errors=True)


@pytest.fixture
def prefix():
    return PREFIX


@pytest.fixture
def pyenv():
    """Environment for running a program with Debian's python3 and the
    installed package, and nothing else on its path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = PYDIR
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def make_broker():
    """make_broker(*args, **kw) -> a started Broker (mqtest.broker_factory)."""
    yield from broker_factory()


@pytest.fixture
def broker(make_broker):
    return make_broker()


@pytest.fixture
def mq():
    import mqclient
    return mqclient
