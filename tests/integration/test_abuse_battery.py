"""The abuse battery's short version (tests/abuse/battery.py --short)
against the Release build that ci/test makes: bounded memory, a probe
client that keeps its round trips, nothing receipted lost."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = os.path.join(ROOT, "build")


@pytest.mark.skipif(not os.path.exists(os.path.join(RELEASE, "bin", "mqbroker")),
                    reason="no Release build in build/ (ci/test makes one)")
def test_abuse_battery_short():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "abuse", "battery.py"), "--short",
                        "--build", RELEASE], capture_output=True, text=True, timeout=600)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
