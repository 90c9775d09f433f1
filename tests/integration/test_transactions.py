"""BEGIN/COMMIT/ABORT covering SEND, ACK and NACK."""
import time

from mqtest import Raw, client


def test_commit_delivers_sends_in_order(broker):
    c, rec = client(broker)
    c.subscribe("/queue/tx", id="1")
    p, prec = client(broker)
    p.begin("t1")
    for i in range(3):
        p.send("/queue/tx", str(i), transaction="t1")
    time.sleep(0.15)
    assert rec.messages == []
    p.commit("t1", headers={"receipt": "c"})
    prec.wait_receipt("c")
    rec.wait_messages(3)
    assert rec.bodies() == ["0", "1", "2"]
    c.disconnect()
    p.disconnect()


def test_abort_discards_sends(broker):
    c, rec = client(broker)
    c.subscribe("/queue/txa", id="1")
    p, prec = client(broker)
    p.begin("t")
    p.send("/queue/txa", "never", transaction="t")
    p.abort("t", headers={"receipt": "a"})
    prec.wait_receipt("a")
    p.send("/queue/txa", "after")
    rec.wait_messages(1)
    time.sleep(0.1)
    assert rec.bodies() == ["after"]
    c.disconnect()
    p.disconnect()


def test_disconnect_rolls_back(broker):
    c, rec = client(broker)
    c.subscribe("/queue/txd", id="1")
    p, _ = client(broker)
    p.begin("t")
    p.send("/queue/txd", "never", transaction="t")
    p.disconnect()
    time.sleep(0.2)
    assert rec.messages == []
    c.disconnect()


def test_ack_in_transaction_applies_at_commit(broker):
    p, _ = client(broker)
    p.send("/queue/txack", "m")
    c, rec = client(broker)
    c.subscribe("/queue/txack", id="1", ack="client-individual")
    m = rec.wait_messages(1)[0]
    c.begin("t")
    c.ack(m.headers["ack"], transaction="t")
    c.abort("t", headers={"receipt": "ab"})
    rec.wait_receipt("ab")
    c.disconnect()
    # aborted: the message is still unacknowledged, so it comes back
    c2, rec2 = client(broker)
    c2.subscribe("/queue/txack", id="1", ack="client-individual")
    m = rec2.wait_messages(1)[0]
    c2.begin("t2")
    c2.ack(m.headers["ack"], transaction="t2")
    c2.commit("t2", headers={"receipt": "cm"})
    rec2.wait_receipt("cm")
    c2.disconnect()
    c3, rec3 = client(broker)
    c3.subscribe("/queue/txack", id="1")
    time.sleep(0.2)
    assert rec3.messages == []
    c3.disconnect()
    p.disconnect()


def test_nack_in_transaction(broker):
    p, _ = client(broker)
    p.send("/queue/txnack", "m")
    c, rec = client(broker)
    c.subscribe("/queue/txnack", id="1", ack="client-individual")
    m = rec.wait_messages(1)[0]
    c.begin("t")
    c.nack(m.headers["ack"], transaction="t")
    time.sleep(0.1)
    assert len(rec.messages) == 1
    c.commit("t")
    rec.wait_messages(2)
    assert rec.messages[1].headers["redelivered"] == "true"
    c.disconnect()
    p.disconnect()


def test_unknown_transaction_in_send_commit_abort(broker):
    for frame, headers in [("SEND", {"destination": "/queue/x", "transaction": "nope"}),
                           ("COMMIT", {"transaction": "nope"}), ("ABORT", {"transaction": "nope"})]:
        r = Raw(broker)
        r.connect()
        r.frame(frame, dict(headers, receipt="r"))
        e = r.expect_error(f"unknown transaction 'nope' in {frame} frame")
        assert e["headers"]["receipt-id"] == "r"
        r.expect_closed()


def test_begin_twice_is_an_error(broker):
    r = Raw(broker)
    r.connect()
    r.frame("BEGIN", {"transaction": "t"})
    r.frame("BEGIN", {"transaction": "t"})
    r.expect_error("transaction 't' already begun")


def test_lenient_ack_with_unknown_transaction(broker):
    # stomp.py as DIRAC drives it: ACK id:<message-id> transaction:<subscription id>
    p, _ = client(broker)
    p.send("/queue/dirac", "job")
    c, rec = client(broker, version="1.1")
    c.subscribe("/queue/dirac", id="sub-dirac", ack="client-individual")
    m = rec.wait_messages(1)[0]
    c.ack(m.headers["message-id"], "sub-dirac", transaction="sub-dirac", receipt="a")
    rec.wait_receipt("a")
    assert rec.errors == []
    c.disconnect()
    c2, rec2 = client(broker)
    c2.subscribe("/queue/dirac", id="1")
    time.sleep(0.2)
    assert rec2.messages == []  # it was acknowledged, outside any transaction
    from mqtest import Control
    assert Control(broker).ok("stats")["lenient_acks"] == 1  # and counted
    c2.disconnect()
    p.disconnect()


def test_strict_mode_refuses_unknown_transaction_in_ack(make_broker):
    b = make_broker("-o", "lenient_transactions=false")
    p, _ = client(b)
    p.send("/queue/strict", "x")
    c, rec = client(b, version="1.1")
    c.subscribe("/queue/strict", id="s", ack="client-individual")
    m = rec.wait_messages(1)[0]
    c.ack(m.headers["message-id"], "s", transaction="s")
    e = rec.wait_error()
    assert "unknown transaction 's' in ACK frame" in e.headers["message"]
    p.disconnect()
