"""Queues: hold until subscribe, round-robin, redelivery ahead of newer messages."""
import time

from mqtest import Raw, client, wait_for


def test_queue_holds_until_first_subscriber_gets_everything(broker):
    p, _ = client(broker)
    for i in range(20):
        p.send("/queue/held", f"m{i}")
    p.send("/queue/held", "last", receipt="r")
    c, rec = client(broker)
    c.subscribe("/queue/held", id="1")
    rec.wait_messages(21)
    assert rec.bodies() == [f"m{i}" for i in range(20)] + ["last"]
    # each message once: a second subscriber later gets nothing old
    c2, rec2 = client(broker)
    c2.subscribe("/queue/held", id="1")
    time.sleep(0.2)
    assert rec2.messages == []
    for x in (p, c, c2):
        x.disconnect()


def test_round_robin_between_subscribers(broker):
    a, ra = client(broker)
    b, rb = client(broker)
    a.subscribe("/queue/rr", id="a", headers={"receipt": "ra"})
    ra.wait_receipt("ra")
    b.subscribe("/queue/rr", id="b", headers={"receipt": "rb"})
    rb.wait_receipt("rb")
    p, _ = client(broker)
    for i in range(10):
        p.send("/queue/rr", str(i))
    wait_for(lambda: len(ra.messages) + len(rb.messages) == 10, what="10 deliveries")
    time.sleep(0.1)
    assert len(ra.messages) == 5 and len(rb.messages) == 5
    got = sorted(int(x) for x in ra.bodies() + rb.bodies())
    assert got == list(range(10))
    for x in (a, b, p):
        x.disconnect()


def test_message_headers(broker):
    c, rec = client(broker)
    c.subscribe("/queue/h", id="sub-1", ack="client-individual")
    p, _ = client(broker)
    p.send("/queue/h", "x", headers={"custom": "value", "content-type": "text/plain", "persistent": "false"})
    m = rec.wait_messages(1)[0]
    h = m.headers
    assert h["destination"] == "/queue/h"
    assert h["subscription"] == "sub-1"
    assert h["ack"] == h["message-id"]
    assert h["custom"] == "value"
    assert h["content-type"] == "text/plain"
    assert h["delivery-count"] == "1"
    assert "redelivered" not in h
    assert "receipt" not in h and "transaction" not in h
    c.disconnect()
    p.disconnect()


def test_unacked_return_to_queue_ahead_of_newer_on_disconnect(broker):
    p, _ = client(broker)
    for i in range(3):
        p.send("/queue/ret", f"old{i}")
    c1, r1 = client(broker)
    c1.subscribe("/queue/ret", id="1", ack="client-individual")
    r1.wait_messages(3)
    p.send("/queue/ret", "new", receipt="n")
    time.sleep(0.1)
    # consumer 1 received "new" too; it goes away without acking anything
    c1.disconnect()
    c2, r2 = client(broker)
    c2.subscribe("/queue/ret", id="1", ack="client-individual")
    r2.wait_messages(4)
    assert r2.bodies() == ["old0", "old1", "old2", "new"]
    for m in r2.messages:
        assert m.headers["redelivered"] == "true"
        assert m.headers["delivery-count"] == "2"
    c2.disconnect()
    p.disconnect()


def test_unsubscribe_returns_unacked(broker):
    p, _ = client(broker)
    p.send("/queue/unsub", "a")
    c, rec = client(broker)
    c.subscribe("/queue/unsub", id="1", ack="client")
    rec.wait_messages(1)
    c.unsubscribe("1", headers={"receipt": "u"})
    rec.wait_receipt("u")
    c.subscribe("/queue/unsub", id="2", ack="auto")
    rec.wait_messages(2)
    assert rec.messages[1].body == "a"
    assert rec.messages[1].headers["redelivered"] == "true"
    c.disconnect()
    p.disconnect()


def test_nack_requeues_ahead_of_newer(broker):
    p, _ = client(broker)
    p.send("/queue/nack", "first")
    c, rec = client(broker)
    c.subscribe("/queue/nack", id="1", ack="client-individual", headers={"max-unconfirmed-messages": "1"})
    m = rec.wait_messages(1)[0]
    p.send("/queue/nack", "second", receipt="r2")
    time.sleep(0.1)
    assert len(rec.messages) == 1  # flow control: one outstanding
    c.nack(m.headers["ack"])
    rec.wait_messages(2)
    assert rec.messages[1].body == "first"
    assert rec.messages[1].headers["redelivered"] == "true"
    c.ack(rec.messages[1].headers["ack"])
    rec.wait_messages(3)
    assert rec.messages[2].body == "second"
    c.disconnect()
    p.disconnect()


def test_client_ack_is_cumulative(broker):
    p, _ = client(broker)
    for i in range(5):
        p.send("/queue/cum", str(i))
    c, rec = client(broker)
    c.subscribe("/queue/cum", id="1", ack="client")
    rec.wait_messages(5)
    # ACK of the fourth covers the first four; the fifth stays unacked
    c.ack(rec.messages[3].headers["ack"], receipt="a")
    rec.wait_receipt("a")
    c.disconnect()
    c2, rec2 = client(broker)
    c2.subscribe("/queue/cum", id="1")
    rec2.wait_messages(1)
    time.sleep(0.1)
    assert rec2.bodies() == ["4"]
    c2.disconnect()
    p.disconnect()


def test_client_individual_ack_is_one(broker):
    p, _ = client(broker)
    for i in range(3):
        p.send("/queue/ind", str(i))
    c, rec = client(broker)
    c.subscribe("/queue/ind", id="1", ack="client-individual")
    rec.wait_messages(3)
    c.ack(rec.messages[1].headers["ack"], receipt="a")
    rec.wait_receipt("a")
    c.disconnect()
    c2, rec2 = client(broker)
    c2.subscribe("/queue/ind", id="1")
    rec2.wait_messages(2)
    time.sleep(0.1)
    assert rec2.bodies() == ["0", "2"]
    c2.disconnect()
    p.disconnect()


