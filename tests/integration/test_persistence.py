"""Persistent queues: the journal keeps every message whose receipt arrived,
across SIGTERM and kill -9 (test_faults.py adds a full disk and failing
fsyncs)."""
import os
import random
import threading
import time

import stomp

from mqtest import Broker, Control, client


def drain(broker, dest, quiet=1.0, ack="auto"):
    """Everything a fresh subscriber gets until the queue is empty and
    nothing arrived for `quiet` seconds."""
    ctl = Control(broker)
    c, rec = client(broker)
    c.subscribe(dest, id="drain", ack=ack)
    last, n = time.time(), 0
    while True:
        time.sleep(0.1)
        if len(rec.messages) != n:
            n, last = len(rec.messages), time.time()
        elif time.time() - last >= quiet and ctl.call(f"show {dest}").get("data", {}).get("depth", 0) == 0:
            break
    c.disconnect()
    return rec.messages


def test_persistent_messages_survive_a_restart(broker):
    p, prec = client(broker)
    for i in range(5):
        p.send("/queue/keep", f"p{i}", headers={"persistent": "true"})
    p.send("/queue/keep", "transient")
    p.send("/queue/keep", "p5", headers={"persistent": "true"}, receipt="r")
    prec.wait_receipt("r")
    p.disconnect()
    broker.restart()
    assert "journal: recovered 6 messages" in broker.read_log()
    msgs = drain(broker, "/queue/keep")
    assert [m.body for m in msgs] == [f"p{i}" for i in range(6)]
    assert all(m.headers["redelivered"] == "true" for m in msgs)
    # consumed with auto ack: gone for good
    broker.restart()
    assert drain(broker, "/queue/keep", quiet=0.5) == []


def test_persistent_queue_keeps_everything_and_its_options(broker):
    ctl = Control(broker)
    ctl.ok("create queue /queue/pq persistent max-length=100 ttl=1h")
    p, prec = client(broker)
    for i in range(10):
        p.send("/queue/pq", str(i))
    p.send("/queue/pq", "10", receipt="r")
    prec.wait_receipt("r")
    p.disconnect()
    broker.kill()
    broker.start()
    d = Control(broker).ok("show /queue/pq")
    assert d["depth"] == 11 and d["persistent"] and d["max_length"] == 100 and d["ttl_ms"] == 3600000
    assert [m.body for m in drain(broker, "/queue/pq")] == [str(i) for i in range(11)]


def test_topology_survives(broker):
    ctl = Control(broker)
    ctl.ok("create pubsub /pubsub/events")
    ctl.ok("attach /pubsub/events /queue/audit")
    ctl.ok("attach /pubsub/events /queue/archive")
    ctl.ok("create queue /queue/held")
    ctl.ok("pause /queue/held")
    ctl.ok("create topic /topic/configured")
    broker.restart()
    ctl = Control(broker)
    assert ctl.ok("show /pubsub/events")["child_names"] == ["/queue/audit", "/queue/archive"]
    assert ctl.ok("show /queue/held")["paused"] is True
    assert ctl.ok("show /topic/configured")["type"] == "topic"
    ctl.ok("delete /queue/archive")
    broker.restart()
    ctl = Control(broker)
    assert ctl.ok("show /pubsub/events")["child_names"] == ["/queue/audit"]
    assert ctl.call("show /queue/archive")["status"] == 404


def test_pubsub_children_get_persistent_copies(broker):
    ctl = Control(broker)
    ctl.ok("create pubsub /pubsub/p")
    ctl.ok("attach /pubsub/p /queue/c1")
    ctl.ok("attach /pubsub/p /queue/c2")
    p, prec = client(broker)
    p.send("/pubsub/p", "both", headers={"persistent": "true"}, receipt="r")
    prec.wait_receipt("r")
    p.disconnect()
    # consume one child before the crash: the other keeps its copy
    assert [m.body for m in drain(broker, "/queue/c1")] == ["both"]
    broker.kill()
    broker.start()
    assert drain(broker, "/queue/c1", quiet=0.5) == []
    assert [m.body for m in drain(broker, "/queue/c2")] == ["both"]


