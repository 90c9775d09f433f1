#!/usr/bin/env python3
"""Runs every suite and ends with one line: N passed, N failed.

  tests/run.py BUILD_DIR [pytest args...]

Suites: the cmocka unit tests in BUILD_DIR/tests (TAP output), then, in
one pytest run, the integration tests under tests/integration, which
start the BUILD_DIR/bin/mqbroker they test, and the client SDK's tests
under tests/python (the installed C library and Python package against
that broker; MQ_CLIENT_PREFIX names the install, see tests/python/conftest.py).
Exit status 0 only when nothing failed.
"""
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_unit(build):
    passed = failed = 0
    tdir = os.path.join(build, "tests")
    tests = sorted(f for f in os.listdir(tdir) if f.startswith("test_")) if os.path.isdir(tdir) else []
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
    for t in tests:
        path = os.path.join(tdir, t)
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            continue
        start = time.time()
        try:
            p = subprocess.run([path], capture_output=True, text=True, env=env, timeout=600)
            out, rc = p.stdout + p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = (e.stdout or b"").decode(errors="replace") + "\nTIMEOUT after 600 s", -1
        ok = len(re.findall(r"^ok \d+", out, re.M))
        bad = len(re.findall(r"^not ok \d+", out, re.M))
        if rc != 0 and bad == 0:
            bad = 1  # crashed, or a sanitizer report after the tests
        passed += ok
        failed += bad
        status = "ok" if bad == 0 else "FAILED"
        print(f"unit {t}: {ok} passed, {bad} failed ({time.time() - start:.1f} s) {status}", flush=True)
        if bad:
            print(out[-6000:], flush=True)
    return passed, failed


def run_integration(build, extra):
    report = os.path.join(build, "integration-report.xml")
    env = dict(os.environ, MQ_BUILD_DIR=os.path.abspath(build))
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf",
           f"--junitxml={report}", os.path.join(ROOT, "tests", "integration"),
           os.path.join(ROOT, "tests", "python")] + extra
    rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
    if not os.path.exists(report):
        return 0, 1
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    total = sum(int(s.get("tests", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    if rc not in (0, 1) and bad == 0:
        bad = 1  # pytest itself failed (collection, internal error)
    return total - bad - skipped, bad


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    build, extra = sys.argv[1], sys.argv[2:]
    up, uf = (0, 0) if extra else run_unit(build)
    ip, if_ = run_integration(build, extra)
    passed, failed = up + ip, uf + if_
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
