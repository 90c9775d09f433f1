"""The BlazingMQ guide's producer and consumer (python/examples), with only
the import line changed, exchange messages, acknowledgements and confirms
through mqbroker."""
import os
import signal
import subprocess
import sys
import time

from pyhelp import queue_figures, url, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "python", "examples")
QUEUE = "/queue/bmq.tutorial.workqueue/example_queue"


def run(name, env, timeout=30):
    return subprocess.run(["/usr/bin/python3", os.path.join(EXAMPLES, name)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_guide_producer_and_consumer_exchange_messages(broker, pyenv):
    """The consumer waits; the producer posts one message, the producer with
    an on_ack callback another and prints "Post success"; the consumer
    prints both bodies, confirms them, and on Ctrl-C pauses, closes and
    says goodbye. The broker ends with nothing held and nothing
    unconfirmed."""
    env = dict(pyenv, BMQ_BROKER_URI=url(broker))
    consumer = subprocess.Popen(["/usr/bin/python3", os.path.join(EXAMPLES, "consumer.py")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: queue_figures(broker, QUEUE).get("consumers") == 1, timeout=15,
                 what="the consumer's subscription")
        p = run("producer.py", env)
        assert p.returncode == 0, p.stderr
        p = run("producer_ack.py", env)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines() == ["Post success"]
        wait_for(lambda: queue_figures(broker, QUEUE)["depth"] == 0 and
                 queue_figures(broker, QUEUE)["unacked"] == 0, timeout=15, what="both messages confirmed")
        time.sleep(0.2)
        consumer.send_signal(signal.SIGINT)
        out, err = consumer.communicate(timeout=30)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, err
    assert out.splitlines() == ["b'Some message here'", "b'Some message here'", "Goodbye!"], (out, err)
    f = queue_figures(broker, QUEUE)
    assert (f["depth"], f["unacked"], f["consumers"]) == (0, 0, 0)


def test_guide_producer_fails_clearly_without_broker(pyenv):
    """Nothing listens: the producer ends with mqclient.Error naming the
    address, not a hang."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(pyenv, BMQ_BROKER_URI=f"tcp://127.0.0.1:{port}")
    t0 = time.time()
    p = run("producer.py", env, timeout=60)
    assert p.returncode != 0
    assert "mqclient.exceptions.Error" in p.stderr
    assert f"127.0.0.1:{port}" in p.stderr
    assert "Connection refused" in p.stderr
    assert time.time() - t0 < 30
