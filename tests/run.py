#!/usr/bin/env python3
"""Runs every suite and ends with one line: N passed, N failed.

  tests/run.py BUILD_DIR [pytest args...]

Suites: the cmocka unit tests in BUILD_DIR/tests (TAP output), then, in
one pytest run, the integration tests under tests/integration, which
start the BUILD_DIR/bin/mqbroker they test, and the client SDK's tests
under tests/python (the installed C library and Python package against
that broker; MQ_CLIENT_PREFIX names the install, see tests/python/conftest.py);
then, when MQ_CLIENT_PREFIX_SANITIZED names an install of the sanitizer
build, tests/python once more against that library,
and last (when MQ_FUZZ_BUILD names a fuzz build, as ci/test sets it) each
libFuzzer target for MQ_FUZZ_SECONDS.
Exit status 0 only when nothing failed.
"""
import importlib.util
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


def run_pytest(build, name, paths, extra, env_extra=None):
    report = os.path.join(build, f"{name}-report.xml")
    env = dict(os.environ, MQ_BUILD_DIR=os.path.abspath(build), **(env_extra or {}))
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf",
           f"--junitxml={report}"] + paths + extra
    if os.path.exists(report):
        os.unlink(report)
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


def run_integration(build, extra):
    return run_pytest(build, "integration", [os.path.join(ROOT, "tests", "integration"),
                                             os.path.join(ROOT, "tests", "python")], extra)


def run_python_sanitized(build, extra):
    """The Python suite again, against the library of the sanitizer build
    (MQ_CLIENT_PREFIX_SANITIZED, an install of BUILD_DIR): the ASan and
    UBSan runtimes are preloaded into the interpreter, so a memory error in
    the library under real use fails the test that caused it. Leaks are
    not checked here (the interpreter does not free everything at exit;
    the unit tests check the library's). The install tests are left out:
    they run the compiler, which must not get the preloaded runtimes."""
    prefix = os.environ.get("MQ_CLIENT_PREFIX_SANITIZED")
    if not prefix:
        return 0, 0
    cc = os.environ.get("CC", "cc")
    runtimes = [subprocess.run([cc, f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
                for lib in ("libasan.so", "libubsan.so")]
    env = {"MQ_CLIENT_PREFIX": prefix, "LD_PRELOAD": " ".join(runtimes),
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=66",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=67"}
    return run_pytest(build, "python-sanitized", [os.path.join(ROOT, "tests", "python"),
                                                  "--ignore", os.path.join(ROOT, "tests", "python", "test_install.py")],
                      extra, env)


def run_fuzz():
    """The libFuzzer targets, when ci/test built them (MQ_FUZZ_BUILD), each
    for MQ_FUZZ_SECONDS: one passed or failed per target."""
    build = os.environ.get("MQ_FUZZ_BUILD")
    if not build:
        return 0, 0
    spec = importlib.util.spec_from_file_location("fuzz_run", os.path.join(ROOT, "tests", "fuzz", "run.py"))
    fuzz_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz_run)
    return fuzz_run.run(build, int(os.environ.get("MQ_FUZZ_SECONDS", "30")))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    build, extra = sys.argv[1], sys.argv[2:]
    up, uf = (0, 0) if extra else run_unit(build)
    ip, if_ = run_integration(build, extra)
    sp, sf = run_python_sanitized(build, extra)
    fp, ff = (0, 0) if extra else run_fuzz()
    passed, failed = up + ip + sp + fp, uf + if_ + sf + ff
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
