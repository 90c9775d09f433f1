#!/usr/bin/env python3
"""Runs each libFuzzer target for a while; ends with: N passed, N failed.

  tests/fuzz/run.py BUILD_DIR SECONDS [NAME...]

BUILD_DIR is a build made with -DMQ_FUZZ=ON (ci/fuzz makes build-fuzz).
Every BUILD_DIR/fuzz/fuzz_NAME runs for SECONDS, one after the other, from
its seeds (tests/fuzz/corpus/NAME) and the corpus it grew in earlier runs
(BUILD_DIR/fuzz-corpus/NAME). A target passes when it ran the whole time
without a finding: a crash, a sanitizer report, a leak, an input slower
than 25 s or an abort() of one of its own checks. A finding's input is
kept in BUILD_DIR/fuzz-findings/; replay it with `BUILD_DIR/fuzz/fuzz_NAME
FILE`. Every run is appended to BUILD_DIR/fuzz-runs.log (target, seconds,
runs, outcome), the record docs/fuzzing.md's hours come from.
"""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def targets(build, names):
    d = os.path.join(build, "fuzz")
    found = sorted(f[len("fuzz_"):] for f in os.listdir(d) if f.startswith("fuzz_")) if os.path.isdir(d) else []
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise SystemExit(f"no such fuzz target in {d}: {', '.join(missing)} (have: {', '.join(found)})")
        return names
    return found


def run_one(build, name, seconds):
    exe = os.path.join(build, "fuzz", f"fuzz_{name}")
    work = os.path.join(build, "fuzz-corpus", name)
    findings = os.path.join(build, "fuzz-findings")
    seeds = os.path.join(HERE, "corpus", name)
    os.makedirs(work, exist_ok=True)
    os.makedirs(findings, exist_ok=True)
    cmd = [exe, f"-max_total_time={seconds}", "-timeout=25", "-rss_limit_mb=2560", "-print_final_stats=1",
           f"-artifact_prefix={findings}/{name}-", work] + ([seeds] if os.path.isdir(seeds) else [])
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    start = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)
    took = time.time() - start
    out = p.stdout + p.stderr
    m = re.search(r"^Done (\d+) runs in (\d+) second", out, re.M)
    runs = int(m.group(1)) if m else 0
    ok = p.returncode == 0 and m is not None
    with open(os.path.join(build, "fuzz-runs.log"), "a") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {name} {took:.0f}s {runs} runs "
                  f"{'ok' if ok else 'FINDING'}\n")
    if ok:
        print(f"fuzz {name}: {runs} runs in {took:.0f} s, no finding", flush=True)
    else:
        art = re.findall(r"Test unit written to (\S+)", out)
        print(f"fuzz {name}: FINDING after {took:.0f} s (exit status {p.returncode})"
              f"{': ' + art[-1] if art else ''}", flush=True)
        print("\n".join(out.splitlines()[-80:]), flush=True)
    return ok


def run(build, seconds, names=()):
    passed = failed = 0
    for name in targets(build, names):
        if run_one(build, name, seconds):
            passed += 1
        else:
            failed += 1
    return passed, failed


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    passed, failed = run(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
