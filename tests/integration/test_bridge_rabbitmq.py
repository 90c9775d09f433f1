"""Bridges against a real RabbitMQ (docs/bridges.md): the short version of
ci/cluster-test, on one node. ci/deps installs rabbitmq-server; the node
is ours alone (ci/rabbitmq-cluster: its own name, ports, data directory,
cookie and epmd, all on loopback) and stopped at the end."""
import os
import subprocess

import pytest

from mqtest import BUILD, ROOT, Control, client, wait_for

CLUSTER = os.path.join(ROOT, "ci", "rabbitmq-cluster")
RABBIT = "/usr/lib/rabbitmq/bin/rabbitmq-server"


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory):
    if not os.path.exists(RABBIT):
        pytest.skip("rabbitmq-server is not installed (ci/deps installs it)")
    d = str(tmp_path_factory.mktemp("rabbit"))
    base = subprocess.run([CLUSTER, "free-base", "1"], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([CLUSTER, "start", d, "1", base], check=True, timeout=120)
    try:
        subprocess.run([CLUSTER, "quorum", d, "orders"], check=True, timeout=60)
        hosts = subprocess.run([CLUSTER, "hosts", d], check=True, capture_output=True, text=True).stdout.strip()
        yield {"dir": d, "hosts": hosts, "port": int(hosts.split(":")[1])}
    finally:
        subprocess.run([CLUSTER, "stop", d], timeout=120)


def queue_types(rabbit):
    out = subprocess.run([CLUSTER, "ctl", rabbit["dir"], "1", "list_queues", "name", "type"], capture_output=True,
                         text=True, timeout=60).stdout
    return dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)


def test_through_a_quorum_queue_while_rabbitmq_and_mqbroker_die(rabbit):
    """The cluster scenario, short: 5,000 messages from A through RabbitMQ's
    quorum queue to B's consumers while the RabbitMQ node is killed and
    restarted, then A. Nothing A receipted is lost."""
    env = dict(os.environ, MQ_RABBIT_DIR=rabbit["dir"], MQ_RABBIT_HOSTS=rabbit["hosts"], MQ_COUNT="5000",
               MQ_RATE="2500", MQ_RABBIT_CTL=CLUSTER)
    r = subprocess.run([os.path.join(BUILD, "bin", "mqsh"), "run", os.path.join(ROOT, "scenarios", "cluster",
                        "bridge_cluster.lua")], env=env, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 lost" in r.stdout, r.stdout
    assert "killing RabbitMQ node 1" in r.stdout and "killing mqbroker A" in r.stdout


def test_outbound_declares_with_rabbitmq_options(rabbit, make_broker):
    """RabbitMQ's own arguments are options, not built in: send-header
    x-queue-type:quorum declares the queue the first SEND names as a
    quorum queue; a /amq/queue/ name addresses an existing one."""
    a = make_broker()
    ctl = Control(a)
    ctl.ok(f"bridge add rq direction=out from=/queue/jobs to=/queue/jobs-q hosts={rabbit['hosts']} login=guest "
           "passcode=guest send-header=x-queue-type:quorum send-header=durable:true send-header=auto-delete:false")
    ctl.ok(f"bridge add ra direction=out from=/queue/more to=/amq/queue/orders hosts={rabbit['hosts']} "
           "login=guest passcode=guest")
    c, rec = client(a)
    for i in range(10):
        c.send("/queue/jobs", f"j{i}", headers={"persistent": "true", "receipt": f"j{i}"})
        c.send("/queue/more", f"o{i}", headers={"persistent": "true", "receipt": f"o{i}"})
    rec.wait_receipt("o9")
    c.disconnect()
    wait_for(lambda: ctl.ok("show bridge rq")["acknowledged"] == 10 and ctl.ok("show bridge ra")["acknowledged"] == 10,
             timeout=20, what="20 forwarded")
    assert queue_types(rabbit)["jobs-q"] == "quorum"
    # Taken back out of RabbitMQ into A itself: a loop (A -> RabbitMQ -> A),
    # so A drops them, and confirms them upstream.
    ctl.ok(f"bridge add back direction=in from=/amq/queue/jobs-q to=/queue/back hosts={rabbit['hosts']} "
           "login=guest passcode=guest window=4 paused")
    ctl.ok("bridge resume back")
    r = wait_for(lambda: (lambda r: r if r["acknowledged"] == 10 else None)(ctl.ok("show bridge back")),
                 timeout=20, what="10 taken back")
    assert r["looped"] == 10 and r["forwarded"] == 0
    assert ctl.call("show /queue/back")["status"] == 404
    for name in ("rq", "ra", "back"):
        ctl.ok(f"bridge delete {name}")
    ctl.close()
    # Into another broker they go, at last.
    b = make_broker()
    ctl = Control(b)
    c, rec = client(a)
    for i in range(5):
        c.send("/queue/jobs", f"k{i}", headers={"persistent": "true", "receipt": f"k{i}"})
    rec.wait_receipt("k4")
    c.disconnect()
    Control(a).ok(f"bridge add rq2 direction=out from=/queue/jobs to=/amq/queue/jobs-q hosts={rabbit['hosts']} "
                  "login=guest passcode=guest")
    ctl.ok(f"bridge add in direction=in from=/amq/queue/jobs-q to=/queue/back hosts={rabbit['hosts']} "
           "login=guest passcode=guest")
    wait_for(lambda: ctl.call("show /queue/back").get("data", {}).get("depth") == 5, timeout=20,
             what="5 in B's /queue/back")
    ctl.close()
    # The ten sent to the shared quorum queue go, so that it starts empty for whoever runs next.
    subprocess.run([CLUSTER, "ctl", rabbit["dir"], "1", "purge_queue", "orders"], capture_output=True, timeout=60)