def test_unacked_at_a_crash_come_back_acked_do_not(broker):
    p, prec = client(broker)
    for i in range(6):
        p.send("/queue/acks", str(i), headers={"persistent": "true"})
    p.send("/queue/acks", "6", headers={"persistent": "true"}, receipt="r")
    prec.wait_receipt("r")
    c, rec = client(broker)
    c.subscribe("/queue/acks", id="1", ack="client-individual")
    msgs = rec.wait_messages(7)
    for m in msgs[:3]:
        c.ack(m.headers["ack"])
    c.ack(msgs[3].headers["ack"], receipt="a")
    rec.wait_receipt("a")
    broker.kill()
    broker.start()
    got = drain(broker, "/queue/acks")
    assert [m.body for m in got] == ["4", "5", "6"]
    assert all(m.headers["redelivered"] == "true" for m in got)


def test_durable_subscription_survives_a_restart(broker):
    c, rec = client(broker, headers={"client-id": "keeper"})
    c.subscribe("/topic/news", id="n", headers={"activemq.subscriptionName": "all", "receipt": "s"})
    rec.wait_receipt("s")
    c.disconnect()
    p, prec = client(broker)
    for i in range(3):
        p.send("/topic/news", str(i))
    p.send("/topic/news", "3", receipt="r")
    prec.wait_receipt("r")
    p.disconnect()
    broker.kill()
    broker.start()
    assert Control(broker).ok("list durables")[0]["depth"] == 4
    c, rec = client(broker, headers={"client-id": "keeper"})
    c.subscribe("/topic/news", id="n", headers={"activemq.subscriptionName": "all"})
    assert [m.body for m in rec.wait_messages(4)] == ["0", "1", "2", "3"]
    # and it still collects after the restart
    p, _ = client(broker)
    p.send("/topic/news", "4")
    rec.wait_messages(5)
    c.disconnect()
    p.disconnect()


def test_commit_receipt_covers_persistent_sends(broker):
    p, prec = client(broker)
    p.begin("t")
    for i in range(3):
        p.send("/queue/txp", str(i), headers={"persistent": "true"}, transaction="t")
    p.commit("t", headers={"receipt": "c"})
    prec.wait_receipt("c")
    broker.kill()
    broker.start()
    assert [m.body for m in drain(broker, "/queue/txp")] == ["0", "1", "2"]


def test_torn_tail_is_cut_and_reported(broker):
    p, prec = client(broker)
    for i in range(20):
        p.send("/queue/torn", "x" * 50, headers={"persistent": "true"})
    p.send("/queue/torn", "last", headers={"persistent": "true"}, receipt="r")
    prec.wait_receipt("r")
    broker.kill()
    jdir = os.path.join(broker.data_dir, "journal")
    segs = sorted(f for f in os.listdir(jdir) if f.endswith(".seg"))
    last = os.path.join(jdir, segs[-1])
    size = os.path.getsize(last)
    with open(last, "r+b") as f:
        f.truncate(size - 7)  # half a record: a torn write
    broker.start()
    log = broker.read_log()
    assert "cutting a torn tail of " in log and " ERROR: " not in log
    got = drain(broker, "/queue/torn")
    assert len(got) == 20  # the torn last record is gone, the rest survive


def test_receipted_messages_survive_kill_9_loop(make_broker):
    """kill -9 at random moments while producers send persistent messages
    with receipts and a consumer acknowledges; after each restart every
    message whose RECEIPT arrived is still there (or was acknowledged)."""
    b = make_broker("-o", "fsync=always")
    Control(b).ok("create queue /queue/crash persistent")
    receipted, acked = set(), set()
    rnd = random.Random(42)
    seq = 0
    for round_ in range(6):
        stop = threading.Event()

        def produce():
            nonlocal seq
            prec = None
            try:
                p, prec = client(b)
                while not stop.is_set():
                    seq += 1
                    body = f"m{seq}"
                    p.send("/queue/crash", body, receipt=body)
            except Exception:
                pass
            finally:
                if prec:
                    with prec.cond:
                        receipted.update(prec.receipts)

        def consume():
            try:
                c, rec = client(b)
                c.subscribe("/queue/crash", id="1", ack="client-individual")
                done = 0
                while not stop.is_set():
                    with rec.cond:
                        rec.cond.wait_for(lambda: len(rec.messages) > done, 0.05)
                        batch = rec.messages[done:]
                    for m in batch:
                        if rnd.random() < 0.5:
                            # an ACK counts once sent: it may take effect
                            # even if the kill beats its RECEIPT
                            acked.add(m.body)
                            c.ack(m.headers["ack"])
                    done += len(batch)
            except Exception:
                pass

        threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
        for t in threads:
            t.start()
        time.sleep(0.3 + rnd.random() * 0.7)
        b.kill()
        stop.set()
        for t in threads:
            t.join(5)
        b.start()
    got = [m.body for m in drain(b, "/queue/crash")]
    missing = receipted - acked - set(got)
    assert not missing, f"{len(missing)} receipted messages lost, e.g. {sorted(missing)[:5]}"
    dups = len(got) - len(set(got))
    print(f"{len(receipted)} receipted, {len(acked)} acked, {len(got)} left, {dups} duplicates")