def test_ack_by_message_id_in_1_1(broker):
    p, _ = client(broker)
    p.send("/queue/v11", "x")
    c, rec = client(broker, version="1.1")
    c.subscribe("/queue/v11", id="1", ack="client")
    m = rec.wait_messages(1)[0]
    c.ack(m.headers["message-id"], "1", receipt="a")
    rec.wait_receipt("a")
    c.disconnect()
    c2, rec2 = client(broker)
    c2.subscribe("/queue/v11", id="1")
    time.sleep(0.2)
    assert rec2.messages == []
    c2.disconnect()
    p.disconnect()


def test_ack_accepts_either_id_header_in_1_2(broker):
    r = Raw(broker)
    r.connect("1.2")
    r.frame("SUBSCRIBE", {"destination": "/queue/either", "id": "s", "ack": "client-individual"})
    r.frame("SEND", {"destination": "/queue/either"}, "a")
    r.frame("SEND", {"destination": "/queue/either"}, "b")
    m1, m2 = r.recv(), r.recv()
    r.frame("ACK", {"message-id": m1["headers"]["message-id"], "receipt": "1"})
    assert r.recv()["headers"]["receipt-id"] == "1"
    r.frame("ACK", {"id": m2["headers"]["ack"], "receipt": "2"})
    assert r.recv()["headers"]["receipt-id"] == "2"


def test_unknown_message_id_in_ack_is_an_error(broker):
    c, rec = client(broker, version="1.1")
    c.ack("12345", "nosuch")
    e = rec.wait_error()
    assert "unknown subscription 'nosuch' in ACK frame" in e.headers["message"]
    r = Raw(broker)
    r.connect()
    r.frame("ACK", {"id": "999999", "receipt": "x"})
    e = r.expect_error("unknown message id '999999' in ACK frame")
    assert e["headers"]["receipt-id"] == "x"


def test_unknown_subscription_in_unsubscribe(broker):
    r = Raw(broker)
    r.connect()
    r.frame("UNSUBSCRIBE", {"id": "nope"})
    r.expect_error("unknown subscription 'nope' in UNSUBSCRIBE frame")
    r.expect_closed()


def test_flow_control_and_aliases(broker):
    for header in ("max-unconfirmed-messages", "prefetch-count", "activemq.prefetchSize", "credit"):
        q = "/queue/fc-" + header
        p, _ = client(broker)
        for i in range(10):
            p.send(q, str(i))
        c, rec = client(broker)
        c.subscribe(q, id="1", ack="client-individual", headers={header: "3"})
        rec.wait_messages(3)
        time.sleep(0.15)
        assert len(rec.messages) == 3, header
        c.ack(rec.messages[0].headers["ack"])
        rec.wait_messages(4)
        time.sleep(0.1)
        assert len(rec.messages) == 4, header
        c.disconnect()
        p.disconnect()


def test_flow_control_by_bytes(broker):
    p, _ = client(broker)
    for i in range(5):
        p.send("/queue/fcb", "x" * 100)
    c, rec = client(broker)
    c.subscribe("/queue/fcb", id="1", ack="client-individual", headers={"max-unconfirmed-bytes": "250"})
    rec.wait_messages(3)  # 0, 100, 200 < 250: three go out, then no room
    time.sleep(0.15)
    assert len(rec.messages) == 3
    c.disconnect()
    p.disconnect()


def test_consumer_priority(broker):
    lo, rlo = client(broker)
    hi, rhi = client(broker)
    lo.subscribe("/queue/prio", id="1", ack="client-individual", headers={"consumer-priority": "1"})
    hi.subscribe("/queue/prio", id="1", ack="client-individual",
                 headers={"consumer-priority": "5", "max-unconfirmed-messages": "2", "receipt": "h"})
    rhi.wait_receipt("h")
    p, _ = client(broker)
    for i in range(5):
        p.send("/queue/prio", str(i))
    # the high-priority consumer takes what it has room for, the rest spills over
    rhi.wait_messages(2)
    rlo.wait_messages(3)
    assert rhi.bodies() == ["0", "1"]
    assert rlo.bodies() == ["2", "3", "4"]
    # alias: activemq.priority
    for x in (lo, hi, p):
        x.disconnect()


def test_priority_alias_activemq(broker):
    lo, rlo = client(broker)
    hi, rhi = client(broker)
    lo.subscribe("/queue/prio2", id="1", headers={"activemq.priority": "0"})
    hi.subscribe("/queue/prio2", id="1", headers={"activemq.priority": "9", "receipt": "h"})
    rhi.wait_receipt("h")
    p, _ = client(broker)
    for i in range(5):
        p.send("/queue/prio2", str(i))
    rhi.wait_messages(5)
    time.sleep(0.1)
    assert rlo.messages == []
    for x in (lo, hi, p):
        x.disconnect()


def test_resubscribe_same_id_changes_flow_control(broker):
    p, _ = client(broker)
    for i in range(6):
        p.send("/queue/reconf", str(i))
    c, rec = client(broker)
    c.subscribe("/queue/reconf", id="1", ack="client-individual", headers={"max-unconfirmed-messages": "2"})
    rec.wait_messages(2)
    time.sleep(0.1)
    assert len(rec.messages) == 2
    c.subscribe("/queue/reconf", id="1", ack="client-individual", headers={"max-unconfirmed-messages": "5"})
    rec.wait_messages(5)
    c.disconnect()
    p.disconnect()
