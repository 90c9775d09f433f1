"""Topics fan out to current subscribers; pubsubs refuse subscribers."""
import time

from mqtest import Raw, client


def test_topic_fans_out_to_every_subscriber(broker):
    subs = [client(broker) for _ in range(3)]
    for i, (c, rec) in enumerate(subs):
        c.subscribe("/topic/news", id="t", headers={"receipt": f"s{i}"})
        rec.wait_receipt(f"s{i}")
    p, _ = client(broker)
    for i in range(5):
        p.send("/topic/news", str(i))
    for c, rec in subs:
        rec.wait_messages(5)
        assert rec.bodies() == [str(i) for i in range(5)]
        c.disconnect()
    p.disconnect()


def test_any_name_without_prefix_is_a_topic(broker):
    a, ra = client(broker)
    b, rb = client(broker)
    a.subscribe("events.jobs", id="1", headers={"receipt": "a"})
    b.subscribe("events.jobs", id="1", headers={"receipt": "b"})
    ra.wait_receipt("a")
    rb.wait_receipt("b")
    p, _ = client(broker)
    p.send("events.jobs", "both get it")
    ra.wait_messages(1)
    rb.wait_messages(1)
    for x in (a, b, p):
        x.disconnect()


def test_topic_message_without_subscriber_is_dropped(broker):
    p, _ = client(broker)
    p.send("/topic/void", "lost", receipt="r")
    c, rec = client(broker)
    c.subscribe("/topic/void", id="1", headers={"receipt": "s"})
    rec.wait_receipt("s")
    p.send("/topic/void", "seen")
    rec.wait_messages(1)
    time.sleep(0.1)
    assert rec.bodies() == ["seen"]
    c.disconnect()
    p.disconnect()


def test_topic_nack_does_not_redeliver(broker):
    c, rec = client(broker)
    c.subscribe("/topic/nk", id="1", ack="client-individual", headers={"receipt": "s"})
    rec.wait_receipt("s")
    p, _ = client(broker)
    p.send("/topic/nk", "once")
    m = rec.wait_messages(1)[0]
    c.nack(m.headers["ack"], receipt="n")
    rec.wait_receipt("n")
    time.sleep(0.1)
    assert len(rec.messages) == 1
    c.disconnect()
    p.disconnect()


def test_two_subscriptions_to_one_topic_on_one_connection(broker):
    r = Raw(broker)
    r.connect("1.1")
    r.frame("SUBSCRIBE", {"destination": "/topic/dup", "id": "a", "ack": "client-individual"})
    r.frame("SUBSCRIBE", {"destination": "/topic/dup", "id": "b", "ack": "client-individual", "receipt": "s"})
    assert r.recv()["command"] == "RECEIPT"
    r.frame("SEND", {"destination": "/topic/dup"}, "x")
    m1, m2 = r.recv(), r.recv()
    assert {m1["headers"]["subscription"], m2["headers"]["subscription"]} == {"a", "b"}
    assert m1["headers"]["message-id"] == m2["headers"]["message-id"]
    # 1.1 names the subscription: each ack finds its own delivery
    r.frame("ACK", {"message-id": m2["headers"]["message-id"], "subscription": m2["headers"]["subscription"], "receipt": "1"})
    assert r.recv()["headers"]["receipt-id"] == "1"
    r.frame("ACK", {"message-id": m1["headers"]["message-id"], "subscription": m1["headers"]["subscription"], "receipt": "2"})
    assert r.recv()["headers"]["receipt-id"] == "2"


def test_subscribe_to_pubsub_is_refused(broker):
    c, rec = client(broker)
    c.subscribe("/pubsub/fanout", id="1")
    e = rec.wait_error()
    assert "cannot subscribe to pubsub /pubsub/fanout" in e.headers["message"]


def test_send_to_pubsub_without_children_is_dropped(broker):
    p, rec = client(broker)
    p.send("/pubsub/empty", "nobody", receipt="r")
    rec.wait_receipt("r")
    assert rec.errors == []
    p.disconnect()


def test_sending_to_unused_topics_leaves_nothing_behind(broker):
    # regression: every SEND to a new topic name used to create a
    # destination that was never freed
    from mqtest import Control
    p, rec = client(broker)
    for i in range(200):
        p.send(f"/topic/unused-{i}", "x")
    p.send("/topic/unused-last", "x", receipt="r")
    rec.wait_receipt("r")
    assert Control(broker).ok("list topics") == []
    assert Control(broker).ok("stats")["dropped"] == 201
    p.disconnect()