def test_queue_larger_than_its_memory_budget(make_broker):
    b = make_broker("-o", "queue_memory_budget=64KiB")
    ctl = Control(b)
    ctl.ok("create queue /queue/backlog persistent")
    p, prec = client(b)
    for i in range(1000):
        p.send("/queue/backlog", f"{i:04d}" + "b" * 1020)
    p.send("/queue/backlog", "last", receipt="r")
    prec.wait_receipt("r")
    d = ctl.ok("show /queue/backlog")
    assert d["depth"] == 1001
    # bodies beyond the budget stay in the journal only
    assert d["paged"] > 900 and d["bytes"] - d["paged_bytes"] <= 64 * 1024 + 1024
    got = drain(b, "/queue/backlog")
    assert [m.body[:4] for m in got[:-1]] == [f"{i:04d}" for i in range(1000)]
    assert all(len(m.body) == 1024 for m in got[:-1]) and got[-1].body == "last"
    assert ctl.ok("show /queue/backlog")["paged"] == 0


def test_recovery_beyond_the_budget_pages(make_broker):
    b = make_broker("-o", "queue_memory_budget=32KiB")
    p, prec = client(b)
    for i in range(500):
        p.send("/queue/rb", f"{i:04d}" + "r" * 500, headers={"persistent": "true"})
    p.send("/queue/rb", "end", headers={"persistent": "true"}, receipt="r")
    prec.wait_receipt("r")
    p.disconnect()
    b.kill()
    b.start()
    d = Control(b).ok("show /queue/rb")
    assert d["depth"] == 501 and d["paged"] > 400
    got = drain(b, "/queue/rb")
    assert [m.body[:4] for m in got[:-1]] == [f"{i:04d}" for i in range(500)]
    assert all(m.headers["redelivered"] == "true" for m in got)


def test_dead_letter_of_a_persistent_queue_survives_a_restart(broker):
    """The default DLQ is not persistent, but a persistent queue's dead letter stays journaled."""
    ctl = Control(broker)
    ctl.ok("create queue /queue/A persistent max-deliveries=1")
    p, prec = client(broker)
    p.send("/queue/A", "poison", receipt="r")
    prec.wait_receipt("r")
    c, rec = client(broker)
    c.subscribe("/queue/A", id="1", ack="client-individual")
    c.nack(rec.wait_messages(1)[0].headers["ack"], receipt="n")
    rec.wait_receipt("n")
    assert ctl.ok("show /queue/DLQ.A")["depth"] == 1
    p.disconnect()
    c.disconnect()
    broker.restart()
    assert [m.body for m in drain(broker, "/queue/DLQ.A")] == ["poison"]


def test_persistent_and_expiry_set_by_route_are_acted_on(make_broker):
    b = make_broker(config="""
function route(msg)
	if msg.destination == "/queue/keep" then msg.headers.persistent = "true" end
	if msg.destination == "/queue/stale" then msg.headers.expires = "1" end
end
""")
    p, prec = client(b)
    p.send("/queue/keep", "kept", receipt="r1")
    p.send("/queue/stale", "old", receipt="r2")
    prec.wait_receipt("r2")
    p.disconnect()
    b.restart()
    assert [m.body for m in drain(b, "/queue/keep")] == ["kept"]
    assert drain(b, "/queue/stale", quiet=0.3) == []
