"""The shipped scenarios, run the way operators and CI run them: `mqsh run`.

Every scenario in ci/scenarios.list must hold (exit status 0), and every
file in scenarios/ is run by that list or by ci/scenarios-long (those in
scenarios/cluster/ by ci/cluster-test); one made to fail (tests/scenarios/)
must fail with status 1 and its message; a wrong script exits 2; and
`--json` gives the report with the same field names as the report line.
mqsh finds the broker next to itself (MQ_BUILD_DIR/bin/mqbroker).
"""
import json
import os
import subprocess

import pytest

from mqtest import MQSH, ROOT

LIST = os.path.join(ROOT, "ci", "scenarios.list")
REPORT_FIELDS = ("sent", "received", "lost", "duplicated", "redelivered", "msgs_per_s", "duration_s",
                 "elapsed_s", "latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "latency_max_ms")

needs_mqsh = pytest.mark.skipif(not os.access(MQSH, os.X_OK),
                                reason=f"{MQSH} is not built (mqsh's main comes with issue 4)")


def listed():
    with open(LIST) as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def mqsh_run(scenario, *opts, timeout=180):
    """`mqsh [opts] run SCENARIO` from the repository root."""
    env = dict(os.environ)
    # The brokers the scenarios start inherit this: a sanitizer report
    # makes them exit non-zero, which fails the scenario.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
    return subprocess.run([MQSH, *opts, "run", scenario], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def explain(p):
    return f"exit status {p.returncode}\n--- stdout\n{p.stdout[-6000:]}\n--- stderr\n{p.stderr[-6000:]}"


def test_scenarios_list_names_existing_scenarios():
    """Every listed file exists; the ones that must not run in CI are not listed."""
    names = listed()
    assert names, "ci/scenarios.list is empty"
    for name in names:
        assert os.path.isfile(os.path.join(ROOT, name)), f"{name} is listed but does not exist"
    assert "scenarios/load_1m.lua" not in names


def test_every_shipped_scenario_is_run_by_ci():
    """Each scenarios/*.lua is in ci/scenarios.list or run by ci/scenarios-long,
    so that none of them may fail unnoticed and
    `for s in scenarios/*.lua; do mqsh run $s; done` exits 0 on any machine
    (docs/scenarios.md). A scenario made to fail belongs in tests/scenarios/;
    one that needs a RabbitMQ cluster in scenarios/cluster/, run by
    ci/cluster-test (and short, on one node, by
    tests/integration/test_bridge_rabbitmq.py)."""
    names = set(listed())
    with open(os.path.join(ROOT, "ci", "scenarios-long")) as f:
        long_run = {line.split(" run ", 1)[1].split()[0] for line in f
                    if line.startswith("run ") and " run scenarios/" in line}
    shipped = sorted("scenarios/" + n for n in os.listdir(os.path.join(ROOT, "scenarios")) if n.endswith(".lua"))
    assert shipped
    unrun = [s for s in shipped if s not in names and s not in long_run]
    assert not unrun, f"shipped scenarios that neither ci/scenarios.list nor ci/scenarios-long runs: {unrun}"
    with open(os.path.join(ROOT, "ci", "cluster-test")) as f:
        cluster_run = {line.split(" run ", 1)[1].split()[0] for line in f if " run scenarios/cluster/" in line}
    cluster = sorted("scenarios/cluster/" + n for n in os.listdir(os.path.join(ROOT, "scenarios", "cluster"))
                     if n.endswith(".lua"))
    assert cluster and set(cluster) == cluster_run, (cluster, cluster_run)


@needs_mqsh
@pytest.mark.parametrize("scenario", listed())
def test_scenario_holds(scenario):
    p = mqsh_run(scenario)
    assert p.returncode == 0, explain(p)
    assert f"scenario {os.path.basename(scenario)} ok: " in p.stdout, explain(p)
    assert "scenario failed" not in p.stderr, explain(p)


@needs_mqsh
def test_failed_check_exits_1_with_its_message():
    p = mqsh_run("tests/scenarios/fail_on_purpose.lua")
    assert p.returncode == 1, explain(p)
    out = p.stdout + p.stderr
    assert "scenario failed: tests/scenarios/fail_on_purpose.lua:16: not exactly once: 100 of 100 lost" in out, explain(p)
    assert "scenario fail_on_purpose.lua failed: sent=100 received=0 " in p.stdout, explain(p)


@needs_mqsh
def test_wrong_script_exits_2(tmp_path):
    script = tmp_path / "typo.lua"
    script.write_text("local b = broker{}\nconsumers{ broker = b, destination = '/queue/q', ack = 'maybe' }\n")
    p = mqsh_run(str(script))
    assert p.returncode == 2, explain(p)
    assert "typo.lua:2: consumers{}: ack: expected" in p.stdout + p.stderr, explain(p)


@needs_mqsh
def test_json_report_has_the_report_fields():
    p = mqsh_run("scenarios/queue_round_robin.lua", "--json")
    assert p.returncode == 0, explain(p)
    report = json.loads(p.stdout.strip().splitlines()[-1])
    for field in REPORT_FIELDS:
        assert field in report, f"no {field} in {report}"
    line = next(l for l in p.stdout.splitlines() if l.startswith("scenario queue_round_robin.lua ok: "))
    for field in REPORT_FIELDS:
        assert f" {field}=" in line or f": {field}=" in line, f"no {field} in the report line: {line}"
    assert report["status"] == "ok"
    assert report["sent"] == 6000 and report["received"] == 6000
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert report["msgs_per_s"] > 0
    assert 0 < report["latency_p50_ms"] <= report["latency_p99_ms"] <= report["latency_max_ms"]
    assert [g["n"] for g in report["producers"]] == [2]
    assert [(g["destination"], g["received"]) for g in report["consumers"]] == [("/queue/rr", 6000)]


@needs_mqsh
def test_missing_scenario_file_is_one_clear_line():
    p = subprocess.run([MQSH, "run", "scenarios/no_such.lua"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert p.stdout == ""  # nothing ran: no report
    assert "cannot open scenarios/no_such.lua: No such file or directory" in p.stderr
